"""How a patient's name is compared when someone looks for it: case- and accent-insensitive.

`search_key("Zoë O'Brien")` is `"zoe o'brien"`: decomposed (NFKD), combining marks dropped,
case-folded, and the letters that do not decompose spelled as a keyboard without them would
(`Ø` as `o`, `Æ` as `ae`, `ß` as `ss`, `Ł` as `l`). The patients table keeps this key beside
each name, so the database compares keys with a plain prefix match and an ordinary index, the
same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import unicodedata

#: Letters NFKD leaves whole, as they are typed on a keyboard without them (after casefold).
_PLAIN = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "\u0131": "i"}
)


def search_key(name: str | None) -> str:
    """The name as search compares it: without accents, case-folded, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name or "")
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().translate(_PLAIN).split())

"""Text that a clinic's records may hold: one line, no control, bidirectional-override or
unpaired-surrogate character (they reach email headers, logs and other people's screens)."""

from __future__ import annotations

import re

from engine.domain.errors import InvalidInput

UNSAFE_IN_A_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
UNSAFE_IN_A_NOTE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def one_line(value: str | None, name: str, max_length: int = 200) -> str | None:
    """The text stripped, or InvalidInput naming the field; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text")
    if UNSAFE_IN_A_LINE.search(value) or len(value) > max_length:
        raise InvalidInput(
            f"{name} must be one line of at most {max_length} characters, without control "
            "or direction-override characters"
        )
    return value.strip()

"""FHIR search parameters as the facade reads them: strict or lenient handling, dates with their
prefixes, tokens, `_count`, and the `self`/`next` links of a searchset.

Handling (FHIR's `Prefer: handling=`): by default `strict`, so a parameter the search does not
support is a 400 OperationOutcome naming it; with `Prefer: handling=lenient` it is ignored and
left out of the `self` link. Either way a modifier (`code:text`), a value with a control
character (CR, LF...), an empty value, a parameter given more often than it may be, and a
malformed value are a 400: ignoring them would widen the answer silently.

Dates (`date=ge2026-03`): a prefix `eq` (default), `ge`, `gt`, `le` or `lt`, then a year, a
month, a day, or a date-time with its zone (`2026-03-01T08:30:00Z`), between 1900 and 2200. A
value stands for the whole range its precision names (`2026-03` is all of March, UTC), and the
prefix compares against that range: `ge2026-03` from 1 March on, `gt2026-03` from 1 April on,
`le2026-03` up to the end of March, `lt2026-03` before 1 March.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

from fastapi import Request

from api.fhir.outcome import FhirError
from api.schemas import EARLIEST, LATEST, single_line

PREFIXES = ("eq", "ge", "gt", "le", "lt")
MAX_VALUE = 512  # characters in one parameter value (a cursor included)
MAX_PARAMETERS = 24
_DATE = re.compile(
    r"^(?P<prefix>[a-z]{2})?(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_COUNT = re.compile(r"^\d{1,6}$")


@dataclass(frozen=True)
class SearchQuery:
    """The parameters a search uses (name -> values, each name in the order given), and the
    ones it ignored under lenient handling."""

    values: dict[str, list[str]]
    ignored: tuple[str, ...]
    lenient: bool

    def one(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[0] if found else None


def lenient(request: Request) -> bool:
    """Whether the client asked for `Prefer: handling=lenient` (strict otherwise)."""
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";")[0].strip().partition("=")
            if name.strip().lower() == "handling":
                return value.strip().strip('"').lower() == "lenient"
    return False


def search_query(request: Request, supported: Mapping[str, int]) -> SearchQuery:
    """The query's parameters, checked against `supported` (name -> how often it may be
    given); FhirError 400 for what the handling does not let pass."""
    handling_lenient = lenient(request)
    pairs = request.query_params.multi_items()
    if len(pairs) > MAX_PARAMETERS:
        raise FhirError(f"at most {MAX_PARAMETERS} search parameters", 400, "too-costly")
    values: dict[str, list[str]] = {}
    ignored: list[str] = []
    for name, value in pairs:
        where = _printable(name)
        try:
            single_line(name)
            single_line(value)
        except ValueError as unsafe:
            raise FhirError(f"search parameter {where}: {unsafe}", 400, "invalid") from None
        if ":" in name:
            raise FhirError(f"search modifiers are not supported: {where}", 400, "not-supported")
        if name not in supported:
            if not handling_lenient:
                raise FhirError(
                    f"search parameter not supported: {where} (send 'Prefer: handling=lenient' "
                    "to have unsupported parameters ignored)",
                    400,
                    "not-supported",
                )
            ignored.append(name)
            continue
        if not value.strip() or len(value) > MAX_VALUE:
            raise FhirError(
                f"search parameter {where} needs a value of 1 to {MAX_VALUE} characters",
                400,
                "invalid",
            )
        values.setdefault(name, []).append(value)
        if len(values[name]) > supported[name]:
            raise FhirError(
                f"search parameter {where} may be given at most {supported[name]} time(s)",
                400,
                "invalid",
            )
    return SearchQuery(values, tuple(ignored), handling_lenient)


def date_bounds(value: str, name: str = "date") -> tuple[datetime | None, datetime | None]:
    """(from, inclusive; before, exclusive) that a date search value selects; FhirError 400 for
    a malformed or implausible date or an unsupported prefix."""
    found = _DATE.match(value)
    if found is None:
        raise FhirError(
            f"{name} must be a FHIR date or date-time with an optional prefix "
            f"({', '.join(PREFIXES)}), e.g. ge2026-03 or le2026-03-31T23:59:59Z",
            400,
            "invalid",
        )
    prefix = found["prefix"] or "eq"
    if prefix not in PREFIXES:
        raise FhirError(
            f"{name} prefix {prefix!r} is not supported ({', '.join(PREFIXES)})",
            400,
            "not-supported",
        )
    start, end = _range(found, name)
    return {
        "eq": (start, end),
        "ge": (start, None),
        "gt": (end, None),
        "le": (None, end),
        "lt": (None, start),
    }[prefix]


def _range(found: re.Match[str], name: str) -> tuple[datetime, datetime]:
    """The instant a date value starts at and the instant after its precision ends."""
    if found["hour"] is not None and found["zone"] is None:
        raise FhirError(f"{name}: a time needs its zone (Z or +hh:mm)", 400, "invalid")
    year, month, day = int(found["year"]), int(found["month"] or 1), int(found["day"] or 1)
    fraction = found["fraction"] or ""
    try:
        zone = UTC
        if found["zone"] not in (None, "Z"):
            sign = 1 if found["zone"][0] == "+" else -1
            hours, minutes = int(found["zone"][1:3]), int(found["zone"][4:6])
            zone = _offset(sign * timedelta(hours=hours, minutes=minutes))
        start = datetime(
            year,
            month,
            day,
            int(found["hour"] or 0),
            int(found["minute"] or 0),
            int(found["second"] or 0),
            int((fraction + "000000")[:6]),
            tzinfo=zone,
        )
    except ValueError as impossible:
        raise FhirError(f"{name}: {impossible}", 400, "invalid") from None
    if not EARLIEST <= start < LATEST:
        raise FhirError(f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}", 400, "invalid")
    if found["month"] is None:
        end = start.replace(year=year + 1)
    elif found["day"] is None:
        end = start + timedelta(days=calendar.monthrange(year, month)[1])
    elif found["hour"] is None:
        end = start + timedelta(days=1)
    elif found["second"] is None:
        end = start + timedelta(minutes=1)
    elif not fraction:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
    return start.astimezone(UTC), end.astimezone(UTC)


def _offset(delta: timedelta) -> timezone:
    if abs(delta) >= timedelta(hours=24):
        raise ValueError("the zone offset must be under 24 hours")
    return timezone(delta)


def token(value: str) -> tuple[str | None, str]:
    """(system, code) of a token search value: `system|code`, `|code` (no system: '') or
    `code` (any system: None)."""
    if "|" not in value:
        return None, value
    system, _, code = value.partition("|")
    return system, code


def page_size(query: SearchQuery, default: int, maximum: int) -> int:
    """`_count`: 1 to `maximum`; above it, capped under lenient handling, else FhirError 400."""
    given = query.one("_count")
    if given is None:
        return default
    if not _COUNT.match(given) or int(given) < 1:
        raise FhirError(f"_count must be a whole number from 1 to {maximum}", 400, "invalid")
    if int(given) > maximum:
        if not query.lenient:
            raise FhirError(f"_count may be at most {maximum}", 400, "too-costly")
        return maximum
    return int(given)


def search_links(
    here: str, query: SearchQuery, count: int, next_cursor: str | None
) -> list[dict[str, str]]:
    """`self` (the parameters used, `_count` as applied) and, while more pages remain, `next`."""
    used = [
        (name, value)
        for name, values in query.values.items()
        if name != "_count"
        for value in values
    ] + [("_count", str(count))]
    links = [{"relation": "self", "url": f"{here}?{urlencode(used)}"}]
    if next_cursor:
        following = [(n, v) for n, v in used if n != "_cursor"] + [("_cursor", next_cursor)]
        links.append({"relation": "next", "url": f"{here}?{urlencode(following)}"})
    return links


def _printable(name: str) -> str:
    """A parameter name as an error message may quote it (repr, shortened)."""
    return repr(name[:40])

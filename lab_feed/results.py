"""From an OBX to the lab result the engine records, or the reason it cannot be one.

- Code: OBX-3 (or its alternate) in the LOINC system (`LN`), else the site's local code table
  (`site_feeds`), which names the LOINC code; the LOINC code must be a pathway lab.
- Value by OBX-2: `NM`, `ST`/`TX`/`FT` as sent (`<20` and `not detected` are understood by the
  engine), `SN` as `<^20` or `^12.5`, `CE`/`CWE`/`CNE` by their text (positive / negative).
- Unit: OBX-6's identifier, alternate identifier or text, in the first spelling the pathway lab
  accepts (UCUM's `[IU]/L` is `IU/L` there, `µmol/L` is `umol/L`); the conversion itself is
  the engine's (`engine.domain.labs`), which refuses a unit it cannot convert.
- Time: OBX-14, else OBR-7, to the minute at least the day; without an offset, in the site's
  time zone.
- Status (OBX-11): F and C are recorded; P, I, S, R, N and X are not final and are left out with
  a warning; D and W (a deleted or wrong-patient result) need a person and refuse the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from engine.domain.clinical_text import one_line
from engine.domain.errors import DomainError
from engine.domain.pathway import LabDefinition, Pathway
from lab_feed.oru import Observation
from lab_feed.site_feeds import LOINC_CODE, SiteFeed

LOINC_SYSTEMS = ("LN", "LOINC")
RECORDED = ("F", "C")
NOT_FINAL = ("P", "I", "S", "R", "N", "X", "O", "A", "")
TEXT_TYPES = ("NM", "ST", "TX", "FT")
CODED_TYPES = ("CE", "CWE", "CNE")
HL7_TIME = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?"
    r"(?P<s>\d{2}(?:\.\d{1,4})?)?(?P<tz>[+-]\d{4})?$"
)


@dataclass(frozen=True)
class Problem:
    """Why an observation is not recorded: `error` is an HL7 table 0357 code, `field` the OBX
    field at fault; `severity` E refuses the message, W leaves the observation out."""

    observation: Observation
    reason: str
    error: str = "207"
    field: int = 5
    severity: str = "E"


def lab_item(
    observation: Observation, pathway: Pathway, feed: SiteFeed, patient_id: str
) -> dict[str, Any] | Problem:
    """The `record_lab_results` item for `observation`, or the Problem with it."""
    if observation.status not in RECORDED:
        if observation.status in NOT_FINAL:
            status = observation.status or "empty"
            return Problem(
                observation, f"result status {status} is not final; not recorded", "207", 11, "W"
            )
        return Problem(
            observation,
            f"result status {observation.status} (a deleted or wrong-patient result) cannot be "
            "applied by the feed; tell the clinic",
            "207",
            11,
        )
    try:
        lab = _lab(observation, pathway, feed)
    except DomainError as unknown:
        return Problem(observation, unknown.message, "103", 3)
    try:
        value = _value(observation, lab)
        unit = _unit(observation, lab)
        taken_at = _time(observation.observed_at, feed.timezone)
    except _Refused as refused:
        return Problem(observation, str(refused), refused.error, refused.field)
    return {
        "patient_id": patient_id,
        "code": lab.loinc,
        "value": value,
        "unit": unit,
        "taken_at": taken_at,
        "source": "hl7",
    }


class _Refused(Exception):
    def __init__(self, reason: str, field: int, error: str = "102"):
        super().__init__(reason)
        self.field, self.error = field, error


def _lab(observation: Observation, pathway: Pathway, feed: SiteFeed) -> LabDefinition:
    codes = (observation.code, observation.alternate_code)
    loinc = [code for code, system in codes if code and system.upper() in LOINC_SYSTEMS]
    local = [feed.local_codes[code] for code, _ in codes if code in feed.local_codes]
    for code in [*loinc, *local]:
        if LOINC_CODE.match(code):
            try:
                return pathway.lab(code)
            except DomainError:
                continue
    code, system = observation.code
    raise _UnknownLab(
        f"code {code!r} ({system or 'no coding system'}) is neither the LOINC code of a pathway "
        f"lab nor in site {feed.site}'s local code table"
    )


class _UnknownLab(DomainError):
    code = "unknown-code"


def _value(observation: Observation, lab: LabDefinition) -> str:
    kind, parts = observation.value_type, observation.value
    if not parts or not any(parts):
        raise _Refused("OBX-5 holds no value", 5, "101")
    if kind in TEXT_TYPES:
        value = parts[0]
    elif kind == "SN":
        comparator, number, separator, second = (*parts, "", "", "", "")[:4]
        if separator or second or comparator not in ("", "=", "<"):
            raise _Refused(
                f"SN value {'^'.join(parts)!r} is not one number (only N or <N is accepted)", 5
            )
        value = f"<{number}" if comparator == "<" else number
    elif kind in CODED_TYPES:
        value = (parts[1] if len(parts) > 1 and parts[1] else parts[0]).lower()
    else:
        raise _Refused(f"OBX-2 value type {kind or 'empty'!r} is not supported", 2)
    try:
        checked = one_line(value, "OBX-5 value", 32)
    except DomainError as bad:
        raise _Refused(bad.message, 5) from None
    if lab.kind != "qualitative" and kind in CODED_TYPES:
        raise _Refused(f"{lab.code} needs a number, not the coded answer {value!r}", 5)
    return checked or ""


def _unit(observation: Observation, lab: LabDefinition) -> str | None:
    if lab.kind == "qualitative" or not observation.units:
        return None if not observation.units else observation.units[0]
    for unit in observation.units:
        for spelling in _spellings(unit):
            if spelling in lab.convertible:
                return spelling
    try:
        return one_line(observation.units[0], "OBX-6 unit", 16)  # the engine says what it takes
    except DomainError as bad:
        raise _Refused(bad.message, 6) from None


def _spellings(unit: str) -> list[str]:
    """The unit as sent, and as UCUM or the common spelling writes it."""
    plain = unit.strip().replace("µ", "u").replace("μ", "u")
    return list(
        dict.fromkeys(
            [unit.strip(), plain, plain.replace("[IU]", "IU"), plain.replace("IU", "[IU]")]
        )
    )


def _time(text: str, zone: tzinfo) -> str:
    """ISO text with a zone for the engine, from an HL7 TS/DTM."""
    if not text:
        raise _Refused("the time the sample was taken is missing (OBX-14 or OBR-7)", 14, "101")
    match = HL7_TIME.match(text)
    if match is None:
        raise _Refused(f"{text!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+ZZZZ])", 14)
    if match["d"] is None:
        raise _Refused(
            f"{text!r} gives only a year or a month; the pathway needs at least the day", 14
        )
    seconds = float(match["s"] or 0)
    try:
        local = datetime(
            int(match["y"]),
            int(match["mo"]),
            int(match["d"]),
            int(match["h"] or 0),
            int(match["mi"] or 0),
            int(seconds),
            round(seconds % 1 * 1_000_000) % 1_000_000,
        )
    except ValueError as impossible:
        raise _Refused(f"{text!r} is not a real date/time ({impossible})", 14) from None
    if match["tz"]:
        sign = 1 if match["tz"][0] == "+" else -1
        hours, minutes = int(match["tz"][1:3]), int(match["tz"][3:5])
        if hours > 14 or minutes > 59:
            raise _Refused(f"{text!r} has an impossible UTC offset", 14)
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return local.replace(tzinfo=zone).isoformat()

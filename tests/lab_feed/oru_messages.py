"""ORU^R01 messages as a laboratory system sends them, and reading the ACKs that come back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import count

import hl7

_control_ids = count(1)


@dataclass(frozen=True)
class Obx:
    """One result: `code` as `identifier^text^system`, OBX-2 type, value, units, status."""

    code: str
    value: str
    unit: str = ""
    kind: str = "NM"
    status: str = "F"
    observed_at: str = ""


def hl7_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S%z")


def oru(
    record_number: str,
    *orders: tuple[datetime, list[Obx]],
    control_id: str | None = None,
    facility: str = "NORTHLAB",
    patients: list[tuple[str, list[tuple[datetime, list[Obx]]]]] | None = None,
    trailer: str = "",
) -> bytes:
    """An ORU^R01 v2.5.1 message (standard encoding characters, CR between segments): one
    PID with its OBRs, each with its OBX; `patients` adds further patient groups."""
    control_id = control_id or f"MSG{next(_control_ids):06d}"
    segments = [
        f"MSH|^~\\&|LIS|{facility}|AIHP|north|20260105090000+0000||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5.1|||AL|NE",
    ]
    for number, groups in [(record_number, list(orders)), *(patients or [])]:
        segments += [
            f"PID|1||{number}^^^NORTHLAB^MR~X-{number}^^^HOSP^PI||Example^Ada||19790402|F",
            "PV1|1|O",
        ]
        for rank, (taken, observations) in enumerate(groups, start=1):
            segments += [
                f"ORC|RE|ORD{rank}",
                f"OBR|{rank}|ORD{rank}|FIL{rank}|24325-3^Hepatic "
                f"function panel^LN|||{hl7_time(taken)}",
            ]
            for set_id, obx in enumerate(observations, start=1):
                segments.append(
                    f"OBX|{set_id}|{obx.kind}|{obx.code}||{obx.value}|{obx.unit}|||||"
                    f"{obx.status}|||{obx.observed_at}"
                )
            segments.append("NTE|1|L|Reviewed by \\T\\ validated in the lab")
    return ("\r".join(segments) + "\r" + trailer).encode("utf-8")


@dataclass(frozen=True)
class Ack:
    """An ACK as the sender reads it (escapes decoded)."""

    code: str
    control_id: str
    text: str
    errors: list[tuple[str, str, str, str]]  # (location, error code, severity, reason)
    raw: str


def read_ack(raw: bytes) -> Ack:
    text = raw.decode("utf-8")
    message = hl7.parse(text)
    msa = message.segment("MSA")
    errors = []
    for err in message.segments("ERR") if "\rERR" in text else []:
        errors.append(
            (
                str(err(2)),
                str(err(3)(1)(1)) if not isinstance(err(3)(1), str) else str(err(3)(1)),
                str(err(4)),
                message.unescape(str(err(8))),
            )
        )
    return Ack(
        str(msa(1)), message.unescape(str(msa(2))), message.unescape(str(msa(3))), errors, text
    )


ALT = "1742-6^Alanine aminotransferase^LN"
AST = "1920-8^Aspartate aminotransferase^LN"
IGG = "2465-3^IgG^LN"
BILI_LOCAL = "TBIL^Bilirubin total^L"
TPMT = "21563-2^TPMT^LN"
HBSAG = "5196-1^HBsAg^LN"
ANTI_HBC = "16933-4^Anti-HBc^LN"
ANTI_HBS = "22322-2^Anti-HBs^LN"
NEGATIVE = "260385009^Negative^SCT"

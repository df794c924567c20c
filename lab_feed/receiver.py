"""Answer one MLLP frame: read the ORU^R01, find the site and its patients, turn each OBX into a
lab result, record them all or none, and build the ACK.

- AR (reject): the frame is not an ORU^R01 this feed takes (not HL7, another type, another
  version, no control id, too large), comes from a facility of no site this listener serves
  or from an address that is not one of that site's laboratory (`senders` in its feed file), or
  reuses a control id for different content.
- AE (error): the message is an ORU^R01, but an OBX cannot be recorded: unknown patient
  identifier, unknown code, a value or unit the engine refuses, a safety rule. Nothing of the
  message is recorded; one ERR per refused OBX says why.
- AA: every final result is committed (OBX that are not final are left out, each with an ERR
  warning). A message sent again is answered AA from what was remembered, and recorded once.

The feed acts as the principal its token stands for (a `lab-interface` user: the policy's
`lab.feed` at the message's site, so a person's token cannot stand for a laboratory), under the
same policy as every surface, and is audited as that user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from engine.clock import Clock
from engine.services import audit_trail
from engine.services.access_policy import Forbidden, Principal, Resource, enforce
from engine.services.care_pathways import care_pathway
from engine.services.lab_messages import (
    MessageKey,
    MessageOutcome,
    message_context,
    record_lab_message,
)
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from lab_feed.acknowledgements import ErrorLine, acknowledgement
from lab_feed.mllp import Oversize
from lab_feed.oru import Header, Observation, OruMessage, Rejected, read_header, read_oru
from lab_feed.results import Problem, lab_item
from lab_feed.site_feeds import SiteFeed, SiteFeeds

log = logging.getLogger("aihp.lab_feed")


@dataclass(frozen=True)
class LabFeed:
    """What answering a message needs: the database, the clock, the feed's principal, the
    sites it serves."""

    uow_factory: Callable[[], SqlAlchemyUnitOfWork]
    principal: Principal
    sites: SiteFeeds
    clock: Clock

    def answer(self, frame: bytes | Oversize, peer: str | None = None) -> bytes:
        """The ACK for one frame; only after its results are committed when it is AA. `peer`
        is the address the frame came from (None: a caller in this process, not the network)."""
        try:
            if isinstance(frame, Oversize):
                raise Rejected(
                    f"message larger than {frame.limit} bytes", "207", "MSH", _header(frame.head)
                )
            return self._answer(read_oru(frame), peer)
        except Rejected as rejected:
            log.info("HL7 message rejected: %s", rejected.error)
            line = ErrorLine(tuple(rejected.location.split("^")), rejected.error, rejected.reason)
            return self._ack(rejected.header, "AR", rejected.reason, [line])
        except Exception as failure:  # the database is down, ...: not recorded, say so
            log.error("HL7 message not recorded: %s", type(failure).__name__)
            header = _header(frame.head if isinstance(frame, Oversize) else frame)
            line = ErrorLine(("MSH",), "207", "not recorded (internal error); send again")
            return self._ack(header, "AE", "not recorded: internal error, send again", [line])

    def _answer(self, message: OruMessage, peer: str | None) -> bytes:
        header = message.header
        feed = self.sites.for_facility(header.sending_facility)
        if feed is None:
            raise Rejected(
                f"sending facility {header.sending_facility!r} is not a laboratory of a site "
                "this listener serves",
                "204",
                "MSH^1^4",
                header,
            )
        if peer is not None and not feed.sends_from(peer):
            self._audit_refusal(403)
            raise Rejected(
                f"this connection's address is not one site {feed.site}'s laboratory sends from",
                "207",
                "MSH^1^4",
                header,
            )
        try:
            enforce(self.principal, "lab.feed", Resource(feed.site))
        except Forbidden:
            self._audit_refusal(403)
            raise Rejected(
                f"this feed may not record labs for site {feed.site}", "207", "MSH^1^4", header
            ) from None
        key = MessageKey(header.sending_facility, header.control_id, message.digest)
        numbers = {o.record_number for o in message.observations}
        before, patients = message_context(self.uow_factory(), key, feed.site, numbers)
        if before is not None:
            return self._replay(header, key, before.digest, before.received_at.isoformat())
        items, problems, positions = self._items(message, feed, patients)
        refused = [p for p in problems if p.severity == "E"]
        warnings = [_error_line(p) for p in problems if p.severity != "E"]
        if refused:
            return self._refused(header, refused, warnings, len(message.observations))
        if not items:
            return self._ack(header, "AA", "no final result: nothing recorded", warnings)
        outcome = record_lab_message(self.uow_factory, self.principal.actor, key, items)
        return self._recorded(header, key, outcome, positions, warnings)

    def _items(
        self, message: OruMessage, feed: SiteFeed, patients: dict[str, tuple[str, str]]
    ) -> tuple[list[dict], list[Problem], list[Observation]]:
        """The lab results to record, the problems, and the OBX each result comes from."""
        items, problems, positions = [], [], []
        for observation in message.observations:
            found = patients.get(observation.record_number)
            if found is None:
                number = observation.record_number or "(none)"
                problems.append(
                    Problem(
                        observation,
                        f"PID-3 {number!r} is not a patient of site {feed.site}",
                        "204",
                        3,
                    )
                )
                continue
            patient_id, pathway_key = found
            item = lab_item(observation, care_pathway(pathway_key).pathway, feed, patient_id)
            if isinstance(item, Problem):
                problems.append(item)
            else:
                items.append(item)
                positions.append(observation)
        if any(p.error == "204" and p.field == 3 for p in problems):
            self._audit_refusal(404)
        return items, problems, positions

    def _recorded(
        self,
        header: Header,
        key: MessageKey,
        outcome: MessageOutcome,
        positions: list[Observation],
        warnings: list[ErrorLine],
    ) -> bytes:
        if outcome.status == "recorded":
            return self._ack(header, "AA", f"{len(outcome.answers)} results recorded", warnings)
        if outcome.status == "replayed" and outcome.remembered is not None:
            received = outcome.remembered.received_at.isoformat()
            return self._replay(header, key, outcome.remembered.digest, received)
        if outcome.status == "busy":
            line = ErrorLine(("MSH", "1", "10"), "206", "the patient records were busy; send again")
            return self._ack(header, "AE", "busy: nothing recorded, send again", [line])
        problems = [
            Problem(observation, _reason(answer), "207")
            for observation, answer in zip(positions, outcome.answers, strict=True)
            if answer["error"] != "not-applied"
        ]
        return self._refused(header, problems, warnings, len(positions))

    def _refused(
        self, header: Header, refused: list[Problem], warnings: list[ErrorLine], total: int
    ) -> bytes:
        text = f"nothing recorded: {len(refused)} of {total} results refused (see ERR)"
        return self._ack(header, "AE", text, [_error_line(p) for p in refused] + warnings)

    def _replay(self, header: Header, key: MessageKey, digest: str, received: str) -> bytes:
        if digest != key.digest:
            raise Rejected(
                f"message control id {key.control_id!r} was used for a different message",
                "205",
                "MSH^1^10",
                header,
            )
        return self._ack(header, "AA", f"already recorded (received {received})", [])

    def _ack(self, header: Header, code: str, text: str, errors: list[ErrorLine]) -> bytes:
        receiver = self.sites.only or "AIHP"
        return acknowledgement(header, code, text, errors, self.clock.now(), receiver)

    def _audit_refusal(self, status: int) -> None:
        try:
            audit_trail.record_refusal(
                self.uow_factory(),
                self.principal.actor,
                surface="hl7",
                method="ORU^R01",
                route="mllp",
                status=status,
            )
        except Exception as failure:  # the ACK still answers if the audit cannot be written
            log.error("could not audit a refused HL7 message: %s", type(failure).__name__)


def _reason(answer: dict) -> str:
    """The engine's reason, with the rule IDs of a safety rule that refused it."""
    rules = answer.get("rules") or []
    return f"{answer['reason']} [{', '.join(rules)}]" if rules else answer["reason"]


def _error_line(problem: Problem) -> ErrorLine:
    where = ("OBX", str(problem.observation.position), str(problem.field))
    return ErrorLine(
        where, problem.error, f"{problem.observation.label}: {problem.reason}", problem.severity
    )


def _header(head: bytes) -> Header:
    """The header of a frame's first bytes, or the defaults."""
    try:
        return read_header(head.decode("utf-8", "replace").split("\r")[0] + "\r")
    except Exception:  # anything unreadable is answered with the standard header
        return Header()

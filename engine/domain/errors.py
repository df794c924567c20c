"""Domain errors: each says what was wrong in words a clinician or integrator understands."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: bad input or a refused action. The state is unchanged."""

    code = "domain-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownPatient(DomainError):
    code = "unknown-patient"


class UnknownWorkItem(DomainError):
    """No such coordinator item or reminder (or not visible to this user's site)."""

    code = "unknown-work-item"


class UnknownCode(DomainError):
    """Unknown lab code, drug, event kind or pathway."""

    code = "unknown-code"


class InvalidInput(DomainError):
    """A value, unit, date or field that cannot be accepted."""

    code = "invalid-input"


class EventNotAllowed(DomainError):
    """The current pathway state does not allow this event."""

    code = "event-not-allowed"


class ConcurrencyConflict(DomainError):
    """Another writer changed the patient first; reload and try again."""

    code = "conflict"


class StaleVersion(ConcurrencyConflict):
    """The caller based the change on a version the patient is no longer at (If-Match)."""

    code = "precondition-failed"  # the problem type clients already know (HTTP 412)


class HardBlock(DomainError):
    """A guideline safety rule refuses the action (e.g. SAFE-BUD-CIRRHOSIS)."""

    code = "hard-block"

    def __init__(
        self,
        block_id: str,
        rule_ids: list[str],
        message: str,
        sources: list[str],
        overridable: bool = False,
    ):
        cited = ", ".join(rule_ids)
        lift = " A clinician may override it with a reason." if overridable else ""
        super().__init__(f"{cited}: {message} [{','.join(sources)}]{lift}")
        self.overridable = overridable
        self.block_id = block_id
        self.rule_ids = rule_ids
        self.sources = sources
        self.reason = message

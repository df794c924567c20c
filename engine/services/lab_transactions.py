"""A transaction of lab results (a FHIR `transaction` Bundle): all of them are recorded, or none.

`record_lab_results` answers item by item and commits the accepted ones. A transaction first
rehearses the batch in units of work that roll back where the use case commits; only when
every item would be accepted is the batch recorded for real. A refused transaction writes
nothing, and its answers say which items were refused and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.services.patients import record_lab_results
from engine.services.unit_of_work import SqlAlchemyUnitOfWork


def record_lab_transaction(
    uow_factory: Callable[[], SqlAlchemyUnitOfWork],
    actor: str,
    results: Iterable[Mapping[str, Any]],
) -> tuple[bool, list[dict[str, Any]]]:
    """(applied, one answer per item): applied is False, and nothing is written, when any
    item would be refused. If another writer changes a patient between the rehearsal and the
    real run, an item may still be refused then; its answer says so (the others are kept)."""
    items = [dict(item) for item in results]
    rehearsal = record_lab_results(lambda: _rehearsal(uow_factory), actor, items)
    if not all(answer["accepted"] for answer in rehearsal):
        return False, rehearsal
    return True, record_lab_results(uow_factory, actor, items)


def _rehearsal(uow_factory: Callable[[], SqlAlchemyUnitOfWork]) -> SqlAlchemyUnitOfWork:
    """A unit of work whose commit (and audited refusal) rolls back: nothing is written."""
    uow = uow_factory()
    uow.commit = uow.rollback  # type: ignore[method-assign]
    uow.record_only = lambda records: uow.rollback()  # type: ignore[method-assign]
    return uow

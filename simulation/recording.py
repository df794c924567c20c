"""How the plans' inputs reach the service layer: one unit of work per input, or all the inputs
of a tick in one batch (`engine.services.clinical_inputs.InputBatch`).

Either way every input runs its ordinary use case (`engine.services.patients`), so the engine
decides it through `CarePathway` and the same guards. In a batch, each input's domain events go
to the message bus at its own virtual moment and the batch commits at the end of the tick (and
before the review sweep reads the database), so the database ends as if the inputs had come one
by one, without a load and a commit per input. `one_by_one=True` keeps the unit of work per
input (the reference the batched path is tested against). With `held_only` (one of several
worker processes, each with its share of the cohort) the sweep reviews only the patients this
recorder's batch holds: the other shares are another process's to review.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from engine.adapters.cohort_figures import states_of
from engine.services.clinical_inputs import InputBatch, LoadedPatients
from engine.services.patients import review_due_patients
from engine.services.unit_of_work import SqlAlchemyUnitOfWork, UnitOfWork

UnitOfWorkFactory = Callable[[], SqlAlchemyUnitOfWork]


class _HeldPatients(LoadedPatients):
    """The batch's patients, whose due reviews are only those of the patients it holds."""

    def with_due_reviews(self, now: datetime, milestone_ids: list[str], limit: int) -> list[str]:
        due = super().with_due_reviews(now, milestone_ids, 2**31 - 1)  # all, then the held
        return [pid for pid in due if pid in self.kept][:limit]


class Recorder:
    """Units of work for the plans' inputs; `with recorder:` around the whole run."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, *, one_by_one: bool = False, held_only: bool = False
    ):
        if one_by_one and held_only:
            raise ValueError("a share of the cohort is recorded in batches")
        self.uow_factory = uow_factory
        self.one_by_one = one_by_one
        self.held_only = held_only
        self._uow: SqlAlchemyUnitOfWork | None = None
        self._batch: InputBatch | None = None

    def __enter__(self) -> Recorder:
        if not self.one_by_one:
            self._uow = self.uow_factory().__enter__()
            held = _HeldPatients if self.held_only else LoadedPatients
            self._batch = InputBatch(self._uow, each_at_its_moment=True, patients=held)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        problem: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._uow is not None:
            if kind is None:
                self.settle()
            self._uow.__exit__(kind, problem, trace)
            self._uow = self._batch = None

    def unit(self) -> UnitOfWork:
        """The unit of work for the next input's use case."""
        if self._batch is None:
            return self.uow_factory()
        return self._batch.step()

    def settle(self) -> None:
        """Write what the tick recorded (a no-op one by one: every input committed itself)."""
        if self._batch is not None:
            self._batch.commit()

    def sweep(self, limit: int = 500) -> int:
        """The worker's due-review sweep on what has been recorded, repeated until nothing
        more is due; the number of patients reviewed."""
        self.settle()
        reviewed = 0
        while True:
            done = review_due_patients(self.unit, "sim:review-sweep", limit)  # type: ignore[arg-type]
            reviewed += done
            if done < limit:
                break
        if reviewed:
            self.settle()
        return reviewed

    def states(self, ids: list[str]) -> dict[str, str]:
        """The patients' states as written (after settling the batch)."""
        self.settle()
        with self.uow_factory() as uow:
            return states_of(uow.session, ids)

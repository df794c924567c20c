"""The synthetic cohort drives the real service layer on SQLite to the states its plans expect,
and its batched recording leaves the database exactly as one unit of work per input does."""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from engine.adapters.database import create_schema, make_engine
from engine.adapters.orm import metadata
from engine.bootstrap import unit_of_work_factory
from engine.clock import ManualClock
from simulation import (
    DEFAULT_WEIGHTS,
    EXPECTED_FINAL,
    CohortSummary,
    in_family,
    simulate_cohort,
)

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


def _simulate(tmp_path: Path, name: str = "cohort.db", **kwargs) -> CohortSummary:
    url = f"sqlite:///{tmp_path / name}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    clock = ManualClock(START)
    return simulate_cohort(unit_of_work_factory(None, clock, url), clock, **kwargs)


ROW_ID = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|[0-9a-f]{32}"
)


def _database_content(path: Path) -> dict[str, Counter[tuple]]:
    """Every row of every table, without generated row ids and versions; a patient's id reads
    as its cohort number, so two runs of the same cohort compare row for row."""
    engine = make_engine(f"sqlite:///{path}")
    content: dict[str, Counter[tuple]] = {}
    with engine.connect() as db:
        patients = metadata.tables["patients"]
        number = {
            row.id: row.external_id.rsplit("-", 1)[1]
            for row in db.execute(select(patients.c.id, patients.c.external_id))
        }

        def plain(value: object) -> object:
            if isinstance(value, list | dict):
                value = json.dumps(value, sort_keys=True, default=str)
            if not isinstance(value, str):
                return value
            return ROW_ID.sub(
                lambda m: "patient " + number.get(m[0], "?") if m[0] in number else "<row>", value
            )

        for table in metadata.sorted_tables:
            kept = [c for c in table.c if c.name not in ("id", "version", "external_id")]
            content[table.name] = Counter(
                tuple(plain(v) for v in row) for row in db.execute(select(*kept))
            )
    engine.dispose()
    return content


def test_batched_and_split_between_processes_a_cohort_ends_as_with_a_unit_of_work_per_input(
    tmp_path: Path,
) -> None:
    cohort = {"patients": 20, "months": 12, "seed": 3, "tpmt_deficient": 0.1}
    one_by_one = _simulate(tmp_path, "one_by_one.db", one_by_one=True, **cohort)
    reference = _database_content(tmp_path / "one_by_one.db")
    assert sum(reference["reminders"].values()) > 0
    assert sum(one_by_one.refusals.values()) >= 1

    for name, workers in (("batched.db", 1), ("two_processes.db", 2)):
        batched = _simulate(tmp_path, name, workers=workers, **cohort)

        assert batched.final_states == one_by_one.final_states
        assert batched.refusals == one_by_one.refusals
        assert (batched.inputs, batched.transitions, batched.reviews) == (
            one_by_one.inputs,
            one_by_one.transitions,
            one_by_one.reviews,
        )
        assert batched.alerts == one_by_one.alerts
        assert [r.final_state for r in batched.records] == [
            r.final_state for r in one_by_one.records
        ]
        # labs, events, orders, milestones, alerts, audit rows, reminders planned and
        # cancelled (with their moments): the same rows
        assert _database_content(tmp_path / name) == reference, name


def test_a_mixed_cohort_ends_every_trajectory_in_its_expected_states(tmp_path: Path) -> None:
    summary = _simulate(tmp_path, patients=60, months=15, seed=7, tpmt_deficient=0.1)

    by_trajectory = Counter(r.trajectory for r in summary.records)
    assert set(by_trajectory) == set(DEFAULT_WEIGHTS)  # every trajectory is in a 60-cohort
    assert sum(by_trajectory.values()) == 60
    wrong = [
        (r.trajectory, r.variant, r.final_state)
        for r in summary.records
        if not in_family(r.final_state or "", EXPECTED_FINAL[r.trajectory])
    ]
    assert wrong == []
    assert summary.unexpected == []
    assert summary.finished >= 45  # only 2-year withdrawals cannot play out in 15 months
    assert summary.transitions >= 3 * 60
    assert summary.inputs > 30 * 60

    # Hard blocks, counted by the rule they cite: one budesonide refusal per cirrhotic
    # budesonide attempt, one MMF refusal per pregnant patient, and azathioprine refused for
    # exactly the TPMT-deficient patients who were given it.
    refused = summary.refusals
    assert refused["SAFE-BUD-CIRRHOSIS"] == by_trajectory["cirrhosis_budesonide"]
    assert refused["SAFE-MMF-PREG"] == by_trajectory["pregnancy"]
    tpmt_refused = [r for r in summary.records if "SCR-TPMT" in r.refusals]
    assert refused["SCR-TPMT"] == len(tpmt_refused) >= 1
    assert all(r.tpmt is not None and r.tpmt < 17 for r in tpmt_refused)
    assert summary.refusals_by_block["aza-tpmt-deficient"] == len(tpmt_refused)
    assert set(summary.refusals_by_block) <= {
        "aza-tpmt-deficient",
        "budesonide-in-cirrhosis",
        "mmf-in-pregnancy",
        "early-stop",
    }
    assert summary.alerts["partial-response"] >= by_trajectory["partial_response"]
    assert "final state" in summary.as_table()


def test_withdrawal_relapse_and_re_induction_play_out_over_three_years(tmp_path: Path) -> None:
    summary = _simulate(
        tmp_path,
        patients=3,
        months=32,
        seed=11,
        weights={"relapse_after_stop": 1.0},
        enrol_over_months=0.5,
        tpmt_deficient=0.0,
    )

    assert [r.finished for r in summary.records] == [True, True, True]
    assert all(in_family(r.final_state or "", ("induction", "taper")) for r in summary.records)
    assert summary.refusals == Counter()
    # screening -> induction -> taper x3 -> maintenance -> withdrawn -> relapse -> induction ...
    assert summary.transitions >= 3 * 8


def test_aihp_simulate_prints_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the default temporary database

    result = CliRunner().invoke(app, ["simulate", "--patients", "30", "--months", "8"])

    assert result.exit_code == 0, result.output
    assert "30 synthetic patients" in result.output
    assert "Final states" in result.output
    assert "Refused actions" in result.output
    assert "ended outside their expected states: 0" in result.output
    assert list(tmp_path.glob("aihp-sim-*/cohort.db"))

"""PostgreSQL reads the queue page in index order: for each of the coordinator's three listings
(all live items, one queue, a clinician + pathway-state filter), in both sorts and on a later
page (keyset), the plan is an Index Scan on the ordered partial index with no Sort node; the
counts per queue come from an Index Only Scan.

The table is small, so the planner is told that sequential scans, bitmap scans and sorts are
expensive (not forbidden: a plan that needs one still gets it). A plan without a Sort node on
the named index is thus proof that the index holds the page's order and that the listing's
filter implies the index's predicate (PostgreSQL only uses a partial index it can prove).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from engine.adapters.coordinator_queries import item_page, queue_counts
from engine.adapters.database import create_schema, make_engine, session_factory
from engine.adapters.orm import patients
from engine.adapters.reminder_tables import coordinator_items

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START = datetime.combine(NOW.date(), time(), UTC)
LISTINGS = {
    "all live": {},
    "one queue": {"queue": "overdue"},
    "clinician + state": {"clinician": "dr-1", "state": "induction"},
}


def _seed(engine) -> None:
    sites, states = ("north", "south"), ("screening", "induction.prednisolone", "maintenance")
    people = [
        {
            "id": f"p{i:05d}",
            "external_id": f"MRN-{i}",
            "site": sites[i % 2],
            "clinician": f"dr-{i % 3}",
            "birth_date": date(1970, 1, 1),
            "sex": "F",
            "weight_kg": 60.0,
            "state": states[i % 3],
            "pathway_key": "aih",
            "pathway_version": "1.0.0",
            "facts": {},
            "state_entered": {},
            "enrolled_at": NOW,
            "version": 1,
        }
        for i in range(600)
    ]
    rows = [
        {
            "id": f"i{i:05d}",
            "patient_id": f"p{i % 600:05d}",
            "kind": ("due", "escalation", "failed_delivery")[i % 3],
            "title": "Monthly ALT/AST",
            "reason": "due",
            "site": sites[i % 600 % 2],
            "clinician": f"dr-{i % 600 % 3}",
            "due_at": NOW - timedelta(hours=i),
            "created_at": NOW - timedelta(days=40),
            "milestone_kind": ("lab", "action")[i % 2],
            "urgent": i % 17 == 0,
            "rule_ids": ["AIH-MON-1"],
            "status": ("open", "claimed", "snoozed", "completed", "closed")[i % 5],
            "snoozed_until": NOW + timedelta(days=1) if i % 5 == 2 else None,
            "version": 1,
        }
        for i in range(3000)
    ]
    with engine.begin() as conn:
        columns = {c.name for c in patients.columns}
        conn.execute(
            insert(patients), [{k: v for k, v in p.items() if k in columns} for p in people]
        )
        conn.execute(insert(coordinator_items), rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE coordinator_items, patients"))


def _plans(engine, run) -> list[dict[str, Any]]:
    """The JSON plan of every SELECT `run(session)` sends, on the same connection."""
    plans: list[dict[str, Any]] = []
    with session_factory(engine)() as session:
        conn = session.connection()
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.exec_driver_sql(f"SET {setting} = off")
        sent: list[tuple[str, Any]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                sent.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        try:
            run(session)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        for statement, parameters in sent:
            found = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = found.scalar()
            plans.append(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])
    return plans


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


@pytest.fixture
def engine(postgres_url):
    engine = make_engine(postgres_url)
    create_schema(engine)
    _seed(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("sort", ["urgency", "due"])
def test_each_listing_reads_its_page_in_index_order_without_a_sort(engine, sort):
    index = {"urgency": "ix_coordinator_items_live_urgency", "due": "ix_coordinator_items_live_due"}
    for name, filters in LISTINGS.items():
        first = item_page_in(engine, sort, filters)
        later = item_page_in(engine, sort, filters, after=first[-1]["sort_key"])
        assert first and later and first[-1]["id"] not in {r["id"] for r in later}
        for after in (None, first[-1]["sort_key"]):
            (plan,) = _plans(
                engine,
                lambda s, f=filters, a=after: item_page(
                    s, NOW, START, site="north", sort=sort, after=a, limit=5, **f
                ),
            )
            nodes = _nodes(plan)
            kinds = [n["Node Type"] for n in nodes]
            assert "Sort" not in kinds and "Incremental Sort" not in kinds, (name, kinds)
            scans = [n for n in nodes if n.get("Relation Name") == "coordinator_items"]
            assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
                ("Index Scan", index[sort])
            ], (name, after, scans)


def item_page_in(engine, sort, filters, after=None):
    with session_factory(engine)() as session:
        return item_page(
            session, NOW, START, site="north", sort=sort, after=after, limit=5, **filters
        )


def test_counts_per_queue_come_from_an_index_only_scan(engine):
    (plan,) = _plans(engine, lambda s: queue_counts(s, NOW, START, site="north"))
    (scan,) = [n for n in _nodes(plan) if n.get("Relation Name") == "coordinator_items"]
    assert scan["Node Type"] == "Index Only Scan", scan
    assert scan["Index Name"] in (
        "ix_coordinator_items_live_urgency",
        "ix_coordinator_items_live_due",
    )

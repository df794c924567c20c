"""Bench dispatch, setup: the schema, patients and reminders generated server-side."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import create_engine, text

SMALL_FUTURE = 10_000
PATIENTS = 50
CLINICIAN = "dr-bench"
PATHWAY_KEY = "aih@1.0.0"
DOMAIN = "aih-pathways.local"


@dataclass
class Sizes:
    due: int
    future: int
    burst_deadline: float
    steady_window: float
    eta_step: int


def _rid(prefix: str, i: str) -> str:
    """SQL for a 32-character id: prefix + zero-padded number (sequential keys, cheap inserts)."""
    return f"'{prefix}' || lpad(({i})::text, {32 - len(prefix)}, '0')"


def seed_base(url: str) -> None:
    """Schema (Alembic), patients with emails, one milestone each, the clinician."""
    from engine.adapters.migrate import upgrade
    from engine.bootstrap import unit_of_work_factory
    from engine.services.care_team import register_clinician

    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        # the search keys of patient names, where the schema has them (a later migration)
        keyed = conn.scalar(
            text(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'patients' "
                "AND column_name IN ('given_name_key', 'family_name_key')"
            )
        )
        key_columns = ", given_name_key, family_name_key" if keyed == 2 else ""
        key_values = ", 'pat' || i, 'bench'" if keyed == 2 else ""
        conn.execute(
            text(
                f"""
                INSERT INTO patients (id, external_id, site, clinician, given_name, family_name,
                    birth_date, sex, weight_kg, email, contact_preferences, facts, pathway_key,
                    state, state_entered, enrolled_at, version{key_columns})
                SELECT {_rid("p", "i")}, 'BENCH-' || i, 'north', :clinician, 'Pat' || i,
                    'Bench', date '1970-01-01', 'F', 60, 'patient' || i || '@example.org',
                    '{{}}', '{{}}', :key, 'induction.prednisolone', '{{}}', now(), 1{key_values}
                FROM generate_series(1, CAST(:n AS integer)) AS i
                """
            ),
            {"clinician": CLINICIAN, "key": PATHWAY_KEY, "n": PATIENTS},
        )
        conn.execute(
            text(
                f"""
                INSERT INTO milestones (id, patient_id, milestone_id, title, kind, due_at,
                    grace_until, created_at, cycle, occurrence, idempotency_key, recipients,
                    rule_ids, urgent, status)
                SELECT {_rid("m", "i")}, {_rid("p", "i")}, 'response-assessment',
                    'Response assessment (ALT, AST, IgG)', 'lab', now(), now() + interval '7 days',
                    now(), 'c1', 1, 'bench-m-' || i, '["clinician", "patient"]',
                    '["MON-RESP", "RSP-NONRESP"]', false, 'open'
                FROM generate_series(1, CAST(:n AS integer)) AS i
                """
            ),
            {"n": PATIENTS},
        )
    engine.dispose()
    register_clinician(
        unit_of_work_factory(database_url=url)(),
        "bench",
        CLINICIAN,
        name="Dr Bench",
        email="dr.bench@example.org",
        site="north",
    )


def insert_reminders(url: str, prefix: str, first: int, last: int, due_sql: str) -> None:
    """Reminders `prefix`first..last; `due_sql` is due_at as SQL over `i` (the row number)."""
    if last < first:
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO reminders (id, patient_id, milestone_row_id, milestone_id, title,
                    milestone_kind, purpose, channel, recipient, due_at, next_attempt_at,
                    created_at, idempotency_key, site, clinician, urgent, rule_ids, status,
                    attempts)
                SELECT {_rid(prefix, "i")}, {_rid("p", f"i % {PATIENTS} + 1")},
                    {_rid("m", f"i % {PATIENTS} + 1")}, 'response-assessment',
                    'Response assessment (ALT, AST, IgG)', 'lab', 'notify', 'email',
                    CASE WHEN i % 2 = 0 THEN 'patient' ELSE 'clinician' END,
                    {due_sql}, {due_sql}, now(), 'bench-{prefix}-' || i, 'north', :clinician,
                    false, '["MON-RESP", "RSP-NONRESP"]', 'scheduled', 0
                FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
                """
            ),
            {"clinician": CLINICIAN, "first": first, "last": last},
        )
    engine.dispose()


def vacuum(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE reminders"))
    engine.dispose()


def reset_due(url: str, prefix: str = "d") -> None:
    """Make the `prefix` rows due and unclaimed again (between runs), then VACUUM ANALYZE."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE reminders SET status = 'scheduled', claim_token = NULL, "
                "claimed_at = NULL, next_attempt_at = due_at, attempts = 0, sent_at = NULL, "
                "message_id = NULL, last_error = NULL WHERE id >= :lo AND id < :hi"
            ),
            {"lo": prefix, "hi": chr(ord(prefix) + 1)},
        )
    engine.dispose()
    vacuum(url)


def seed(url: str, due: int, future: int) -> float:
    """Base rows, `due` due reminders (the past day) and `future` not yet due (next year)."""
    t0 = time.perf_counter()
    seed_base(url)
    step_due = 86_400 / max(1, due)
    insert_reminders(
        url, "d", 1, due, f"now() - interval '1 day' + i * interval '{step_due:.6f} seconds'"
    )
    step_future = 365 * 86_400 / max(1, future)
    chunk = 250_000
    for lo in range(1, future + 1, chunk):
        insert_reminders(
            url,
            "f",
            lo,
            min(future, lo + chunk - 1),
            f"now() + interval '1 day' + i * interval '{step_future:.6f} seconds'",
        )
    vacuum(url)
    return time.perf_counter() - t0

"""Due reminders reach people once, through two workers, crashes, broker and database restarts.

Real `celery -A workers worker` and `celery -A workers beat` processes on PostgreSQL and Redis,
an aiosmtpd sink counting by Message-ID; reminders are seeded weeks in the past, so they are
due now for the workers' real clock. The bound on re-sending after a kill, while a backlog
drains, and the database outage longer than the lease are in test_recovery_bounds.py.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from engine.config import Settings
from tests.chaos.conftest import ChaosClinic, Seeded, TimedSink, wait_until
from tests.support.celery_cluster import CeleryCluster, CeleryProcess

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

#: Enough for every due reminder of a small cohort on two cores, with restarts in between.
DELIVERY_TIMEOUT = 60.0


def missing(seeded: Seeded, sink: TimedSink) -> set[str]:
    return set(seeded.emails) - set(sink.count_by_message_id())


def wait_for_delivery(seeded: Seeded, sink: TimedSink, clinic: ChaosClinic, cluster) -> None:
    """Wait until every expected email reached the sink and every reminder row is done."""

    def report() -> str:
        gone = missing(seeded, sink)
        return (
            f"{len(gone)} of {len(seeded.emails)} emails not received; statuses "
            f"{clinic.statuses()}\n{cluster.logs()}"
        )

    wait_until(lambda: not missing(seeded, sink), DELIVERY_TIMEOUT, report)
    expected = set(seeded.emails.values()) | seeded.queue
    wait_until(
        lambda: {r["status"] for r in clinic.reminder_rows(expected).values()} == {"sent"},
        DELIVERY_TIMEOUT,
        report,
    )


def duplicates(sink: TimedSink) -> dict[str, int]:
    return {mid: n for mid, n in sink.count_by_message_id().items() if n > 1}


def held_from(worker: CeleryProcess, cluster: CeleryCluster, sink: TimedSink) -> set[str]:
    """Message-IDs of the worker's emails the sink holds (received, not yet answered 250)."""
    sender = cluster.sender_of(worker.name)
    return {mid for mid, s in sink.receiving() if s == sender}


def wait_until_sending(worker: CeleryProcess, cluster: CeleryCluster, sink: TimedSink) -> None:
    wait_until(
        lambda: held_from(worker, cluster, sink),
        30,
        lambda: f"{worker.name} never started sending\n{cluster.logs()}",
        step=0.02,
    )


def assert_each_expected_email_arrived(seeded: Seeded, sink: TimedSink) -> None:
    received = sink.count_by_message_id()
    assert set(received) == set(seeded.emails), "unexpected or missing Message-IDs"


def test_production_stale_claim_timeout_resends_within_a_minute(monkeypatch):
    monkeypatch.delenv("AIHP_STALE_CLAIM_SECONDS", raising=False)
    assert Settings(_env_file=None).stale_claim_seconds <= 60


def test_two_workers_deliver_every_due_reminder_exactly_once(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink
):
    patient_ids = clinic.enrol_on_prednisolone(12)
    seeded = clinic.due(patient_ids)
    assert len(seeded.emails) >= 5 * 12 and seeded.queue
    cluster.add_worker("w1")
    cluster.add_worker("w2")
    cluster.start_beat()

    wait_for_delivery(seeded, sink, clinic, cluster)

    assert sink.count_by_message_id() == {mid: 1 for mid in seeded.emails}
    rows = clinic.reminder_rows(set(seeded.emails.values()))
    assert {rows[rid]["message_id"] for rid in seeded.emails.values()} == set(seeded.emails)
    items = clinic.items_by_reminder()
    assert all(len(items.get(rid, [])) == 1 for rid in seeded.queue)
    senders = {sender for _, _, sender in sink.arrivals}
    assert senders == {cluster.sender_of("w1"), cluster.sender_of("w2")}


def test_sigkilled_workers_lose_no_reminder_and_repeat_at_most_the_killed_in_flight_emails(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink
):
    sink.delay_seconds = 0.3  # each worker spends most of its time inside an SMTP transaction
    patient_ids = clinic.enrol_on_prednisolone(14)
    seeded = clinic.due(patient_ids)
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    cluster.start_beat()
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
    print(f"kill points from CHAOS_SEED={seed}")
    rng = random.Random(seed)
    killed_while_held: set[str] = set()
    kills = 0
    for _ in range(3):
        victim = rng.choice(workers)
        wait_until_sending(victim, cluster, sink)
        time.sleep(rng.uniform(0, sink.delay_seconds * 1.5))  # a random point of the delivery
        victim.kill()
        kills += 1
        killed_while_held |= held_from(victim, cluster, sink)
        victim.start()

    wait_for_delivery(seeded, sink, clinic, cluster)

    repeated = duplicates(sink)
    print(
        f"{kills} kills, {len(killed_while_held)} held by the sink at a kill, "
        f"{sum(repeated.values()) - len(repeated)} duplicate emails"
    )
    assert_each_expected_email_arrived(seeded, sink)
    assert sum(n - 1 for n in repeated.values()) <= kills  # one delivery in flight per worker
    assert killed_while_held <= set(repeated)  # accepted by SMTP, never recorded: sent again
    if not repeated:
        assert sink.count_by_message_id() == {mid: 1 for mid in seeded.emails}


def test_redis_restart_mid_run_loses_no_reminder(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink, redis_server
):
    sink.delay_seconds = 0.1
    seeded = clinic.due(clinic.enrol_on_prednisolone(12))
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    cluster.start_beat()
    wait_until(lambda: len(sink.messages) >= 10, 30, lambda: cluster.logs())
    redis_server.restart()  # not persistent: the queued delivery tasks are gone
    assert len(sink.messages) < len(seeded.emails), "the restart came after the run"

    wait_for_delivery(seeded, sink, clinic, cluster)

    repeated = duplicates(sink)
    print(f"redis restart: {len(repeated)} duplicate emails")
    assert sink.count_by_message_id() == {mid: 1 for mid in seeded.emails}
    assert all(w.alive and w.starts == 1 for w in [*workers, cluster.beat])


def test_postgres_restart_mid_run_loses_no_reminder_and_workers_recover(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink, postgres_server
):
    sink.delay_seconds = 0.1
    seeded = clinic.due(clinic.enrol_on_prednisolone(12))
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    cluster.start_beat()
    wait_until(lambda: len(sink.messages) >= 10, 30, lambda: cluster.logs())
    postgres_server.restart()
    assert len(sink.messages) < len(seeded.emails), "the restart came after the run"

    wait_for_delivery(seeded, sink, clinic, cluster)

    repeated = duplicates(sink)
    print(f"postgres restart: {len(repeated)} duplicate emails")
    assert sink.count_by_message_id() == {mid: 1 for mid in seeded.emails}
    assert all(w.alive and w.starts == 1 for w in [*workers, cluster.beat])


def test_malformed_and_missing_addresses_become_failed_deliveries_while_the_rest_goes_out(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink
):
    clinic.register_clinician("dr-b", None)
    good = clinic.enrol_on_prednisolone(4)
    malformed = clinic.enrol_on_prednisolone(1, email=lambda i: "not-an-address")
    no_clinician_email = clinic.enrol_on_prednisolone(1, clinician="dr-b")
    failing = clinic.reminder_rows(set(clinic.due(malformed + no_clinician_email).emails.values()))
    doomed = {
        rid
        for rid, row in failing.items()
        if (row["patient_id"] in malformed and row["recipient"] == "patient")
        or (row["patient_id"] in no_clinician_email and row["recipient"] == "clinician")
    }
    seeded = clinic.due(good + malformed + no_clinician_email)
    deliverable = Seeded(
        seeded.at, {mid: rid for mid, rid in seeded.emails.items() if rid not in doomed}, set()
    )
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    cluster.start_beat()

    wait_for_delivery(deliverable, sink, clinic, cluster)
    wait_until(
        lambda: {r["status"] for r in clinic.reminder_rows(doomed).values()} == {"failed"},
        DELIVERY_TIMEOUT,
        lambda: f"statuses {clinic.statuses()}\n{cluster.logs()}",
    )

    assert sink.count_by_message_id() == {mid: 1 for mid in deliverable.emails}
    rows = clinic.reminder_rows(doomed)
    assert {row["attempts"] for row in rows.values()} == {1}  # no retry loop, no crash loop
    items = clinic.items_by_reminder()
    reasons = {
        rid: [i["reason"] for i in items[rid] if i["kind"] == "failed_delivery"] for rid in doomed
    }
    for rid, row in rows.items():
        (reason,) = reasons[rid]
        if row["recipient"] == "clinician":
            assert "no email address on file for clinician 'dr-b'" in reason
        else:
            assert reason.startswith("patient reminder not delivered:")
    assert {rows[rid]["recipient"] for rid in doomed} == {"patient", "clinician"}
    assert all(w.alive and w.starts == 1 for w in workers)


def test_reminders_that_fell_due_while_everything_was_down_are_sent_once_on_restart(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink
):
    before = clinic.due(clinic.enrol_on_prednisolone(4))
    cluster.add_worker("w1")
    cluster.add_worker("w2")
    cluster.start_beat()
    wait_for_delivery(before, sink, clinic, cluster)
    cluster.stop_all()

    overdue = clinic.enrol_on_prednisolone(4)  # weeks of reminders missed during the outage
    fall_due_soon = clinic.enrol_on_prednisolone(2, days_ago=14 - 3 / 86400)  # day 14 in 3 s
    wait_until(
        lambda: len(clinic.due(fall_due_soon).emails) == 2,
        30,
        "the day-14 reminders never fell due",
    )
    missed = clinic.due(overdue + fall_due_soon)
    assert len(missed.emails) == 4 * 5 + 2
    for process in cluster.processes:
        process.start()

    wait_for_delivery(missed, sink, clinic, cluster)

    everything = {**before.emails, **missed.emails}
    assert sink.count_by_message_id() == {mid: 1 for mid in everything}

"""Due reminders reach people once, through two workers, crashes, broker and database restarts.

Real `celery -A workers worker` and `celery -A workers beat` processes on PostgreSQL and Redis,
an aiosmtpd sink counting by Message-ID; reminders are seeded weeks in the past, so they are
due now for the workers' real clock.
"""

from __future__ import annotations

import pytest

from engine.config import Settings
from tests.chaos.conftest import ChaosClinic, Seeded, TimedSink, wait_until
from tests.support.celery_cluster import CeleryCluster

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


def assert_each_expected_email_arrived(seeded: Seeded, sink: TimedSink) -> None:
    received = sink.count_by_message_id()
    assert set(received) == set(seeded.emails), "unexpected or missing Message-IDs"


def test_production_stale_claim_timeout_resends_within_a_minute():
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

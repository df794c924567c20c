"""Recovery is bounded by the lease, not by the backlog; a database outage doubles no email.

Same real processes as test_reminder_delivery.py: two Celery workers and beat on PostgreSQL
and Redis, an aiosmtpd sink counting by Message-ID, an 8 s lease, a scan every second.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from engine.adapters.reminder_tables import reminders
from tests.chaos.conftest import ChaosClinic, Seeded, TimedSink, wait_until
from tests.chaos.test_reminder_delivery import (
    duplicates,
    held_from,
    wait_for_delivery,
    wait_until_sending,
)
from tests.support.celery_cluster import CeleryCluster

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]


def sending_under(clinic: ChaosClinic, seeded: Seeded, message_ids: set[str]) -> set[str]:
    """The Message-IDs of every email leased (status sending) under the claim tokens of the
    reminders behind `message_ids`: the batch a worker holds, and its siblings."""
    held = [seeded.emails[mid] for mid in message_ids]
    with clinic.engine.connect() as conn:
        tokens = set(conn.scalars(select(reminders.c.claim_token).where(reminders.c.id.in_(held))))
        ids = set(
            conn.scalars(
                select(reminders.c.id).where(
                    reminders.c.claim_token.in_(tokens), reminders.c.status == "sending"
                )
            )
        )
    return {mid for mid, rid in seeded.emails.items() if rid in ids}


def test_reminders_stranded_by_a_killed_worker_go_out_within_a_lease_while_a_backlog_drains(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink
):
    sink.delay_seconds = 0.15  # two worker processes drain about 12 emails/s: a 10 s backlog
    seeded = clinic.due(clinic.enrol_on_prednisolone(24))
    assert len(seeded.emails) >= 120
    doomed, survivor = cluster.add_worker("doomed"), cluster.add_worker("survivor")
    cluster.start_beat()
    wait_until_sending(doomed, cluster, sink)
    held = held_from(doomed, cluster, sink)
    stranded = sending_under(clinic, seeded, held)
    doomed.kill()
    killed_at = time.monotonic()
    lost = held_from(doomed, cluster, sink) | held  # in flight at the kill: sent again
    doomed.start()
    backlog = len(seeded.emails) - len(sink.count_by_message_id())

    wait_for_delivery(seeded, sink, clinic, cluster)

    bound = cluster.stale_claim_seconds + 2 * cluster.dispatch_interval_seconds + 2
    last_arrival = {mid: max(sink.arrival_times(mid)) for mid in stranded}
    took = max(last_arrival.values()) - killed_at
    drained = max(at for _, at, _ in sink.arrivals) - killed_at
    print(
        f"{len(stranded)} stranded reminders out {took:.1f}s after the kill (bound {bound:.0f}s),"
        f" {backlog} waiting at the kill, the backlog drained {drained:.1f}s after it"
    )
    assert stranded and lost <= set(stranded)
    assert took <= bound and took < drained  # recovery did not wait for the backlog
    assert set(duplicates(sink)) <= lost  # only what was in flight at the kill came twice
    assert survivor.alive


def test_postgres_down_longer_than_the_lease_after_smtp_accepted_a_batch_sends_no_duplicate(
    cluster: CeleryCluster, clinic: ChaosClinic, sink: TimedSink, postgres_server
):
    """The workers die while the database is away, their accepted emails unrecorded: the
    journal tells the next claimant they went out, so none goes out again."""
    sink.delay_seconds = 0.1
    seeded = clinic.due(clinic.enrol_on_prednisolone(12))
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    cluster.start_beat()
    wait_until(lambda: len(sink.messages) >= 5, 30, lambda: cluster.logs())
    postgres_server.stop()
    stopped_at = time.monotonic()
    at_stop = len(sink.messages)

    def quiet() -> bool:  # the batches taken before the stop have gone out
        return not sink.receiving() and time.monotonic() - max(t for _, t, _ in sink.arrivals) > 1

    wait_until(quiet, 15, "the workers kept sending with the database away")
    accepted_unrecorded = len(sink.messages) - at_stop
    for worker in workers:  # nothing recorded them; only the journal knows
        worker.kill()
        worker.start()
    time.sleep(max(0.0, stopped_at + cluster.stale_claim_seconds + 2 - time.monotonic()))
    postgres_server.start()
    down = time.monotonic() - stopped_at

    wait_for_delivery(seeded, sink, clinic, cluster)

    print(
        f"database down {down:.1f}s (lease {cluster.stale_claim_seconds}s); "
        f"{accepted_unrecorded} emails accepted while it was down; {len(duplicates(sink))} twice"
    )
    assert accepted_unrecorded > 0 and down > cluster.stale_claim_seconds
    assert sink.count_by_message_id() == {mid: 1 for mid in seeded.emails}

"""The journal of accepted emails: shared by workers through a real Redis, harmless when away."""

from __future__ import annotations

import logging

from engine.adapters.delivery_journal import KEEP_SECONDS, ProcessJournal, RedisJournal
from tests.support.servers import free_port


def test_an_email_one_worker_journalled_is_known_to_every_other(redis_url, redis_server):
    first, second = RedisJournal(redis_url), RedisJournal(redis_url)
    first.note_accepted("r1", "<reminder-r1@clinic.test>")

    assert second.accepted(["r1", "r2"]) == {"r1": "<reminder-r1@clinic.test>"}
    assert second.accepted([]) == {}
    assert 0 < redis_server.client().ttl("aihp:accepted:r1") <= KEEP_SECONDS


def test_a_journal_redis_cannot_reach_is_logged_and_delivery_goes_on(caplog):
    journal = RedisJournal(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="engine.adapters.delivery_journal"):
        journal.note_accepted("r1", "<reminder-r1@clinic.test>")
        assert journal.accepted(["r1"]) == {}
    assert [r.getMessage() for r in caplog.records] == [
        "delivery journal not written (ConnectionError)",
        "delivery journal not read (ConnectionError)",
    ]


def test_the_process_journal_keeps_its_newest_entries():
    journal = ProcessJournal(keep=2)
    for n in range(3):
        journal.note_accepted(f"r{n}", f"<m{n}>")
    assert journal.accepted(["r0", "r1", "r2"]) == {"r1": "<m1>", "r2": "<m2>"}

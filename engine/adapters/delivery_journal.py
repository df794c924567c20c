"""The record of emails the SMTP server accepted, kept outside the database.

An email is journalled the moment the SMTP server accepts it (its "250"), before the reminder
row is marked sent. If the database is away longer than the lease, the row stays `sending`, its
lease runs out and another worker claims it again; before sending anything it reads the journal
and records the reminders found there as sent, without a second email. So a database outage, of
any length, doubles no email; only a crash between the server's "250" and the journal write
can (one email per process in flight).

Two journals: Redis (shared by every worker; the broker's server, a key per reminder with a
time to live far longer than any lease) for Celery workers, and one in process memory for the
embedded dispatcher, which is a single process. Neither is the record of truth (the reminders
table is): a journal that cannot be written is logged and delivery goes on as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger(__name__)

#: How long an accepted email is remembered: far past any lease and any database outage.
KEEP_SECONDS = 7 * 24 * 3600
_PREFIX = "aihp:accepted:"


class DeliveryJournal(Protocol):
    """Remembers which reminders' emails an SMTP server accepted, and under which Message-ID."""

    def note_accepted(self, reminder_id: str, message_id: str) -> None: ...

    def accepted(self, reminder_ids: Iterable[str]) -> dict[str, str]: ...


class ProcessJournal:
    """The journal of one process (embedded dispatcher, tests): a dictionary, thread-safe,
    keeping the newest `keep` entries (far more than a database outage can leave unrecorded)."""

    def __init__(self, keep: int = 100_000) -> None:
        self._accepted: dict[str, str] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def note_accepted(self, reminder_id: str, message_id: str) -> None:
        with self._lock:
            self._accepted[reminder_id] = message_id
            if len(self._accepted) > self._keep:
                del self._accepted[next(iter(self._accepted))]

    def accepted(self, reminder_ids: Iterable[str]) -> dict[str, str]:
        with self._lock:
            return {r: self._accepted[r] for r in reminder_ids if r in self._accepted}


class RedisJournal:
    """The journal every worker shares, in Redis: `aihp:accepted:<reminder id>` -> Message-ID."""

    def __init__(self, url: str, timeout: float = 1.0):
        import redis  # the broker's client, installed with Celery

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def note_accepted(self, reminder_id: str, message_id: str) -> None:
        try:
            self._redis.set(_PREFIX + reminder_id, message_id, ex=KEEP_SECONDS)
        except Exception as failure:  # the table stays the record: note it and deliver on
            log.warning("delivery journal not written (%s)", type(failure).__name__)

    def accepted(self, reminder_ids: Iterable[str]) -> dict[str, str]:
        ids = list(reminder_ids)
        if not ids:
            return {}
        try:
            found = self._redis.mget([_PREFIX + r for r in ids])
        except Exception as failure:
            log.warning("delivery journal not read (%s)", type(failure).__name__)
            return {}
        return {r: m.decode() for r, m in zip(ids, found, strict=True) if m is not None}

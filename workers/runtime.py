"""What each worker process builds once: unit-of-work factory, mailer, policy, journal.

Built lazily, so each forked worker process opens its own database pool and SMTP connection.
"""

from __future__ import annotations

from functools import cache

from engine.adapters.delivery_journal import DeliveryJournal, ProcessJournal, RedisJournal
from engine.adapters.mail import Mailer, mailer_from_settings
from engine.bootstrap import UnitOfWorkFactory, unit_of_work_factory
from engine.config import get_settings
from engine.services.reminders import DeliveryPolicy


@cache
def uow_factory() -> UnitOfWorkFactory:
    return unit_of_work_factory(get_settings())


@cache
def mailer() -> Mailer:
    return mailer_from_settings(get_settings())


@cache
def policy() -> DeliveryPolicy:
    return DeliveryPolicy.from_settings(get_settings())


@cache
def journal() -> DeliveryJournal:
    """The journal of accepted emails every worker shares (in the broker's Redis)."""
    url = get_settings().broker_url
    return RedisJournal(url) if url and url.startswith("redis") else ProcessJournal()

"""The app's lifespan in the embedded default: reminders flow with no broker.

When no broker is configured, the app runs `EmbeddedDispatcher` beside the API: due reviews
and due reminders are handled in-process on a timer (`AIHP_DISPATCH_INTERVAL_SECONDS`), mail
goes to SMTP or the local mailbox. It starts with the app and stops with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from engine.adapters.mail import mailer_from_settings
from engine.services.dispatch import EmbeddedDispatcher
from engine.services.reminders import DeliveryPolicy


@asynccontextmanager
async def embedded_dispatch(app: FastAPI) -> AsyncIterator[None]:
    """Start the in-process dispatcher for the app's database; stop it on shutdown."""
    settings = app.state.settings
    mailer = mailer_from_settings(settings)
    dispatcher = EmbeddedDispatcher(
        app.state.uow_factory,
        mailer,
        DeliveryPolicy.from_settings(settings),
        settings.dispatch_interval_seconds,
        settings.dispatch_batch_size,
    )
    app.state.dispatcher = dispatcher.start()
    try:
        yield
    finally:
        dispatcher.stop()
        mailer.close()

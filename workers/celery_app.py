"""The Celery application, configured from the engine's settings (AIHP_*)."""

from __future__ import annotations

from celery import Celery

from workers import celeryconfig

app = Celery("aihp")
app.config_from_object(celeryconfig)
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)

"""The HTTP API: `create_app(settings, clock)`; `uvicorn api.main:app` serves the default one.

OpenAPI at `/openapi.json`, interactive documentation at `/docs`. Every endpoint needs a bearer
token (see `aihp token create`). The access log names the method, the route template (never the
patient id in the URL), the status, the duration and the caller's user id: no PHI.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI

from api import cds_hooks, docs, errors, fhir, pages
from api.boundary import (
    HttpMiddleware,
    LastResort,
    Message,
    Receive,
    RequestBoundary,
    Scope,
    Send,
    route_template,
)
from api.lifespan import embedded_dispatch
from api.routes import audit, pathways, patients, queues, users
from api.schemas import Problem
from api.web_security import SecurityHeaders
from engine.bootstrap import unit_of_work_factory
from engine.clock import Clock, SystemClock
from engine.config import Settings, get_settings

access_log = logging.getLogger("aihp.api.access")

DESCRIPTION = """
Care-pathway engine for autoimmune hepatitis: enrol patients, record labs, events and orders
through the guideline's safety rules, and read where each patient is and why.

* **Auth**: `Authorization: Bearer <token>`. Roles: clinician, coordinator, lab-interface,
  auditor, admin, ehr (CDS Hooks at `/cds-services`). A caller with a site sees only that
  site's patients; others are 404.
* **Errors**: `application/problem+json` (RFC 9457). A refused order is 422 with `rule_ids`.
* **Concurrency**: status carries `version` and `ETag: "v<version>"`; send `If-Match`
  (or `expected_version`) on a change: 412 if stale, 409 if a concurrent writer won.
* **Idempotency**: `Idempotency-Key` on POSTs replays the first answer; the work is done once.
"""


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, dispatch: bool | None = None
) -> FastAPI:
    """An app on the configured database, reading time from `clock` (the system clock).

    `dispatch`: run the in-process reminder dispatcher with the app (default: when no broker
    is configured); tests pass False.
    """
    settings = settings or get_settings()
    dispatch = settings.broker_url is None if dispatch is None else dispatch
    clock = clock or SystemClock()
    app = FastAPI(
        title="aih-pathways",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,  # served by api/docs.py from the app's own assets (works offline)
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=embedded_dispatch if dispatch else None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.uow_factory = unit_of_work_factory(settings, clock)
    for router in (
        patients.router,
        queues.router,
        pathways.router,
        audit.router,
        users.router,
        fhir.router,
        cds_hooks.router,
    ):
        app.include_router(router)
    errors.install(app)
    pages.install(app)
    docs.install(app)
    # Outermost last: headers on every answer, then the access line, then the edge's limits,
    # then the last resort around everything the routes do.
    app.add_middleware(LastResort)
    app.add_middleware(RequestBoundary, settings=settings)
    app.add_middleware(AccessLog)
    app.add_middleware(SecurityHeaders)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class AccessLog(HttpMiddleware):
    """ASGI middleware: one line per request with the method, the route template (never the
    patient id in the URL), the status, the duration and the caller's user id: no PHI."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, status = time.perf_counter(), 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            access_log.info(
                "%s %s %s %.1fms principal=%s",
                scope.get("method", "?"),
                route_template(scope),
                status,
                (time.perf_counter() - started) * 1000,
                scope.get("state", {}).get("principal_id", "-"),
            )


def __getattr__(name: str) -> FastAPI:
    """`api.main:app`: the app on the environment's settings, built on first use (not on import)."""
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)

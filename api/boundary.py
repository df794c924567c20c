"""The HTTP edge every request crosses first: body size, JSON shape, and the last resort.

`RequestBoundary` refuses, before any route, token check or JSON parser sees the request:
- a body larger than `AIHP_MAX_BODY_BYTES` (`AIHP_MAX_BUNDLE_BYTES` for a FHIR Bundle at
  `POST /fhir`): 413, from the `Content-Length` alone when it is given, else as soon as the
  streamed body passes the limit (nothing larger is ever buffered);
- JSON nested deeper than `AIHP_MAX_JSON_DEPTH`, with the non-standard `NaN` and
  `Infinity` literals that Python's parser would accept, or an object naming a key twice: 400.

`LastResort` turns any error no handler answered into a 500 with a fixed sentence and an
error id; the log names only the error's type, where it was raised and that id, never its
message (which may quote patient data). The pages sub-app has its own, so no error of a page
reaches the server's log with its traceback.

Each refusal is written in the surface's language: OperationOutcome under `/fhir`, an HTML
page under `/ui`, problem+json elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from html import escape
from typing import Any

from engine.config import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("aihp.api")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_NON_FINITE = re.compile(rb"(?<![A-Za-z0-9_])-?(?:NaN|Infinity)(?![A-Za-z0-9_])")
_TITLES = {400: "Bad request", 413: "Content too large", 500: "Internal server error"}


class HttpMiddleware:
    """An ASGI middleware for HTTP requests: other traffic (lifespan, websockets) passes by."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request (usually by calling `self.app` around some work)."""
        await self.app(scope, receive, send)


class RequestBoundary(HttpMiddleware):
    """ASGI middleware: size limits and JSON shape checks before anything reads the body."""

    def __init__(self, app: ASGIApp, settings: Settings):
        super().__init__(app)
        self.max_body = settings.max_body_bytes
        self.max_bundle = settings.max_bundle_bytes
        self.max_depth = settings.max_json_depth

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        limit = self.max_bundle if path.rstrip("/") == "/fhir" else self.max_body
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await refuse(scope, send, 413, f"the request body is larger than {limit} bytes")
            return
        body, more_body = bytearray(), True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
            if len(body) > limit:
                await refuse(scope, send, 413, f"the request body is larger than {limit} bytes")
                return
        problem = json_shape_problem(bytes(body), self.max_depth)
        if problem:
            await refuse(scope, send, 400, problem)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


class LastResort(HttpMiddleware):
    """ASGI middleware: an unanswered error becomes a 500 with an error id; the log says only
    its type and where it was raised."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as failure:  # never a traceback or a message in the log or the answer
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "unhandled %s at %s in %s %s error_id=%s",
                type(failure).__name__,
                where(failure),
                scope.get("method", "?"),
                route_template(scope),
                error_id,
            )
            if not started:
                detail = (
                    f"the request could not be completed; the error has been logged ({error_id})"
                )
                await refuse(scope, send, 500, detail, error_id=error_id)


def json_shape_problem(body: bytes, max_depth: int) -> str | None:
    """Why a JSON body cannot be accepted (too deep, NaN/Infinity), or None.

    Strings are blanked out first, so brackets and words inside them do not count."""
    body = body.removeprefix(b"\xef\xbb\xbf")  # json.loads reads past a UTF-8 BOM too
    start = body.lstrip()[:1]
    if start not in (b"{", b"["):
        return None
    bare = _STRING.sub(b'""', body)
    if _NON_FINITE.search(bare):
        return "numbers must be finite: NaN and Infinity are not JSON"
    if bare.count(b"[") + bare.count(b"{") > max_depth:
        depth = 0
        for bracket in _BRACKET.finditer(bare):
            if bracket.group() in (b"[", b"{"):
                depth += 1
                if depth > max_depth:
                    return f"the JSON is nested deeper than {max_depth} levels"
            else:
                depth -= 1
    return _repeated_key(body)


class _RepeatedKey(ValueError):
    pass


def _repeated_key(body: bytes) -> str | None:
    """An object naming a key twice: parsers disagree on which value wins (a proxy may check
    the first, the route would act on the last), so neither is taken."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise _RepeatedKey(next(k for k in keys if keys.count(k) > 1))
        return dict(pairs)

    try:
        json.loads(body, object_pairs_hook=unique)
    except _RepeatedKey as repeated:
        return f"an object names the key {str(repeated)[:64]!r} twice"
    except ValueError:
        return None  # not JSON: the route's own parser answers that
    return None


async def refuse(scope: Scope, send: Send, status: int, detail: str, **extra: Any) -> None:
    """Answer `status` with `detail`, in the language of the surface the path belongs to."""
    path: str = scope.get("path", "")
    title = _TITLES.get(status, "Error")
    if path.startswith("/fhir"):
        issue_code = {413: "too-costly", 500: "exception"}.get(status, "structure")
        severity = "fatal" if status == 500 else "error"
        outcome = {"severity": severity, "code": issue_code, "diagnostics": detail}
        body = json.dumps({"resourceType": "OperationOutcome", "issue": [outcome]}).encode()
        media_type = "application/fhir+json"
    elif path.startswith("/ui"):
        body = (
            f"<!doctype html><html lang=en><meta charset=utf-8><title>{title}</title>"
            f"<main><h1>{status} {title}</h1><p>{escape(detail)}</p></main></html>"
        ).encode()
        media_type = "text/html; charset=utf-8"
    else:
        code = {413: "too-large", 500: "internal"}.get(status, "unreadable")
        problem = {
            "type": f"https://aih-pathways.example/problems/{code}",
            "title": title,
            "status": status,
            "detail": detail,
            **extra,
        }
        body = json.dumps(problem).encode()
        media_type = "application/problem+json"
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def where(failure: BaseException) -> str:
    """File and line where the error was raised: enough to find it, without its message."""
    frames = traceback.extract_tb(failure.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def route_template(scope: Scope) -> str:
    """The matched route's template (`/patients/{patient_id}`), never the concrete path."""
    route = scope.get("route")
    return getattr(route, "path", "<unmatched>")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the already-read body, then the client's next message."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

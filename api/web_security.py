"""Security headers on every answer: a Content-Security-Policy without inline script, no
framing, no MIME sniffing, and a Referer only for this site's own pages.

The pages load their scripts and styles from `/ui/static` only; the API documentation at
`/docs` loads Swagger UI from the app too (`api/docs.py`) and is the one page allowed inline
style attributes, which Swagger UI sets from its scripts.
"""

from __future__ import annotations

from api.boundary import HttpMiddleware, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders(HttpMiddleware):
    """ASGI middleware adding the security headers to every response that lacks them."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        csp = DOCS_CSP if scope.get("path", "").startswith("/docs") else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(b"content-security-policy", csp.encode()), *HEADERS]
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

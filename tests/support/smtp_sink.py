"""A real SMTP server (aiosmtpd) that records what it receives, for mail tests.

In-process: ``with SmtpSink() as sink: ...`` then ``sink.messages``, ``sink.wait_for(n)``,
``sink.count_by_message_id()``. For retry tests it can answer ``451`` to the next K messages
(``fail_next``) or refuse with ``550`` the recipients that match a pattern (``refuse``). For
chaos tests it can hold each message for ``delay_seconds`` before accepting it (without blocking
other sessions); ``receiving()`` names the messages being held and their envelope senders.

As a separate process (chaos tests), appending one JSON line per received message:

    python -m tests.support.smtp_sink --port P --jsonl FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import HOST, free_port


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every accepted message, thread-safe."""

    def __init__(
        self,
        port: int | None = None,
        *,
        on_message: Callable[[EmailMessage], None] | None = None,
        delay_seconds: float = 0.0,
    ):
        self.host = HOST
        self.port = port or free_port()
        self._on_message = on_message
        self.delay_seconds = delay_seconds
        self._receiving: dict[int, tuple[str, str]] = {}
        self._messages: list[EmailMessage] = []
        self._temporary_failures = 0
        self._temporary_code = 451
        self._refused: re.Pattern[str] | None = None
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    # lifecycle

    def start(self) -> SmtpSink:
        """Start listening (again, on the same port after a stop)."""
        if self._controller is None:
            self._controller = Controller(
                _Handler(self), hostname=self.host, port=self.port, ready_timeout=10.0
            )
            self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections; the recorded messages stay."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # failure switches

    def fail_next(self, count: int, code: int = 451) -> None:
        """Answer the DATA of the next `count` messages with a temporary failure."""
        with self._changed:
            self._temporary_failures = count
            self._temporary_code = code

    def refuse(self, pattern: str | None) -> None:
        """Refuse (550) every recipient address matching regex `pattern`; None stops refusing."""
        with self._changed:
            self._refused = re.compile(pattern) if pattern else None

    # what was received

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the accepted messages, in order."""
        with self._changed:
            return list(self._messages)

    def count_by_message_id(self) -> Counter[str]:
        """How many times each Message-ID was received (unfolded: a long one may be folded)."""
        with self._changed:
            return Counter(str(m["Message-ID"]).strip() for m in self._messages)

    def receiving(self) -> list[tuple[str, str]]:
        """(Message-ID, envelope sender) of the messages held in their delay right now."""
        with self._changed:
            return list(self._receiving.values())

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least `n` messages have been accepted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget the received messages and the failure switches."""
        with self._changed:
            self._messages.clear()
            self._temporary_failures = 0
            self._refused = None

    # called by the handler, on the server's thread

    def _refuses(self, address: str) -> bool:
        with self._changed:
            return bool(self._refused and self._refused.search(address))

    def _take_temporary_failure(self) -> int | None:
        with self._changed:
            if self._temporary_failures <= 0:
                return None
            self._temporary_failures -= 1
            return self._temporary_code

    def _record(self, message: EmailMessage) -> None:
        if self._on_message is not None:
            self._on_message(message)
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()


class _Handler:
    """aiosmtpd hooks: refuse or accept recipients, fail or record messages."""

    def __init__(self, sink: SmtpSink):
        self.sink = sink
        self._held: set[asyncio.Future[None]] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.sink._refuses(address):
            return "550 5.1.1 Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        code = self.sink._take_temporary_failure()
        if code is not None:
            return f"{code} 4.3.0 Temporary failure, try again later"
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        message = BytesParser(policy=policy.default).parsebytes(content)
        if self.sink.delay_seconds > 0:
            # Shielded: a client that dies while its message is held still has it accepted,
            # as when a client crashes between sending the data and reading the "250".
            accepted = asyncio.ensure_future(self._hold_then_record(message, envelope.mail_from))
            self._held.add(accepted)
            accepted.add_done_callback(self._held.discard)
            await asyncio.shield(accepted)
        else:
            self.sink._record(message)  # type: ignore[arg-type]
        return "250 2.0.0 Message accepted"

    async def _hold_then_record(self, message: EmailMessage, sender: str | None) -> None:
        key = id(message)
        with self.sink._changed:
            self.sink._receiving[key] = (str(message["Message-ID"]).strip(), sender or "")
        try:
            await asyncio.sleep(self.sink.delay_seconds)
            self.sink._record(message)
        finally:
            with self.sink._changed:
                self.sink._receiving.pop(key, None)


def _jsonl_writer(path: Path) -> Callable[[EmailMessage], None]:
    lock = threading.Lock()

    def write(message: EmailMessage) -> None:
        line = json.dumps(
            {
                "message_id": str(message["Message-ID"]),
                "to": str(message["To"]),
                "subject": str(message["Subject"]),
                "received_at": time.time(),
            }
        )
        with lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    return write


def main(argv: list[str] | None = None) -> int:
    """Run a sink until SIGTERM/SIGINT, appending a JSON line per received message."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jsonl", type=Path, required=True)
    parser.add_argument("--fail-next", type=int, default=0, help="451 for the first K messages")
    parser.add_argument("--refuse", default=None, help="550 for recipients matching this regex")
    args = parser.parse_args(argv)

    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    sink = SmtpSink(args.port, on_message=_jsonl_writer(args.jsonl))
    sink.fail_next(args.fail_next)
    sink.refuse(args.refuse)
    with sink:
        print(f"smtp sink listening on {sink.host}:{sink.port}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

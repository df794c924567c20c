"""A cheap SMTP sink for the benchmark: asyncio, no parsing beyond finding the Message-ID.

`python -m bench.dispatch.sink --port P --jsonl FILE` accepts every message (250) and appends
one JSON line per message ({"message_id", "received_at"}), written in chunks so the sink costs
little CPU next to the clients it measures (its CPU is reported beside theirs). It speaks
just enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import time
from pathlib import Path

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_END = b"\r\n.\r\n"


class Received:
    """The JSON lines not yet written, flushed every 0.2 s and at exit."""

    def __init__(self, path: Path):
        self.path = path
        self.pending: list[str] = []

    def note(self, data: bytes) -> None:
        found = _MESSAGE_ID.search(data)
        mid = found.group(1).decode(errors="replace") if found else ""
        self.pending.append(json.dumps({"message_id": mid, "received_at": time.time()}))

    def flush(self) -> None:
        if self.pending:
            lines, self.pending = self.pending, []
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")


class Session(asyncio.Protocol):
    """One SMTP session: commands line by line, then message data up to CRLF.CRLF."""

    def __init__(self, received: Received):
        self.received = received
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 bench sink\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                end = self.buffer.find(_END)
                if end < 0:
                    break
                self.received.note(self.buffer[:end])
                self.buffer = self.buffer[end + len(_END) :]
                self.in_data = False
                replies.append(b"250 OK")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(b"250-bench sink\r\n250-PIPELINING\r\n250 8BITMIME")
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 End data with <CR><LF>.<CR><LF>")
            elif verb == b"QUIT":
                replies.append(b"221 Bye")
                self.transport.write(b"\r\n".join(replies) + b"\r\n")
                self.transport.close()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                replies.append(b"250 OK")
        if replies:
            self.transport.write(b"\r\n".join(replies) + b"\r\n")


async def serve(port: int, path: Path) -> None:
    received = Received(path)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    server = await loop.create_server(lambda: Session(received), "127.0.0.1", port)
    print(f"bench sink listening on 127.0.0.1:{port}", flush=True)
    while not stopped.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), 0.2)
        received.flush()
    server.close()
    received.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jsonl", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.jsonl))


if __name__ == "__main__":
    main()

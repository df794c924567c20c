"""The MLLP listener: an asyncio TCP server; each connection's frames are answered in order.

A frame is answered in a worker thread (the service layer is synchronous) and its ACK is written
only once `LabFeed.answer` returns, i.e. after the commit. A connection idle for
`idle_seconds` is closed, so a silent peer holds nothing; a frame larger than
`max_message_bytes` is answered AR and skipped, never buffered whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass

from lab_feed.mllp import MllpFrames, frame
from lab_feed.receiver import LabFeed

log = logging.getLogger("aihp.lab_feed")


@dataclass(frozen=True)
class ListenerLimits:
    max_message_bytes: int = 1_000_000
    idle_seconds: float = 300.0
    read_bytes: int = 65_536
    #: A frame begun must end within this; a peer trickling bytes is closed (the idle time
    #: alone restarts at every byte).
    frame_seconds: float = 60.0
    #: Connections open at once; one more is closed at once (a lab system needs one or two).
    max_connections: int = 64


class LabListener:
    """`await start(host, port)` (OSError if it cannot bind), then `serve_forever()`."""

    def __init__(self, feed: LabFeed, limits: ListenerLimits | None = None):
        self.feed = feed
        self.limits = limits or ListenerLimits()
        self.server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> asyncio.Server:
        self.server = await asyncio.start_server(self._connection, host, port)
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting and end every open connection (answers already sent stay sent)."""
        if self.server is not None:
            self.server.close()
        for writer in list(self._open):
            writer.close()
        while self._open:
            await asyncio.sleep(0.01)

    async def serve_forever(self) -> None:
        assert self.server is not None
        async with self.server:
            await self.server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = MllpFrames(self.limits.max_message_bytes)
        peer = str((writer.get_extra_info("peername") or ("",))[0])
        if len(self._open) >= self.limits.max_connections:
            log.warning("HL7 connection refused: %d already open", len(self._open))
            writer.close()
            return
        self._open.add(writer)
        loop = asyncio.get_running_loop()
        frame_began: float | None = None
        try:
            while True:
                wait = self.limits.idle_seconds
                if frame_began is not None:
                    wait = min(wait, frame_began + self.limits.frame_seconds - loop.time())
                try:
                    data = await asyncio.wait_for(reader.read(self.limits.read_bytes), wait)
                except TimeoutError:
                    why = "a frame unfinished" if frame_began is not None else "idle"
                    log.info("HL7 connection closed: %s for too long", why)
                    break
                if not data:
                    break
                found = frames.feed(data)
                if not frames.pending:
                    frame_began = None
                elif frame_began is None or found:  # a new frame began with these bytes
                    frame_began = loop.time()
                for message in found:
                    ack = await asyncio.to_thread(self.feed.answer, message, peer)
                    writer.write(frame(ack))
                    await writer.drain()
        except ConnectionError:
            log.info("HL7 connection lost")
        finally:
            self._open.discard(writer)
            if frames.dropped_bytes:
                log.info(
                    "HL7 connection: %d bytes outside MLLP frames dropped", frames.dropped_bytes
                )
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class ListenerThread:
    """The listener on its own event loop in a background thread (tests, bench, embedding):
    `start()` binds (OSError if it cannot) and returns the port; `stop()` closes it."""

    def __init__(self, feed: LabFeed, limits: ListenerLimits | None = None):
        self.listener = LabListener(feed, limits)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self.listener.start(host, port), self._loop)
        try:
            started.result(timeout=10)
        except BaseException:
            self._shut_down()
            raise
        return self.listener.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.close(), self._loop).result(timeout=10)
        self._shut_down()

    def _shut_down(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ListenerThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

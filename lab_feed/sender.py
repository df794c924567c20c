"""Sending messages to an MLLP listener and reading its ACKs (`aihp hl7 send`, tests, bench)."""

from __future__ import annotations

import re
import socket

from lab_feed.mllp import MllpFrames, frame

MESSAGE_START = re.compile(r"(?m)^(?=MSH)")


def messages_in(text: str) -> list[bytes]:
    """The messages of a file: each begins with MSH; lines may end in LF, CR LF or CR."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [
        "\r".join(line for line in part.split("\n") if line.strip()).encode("utf-8") + b"\r"
        for part in MESSAGE_START.split(text)
        if part.strip()
    ]


class MllpConnection:
    """One TCP connection: `send(message)` -> its ACK's bytes."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.socket = socket.create_connection((host, port), timeout=timeout)
        self._frames = MllpFrames(10_000_000)
        self._waiting: list[bytes] = []

    def send(self, message: bytes) -> bytes:
        self.socket.sendall(frame(message))
        return self.receive()

    def receive(self) -> bytes:
        """The next ACK (ConnectionError if the listener closed the connection first)."""
        while not self._waiting:
            data = self.socket.recv(65_536)
            if not data:
                raise ConnectionError("the listener closed the connection")
            self._waiting += [f for f in self._frames.feed(data) if isinstance(f, bytes)]
        return self._waiting.pop(0)

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> MllpConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

"""MLLP framing: each message travels as 0x0B, the message, 0x1C 0x0D.

`MllpFrames` is fed whatever a read returns (part of a message, several messages, bytes between
frames) and gives back whole frames in order. Bytes outside a frame are dropped. A frame longer
than the limit is given back once as `Oversize` (with its first bytes, so its header can still be
answered) and the rest of it is skipped up to its end block.
"""

from __future__ import annotations

from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
#: How much of an oversize frame is kept: enough for its MSH segment.
HEAD_BYTES = 2048


@dataclass(frozen=True)
class Oversize:
    """A frame that passed the size limit; `head` is its first bytes."""

    head: bytes
    limit: int


def frame(message: bytes) -> bytes:
    """The message wrapped for MLLP."""
    return START_BLOCK + message + END_BLOCK


class MllpFrames:
    """Incremental MLLP decoder: `feed(data)` -> the frames completed by `data`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.dropped_bytes = 0  # bytes seen outside any frame
        self._buffer = bytearray()
        self._inside = False
        self._skipping = False
        self._scanned = 0  # bytes of the frame under way already searched for its end

    @property
    def pending(self) -> bool:
        """A frame has begun and not ended (its bytes are being kept or skipped)."""
        return self._inside or self._skipping

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        self._buffer += data
        found: list[bytes | Oversize] = []
        while self._buffer:
            if self._skipping:
                end = self._buffer.find(END_BLOCK)
                if end < 0:
                    keep = self._buffer[-1:] == END_BLOCK[:1]  # a split end block
                    del self._buffer[: len(self._buffer) - keep]
                    break
                del self._buffer[: end + len(END_BLOCK)]
                self._skipping = False
                continue
            if not self._inside:
                start = self._buffer.find(START_BLOCK)
                if start < 0:
                    self.dropped_bytes += len(self._buffer)
                    self._buffer.clear()
                    break
                self.dropped_bytes += start
                del self._buffer[: start + 1]
                self._inside, self._scanned = True, 0
                continue
            # only the bytes not searched yet (a frame fed a byte at a time stays linear); the
            # last byte searched again, as an end block may be split across reads
            end = self._buffer.find(END_BLOCK, self._scanned)
            stop = end if end >= 0 else len(self._buffer)
            restart = self._buffer.rfind(START_BLOCK, self._scanned, stop)
            if restart >= 0:
                # a frame cut short by a new start block: the sender gave up on it
                self.dropped_bytes += restart
                del self._buffer[: restart + 1]
                self._scanned = 0
                continue
            if end < 0:
                self._scanned = max(0, len(self._buffer) - 1)
                if len(self._buffer) > self.max_bytes:
                    found.append(Oversize(bytes(self._buffer[:HEAD_BYTES]), self.max_bytes))
                    self._inside, self._skipping = False, True
                    continue
                break
            message = bytes(self._buffer[:end])
            del self._buffer[: end + len(END_BLOCK)]
            self._inside, self._scanned = False, 0
            if len(message) > self.max_bytes:
                found.append(Oversize(message[:HEAD_BYTES], self.max_bytes))
            else:
                found.append(message)
        return found

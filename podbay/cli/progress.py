"""`podbay image pull`'s progress display, as docker draws it: one line per blob (short digest,
a bar, bytes done/total) redrawn in place on a terminal, or one plain line per finished blob
when stderr is a file or a pipe.

It consumes the image store's `progress(digest, done, total)` events: a blob the store already
holds arrives as a single event with done == total; a download starts with done == 0 and then
reports each chunk (total is 0 when nobody told the blob's length).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, TextIO

BAR_WIDTH = 30
REDRAW_INTERVAL = 0.1  # seconds: at most ~10 redraws a second
UP = "\x1b[{}A"
CLEAR_LINE = "\r\x1b[2K"

DOWNLOADING = "Downloading"
COMPLETE = "Pull complete"
EXISTS = "Already exists"


def human_size(n: float) -> str:
    """Bytes in decimal units with three significant digits, as docker prints sizes."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return str(n)


def terminal_columns(stream: TextIO) -> int:
    """The terminal's width; 80 when it does not say (a pty of size 0x0 is common)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


def short_digest(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest[:12]


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[=====>    ]`; empty when the total is unknown."""
    if total <= 0:
        return ""
    filled = min(width, done * width // total)
    arrow = "=" * filled if filled == width else "=" * filled + ">"
    return f"[{arrow:<{width}}]"


@dataclass
class BlobLine:
    digest: str
    done: int = 0
    total: int = 0
    status: str = DOWNLOADING
    reported: bool = False  # its plain line is written (not on a terminal)

    @property
    def finished(self) -> bool:
        return self.status != DOWNLOADING

    def render(self) -> str:
        head = f"{short_digest(self.digest)}: {self.status}"
        if self.finished:
            return head
        if not self.total:
            return f"{head} {human_size(self.done)}"
        return f"{head} {bar(self.done, self.total)} {human_size(self.done)}/{human_size(self.total)}"


class PullProgress:
    """A `progress(digest, done, total)` callback that draws on `stream`; `finish()` once the
    pull is over. On a terminal the lines are redrawn in place (cursor up, clear line), at most
    every `interval` seconds; elsewhere each blob gets one line when it finishes."""

    def __init__(self, stream: TextIO, tty: bool, *, columns: int = 80,
                 clock: Callable[[], float] = time.monotonic, interval: float = REDRAW_INTERVAL) -> None:
        self._stream, self._tty, self._columns = stream, tty, columns if columns > 0 else 80
        self._clock, self._interval = clock, interval
        self._blobs: dict[str, BlobLine] = {}
        self._drawn = 0
        self._last_draw: float | None = None

    def __call__(self, digest: str, done: int, total: int) -> None:
        blob = self._blobs.get(digest)
        if blob is None:
            blob = self._blobs[digest] = BlobLine(digest)
            if done == total > 0:
                blob.status = EXISTS
        blob.done, blob.total = done, total
        if not blob.finished and total and done >= total:
            blob.status = COMPLETE
        if self._tty:
            now = self._clock()
            if self._last_draw is None or now - self._last_draw >= self._interval:
                self._draw(now)
        elif blob.finished:
            self._report(blob)

    def finish(self, ok: bool = True) -> None:
        """The final state: after a successful pull every blob is complete, whatever its
        last event said (a registry may not tell a blob's length)."""
        if ok:
            for blob in self._blobs.values():
                if not blob.finished:
                    blob.status = COMPLETE
        if self._tty:
            self._draw(self._clock())
        else:
            for blob in self._blobs.values():
                if blob.finished:
                    self._report(blob)

    def _report(self, blob: BlobLine) -> None:
        if blob.reported:
            return
        blob.reported = True
        self._stream.write(blob.render() + "\n")
        self._stream.flush()

    def _draw(self, now: float) -> None:
        out = [UP.format(self._drawn)] if self._drawn else []
        out += [CLEAR_LINE + blob.render()[: self._columns - 1] + "\n" for blob in self._blobs.values()]
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn = len(self._blobs)
        self._last_draw = now

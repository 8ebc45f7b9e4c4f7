"""A small progress bar on stderr, with rate and ETA; quiet lines when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, unit: str, stream: TextIO | None = None, width: int = 28):
        self.label, self.unit, self.width = label, unit, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = self.last_draw = time.monotonic()
        self.decile = -1

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        # Redraw at most 10 times a second on a terminal, once per 10% otherwise.
        if self.tty:
            if not finished and now - self.last_draw < 0.1:
                return
        else:
            decile = 10 * done // max(total, 1)
            if not finished and decile == self.decile:
                return
            self.decile = decile
        self.last_draw = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        status = "done" if finished else f"ETA {eta:.0f}s" if rate > 0 else "ETA unknown"
        line = f"{self.label} [{bar}] {done}/{total} {self.unit} {rate:.1f} {self.unit}/s, {status}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

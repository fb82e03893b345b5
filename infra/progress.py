"""Readable progress for long, parallel operations: one line per Space and step, with durations.

Lines go to stderr so that `--json` output on stdout stays machine-readable. A lock keeps lines
from parallel workers whole.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Prints `HH:MM:SS  <space>  <step>  <detail>  (<seconds>)` lines; silent when `quiet`."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._lock = threading.Lock()

    def line(self, subject: str, step: str, detail: str = "", seconds: float | None = None) -> None:
        if self.quiet:
            return
        took = f"  ({seconds:.1f}s)" if seconds is not None else ""
        text = f"{time.strftime('%H:%M:%S')}  {subject:<44} {step:<10} {detail}{took}".rstrip()
        with self._lock:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def step(self, subject: str, step: str, detail: str = "") -> Iterator[None]:
        """Print when `step` finishes (or fails), with how long it took."""
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.line(subject, step, f"FAILED {detail}".strip(), time.monotonic() - started)
            raise
        self.line(subject, step, detail or "done", time.monotonic() - started)


SILENT = Progress(quiet=True)

"""A cached, thread-safe view of the flags for request paths.

Every request consults the flag, so it must cost nothing: the document is re-read at most once
per TTL, by one thread, while the others keep using the value they have. If a read fails the last
good value stays in force (a store outage must not flip traffic), and before any read has ever
succeeded the answer is None, which routing treats as OpenAI: the safe side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from infra.flags.document import FlagDocument
from infra.flags.store import FlagStore, read_document

log = logging.getLogger("infra.flags")

DEFAULT_TTL = 3.0


class CachedFlagReader:
    """Reads `store` at most once per `ttl` seconds; keeps the last good value on failure."""

    def __init__(
        self,
        store: FlagStore,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        self.store = store
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below
        self._refresh = threading.Lock()  # one refresher at a time
        self._document: FlagDocument | None = None
        self._has_read = False
        self._next_read = float("-inf")
        self.last_error: str | None = None
        self.read_count = 0
        self.failure_count = 0

    def get(self) -> FlagDocument | None:
        """The flag document to route by; None means never read (route to OpenAI)."""
        with self._lock:
            fresh = self._clock() < self._next_read
            document, has_read = self._document, self._has_read
        if fresh:
            return document
        # Before the first successful read, wait for it; afterwards never block a request on the store.
        if not self._refresh.acquire(blocking=not has_read):
            return document
        try:
            with self._lock:
                if self._clock() < self._next_read:
                    return self._document
            self._load()
            with self._lock:
                return self._document
        finally:
            self._refresh.release()

    def _load(self) -> None:
        try:
            document = read_document(self.store)
        except Exception as error:  # any store fault: keep the last value, try again after the TTL
            with self._lock:
                self.failure_count += 1
                self.last_error = f"{type(error).__name__}: {error}"
                self._next_read = self._clock() + self.ttl
            log.warning("flag read from %s failed; keeping last value: %s", self.store.description,
                        type(error).__name__)
            return
        with self._lock:
            self.read_count += 1
            self.last_error = None
            self._has_read = True
            self._document = document  # None: the flag was deleted; route to OpenAI
            self._next_read = self._clock() + self.ttl

    def invalidate(self) -> None:
        """Force the next `get` to read the store (used after this process writes the flags)."""
        with self._lock:
            self._next_read = float("-inf")

"""A per-tier circuit breaker, so a dead Space costs one timeout rather than one per request.

closed -> open after `failure_threshold` consecutive failures (or at once on a hard failure: a
timeout or refused connection, each of which already cost a full wait); open -> half-open after
`reset_timeout` seconds, letting exactly one trial request through; that trial's success closes the
circuit, its failure re-opens it for another `reset_timeout`.

A trial must always end in a verdict or a release, or the tier would never reach its Space again:
callers record success/failure, or `release()` when the request ended without saying anything about
the endpoint (the caller abandoned a stream). As a safety net a trial that has reported nothing for
`trial_timeout` seconds (default: `reset_timeout`) expires, and the next request becomes the trial.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Thread-safe breaker; call `allow()` before a request and `record_*` after it."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_timeout: float = 30.0,
        trial_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.trial_timeout = reset_timeout if trial_timeout is None else trial_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._trial_started = 0.0
        self.times_opened = 0

    @property
    def state(self) -> str:
        """closed, open or half-open (open turns half-open once the cool-down has passed)."""
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
                return HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a request go to the protected endpoint now? In half-open, only one at a time.

        A trial that has been in flight for `trial_timeout` without a verdict is presumed lost and replaced.
        """
        with self._lock:
            if self._state == CLOSED:
                return True
            now = self._clock()
            if self._state == OPEN:
                if now - self._opened_at < self.reset_timeout:
                    return False
                self._state = HALF_OPEN
                self._trial_in_flight = False
            if self._trial_in_flight and now - self._trial_started < self.trial_timeout:
                return False
            self._trial_in_flight, self._trial_started = True, now
            return True

    def release(self) -> None:
        """A request ended with no verdict on the endpoint (e.g. its caller abandoned a stream).

        Frees the half-open trial slot so the next request becomes the trial; counts nothing either way.
        """
        with self._lock:
            if self._state == HALF_OPEN:
                self._trial_in_flight = False

    def record_success(self) -> None:
        """A request succeeded: close the circuit and forget past failures."""
        with self._lock:
            self._state, self._failures, self._trial_in_flight = CLOSED, 0, False

    def record_failure(self, *, hard: bool = False) -> None:
        """A request failed; open the circuit at the threshold, on a hard failure, or in half-open."""
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or hard or self._failures >= self.failure_threshold:
                if self._state != OPEN:
                    self.times_opened += 1
                self._state, self._opened_at, self._trial_in_flight = OPEN, self._clock(), False

"""Fault injection: added latency, error statuses (429 with `Retry-After`, 500...) and dropped connections.

A plan is a list of rules; each rule matches a regex against "METHOD /path" (e.g. `POST /api/spaces/.*/commit/`)
and fires for every matching request, for the first `count` matching requests, or with probability `rate`.
A firing rule adds `latency_ms`, then answers `status` (the Hub's JSON error shape, `Retry-After` for 429
and 503) or drops the connection after the response headers (the client sees a protocol error).
Requests to `/_sandbox/*` are never faulted. Injected faults never reach the Hub, so they are not
counted as write calls; they are counted in the plan's `injected` total.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class DroppedConnection(Exception):
    """Raised inside the ASGI app after the headers are sent, so the server closes the connection."""


class _HideDropped(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_HideDropped())


@dataclass
class FaultRule:
    """One rule of a fault plan (see the module docstring)."""

    route: str
    latency_ms: int = 0
    status: int | None = None
    retry_after: int | None = None
    count: int | None = None
    rate: float | None = None
    drop_connection: bool = False
    message: str | None = None
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        try:
            self._pattern = re.compile(self.route)
        except re.error as error:
            raise ValueError(f"invalid route pattern {self.route!r}: {error}") from None
        if self.status is not None and not 400 <= int(self.status) <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {self.status}")
        if self.rate is not None and not 0 <= float(self.rate) <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate}")
        if self.count is not None and int(self.count) < 0:
            raise ValueError("count must not be negative")

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> FaultRule:
        """A rule from its JSON form; ValueError naming the problem."""
        if not isinstance(raw, dict) or not isinstance(raw.get("route"), str):
            raise ValueError("each fault rule needs a 'route' regex string")
        known = {"route", "latency_ms", "status", "retry_after", "count", "rate", "drop_connection", "message"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {', '.join(sorted(unknown))}")
        return cls(**raw)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return data


class FaultPlan:
    """The active rules, shared by the middleware and the control routes; thread-safe."""

    def __init__(self, rules: list[FaultRule | dict[str, Any]] | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.rules: list[FaultRule] = []
        self.injected = 0
        self.set(rules or [])

    def set(self, rules: list[FaultRule | dict[str, Any]]) -> None:
        """Replace the plan (validates every rule first)."""
        parsed = [r if isinstance(r, FaultRule) else FaultRule.parse(r) for r in rules]
        with self._lock:
            self.rules = parsed

    def clear(self) -> None:
        """Remove every rule."""
        self.set([])

    def snapshot(self) -> dict[str, Any]:
        """The rules (with how often each fired) and the injected total."""
        with self._lock:
            return {"rules": [r.to_json() for r in self.rules], "injected": self.injected}

    def select(self, method: str, path: str) -> tuple[float, FaultRule | None]:
        """Latency (seconds) to add and the rule whose error applies, for one request."""
        target = f"{method} {path}"
        latency = 0.0
        failing: FaultRule | None = None
        with self._lock:
            for rule in self.rules:
                if not rule._pattern.search(target):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.rate is not None and self._random.random() >= rule.rate:
                    continue
                if failing is not None and (rule.status or rule.drop_connection):
                    continue
                rule.fired += 1
                latency += rule.latency_ms / 1000
                if rule.status or rule.drop_connection:
                    failing = rule
                    self.injected += 1
        return latency, failing


class FaultMiddleware:
    """ASGI middleware applying a `FaultPlan` to every Hub request."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        latency, rule = self.plan.select(scope["method"], scope["path"])
        if latency:
            await asyncio.sleep(latency)
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.drop_connection:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
            raise DroppedConnection(scope["path"])
        status = int(rule.status or 500)
        message = rule.message or f"sandbox fault injected ({status})"
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-error-message", message.encode()),
        ]
        if status in (429, 503):
            headers.append((b"retry-after", str(rule.retry_after if rule.retry_after is not None else 1).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

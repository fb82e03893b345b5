"""Usage and feedback records for the LLM service, as structured `logging` records.

Every request produces one `usage` record on the `infra.usage` logger; `record_feedback` adds a
`feedback` record against a request id. Records carry routing facts (tier, provider, model,
latency, tokens, fallback and why) and never prompt or completion text unless a `UsageLogger` is
built with `include_text=True`. Text that does reach a record (feedback comments, opted-in prompts,
error notes) is passed through `redact`, which masks registered secret values and common token
shapes. `configure_usage_log(path)` attaches a ready JSON-lines file handler.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

USAGE_LOGGER = "infra.usage"
EVENT_ATTR = "usage_event"
MAX_TEXT = 2000
SECRET_ENV_VARS = ("OPENAI_API_KEY", "SPACE_API_KEY", "HF_TOKEN", "SPACE_HF_TOKEN", "HUGGINGFACE_API_KEY",
                   "VITE_HUGGINGFACE_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_TOKEN_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{16})"
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever `redact` runs (services register their keys on creation)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Mask registered secrets, secrets from well-known env vars, and token-shaped strings."""
    with _secrets_lock:
        known = set(_secrets)
    known.update(v for name in SECRET_ENV_VARS if len(v := os.environ.get(name, "")) >= 4)
    for value in sorted(known, key=len, reverse=True):
        text = text.replace(value, "[REDACTED]")
    return _TOKEN_SHAPES.sub("[REDACTED]", text)


@dataclass(frozen=True)
class UsageRecord:
    """One request's routing and cost facts; `prompt`/`response` stay None unless text logging is on."""

    request_id: str
    tier: str | None
    provider: str
    model: str | None
    latency_ms: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    fallback: bool = False
    fallback_reason: str | None = None
    route_reason: str | None = None
    flag_version: int | None = None
    stream: bool = False
    ok: bool = True
    error: str | None = None
    prompt: str | None = None
    response: str | None = None


class UsageLogger:
    """Emits usage and feedback records; text fields are dropped unless `include_text` is set."""

    def __init__(self, logger: logging.Logger | None = None, *, include_text: bool = False) -> None:
        self.logger = logger or logging.getLogger(USAGE_LOGGER)
        self.include_text = include_text

    def log_usage(self, record: UsageRecord) -> None:
        """Log one request; prompt/response text only with `include_text`, always redacted."""
        fields = asdict(record)
        fields["latency_ms"] = round(record.latency_ms, 2)
        for name in ("prompt", "response"):
            value = fields.pop(name)
            if self.include_text and value is not None:
                fields[name] = redact(value)[:MAX_TEXT]
        if fields["error"] is not None:
            fields["error"] = redact(fields["error"])[:200]
        self._emit("usage", fields, logging.INFO if record.ok else logging.WARNING)

    def record_feedback(self, request_id: str, rating: int | float | str, comment: str | None = None) -> None:
        """Log feedback against a request id. The comment is deliberate feedback, kept but redacted."""
        if not request_id:
            raise ValueError("request_id is required to attach feedback to a request")
        if isinstance(rating, bool) or not isinstance(rating, int | float | str):
            raise ValueError("rating must be a number or a short label such as 'up' or 'down'")
        if isinstance(rating, float) and not math.isfinite(rating):
            raise ValueError("rating must be a finite number")
        if isinstance(rating, str) and not 0 < len(rating) <= 32:
            raise ValueError("a rating label must be 1-32 characters")
        fields: dict[str, Any] = {"request_id": request_id, "rating": rating}
        if comment is not None:
            fields["comment"] = redact(comment)[:MAX_TEXT]
        self._emit("feedback", fields, logging.INFO)

    def _emit(self, event: str, fields: dict[str, Any], level: int) -> None:
        summary = " ".join(f"{k}={v}" for k, v in fields.items() if k not in {"prompt", "response", "comment"})
        self.logger.log(level, "%s %s", event, summary, extra={EVENT_ATTR: {"event": event, **fields}})


_default = UsageLogger()


def record_feedback(request_id: str, rating: int | float | str, comment: str | None = None) -> None:
    """Log feedback for a request id on the `infra.usage` logger."""
    _default.record_feedback(request_id, rating, comment)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, and the structured fields if present."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
        }
        event = getattr(record, EVENT_ATTR, None)
        if isinstance(event, dict):
            payload.update(event)
        else:
            payload["message"] = redact(record.getMessage())
        return json.dumps(payload, default=str)


def json_lines_handler(path: str | os.PathLike[str], level: int = logging.INFO) -> logging.FileHandler:
    """A file handler writing JSON lines (parent directories created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(JsonLinesFormatter())
    return handler


def configure_usage_log(path: str | os.PathLike[str], level: int = logging.INFO) -> logging.FileHandler:
    """Attach a JSON-lines handler for `infra.usage` records to `path`; returns it for removal."""
    handler = json_lines_handler(path, level)
    logger = logging.getLogger(USAGE_LOGGER)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler

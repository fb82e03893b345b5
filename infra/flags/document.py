"""The flag document: which provider serves the application's LLM traffic, per tier.

It is the single switch every rollback flips, so it is validated on every read and every write: a
hand-edited or truncated document fails loudly, naming the field and what would be valid, instead
of silently routing traffic somewhere unexpected.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.errors import UserError

SCHEMA_VERSION = 1
PROVIDERS = ("openai", "huggingface")
DEFAULT_TIERS = ("base", "company", "abstraction")
_TIER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

Provider = Literal["openai", "huggingface"]

# What a user should write instead, by field, for the error messages.
_VALID_HINTS = {
    "schema_version": f"valid: {SCHEMA_VERSION}",
    "provider": "valid: " + " or ".join(PROVIDERS),
    "tiers": "valid: a mapping of tier name to true/false, e.g. {\"base\": true}",
    "percentages": "valid: a mapping of tier name to an integer 0-100",
    "version": "valid: an integer >= 0",
    "updated_at": "valid: an ISO-8601 timestamp",
    "updated_by": "valid: a non-empty string",
    "reason": "valid: a non-empty string",
}


class FlagDocumentError(UserError):
    """A flag document that does not validate; the message lists each field and what is valid."""


class FlagDocument(BaseModel):
    """One version of the flags. Immutable: a change is a new document with `version + 1`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    provider: Provider
    tiers: dict[str, bool]
    percentages: dict[str, int] = Field(default_factory=dict)
    version: int = Field(ge=0)
    updated_at: datetime
    updated_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("tiers", "percentages")
    @classmethod
    def _tier_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _TIER_NAME.match(name):
                raise ValueError(f"tier name {name!r} is not valid (lowercase letters, digits, - or _)")
        return value

    @field_validator("percentages")
    @classmethod
    def _percent_range(cls, value: dict[str, int]) -> dict[str, int]:
        for name, percent in value.items():
            if not 0 <= percent <= 100:
                raise ValueError(f"percentage for {name!r} is {percent}; valid: 0-100")
        return value

    @field_validator("updated_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _consistent(self) -> FlagDocument:
        if not self.tiers:
            raise ValueError("tiers must name at least one tier")
        unknown = sorted(set(self.percentages) - set(self.tiers))
        if unknown:
            raise ValueError(f"percentages name tiers not in tiers: {', '.join(unknown)}")
        return self

    def to_json(self) -> str:
        """Serialise compactly (SSM standard parameters hold 4 KB)."""
        return self.model_dump_json()

    def summary(self) -> str:
        """One line for humans: provider, switches, percentages, version."""
        parts = []
        for tier, on in self.tiers.items():
            text = f"{tier}={'on' if on else 'off'}"
            if tier in self.percentages:
                text += f"@{self.percentages[tier]}%"
            parts.append(text)
        return f"v{self.version} provider={self.provider} " + " ".join(parts)


def parse_document(text: str | bytes, *, source: str) -> FlagDocument:
    """Parse and validate stored text; `source` names where it came from in the error."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise FlagDocumentError(f"flag document from {source} is not valid JSON: {error}") from None
    return validate_document(raw, source=source)


def validate_document(raw: Any, *, source: str) -> FlagDocument:
    """Validate a decoded document, turning pydantic's errors into field-by-field messages."""
    if not isinstance(raw, dict):
        raise FlagDocumentError(
            f"flag document from {source} must be a JSON object, got {type(raw).__name__}"
        )
    try:
        return FlagDocument.model_validate(raw)
    except ValidationError as error:
        raise FlagDocumentError(format_validation_error(error, source=source)) from None


def format_validation_error(error: ValidationError, *, source: str) -> str:
    """Render each problem as `field: message (valid: ...)`; never echoes whole input values."""
    lines = [f"flag document from {source} is invalid:"]
    for item in error.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in item["loc"]) or "(document)"
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        hint = _VALID_HINTS.get(str(item["loc"][0])) if item["loc"] else None
        if item["type"] == "extra_forbidden":
            hint = "valid fields: " + ", ".join(FlagDocument.model_fields)
        lines.append(f"  - {loc}: {message}" + (f" ({hint})" if hint and hint not in message else ""))
    return "\n".join(lines)


def now_utc() -> datetime:
    """Timestamps are always timezone-aware UTC so history sorts and compares cleanly."""
    return datetime.now(UTC)


# --- routing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where one request goes, and why (the reason lands in the usage log)."""

    provider: Provider
    reason: str


def bucket(tier: str, request_id: str) -> int:
    """A stable 0-99 bucket per (tier, request id): the same request always routes the same way."""
    digest = hashlib.sha256(f"{tier}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def decide_route(document: FlagDocument | None, tier: str, request_id: str) -> Route:
    """Apply the flag to one request. No document (never read) means OpenAI: fail safe."""
    if document is None:
        return Route("openai", "no-flag")
    if document.provider == "openai":
        return Route("openai", "provider-openai")
    if not document.tiers.get(tier, False):
        return Route("openai", "tier-off")
    percent = document.percentages.get(tier, 100)
    if bucket(tier, request_id) >= percent:
        return Route("openai", f"percentage-{percent}")
    return Route("huggingface", "flag")

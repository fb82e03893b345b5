"""The application-facing LLM interface: messages in, text and usage out, plus a streaming variant.

The company's application codes against `GeneralLLMService` only, so OpenAI, one Space, or the
flag-driven tiered router are interchangeable behind it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

Message = Mapping[str, str]


@dataclass(frozen=True)
class Usage:
    """Token counts as the serving endpoint reported them (None when it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        """Sum of both counts, when both are known."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """A completed chat request and how it was served."""

    text: str
    model: str | None
    usage: Usage
    provider: str  # "openai" or "huggingface"
    tier: str | None = None
    request_id: str | None = None
    latency_ms: float = 0.0
    fallback: bool = False
    fallback_reason: str | None = None
    finish_reason: str | None = None

    def with_(self, **changes: Any) -> ChatResult:
        """A copy with fields changed (results are immutable)."""
        return replace(self, **changes)


class LLMServiceError(Exception):
    """A provider call failed. The message never includes provider error text, which can echo keys."""

    def __init__(self, provider: str, kind: str, *, status_code: int | None = None, tier: str | None = None):
        self.provider, self.kind, self.status_code, self.tier = provider, kind, status_code, tier
        where = f"{provider} ({tier})" if tier else provider
        status = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{where} request failed: {kind}{status}")

    @property
    def is_hard(self) -> bool:
        """Timeouts and refused connections: each costs a full timeout, so the breaker opens at once."""
        return self.kind in {"timeout", "connection"}


class ChatStream:
    """Iterate for text deltas; once exhausted, `result` holds the full `ChatResult`."""

    def __init__(self, chunks: Generator[str, None, ChatResult]) -> None:
        self._chunks = chunks
        self._started = False
        self.result: ChatResult | None = None

    def __iter__(self) -> Iterator[str]:
        if self._started:  # one pass only: a second loop must not reset `result`
            return
        self._started = True
        self.result = yield from self._chunks

    def collect(self) -> ChatResult:
        """Consume the stream and return its result (convenience for callers that do not stream)."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def close(self) -> None:
        """Stop early; the underlying HTTP response is closed."""
        self._chunks.close()


@runtime_checkable
class GeneralLLMService(Protocol):
    """Chat completions, one-shot or streamed. `tier` and `request_id` are routing hints."""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tier: str | None = None,
        request_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        """Answer `messages` in one response."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tier: str | None = None,
        request_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatStream:
        """Answer `messages` as a stream of text deltas."""
        ...

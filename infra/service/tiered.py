"""`TieredLLMService`: route each request by the flag to OpenAI or its tier's Space, and fall back.

Per request: pick the tier (named by the caller, else the classifier), read the flag through the
cached reader (never blocks on the store after the first read; OpenAI if never read), apply the
routing rule (provider, tier switch, percentage by request id), and call the Space behind its
circuit breaker. A Space error, timeout or open circuit sends the request to OpenAI instead, and
the usage record says so and why. Streams fall back only before the first chunk: after text has
reached the caller, restarting elsewhere would duplicate it, so the error is raised.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

from infra.flags.document import FlagDocument, Route, decide_route
from infra.flags.reader import CachedFlagReader
from infra.service.breaker import CircuitBreaker
from infra.service.classifier import TierClassifier
from infra.service.protocol import ChatResult, ChatStream, GeneralLLMService, LLMServiceError, Message
from infra.usage_log import UsageLogger, UsageRecord

FlagSource = CachedFlagReader | Callable[[], FlagDocument | None]


def _prompt_text(messages: Sequence[Message]) -> str:
    return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in messages)


class TieredLLMService:
    """A `GeneralLLMService` that obeys the provider flag, with fallback and per-tier breakers."""

    def __init__(
        self,
        *,
        openai: GeneralLLMService,
        spaces: Mapping[str, GeneralLLMService],
        flags: FlagSource,
        classifier: TierClassifier | None = None,
        default_tier: str = "base",
        breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
        usage: UsageLogger | None = None,
    ) -> None:
        self.openai = openai
        self.spaces = dict(spaces)
        self._read_flags = flags.get if isinstance(flags, CachedFlagReader) else flags
        self.classifier = classifier
        self.default_tier = default_tier
        self.breakers = {tier: breaker_factory() for tier in self.spaces}
        self.usage = usage or UsageLogger()

    # -- routing ----------------------------------------------------------------------------------

    def choose_tier(self, messages: Sequence[Message], tier: str | None) -> str:
        """The caller's tier if given (must be known), else the classifier's, else the default."""
        if tier is not None:
            if tier not in self.spaces:
                raise ValueError(f"unknown tier {tier!r}; valid: {', '.join(self.spaces)}")
            return tier
        if self.classifier is not None:
            chosen = self.classifier(messages)
            if chosen in self.spaces:
                return chosen
        return self.default_tier

    def _flags(self) -> FlagDocument | None:
        try:
            return self._read_flags()
        except Exception:  # a broken reader must never break requests: treat as never read (OpenAI)
            return None

    def _prepare(self, messages: Sequence[Message], tier: str | None, request_id: str | None,
                 max_tokens: int | None, temperature: float | None) -> tuple:
        """What both `complete` and `stream` start from: tier, request id, the flag's route, call options."""
        request_id = request_id or uuid.uuid4().hex
        tier = self.choose_tier(messages, tier)
        route, document = self.route(tier, request_id)
        options: dict[str, Any] = {"tier": tier, "request_id": request_id, "max_tokens": max_tokens,
                                   "temperature": temperature}
        return tier, request_id, route, document, options

    def route(self, tier: str, request_id: str) -> tuple[Route, FlagDocument | None]:
        """The flag's decision for this request (exposed for the admin page and the benchmark)."""
        document = self._flags()
        return decide_route(document, tier, request_id), document

    def _space_allowed(self, tier: str) -> tuple[GeneralLLMService | None, str | None]:
        space = self.spaces.get(tier)
        if space is None:
            return None, "no-space-configured"
        if not self.breakers[tier].allow():
            return None, "circuit-open"
        return space, None

    def _space_failed(self, tier: str, error: LLMServiceError) -> str:
        self.breakers[tier].record_failure(hard=error.is_hard)
        return f"space-{error.kind}" + (f"-{error.status_code}" if error.status_code else "")

    # -- one-shot ---------------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tier: str | None = None,
        request_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        """Serve one request from its tier's Space or OpenAI, falling back to OpenAI on failure."""
        started = time.perf_counter()
        tier, request_id, route, document, options = self._prepare(messages, tier, request_id, max_tokens,
                                                                    temperature)
        fallback_reason: str | None = None
        if route.provider == "huggingface":
            space, fallback_reason = self._space_allowed(tier)
            if space is not None:
                breaker = self.breakers[tier]
                settled = False  # has the breaker been told how this request went?
                try:
                    result = space.complete(messages, **options)
                except LLMServiceError as error:
                    fallback_reason, settled = self._space_failed(tier, error), True
                except Exception:  # not a typed service error (a bug, an unwrapped error): still a failure
                    breaker.record_failure()
                    settled = True
                    raise
                else:
                    breaker.record_success()
                    settled = True
                    return self._finish(result, messages, route, document, started, None)
                finally:
                    if not settled:  # e.g. KeyboardInterrupt: no verdict, but never keep a trial slot
                        breaker.release()
        try:
            result = self.openai.complete(messages, **options)
        except LLMServiceError as error:
            self._log_failure(request_id, tier, route, document, started, fallback_reason, error, False)
            raise
        return self._finish(result, messages, route, document, started, fallback_reason)

    # -- streaming --------------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tier: str | None = None,
        request_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatStream:
        """Like `complete`, streamed; falls back to OpenAI only before the first chunk."""
        return ChatStream(self._stream(messages, tier, request_id, max_tokens, temperature))

    def _stream(
        self, messages: Sequence[Message], tier: str | None, request_id: str | None,
        max_tokens: int | None, temperature: float | None,
    ) -> Generator[str, None, ChatResult]:
        started = time.perf_counter()
        tier, request_id, route, document, options = self._prepare(messages, tier, request_id, max_tokens,
                                                                    temperature)
        fallback_reason: str | None = None
        if route.provider == "huggingface":
            space, fallback_reason = self._space_allowed(tier)
            if space is not None:
                # Every way out of this block must settle the breaker, or a half-open trial would stay in
                # flight forever: a verdict when the Space answered or failed, `release()` when the caller
                # abandoned the stream (GeneratorExit from close() or garbage collection: the Space had
                # already sent a chunk, so that is no evidence against it).
                breaker = self.breakers[tier]
                settled = False
                space_stream: ChatStream | None = None
                try:
                    space_stream = space.stream(messages, **options)
                    chunks = iter(space_stream)
                    first: str | None = None
                    try:
                        first = next(chunks)
                    except StopIteration:
                        pass  # an empty answer is still a success
                    except LLMServiceError as error:
                        fallback_reason, settled = self._space_failed(tier, error), True
                    if fallback_reason is None:
                        try:
                            if first is not None:
                                yield first
                                yield from chunks
                        except LLMServiceError as error:
                            self._space_failed(tier, error)
                            settled = True
                            self._log_failure(request_id, tier, route, document, started, None, error, True)
                            raise
                        breaker.record_success()
                        settled = True
                        assert space_stream.result is not None
                        return self._finish(space_stream.result, messages, route, document, started, None,
                                            stream=True)
                except Exception:  # not a typed service error (a bug, an unwrapped error): still a failure
                    if not settled:
                        breaker.record_failure()
                        settled = True
                    raise
                finally:
                    if not settled:  # abandoned by the caller (GeneratorExit) or interrupted: no verdict
                        breaker.release()
                    if space_stream is not None:
                        space_stream.close()  # idempotent; frees the HTTP response on early exit
        upstream = self.openai.stream(messages, **options)
        try:
            yield from upstream
        except LLMServiceError as error:
            self._log_failure(request_id, tier, route, document, started, fallback_reason, error, True)
            raise
        assert upstream.result is not None
        return self._finish(upstream.result, messages, route, document, started, fallback_reason, stream=True)

    # -- logging ----------------------------------------------------------------------------------

    def _finish(
        self, result: ChatResult, messages: Sequence[Message], route: Route, document: FlagDocument | None,
        started: float, fallback_reason: str | None, *, stream: bool = False,
    ) -> ChatResult:
        result = result.with_(latency_ms=(time.perf_counter() - started) * 1000,
                              fallback=fallback_reason is not None, fallback_reason=fallback_reason)
        self.usage.log_usage(UsageRecord(
            request_id=result.request_id or "", tier=result.tier, provider=result.provider, model=result.model,
            latency_ms=result.latency_ms, prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens, fallback=result.fallback,
            fallback_reason=fallback_reason, route_reason=route.reason,
            flag_version=document.version if document else None, stream=stream,
            prompt=_prompt_text(messages), response=result.text,
        ))
        return result

    def _log_failure(
        self, request_id: str, tier: str, route: Route, document: FlagDocument | None, started: float,
        fallback_reason: str | None, error: LLMServiceError, stream: bool,
    ) -> None:
        self.usage.log_usage(UsageRecord(
            request_id=request_id, tier=tier, provider=error.provider, model=None,
            latency_ms=(time.perf_counter() - started) * 1000, fallback=fallback_reason is not None,
            fallback_reason=fallback_reason, route_reason=route.reason,
            flag_version=document.version if document else None, stream=stream, ok=False, error=str(error),
        ))

    def record_feedback(self, request_id: str, rating: int | float | str, comment: str | None = None) -> None:
        """Attach feedback to a request this service served (same logger as its usage records)."""
        self.usage.record_feedback(request_id, rating, comment)

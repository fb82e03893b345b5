"""`OpenAIService` and `SpaceService`: the real `openai` client against OpenAI or a Space's `/v1`.

Both speak the same OpenAI chat API (the Space app is OpenAI-compatible), so one implementation
serves both; they differ in defaults. A Space gets no client-side retries and a short timeout:
the tiered router's fallback to OpenAI *is* the retry, and a slow Space must not hold a request.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Generator, Sequence
from typing import Any

import openai

from infra.errors import UserError
from infra.service.protocol import ChatResult, ChatStream, LLMServiceError, Message, Usage
from infra.space_auth import openai_auth
from infra.usage_log import register_secret


def _error_kind(error: BaseException) -> tuple[str, int | None]:
    if isinstance(error, openai.APITimeoutError):
        return "timeout", None
    if isinstance(error, openai.APIConnectionError):
        return "connection", None
    if isinstance(error, openai.APIStatusError):
        return "status", error.status_code
    return type(error).__name__, None


class _OpenAICompatible:
    provider = "openai"

    def __init__(self, *, client: openai.OpenAI, model: str, tier: str | None) -> None:
        self.client, self.model, self.tier = client, model, tier

    def _fail(self, error: BaseException) -> LLMServiceError:
        kind, status = _error_kind(error)
        return LLMServiceError(self.provider, kind, status_code=status, tier=self.tier)

    def _params(self, messages: Sequence[Message], max_tokens: int | None, temperature: float | None) -> dict:
        params: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if temperature is not None:
            params["temperature"] = temperature
        return params

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tier: str | None = None,
        request_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        """One chat completion; provider failures become `LLMServiceError`."""
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**self._params(messages, max_tokens, temperature))
        except openai.OpenAIError as error:
            raise self._fail(error) from None
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return ChatResult(
            text=(choice.message.content or "") if choice else "",
            model=response.model,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            provider=self.provider,
            tier=tier or self.tier,
            request_id=request_id,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=choice.finish_reason if choice else None,
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tier: str | None = None,
        request_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatStream:
        """Streamed chat completion; the request is sent when iteration starts."""
        return ChatStream(self._stream(messages, tier, request_id, max_tokens, temperature))

    def _stream(
        self, messages: Sequence[Message], tier: str | None, request_id: str | None,
        max_tokens: int | None, temperature: float | None,
    ) -> Generator[str, None, ChatResult]:
        started = time.perf_counter()
        params = self._params(messages, max_tokens, temperature)
        parts: list[str] = []
        model: str | None = None
        usage = Usage()
        finish: str | None = None
        try:
            response = self.client.chat.completions.create(
                **params, stream=True, stream_options={"include_usage": True}
            )
            with response:
                for chunk in response:
                    model = chunk.model or model
                    if chunk.usage:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        if choice.delta and choice.delta.content:
                            parts.append(choice.delta.content)
                            yield choice.delta.content
        except openai.OpenAIError as error:
            raise self._fail(error) from None
        return ChatResult(text="".join(parts), model=model, usage=usage, provider=self.provider,
                          tier=tier or self.tier, request_id=request_id,
                          latency_ms=(time.perf_counter() - started) * 1000, finish_reason=finish)


class OpenAIService(_OpenAICompatible):
    """OpenAI's API (or any OpenAI-compatible base URL) through the official client."""

    provider = "openai"

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        client: openai.OpenAI | None = None,
    ) -> None:
        if client is None:
            api_key = api_key or os.environ.get("OPENAI_API_KEY")
            if not api_key:
                raise UserError("OPENAI_API_KEY is not set; OpenAIService needs it (or pass api_key=)")
            register_secret(api_key)
            client = openai.OpenAI(api_key=api_key, base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                                   timeout=timeout, max_retries=max_retries)
        super().__init__(client=client, model=model, tier=None)


def space_url(space_id: str) -> str:
    """The public URL of a Space: `owner/name` -> https://owner-name.hf.space (Hub's subdomain rule)."""
    owner, _, name = space_id.partition("/")
    if not owner or not name:
        raise UserError(f"Space id {space_id!r} must look like owner/name")
    subdomain = re.sub(r"[^a-z0-9-]", "-", f"{owner}-{name}".lower())
    return f"https://{subdomain}.hf.space"


class SpaceService(_OpenAICompatible):
    """One tier's Space through the `openai` client: `<base_url>/v1` with the Space's key.

    `hub_token` (a Hugging Face read token) is needed for a private Space, whose proxy wants it as
    the bearer token; the key then goes in `X-Space-Api-Key` (see `infra.space_auth`)."""

    provider = "huggingface"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tier: str | None = None,
        model: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 0,
        client: openai.OpenAI | None = None,
        hub_token: str | None = None,
    ) -> None:
        if not token:
            raise UserError(f"no API token for the {tier or 'Space'} Space; set SPACE_API_KEY")
        register_secret(token)
        register_secret(hub_token)
        base = base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self.base_url = base
        if client is None:
            client = openai.OpenAI(base_url=base, timeout=timeout, max_retries=max_retries,
                                   **openai_auth(token, hub_token))
        # The Space app accepts its tier name as the model id, which saves a /v1/models round trip.
        resolved = model or tier
        if not resolved:
            raise UserError("SpaceService needs a tier or a model name")
        super().__init__(client=client, model=resolved, tier=tier)

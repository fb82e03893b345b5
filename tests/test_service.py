"""The tiered LLM service against real local servers: rendered Space apps (echo engine) as the three
Spaces and, with its `space.json` relabelled, as the "OpenAI" endpoint; a small HTTP front that can
make a Space go down or hang; and moto's server holding the flag."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from infra.flags import CachedFlagReader, FlagChange, FlagDocument, SSMFlagStore, apply_change, make_ssm_client
from infra.local_space import serve_space_locally
from infra.render import render_space
from infra.service import (
    ChatStream,
    CircuitBreaker,
    KeywordClassifier,
    LLMServiceError,
    OpenAIService,
    SpaceService,
    TieredLLMService,
    space_url,
)
from infra.spec import load_declaration
from infra.usage_log import USAGE_LOGGER, UsageLogger, configure_usage_log, record_feedback, redact

REPO = Path(__file__).resolve().parents[1]
OPENAI_KEY = "sk-canary-openai-5f1e2d3c4b5a69788796"
SPACE_KEY = "canary-space-key-0a1b2c3d4e5f6a7b8c9d"
TIERS = ("base", "company", "abstraction")
USER = [{"role": "user", "content": "hello there"}]


# --- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decl():
    return load_declaration(REPO / "config" / "spaces.yaml")


@pytest.fixture(scope="module")
def servers(decl) -> Iterator[dict[str, str]]:
    """Rendered Space apps: one per tier, plus one relabelled as the OpenAI stand-in."""
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for tier in TIERS:
            files = render_space(decl, "staging", tier)
            urls[tier] = stack.enter_context(serve_space_locally(files, {"SPACE_API_KEY": SPACE_KEY,
                                                                         "LLM_ENGINE": "echo"}))
        files = dict(render_space(decl, "staging", "base"))
        config = json.loads(files["space.json"])
        config.update(tier="openai", model="gpt-4o-mini", repo_id="openai/gpt-4o-mini")
        files["space.json"] = json.dumps(config).encode()
        urls["openai"] = stack.enter_context(serve_space_locally(files, {"SPACE_API_KEY": OPENAI_KEY,
                                                                         "LLM_ENGINE": "echo"}))
        yield urls


class Front:
    """An HTTP front for a Space: `up` forwards, `down` answers 503 (a sleeping Space), `hang` stalls."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.mode, self.hits = upstream, "up", 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                front.hits += 1
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if front.mode == "hang":
                    time.sleep(3)
                    self.close_connection = True
                    return
                if front.mode == "down":
                    status, content, ctype = 503, b'{"error": {"message": "Space is sleeping"}}', "application/json"
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() in {"authorization", "content-type"}}
                    response = httpx.request(self.command, front.upstream + self.path, headers=headers,
                                             content=body, timeout=10)
                    status, content = response.status_code, response.content
                    ctype = response.headers.get("content-type", "application/json")
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front(servers) -> Iterator[Front]:
    proxy = Front(servers["base"])
    yield proxy
    proxy.close()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def flag(provider: str = "huggingface", version: int = 1, **kwargs) -> FlagDocument:
    return FlagDocument(provider=provider, tiers=kwargs.pop("tiers", dict.fromkeys(TIERS, True)),
                        version=version, updated_at=datetime.now(UTC), updated_by="t", reason="t", **kwargs)


class Holder:
    """A flag source tests can change between requests."""

    def __init__(self, document: FlagDocument | None) -> None:
        self.document = document

    def __call__(self) -> FlagDocument | None:
        return self.document


def make_service(servers, flags, *, spaces=None, breaker=None, usage=None, classifier=None, timeout=5.0):
    openai = OpenAIService(api_key=OPENAI_KEY, base_url=servers["openai"] + "/v1", model="gpt-4o-mini",
                           max_retries=0, timeout=5)
    built = {tier: SpaceService(servers[tier], SPACE_KEY, tier=tier, timeout=timeout) for tier in TIERS}
    built.update(spaces or {})
    return TieredLLMService(openai=openai, spaces=built, flags=flags, classifier=classifier,
                            breaker_factory=breaker or CircuitBreaker, usage=usage)


# --- the plain services ------------------------------------------------------------------------


def test_openai_and_space_services_speak_the_openai_api(servers) -> None:
    openai = OpenAIService(api_key=OPENAI_KEY, base_url=servers["openai"] + "/v1", max_retries=0)
    result = openai.complete(USER, request_id="r1", max_tokens=50)
    assert result.text == "[openai] hello there" and result.model == "gpt-4o-mini"
    assert result.provider == "openai" and result.usage.completion_tokens == 3
    assert result.usage.total_tokens == result.usage.prompt_tokens + 3
    space = SpaceService(servers["company"], SPACE_KEY, tier="company")
    assert space.base_url.endswith("/v1")
    answer = space.complete(USER)
    assert (answer.text, answer.model, answer.provider, answer.tier) == (
        "[company] hello there", "acme-ai/acme-llm", "huggingface", "company")
    stream = space.stream(USER)
    chunks = list(stream)
    assert len(chunks) > 1 and "".join(chunks) == stream.result.text == "[company] hello there"
    assert stream.result.usage.completion_tokens == 3
    assert list(stream) == [] and stream.result.text  # one pass; the result stays


def test_errors_are_typed_and_secret_free(servers) -> None:
    with pytest.raises(LLMServiceError) as info:
        SpaceService(servers["base"], "wrong-" + SPACE_KEY, tier="base").complete(USER)
    assert (info.value.kind, info.value.status_code) == ("status", 401)
    assert SPACE_KEY not in str(info.value) and "wrong-" not in str(info.value)
    with pytest.raises(LLMServiceError) as info:
        SpaceService(closed_port_url(), SPACE_KEY, tier="base").complete(USER)
    assert info.value.kind == "connection" and info.value.is_hard


def test_space_url_follows_the_hub_rule(decl) -> None:
    assert space_url(decl.space_id("staging", "company")) == "https://acme-ai-company-specific-llm-staging.hf.space"
    assert space_url("Org_X/My.Space") == "https://org-x-my-space.hf.space"


# --- routing -----------------------------------------------------------------------------------


def test_routing_by_flag_and_tier(servers) -> None:
    holder = Holder(flag())
    service = make_service(servers, holder)
    for tier in TIERS:
        result = service.complete(USER, tier=tier)
        assert (result.provider, result.text, result.fallback) == ("huggingface", f"[{tier}] hello there", False)
    holder.document = flag(tiers={"base": True, "company": False, "abstraction": True}, version=2)
    assert service.complete(USER, tier="company").text == "[openai] hello there"
    assert service.complete(USER, tier="base").text == "[base] hello there"
    holder.document = flag("openai", version=3)
    for tier in TIERS:
        result = service.complete(USER, tier=tier)
        assert (result.provider, result.text, result.fallback) == ("openai", "[openai] hello there", False)
    holder.document = None  # never read: OpenAI
    assert service.complete(USER, tier="base").provider == "openai"
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        service.complete(USER, tier="gold")


def test_percentage_routes_a_stable_share(servers) -> None:
    service = make_service(servers, Holder(flag(percentages={"company": 50})))
    providers = {f"req-{i}": service.complete(USER, tier="company", request_id=f"req-{i}").provider
                 for i in range(30)}
    assert set(providers.values()) == {"openai", "huggingface"}
    for request_id, provider in list(providers.items())[:5]:
        assert service.complete(USER, tier="company", request_id=request_id).provider == provider


def test_classifier_picks_the_tier(servers) -> None:
    service = make_service(servers, Holder(flag()), classifier=KeywordClassifier.for_company(["acme", "widgetpro"]))
    ask = lambda text: service.complete([{"role": "user", "content": text}]).text  # noqa: E731
    assert ask("What is Acme's refund policy?").startswith("[company]")
    assert ask("How do similar businesses price support? industry trends?").startswith("[abstraction]")
    assert ask("Explain recursion").startswith("[base]")


# --- fallback and the breaker ------------------------------------------------------------------


def test_fallback_on_error_timeout_and_dead_space(servers, front) -> None:
    spaces = {
        "base": SpaceService(front.url, SPACE_KEY, tier="base", timeout=0.5),
        "company": SpaceService(servers["company"], "wrong-key", tier="company"),
        "abstraction": SpaceService(closed_port_url(), SPACE_KEY, tier="abstraction"),
    }
    service = make_service(servers, Holder(flag()), spaces=spaces)
    front.mode = "down"
    result = service.complete(USER, tier="base")
    assert (result.provider, result.fallback, result.fallback_reason) == ("openai", True, "space-status-503")
    assert result.text == "[openai] hello there"
    assert service.complete(USER, tier="company").fallback_reason == "space-status-401"
    assert service.complete(USER, tier="abstraction").fallback_reason == "space-connection"
    front.mode = "hang"
    started = time.monotonic()
    assert service.complete(USER, tier="base").fallback_reason == "space-timeout"
    assert time.monotonic() - started >= 0.5


def test_dead_space_costs_one_timeout_then_breaker_recovers(servers, front) -> None:
    service = make_service(servers, Holder(flag()),
                           spaces={"base": SpaceService(front.url, SPACE_KEY, tier="base", timeout=0.4)},
                           breaker=lambda: CircuitBreaker(failure_threshold=3, reset_timeout=0.6))
    front.mode = "hang"
    assert service.complete(USER, tier="base").fallback_reason == "space-timeout"
    hits = front.hits
    started = time.monotonic()
    for _ in range(5):
        result = service.complete(USER, tier="base")
        assert (result.provider, result.fallback_reason) == ("openai", "circuit-open")
    assert time.monotonic() - started < 0.5 and front.hits == hits  # no more timeouts paid
    assert service.breakers["base"].state == "open"
    front.mode = "up"
    time.sleep(0.65)
    assert service.breakers["base"].state == "half-open"
    result = service.complete(USER, tier="base")
    assert (result.provider, result.text, result.fallback) == ("huggingface", "[base] hello there", False)
    assert service.breakers["base"].state == "closed"


def test_soft_errors_open_after_threshold(servers, front) -> None:
    service = make_service(servers, Holder(flag()),
                           spaces={"base": SpaceService(front.url, SPACE_KEY, tier="base")},
                           breaker=lambda: CircuitBreaker(failure_threshold=3, reset_timeout=60))
    front.mode = "down"
    reasons = [service.complete(USER, tier="base").fallback_reason for _ in range(5)]
    assert reasons == ["space-status-503"] * 3 + ["circuit-open"] * 2
    assert front.hits == 3


def test_breaker_half_open_allows_one_trial_and_reopens_on_failure() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10
    assert breaker.allow() and not breaker.allow()  # exactly one trial
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 20
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.times_opened == 2


def test_breaker_half_open_trial_expires_and_can_be_released() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, trial_timeout=5, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 10
    assert breaker.allow() and not breaker.allow()  # the trial is in flight...
    now[0] = 14.9
    assert not breaker.allow()
    now[0] = 15
    assert breaker.allow() and not breaker.allow()  # ...and a silent one expires: the next request is the trial
    breaker.release()  # no verdict: stays half-open, counts nothing, frees the slot
    assert breaker.state == "half-open" and breaker.times_opened == 1
    assert breaker.allow() and not breaker.allow()
    assert CircuitBreaker(reset_timeout=7).trial_timeout == 7  # the default safety net


class Breakable:
    """A Space service that, when `broken`, raises an untyped error: at the call, or after the first chunk."""

    def __init__(self, inner: SpaceService) -> None:
        self.inner, self.broken = inner, False

    def complete(self, messages, **options):
        if self.broken:
            raise RuntimeError("a bug, not an LLMServiceError")
        return self.inner.complete(messages, **options)

    def stream(self, messages, **options) -> ChatStream:
        upstream = self.inner.stream(messages, **options)

        def chunks():
            for chunk in upstream:
                yield chunk
                if self.broken:
                    raise RuntimeError("a bug mid-stream")
            return upstream.result

        return ChatStream(chunks())


def half_open_service(servers, front, space=None):
    """A service whose base breaker has just turned half-open, on a frozen clock: no trial ever expires."""
    now = [0.0]
    service = make_service(servers, Holder(flag()),
                           spaces={"base": space or SpaceService(front.url, SPACE_KEY, tier="base")},
                           breaker=lambda: CircuitBreaker(failure_threshold=1, reset_timeout=60,
                                                          clock=lambda: now[0]))

    def reopen_then_half_open() -> None:
        service.breakers["base"].record_failure()
        assert service.breakers["base"].state == "open"
        assert service.complete(USER, tier="base").fallback_reason == "circuit-open"
        now[0] += 60
        assert service.breakers["base"].state == "half-open"

    reopen_then_half_open()
    return service, reopen_then_half_open


def test_stream_abandoned_during_half_open_trial_does_not_wedge_the_breaker(servers, front) -> None:
    service, reopen_then_half_open = half_open_service(servers, front)
    stream = service.stream(USER, tier="base")
    chunks = iter(stream)
    assert next(chunks) and front.hits == 1  # the trial reached the Space...
    stream.close()  # ...and the caller walked away
    assert service.breakers["base"].state == "half-open"  # no verdict either way
    result = service.complete(USER, tier="base")  # but the next request is the new trial
    assert (result.provider, result.fallback) == ("huggingface", False)
    assert service.breakers["base"].state == "closed"

    reopen_then_half_open()  # the same when the abandoned stream is simply dropped and collected
    stream = service.stream(USER, tier="base")
    assert next(iter(stream))
    del stream
    gc.collect()
    result = service.complete(USER, tier="base")
    assert (result.provider, result.fallback) == ("huggingface", False)


def test_untyped_error_during_half_open_trial_is_a_failure_not_a_wedge(servers, front) -> None:
    space = Breakable(SpaceService(front.url, SPACE_KEY, tier="base"))
    service, reopen_then_half_open = half_open_service(servers, front, space)
    breaker = service.breakers["base"]
    for attempt in ("complete", "stream"):
        space.broken, opened = True, breaker.times_opened
        with pytest.raises(RuntimeError, match="a bug"):  # re-raised, not swallowed
            if attempt == "complete":
                service.complete(USER, tier="base")
            else:
                list(service.stream(USER, tier="base"))
        assert breaker.state == "open" and breaker.times_opened == opened + 1  # recorded as a failed trial
        space.broken = False
        reopen_then_half_open()
        result = service.complete(USER, tier="base")
        assert (result.provider, result.fallback) == ("huggingface", False)
        assert breaker.state == "closed"
        reopen_then_half_open()


def test_streaming_routes_and_falls_back_before_first_chunk(servers, front) -> None:
    service = make_service(servers, Holder(flag()),
                           spaces={"base": SpaceService(front.url, SPACE_KEY, tier="base", timeout=2)})
    stream = service.stream(USER, tier="company")
    assert "".join(stream) == "[company] hello there"
    assert stream.result.provider == "huggingface" and stream.result.usage.completion_tokens == 3
    stream = service.stream(USER, tier="base")
    assert "".join(stream) == "[base] hello there"  # through the front, SSE forwarded
    front.mode = "down"
    stream = service.stream(USER, tier="base")
    assert "".join(stream) == "[openai] hello there"
    assert (stream.result.provider, stream.result.fallback_reason) == ("openai", "space-status-503")


def test_openai_failure_after_fallback_is_raised_and_logged(servers, caplog) -> None:
    dead_openai = OpenAIService(api_key=OPENAI_KEY, base_url=closed_port_url() + "/v1", max_retries=0)
    service = TieredLLMService(openai=dead_openai, flags=Holder(flag()),
                               spaces={"base": SpaceService(closed_port_url(), SPACE_KEY, tier="base")})
    with caplog.at_level(logging.INFO, logger=USAGE_LOGGER), pytest.raises(LLMServiceError, match="openai"):
        service.complete(USER, tier="base", request_id="doomed")
    record = caplog.records[-1].usage_event
    assert (record["request_id"], record["ok"], record["fallback_reason"]) == ("doomed", False, "space-connection")


# --- flags through the store -------------------------------------------------------------------


class Moto:
    """moto's server on 127.0.0.1, started fresh (state reset) and stoppable mid-test."""

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        httpx.post(f"{self.url}/moto-api/reset", timeout=5).raise_for_status()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False


@pytest.fixture
def moto_server(monkeypatch) -> Iterator[Moto]:
    moto = Moto()
    for key, value in {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                       "FLAGS_ACTOR": "test"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FLAG_STORE", raising=False)
    yield moto
    moto.stop()


def ssm_store(moto: Moto, name: str = "/triple-llm/staging/flags") -> SSMFlagStore:
    client = make_ssm_client("eu-west-1", connect_timeout=0.3, read_timeout=0.5, max_attempts=1)
    assert client.meta.endpoint_url == moto.url  # AWS_ENDPOINT_URL works unchanged
    return SSMFlagStore(name, client=client)


def test_flag_store_down_keeps_last_value(servers, moto_server) -> None:
    store = ssm_store(moto_server)
    apply_change(store, FlagChange(provider="huggingface"), reason="rollout")
    reader = CachedFlagReader(store, ttl=0.2)
    service = make_service(servers, reader)
    assert service.complete(USER, tier="base").provider == "huggingface"
    moto_server.stop()  # the store goes away: reads fail, the last value stays in force
    time.sleep(0.25)
    result = service.complete(USER, tier="base")
    assert result.provider == "huggingface"
    assert reader.failure_count >= 1 and "failed" in reader.last_error
    never = CachedFlagReader(store, ttl=0.2)  # a client that never read: OpenAI
    assert make_service(servers, never).complete(USER, tier="base").provider == "openai"


def test_invoke_rollback_is_followed_within_the_ttl(servers, moto_server) -> None:
    store = ssm_store(moto_server)
    apply_change(store, FlagChange(provider="huggingface"), reason="rollout")
    ttl = 1.0
    service = make_service(servers, CachedFlagReader(store, ttl=ttl))
    assert service.complete(USER, tier="company").provider == "huggingface"
    done = subprocess.run([sys.executable, "-m", "invoke", "rollback", "--env", "staging", "--reason", "test"],
                          cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    flipped_at = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert "after:  v2 provider=openai" in done.stdout
    while service.complete(USER, tier="company").provider != "openai":
        assert time.monotonic() - flipped_at < ttl + 0.5, "service did not follow the rollback within its TTL"
        time.sleep(0.05)
    assert time.monotonic() - flipped_at <= ttl + 0.5


# --- logging -----------------------------------------------------------------------------------


def test_usage_and_feedback_logs_carry_no_secrets_or_prompts(servers, front, tmp_path, caplog) -> None:
    log_file = tmp_path / "usage.jsonl"
    handler = configure_usage_log(log_file)
    try:
        spaces = {"base": SpaceService(front.url, SPACE_KEY, tier="base", timeout=1),
                  "company": SpaceService(servers["company"], "bad-" + SPACE_KEY, tier="company")}
        service = make_service(servers, Holder(flag()), spaces=spaces)
        secret_prompt = [{"role": "user", "content": f"PROMPT-CANARY my key is {SPACE_KEY} and {OPENAI_KEY}"}]
        with caplog.at_level(logging.INFO, logger=USAGE_LOGGER):
            ok = service.complete(secret_prompt, tier="base", request_id="req-ok")
            front.mode = "down"
            service.complete(secret_prompt, tier="base", request_id="req-fallback")
            service.complete(secret_prompt, tier="company", request_id="req-401")
            list(service.stream(secret_prompt, tier="abstraction", request_id="req-stream"))
            service.record_feedback("req-ok", 5, f"great, though I pasted {OPENAI_KEY}")
            record_feedback("req-401", "down")
    finally:
        logging.getLogger(USAGE_LOGGER).removeHandler(handler)
        handler.close()
    assert SPACE_KEY in ok.text  # the echo engine did see the prompt: the canary was really sent
    text = log_file.read_text()
    for leaked in (SPACE_KEY, OPENAI_KEY, "PROMPT-CANARY", "hello"):
        assert leaked not in text and leaked not in caplog.text
    records = [json.loads(line) for line in text.splitlines()]
    usage = {r["request_id"]: r for r in records if r["event"] == "usage"}
    assert set(usage) == {"req-ok", "req-fallback", "req-401", "req-stream"}
    assert usage["req-ok"].items() >= {
        "tier": "base", "provider": "huggingface", "model": "Qwen/Qwen2.5-0.5B-Instruct", "fallback": False,
        "route_reason": "flag", "flag_version": 1, "ok": True}.items()
    assert usage["req-ok"]["latency_ms"] > 0
    assert usage["req-ok"]["prompt_tokens"] > 0 and usage["req-ok"]["completion_tokens"] > 0
    assert (usage["req-fallback"]["provider"], usage["req-fallback"]["fallback_reason"]) == (
        "openai", "space-status-503")
    assert usage["req-401"]["fallback_reason"] == "space-status-401"
    assert usage["req-stream"]["stream"] is True and "prompt" not in usage["req-ok"]
    feedback = [r for r in records if r["event"] == "feedback"]
    assert feedback[0]["request_id"] == "req-ok" and feedback[0]["rating"] == 5
    assert feedback[0]["comment"] == "great, though I pasted [REDACTED]"
    assert feedback[1].items() >= {"request_id": "req-401", "rating": "down", "logger": USAGE_LOGGER}.items()


def test_prompt_text_only_when_enabled_and_still_redacted(servers, caplog) -> None:
    service = make_service(servers, Holder(flag()), usage=UsageLogger(include_text=True))
    with caplog.at_level(logging.INFO, logger=USAGE_LOGGER):
        service.complete([{"role": "user", "content": f"PROMPT-CANARY {SPACE_KEY}"}], tier="base")
    event = caplog.records[-1].usage_event
    assert "PROMPT-CANARY" in event["prompt"] and SPACE_KEY not in event["prompt"]
    assert "[REDACTED]" in event["prompt"] and "PROMPT-CANARY" in event["response"]
    assert redact("Authorization: Bearer abcdefghijklmnop hf_abcdefghijkl") == "Authorization: [REDACTED] [REDACTED]"
    with pytest.raises(ValueError, match="request_id is required"):
        record_feedback("", 1)

"""Smoke checks: prove that every Space of an environment answers as the application expects.

For each tier's Space, in parallel on a bounded pool:

1. ``running``: wait until the Hub reports RUNNING. A SLEEPING, PAUSED or STOPPED Space is woken once
   with ``restart_space`` and given the rest of the timeout; BUILDING / APP_STARTING are waited for;
   an error stage (BUILD_ERROR, RUNTIME_ERROR, CONFIG_ERROR, NO_APP_FILE) fails at once with the
   tail of its log; a Space still not RUNNING after ``timeout`` seconds fails naming its stage.
2. ``health``: ``GET /health`` answers 200 (retried briefly: a model still loading answers 503).
3. ``models``: ``GET /v1/models`` (with the key) names the declared model.
4. ``chat``: a short chat completion through the real ``openai`` client returns text.
5. ``stream``: the same request with ``stream=True`` yields content chunks and a finish reason.
6. ``auth_refused``: a request without the key is refused with 401.

The Space URL always comes from the Hub (``space_info(repo_id).host``), never from a template, so
the same checks run against huggingface.co and the sandbox. Checks 2-6 run even if an earlier one
failed (each is independent, so the report shows everything that is wrong at once); nothing after
``running`` runs if the Space never got there.

The key (``SPACE_API_KEY``) is used only in request headers: every detail string is scrubbed of it
before it reaches a report, a log line or an exception.

The report's JSON shape is read by the admin page from ``.state/smoke-<env>.json``::

    {"env": ..., "ok": bool, "finished_at": ISO-8601, "spaces": [
        {"tier": ..., "space": ..., "url": ..., "ok": bool,
         "checks": [{"name": ..., "ok": bool, "latency_ms": int, "detail": ...}]}]}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import HfApi

from infra.errors import UserError
from infra.hub import DEFAULT_POLICY, RetryPolicy, call
from infra.progress import SILENT, Progress
from infra.reconcile.wait import ERROR_STAGES, log_tail
from infra.space_auth import openai_auth, request_headers
from infra.spec import Declaration, ResolvedSpace

__all__ = [
    "CHECKS", "Check", "SmokeReport", "SpaceSmoke", "api_key_from_environ", "save_report", "smoke_environment",
    "smoke_space",
]

CHECKS = ("running", "health", "models", "chat", "stream", "auth_refused")
WAKE_STAGES = frozenset({"SLEEPING", "PAUSED", "STOPPED"})
API_KEY_SECRET = "SPACE_API_KEY"
DEFAULT_TIMEOUT = 300.0
DEFAULT_REQUEST_TIMEOUT = 15.0
PROMPT = "Reply with one word: ping"


@dataclass
class Check:
    """One check of one Space: did it pass, how long it took, and what was seen."""

    name: str
    ok: bool
    latency_ms: int
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "latency_ms": self.latency_ms, "detail": self.detail}


@dataclass
class SpaceSmoke:
    """The checks of one tier's Space."""

    tier: str
    space: str
    url: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failures(self) -> list[str]:
        """`tier: check: detail` for each failed check (first line of the detail)."""
        return [f"{self.tier}: {c.name}: {(c.detail.splitlines() or [''])[0]}" for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "space": self.space, "url": self.url, "ok": self.ok,
                "checks": [c.to_json() for c in self.checks]}


@dataclass
class SmokeReport:
    """Every Space's checks for one environment."""

    env: str
    spaces: list[SpaceSmoke]
    started_at: str = ""
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.spaces) and all(space.ok for space in self.spaces)

    @property
    def failures(self) -> list[str]:
        """One line per failed check, naming the tier and the check."""
        return [line for space in self.spaces for line in space.failures]

    def space(self, tier: str) -> SpaceSmoke:
        return next(s for s in self.spaces if s.tier == tier)

    def failed_checks(self) -> dict[str, list[str]]:
        """{tier: [names of failed checks]} for the tiers with a failure."""
        return {s.tier: [c.name for c in s.checks if not c.ok] for s in self.spaces if not s.ok}

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "ok": self.ok, "started_at": self.started_at, "finished_at": self.finished_at,
                "failures": self.failures, "spaces": [s.to_json() for s in self.spaces]}


def api_key_from_environ(declaration: Declaration, environ: Mapping[str, str] | None = None) -> str:
    """SPACE_API_KEY's value from where the declaration says it lives (default: $SPACE_API_KEY)."""
    environ = os.environ if environ is None else environ
    ref = declaration.secrets.get(API_KEY_SECRET)
    variable = ref.env if ref is not None else API_KEY_SECRET
    value = environ.get(variable)
    if not value:
        raise UserError(f"smoke needs the Spaces' API key: set ${variable} ({API_KEY_SECRET})")
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Scrubber:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _describe(error: BaseException) -> str:
    status = getattr(error, "status_code", None) or getattr(getattr(error, "response", None), "status_code", None)
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    prefix = f"HTTP {status}: " if status and str(status) not in message else ""
    return f"{prefix}{type(error).__name__}: {message}"[:400]


def _timed(name: str, scrub: Callable[[str], str], body: Callable[[], str]) -> Check:
    """Run one check; `body` returns a detail on success and raises on failure."""
    started = time.monotonic()
    try:
        detail, ok = body(), True
    except Exception as error:  # noqa: BLE001 - every failure of a check is reported, never raised
        detail, ok = error.args[0] if isinstance(error, _CheckFailed) else _describe(error), False
    return Check(name=name, ok=ok, latency_ms=round((time.monotonic() - started) * 1000), detail=scrub(str(detail)))


class _CheckFailed(Exception):
    """A check saw something other than what it expects (the message is the report's detail)."""


def _wait_running(api: HfApi, repo_id: str, *, timeout: float, poll: float, policy: RetryPolicy,
                  progress: Progress) -> str:
    started = time.monotonic()
    woken, last = False, None
    while True:
        stage = str(call(repo_id, "runtime", lambda: api.get_space_runtime(repo_id), policy).stage)
        if stage != last:
            progress.line(repo_id, "stage", stage, time.monotonic() - started)
            last = stage
        if stage == "RUNNING":
            return "RUNNING" + (" (woken)" if woken else "")
        if stage in ERROR_STAGES:
            tail = log_tail(api, repo_id, build=stage in ("BUILD_ERROR", "CONFIG_ERROR", "NO_APP_FILE"))
            lines = "\n".join(f"    | {line}" for line in tail) or "    | (no log available)"
            raise _CheckFailed(f"{stage}; last log lines:\n{lines}")
        if stage in WAKE_STAGES and not woken:
            progress.line(repo_id, "wake", f"{stage}: restart_space")
            call(repo_id, "wake", lambda: api.restart_space(repo_id), policy)
            woken = True
        elif time.monotonic() - started > timeout:
            how = f" (woken with restart_space from {stage})" if woken and stage in WAKE_STAGES else ""
            raise _CheckFailed(f"still {stage} after {timeout:.0f}s{how}")
        time.sleep(poll)


def _retry(action: Callable[[], httpx.Response], *, attempts: int, delay: float,
           accept: Callable[[httpx.Response], bool]) -> httpx.Response:
    """`action` until `accept`s its response; transient errors and 5xx retried `attempts` times."""
    response: httpx.Response | None = None
    for attempt in range(1, attempts + 1):
        try:
            response = action()
        except httpx.TransportError:
            if attempt == attempts:
                raise
        else:
            if accept(response) or (response.status_code < 500 and response.status_code != 429):
                return response
            if attempt == attempts:
                return response
        time.sleep(delay * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _status_detail(response: httpx.Response) -> str:
    body = response.text.strip().replace("\n", " ")[:200]
    return f"HTTP {response.status_code}: {body}" if body else f"HTTP {response.status_code}"


def proxy_token(api: HfApi) -> str | None:
    """The token a private Space's proxy gets: the read-only `$SPACE_HF_TOKEN` when set, so the deploy
    token never reaches Space code; else the Hub token in use (or the one `huggingface-cli login` saved)."""
    from huggingface_hub import get_token

    token = os.environ.get("SPACE_HF_TOKEN") or (api.token if isinstance(api.token, str) else None)
    return token or get_token()


def smoke_space(api: HfApi, space: ResolvedSpace, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                request_timeout: float = DEFAULT_REQUEST_TIMEOUT, poll: float = 2.0, http_attempts: int = 3,
                policy: RetryPolicy = DEFAULT_POLICY, progress: Progress = SILENT) -> SpaceSmoke:
    """All checks of one Space (see the module docstring)."""
    from openai import OpenAI

    repo_id = space.repo_id
    result = SpaceSmoke(tier=space.tier, space=repo_id)
    hub_token = proxy_token(api) if space.private else None
    scrub = _Scrubber([api_key, *([hub_token] if hub_token else [])])

    def record(check: Check) -> Check:
        result.checks.append(check)
        progress.line(repo_id, check.name, ("ok" if check.ok else "FAILED " + check.detail.splitlines()[0]),
                      check.latency_ms / 1000)
        return check

    running = record(_timed("running", scrub, lambda: _wait_running(
        api, repo_id, timeout=timeout, poll=poll, policy=policy, progress=progress)))
    if not running.ok:
        return result
    try:
        result.url = str(call(repo_id, "read host", lambda: api.space_info(repo_id), policy).host or "") or None
    except UserError as error:
        record(Check("host", False, 0, scrub(str(error))))
        return result
    if not result.url:
        record(Check("host", False, 0, "the Hub reports no host for this Space"))
        return result
    base = result.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = f"https://{base}"
    auth = request_headers(api_key, hub_token)
    proxy_only = request_headers(None, hub_token)
    retry_kwargs = {"attempts": http_attempts, "delay": min(1.0, request_timeout / 10)}

    with httpx.Client(timeout=request_timeout) as http:

        def health() -> str:
            response = _retry(lambda: http.get(f"{base}/health", headers=proxy_only),
                              accept=lambda r: r.status_code == 200, **retry_kwargs)
            if response.status_code != 200:
                raise _CheckFailed(f"expected 200, got {_status_detail(response)}")
            return "200"

        def models() -> str:
            response = _retry(lambda: http.get(f"{base}/v1/models", headers=auth),
                              accept=lambda r: r.status_code == 200, **retry_kwargs)
            if response.status_code != 200:
                raise _CheckFailed(f"expected 200, got {_status_detail(response)}")
            try:
                served = [item["id"] for item in response.json()["data"]]
            except (ValueError, KeyError, TypeError):
                raise _CheckFailed(f"not an OpenAI model list: {response.text[:200]}") from None
            if space.model not in served:
                raise _CheckFailed(f"declared model {space.model!r} not served; served: {served}")
            return space.model

        client = OpenAI(base_url=f"{base}/v1", max_retries=max(0, http_attempts - 1), timeout=request_timeout,
                        **openai_auth(api_key, hub_token))

        def chat() -> str:
            reply = client.chat.completions.create(
                model=space.model, messages=[{"role": "user", "content": PROMPT}], max_tokens=8)
            text = (reply.choices[0].message.content or "").strip() if reply.choices else ""
            if not text:
                raise _CheckFailed("the completion has no text")
            return f"{len(text.split())} words"

        def stream() -> str:
            chunks, finish = [], None
            with client.chat.completions.create(
                    model=space.model, messages=[{"role": "user", "content": PROMPT}], max_tokens=8,
                    stream=True) as events:
                for event in events:
                    for choice in event.choices:
                        if choice.delta and choice.delta.content:
                            chunks.append(choice.delta.content)
                        finish = choice.finish_reason or finish
            if not chunks:
                raise _CheckFailed("the stream carried no content")
            if finish is None:
                raise _CheckFailed(f"the stream ended without a finish_reason after {len(chunks)} chunks")
            return f"{len(chunks)} chunks, finish_reason={finish}"

        def auth_refused() -> str:
            response = _retry(lambda: http.get(f"{base}/v1/models", headers=proxy_only),
                              accept=lambda r: r.status_code == 401,
                              **retry_kwargs)
            if response.status_code != 401:
                raise _CheckFailed(f"a request without the key got {_status_detail(response)}, expected 401")
            return "401 without a key"

        try:
            for name, body in (("health", health), ("models", models), ("chat", chat), ("stream", stream),
                               ("auth_refused", auth_refused)):
                record(_timed(name, scrub, body))
        finally:
            client.close()
    return result


def smoke_environment(api: HfApi, declaration: Declaration, env: str, api_key: str, *,
                      timeout: float = DEFAULT_TIMEOUT, request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                      poll: float = 2.0, workers: int = 8, tiers: list[str] | None = None,
                      policy: RetryPolicy = DEFAULT_POLICY, progress: Progress = SILENT) -> SmokeReport:
    """Smoke-test every Space of `env` in parallel; never raises for a failing check (see `.ok`)."""
    if not api_key:
        raise UserError(f"smoke needs the Spaces' API key ({API_KEY_SECRET})")
    spaces = [s for s in declaration.spaces(env) if tiers is None or s.tier in tiers]
    report = SmokeReport(env=env, spaces=[], started_at=_now())

    def one(space: ResolvedSpace) -> SpaceSmoke:
        try:
            return smoke_space(api, space, api_key, timeout=timeout, request_timeout=request_timeout, poll=poll,
                               policy=policy, progress=progress)
        except Exception as error:  # noqa: BLE001 - one Space's surprise must not hide the others' results
            scrubbed = _Scrubber([api_key])(_describe(error))
            return SpaceSmoke(tier=space.tier, space=space.repo_id, checks=[Check("smoke", False, 0, scrubbed)])

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(spaces) or 1))) as pool:
        report.spaces = list(pool.map(one, spaces))
    report.finished_at = _now()
    return report


def save_report(report: SmokeReport, state_dir: str | Path = ".state") -> Path:
    """Write the report to `<state_dir>/smoke-<env>.json` atomically (the admin page reads it)."""
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"smoke-{report.env}.json"
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    temporary.replace(target)
    return target


def render_table(report: SmokeReport, console: Any) -> None:
    """A rich table: one row per check, with its latency and detail."""
    from rich.table import Table

    table = Table(title=f"smoke {report.env}: {'PASSED' if report.ok else 'FAILED'}")
    for column in ("tier", "space", "check", "result", "latency"):
        table.add_column(column, no_wrap=column != "space")
    table.add_column("detail", overflow="fold")
    for space in report.spaces:
        for check in space.checks:
            table.add_row(space.tier, space.space, check.name, "[green]ok[/green]" if check.ok else "[red]FAIL[/red]",
                          f"{check.latency_ms} ms", check.detail)
    console.print(table)

"""The main job: the whole life cycle on the embedded sandbox, with a report.

Starts the sandbox Hub, moto's server (the SSM flag store) and a local OpenAI stand-in, all on
127.0.0.1; renders and provisions staging; smoke-tests it; promotes to prod (which flips prod's flag
to Hugging Face only after prod's smoke passes); sends requests per tier through `TieredLLMService`;
breaks one prod Space and shows the fallback; rolls back with `invoke rollback` (a real
subprocess, as an engineer would) and times how fast traffic follows, next to the flag TTL; then
stops everything and checks that no child process is left.

Every step checks its own claim; the report (text and JSON) says what each step did, how long it
took, and the Hub writes, builds and restarts it cost. `DemoReport.ok` is False if any claim failed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import UserError
from infra.progress import Progress

MESSAGES = {
    "base": [{"role": "user", "content": "What is the capital of France?"}],
    "company": [{"role": "user", "content": "Summarise our refund policy."}],
    "abstraction": [{"role": "user", "content": "What do subscription businesses like ours churn on?"}],
}
FLAG_TTL = 1.0
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str
    writes: int = 0
    builds: int = 0
    restarts: int = 0
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail,
                "write_calls": self.writes, "builds": self.builds, "restarts": self.restarts, "data": self.data}


@dataclass
class DemoReport:
    steps: list[Step] = field(default_factory=list)
    flag_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [step.to_json() for step in self.steps], "flag_history": self.flag_history}


class StepFailed(Exception):
    """A step's claim did not hold; carries what was observed."""


def child_pids(parent: int | None = None) -> set[int]:
    """Live child processes of `parent` (default: this process), read from /proc."""
    parent = os.getpid() if parent is None else parent
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the demo (and the subprocesses it runs); restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def openai_standin_files(declaration: Any) -> dict[str, bytes]:
    """The rendered Space app re-labelled as `gpt-4o-mini`: a deterministic local OpenAI stand-in."""
    from infra.render import render_space

    files = render_space(declaration, "staging", "base")
    config = json.loads(files["space.json"])
    config.update(tier="openai", model="gpt-4o-mini", repo_id="openai/stand-in", owner="openai",
                  generation={"max_tokens": 64})
    return {**files, "space.json": json.dumps(config, indent=2).encode()}


class Demo:
    """Runs the steps in order; stops at the first failed claim, always cleans up."""

    def __init__(self, config: Path, out_dir: Path, requests_per_tier: int = 3, progress: Progress | None = None,
                 smoke_timeout: float = 60.0) -> None:
        self.config, self.out_dir = Path(config), Path(out_dir)
        self.requests_per_tier = requests_per_tier
        self.progress = progress or Progress()
        self.smoke_timeout = smoke_timeout
        self.report = DemoReport()
        self.space_key = secrets.token_urlsafe(24)
        self.openai_key = secrets.token_urlsafe(24)

    # -- plumbing ------------------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        total = self.sandbox.stats()["total"]
        return {key: total[key] for key in ("write_calls", "builds", "restarts")}

    def step(self, name: str, body: Callable[[], tuple[str, dict[str, Any]]]) -> Step:
        self.progress.line("demo", "step", name)
        before = self._counts() if hasattr(self, "sandbox") else None
        started = time.monotonic()
        try:
            detail, data = body()
            ok = True
        except (StepFailed, UserError) as error:
            detail, data, ok = str(error), {}, False
        seconds = time.monotonic() - started
        after = self._counts() if hasattr(self, "sandbox") else None
        delta = {key: after[key] - before[key] for key in after} if before and after else {}
        step = Step(name, ok, seconds, detail, delta.get("write_calls", 0), delta.get("builds", 0),
                    delta.get("restarts", 0), data)
        self.report.steps.append(step)
        self.progress.line("demo", "ok" if ok else "FAILED", f"{name}: {detail.splitlines()[0] if detail else ''}",
                           seconds)
        if not ok:
            raise StepFailed(detail)
        return step

    # -- the job -------------------------------------------------------------------------------
    def run(self) -> DemoReport:
        children_before = child_pids()
        try:
            with ExitStack() as stack:
                self._start(stack)
                self.step("render staging", self.render)
                self.step("provision staging", self.provision)
                self.step("smoke staging", self.smoke)
                self.step("promote staging -> prod", self.promote)
                self.step("traffic on Hugging Face", self.traffic_on_spaces)
                self.step("break company Space: fallback", self.break_and_fallback)
                self.step("invoke rollback --env prod", self.rollback)
                self.step("traffic back on OpenAI", self.traffic_follows_rollback)
                self.report.flag_history = self._flag_history()
        except StepFailed:
            pass  # recorded in the report; clean-up below still runs
        finally:
            self._cleanup_step(children_before)
        return self.report

    def _start(self, stack: ExitStack) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        from infra.hub import make_api
        from infra.local_space import serve_space_locally
        from infra.sandbox import run_sandbox
        from infra.spec import load_declaration

        started = time.monotonic()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
        self.declaration = load_declaration(self.config)
        self.sandbox = stack.enter_context(run_sandbox(owner=self.declaration.owner))
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        host, port = moto.get_host_and_port()
        self.openai_url = stack.enter_context(serve_space_locally(
            openai_standin_files(self.declaration), {"SPACE_API_KEY": self.openai_key}))
        region = self.declaration.flags.store.region or "eu-west-1"
        self.env = {
            "HF_ENDPOINT": self.sandbox.url, "HF_TOKEN": self.sandbox.token, "SPACE_API_KEY": self.space_key,
            "SPACE_HF_TOKEN": secrets.token_urlsafe(24),
            "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": region, "FLAG_STORE": "ssm",
        }
        stack.enter_context(_environment(self.env))
        self.api = make_api(self.sandbox.url, self.sandbox.token)
        self.ssm = boto3.client("ssm", region_name=region, endpoint_url=self.env["AWS_ENDPOINT_URL"])
        self.report.steps.append(Step(
            "start sandbox Hub, moto, OpenAI stand-in", True, time.monotonic() - started,
            f"Hub {self.sandbox.url}, SSM {self.env['AWS_ENDPOINT_URL']}, OpenAI stand-in {self.openai_url}"))

    def _store(self, env: str) -> Any:
        from infra.flags.factory import open_flag_store

        return open_flag_store(self.declaration, env, ssm_client=self.ssm)

    def render(self) -> tuple[str, dict]:
        from infra.render import content_hash, render_space, write_space

        hashes = {}
        for space in self.declaration.spaces("staging"):
            files = render_space(self.declaration, "staging", space.tier)
            write_space(files, self.out_dir / "render" / "staging" / space.name)
            hashes[space.repo_id] = content_hash(files)
        _expect(len(hashes) == 3, f"expected 3 Spaces, rendered {len(hashes)}")
        return f"3 Spaces rendered to {self.out_dir / 'render' / 'staging'}", {"hashes": hashes}

    def provision(self) -> tuple[str, dict]:
        from infra.reconcile import apply_environment, desired_spaces, plan_environment

        desired = desired_spaces(self.declaration, "staging")
        plans = plan_environment(self.api, desired, progress=self.progress)
        results = apply_environment(self.api, plans, progress=self.progress, poll=0.1, timeout=120)
        failed = [r.error for r in results if not r.ok]
        _expect(not failed, f"apply failed: {failed}")
        _expect(all(r.stage == "RUNNING" for r in results), "not every Space is RUNNING")
        again = plan_environment(self.api, desired)
        _expect(not any(p.has_changes for p in again), "a second plan still shows changes")
        return "3 Spaces created and RUNNING; a second plan shows no changes", {
            "spaces": {r.plan.repo_id: r.steps for r in results}}

    def smoke(self) -> tuple[str, dict]:
        from infra.smoke import save_report, smoke_environment

        report = smoke_environment(self.api, self.declaration, "staging", self.space_key,
                                   timeout=self.smoke_timeout, poll=0.2, progress=self.progress)
        save_report(report, self.out_dir / ".state")
        checks = sum(len(space.checks) for space in report.spaces)
        _expect(report.ok, "smoke failed: " + json.dumps(report.to_json())[:500])
        return f"{checks} checks passed on 3 Spaces", {"smoke": report.to_json()}

    def promote(self) -> tuple[str, dict]:
        from infra.release import promote

        report = promote(self.api, self.declaration, "staging", "prod", environ=os.environ,
                         flag_store=self._store("prod"), progress=self.progress, actor="demo",
                         smoke_timeout=self.smoke_timeout, poll=0.1)
        _expect(report.ok, f"promotion failed at {report.failed_step}")
        document = self._store("prod").snapshot().document
        _expect(document is not None and document.provider == "huggingface", "prod flag is not huggingface")
        return f"prod runs staging's commits; prod flag now {document.summary()}", {"promotion": report.to_json()}

    def _service(self) -> Any:
        from infra.service import OpenAIService, build_tiered_service

        urls = {s.tier: self.api.space_info(s.repo_id).host for s in self.declaration.spaces("prod")}
        openai = OpenAIService(api_key=self.openai_key, base_url=f"{self.openai_url}/v1", model="gpt-4o-mini",
                               max_retries=0, timeout=10)
        return build_tiered_service(self.declaration, "prod", openai=openai, space_token=self.space_key,
                                    space_urls=urls, flag_ttl=FLAG_TTL, space_timeout=5.0, ssm_client=self.ssm)

    def _send(self, service: Any, tiers: list[str]) -> list[dict[str, Any]]:
        rows = []
        for tier in tiers:
            for _ in range(self.requests_per_tier):
                result = service.complete(MESSAGES[tier], tier=tier)
                rows.append({"tier": tier, "provider": result.provider, "fallback": result.fallback,
                             "reason": result.fallback_reason, "latency_ms": round(result.latency_ms, 1),
                             "text": result.text[:60]})
        return rows

    def traffic_on_spaces(self) -> tuple[str, dict]:
        self.service = self._service()
        rows = self._send(self.service, self.declaration.tier_names)
        providers = {row["provider"] for row in rows}
        _expect(providers == {"huggingface"}, f"expected every request on the Spaces, got {providers}")
        return f"{len(rows)} requests, all answered by the prod Spaces", {"requests": rows}

    def break_and_fallback(self) -> tuple[str, dict]:
        broken = self.declaration.space_id("prod", "company")
        self.sandbox.set_stage(broken, "RUNTIME_ERROR", error="demo: company Space broken on purpose")
        rows = self._send(self.service, ["company", "base"])
        company = [row for row in rows if row["tier"] == "company"]
        _expect(all(r["provider"] == "openai" and r["fallback"] for r in company),
                f"company requests did not fall back: {company}")
        _expect(all(r["provider"] == "huggingface" for r in rows if r["tier"] == "base"),
                "the healthy base Space should still answer")
        reasons = [r["reason"] for r in company]
        return (f"{broken} down: company requests fell back to OpenAI ({', '.join(map(str, reasons))}); "
                "base still on its Space"), {"requests": rows}

    def rollback(self) -> tuple[str, dict]:
        command = [sys.executable, "-m", "invoke", "rollback", "--env", "prod", "--config", str(self.config),
                   "--reason", "demo: company Space broken"]
        started = time.monotonic()
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                                env=os.environ.copy())
        self.rolled_back_at = time.monotonic()
        _expect(result.returncode == 0, f"invoke rollback exited {result.returncode}: {result.stderr[-400:]}")
        document = self._store("prod").snapshot().document
        _expect(document is not None and document.provider == "openai", "store does not say openai")
        return (f"flag confirmed openai in {self.rolled_back_at - started:.2f}s (including CLI start-up); "
                "no Hub call"), {"output": result.stdout.strip().splitlines()}

    def traffic_follows_rollback(self) -> tuple[str, dict]:
        deadline = self.rolled_back_at + FLAG_TTL + 10
        while time.monotonic() < deadline:
            rows = self._send(self.service, self.declaration.tier_names)
            if all(row["provider"] == "openai" and not row["fallback"] for row in rows):
                seconds = time.monotonic() - self.rolled_back_at
                _expect(seconds <= FLAG_TTL + 2.0, f"took {seconds:.2f}s, TTL is {FLAG_TTL}s")
                return (f"every tier on OpenAI {seconds:.2f}s after the rollback (flag TTL {FLAG_TTL:.1f}s)",
                        {"seconds": round(seconds, 3), "ttl": FLAG_TTL, "requests": rows})
            time.sleep(0.05)
        raise StepFailed("traffic did not move to OpenAI")

    def _flag_history(self) -> list[dict[str, Any]]:
        history = []
        for entry in reversed(self._store("prod").history(20)):
            document = entry.document
            history.append({"revision": entry.revision, "provider": document.provider if document else None,
                            "summary": document.summary() if document else entry.problem,
                            "by": document.updated_by if document else None,
                            "reason": document.reason if document else None})
        return history

    def _cleanup_step(self, children_before: set[int]) -> None:
        started = time.monotonic()
        deadline = started + 10
        left = child_pids() - children_before
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = child_pids() - children_before
        self.report.steps.append(Step("stop everything", not left, time.monotonic() - started,
                                      f"{len(left)} child processes left: {sorted(left)}" if left
                                      else "sandbox, Spaces, moto and the stand-in stopped; no child process left"))


def run_demo(config: Path, out_dir: Path, *, requests_per_tier: int = 3, progress: Progress | None = None,
             smoke_timeout: float = 60.0) -> DemoReport:
    """Run the main job and write `out_dir/demo-report.json`; returns the report."""
    report = Demo(config, out_dir, requests_per_tier, progress, smoke_timeout).run()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "demo-report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return report


def print_report(report: DemoReport, console: Any = None) -> None:
    """The report as two tables: the steps, then the prod flag's history."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough that details stay on one or two lines
            console = Console(width=160)
    table = Table(title="triple-LLM Spaces: the life cycle on the sandbox")
    for column in ("step", "ok", "time", "writes", "builds", "restarts", "what happened"):
        table.add_column(column, overflow="fold")
    for step in report.steps:
        table.add_row(step.name, "yes" if step.ok else "NO", f"{step.seconds:.2f}s", str(step.writes),
                      str(step.builds), str(step.restarts), step.detail)
    console.print(table)
    history = Table(title="prod flag history (oldest first)")
    for column in ("revision", "provider", "state", "by", "reason"):
        history.add_column(column, overflow="fold")
    for entry in report.flag_history:
        history.add_row(str(entry["revision"]), str(entry["provider"]), str(entry["summary"]), str(entry["by"]),
                        str(entry["reason"]))
    console.print(history)
    console.print("[bold green]demo passed[/]" if report.ok else "[bold red]demo FAILED[/]")

"""Serving the sandbox: the ASGI app under uvicorn in a background thread, and its clean shutdown.

`Sandbox` owns the listening socket (bound before uvicorn starts, so `url` is known at once), the
store, the Hub and the process supervisor. `stop()` stops uvicorn, then every Space process; it is
idempotent and also runs at interpreter exit. `run_sandbox()` wraps it as a context manager and
`serve_forever()` is the foreground loop behind `invoke sandbox`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.errors import UserError
from infra.sandbox.api import api_routes
from infra.sandbox.control import control_routes
from infra.sandbox.faults import FaultMiddleware, FaultPlan, FaultRule
from infra.sandbox.hub import DEFAULT_USER, OTHER_USER, Hub
from infra.sandbox.runtime import Supervisor
from infra.sandbox.state import Store
from infra.spec.overrides import OWNER_VARIABLES

DEFAULT_OWNER = "acme-ai"
TERMINAL_STAGES = ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE", "STOPPED", "PAUSED",
                   "SLEEPING")


class DateHeaderMiddleware:
    """Adds an exact `Date` header to every response.

    uvicorn's own Date header is refreshed about once a second and may lag; the client's
    `fetch_space_logs` stops replaying at the first event newer than Date + 1s, so it must be exact.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"date"]
                headers.append((b"date", formatdate(usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_date)


def build_app(hub: Hub, plan: FaultPlan) -> ASGIApp:
    """The complete ASGI app: Hub API + control routes, behind the fault and Date middlewares."""
    return DateHeaderMiddleware(FaultMiddleware(Starlette(routes=control_routes(hub, plan) + api_routes(hub)), plan))


class Sandbox:
    """A running sandbox Hub on 127.0.0.1; see `run_sandbox`."""

    def __init__(
        self,
        *,
        owner: str = "acme-ai",
        data_dir: str | Path | None = None,
        faults: list[FaultRule | dict[str, Any]] | None = None,
        port: int = 0,
        env_overrides: dict[str, str] | None = None,
        health_timeout: float = 60.0,
        health_interval: float = 0.1,
        fault_seed: int | None = None,
    ) -> None:
        self.owner = owner
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.plan = FaultPlan(faults, seed=fault_seed)
        self._port = port
        self._env_overrides = env_overrides
        self._health = (health_timeout, health_interval)
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._tmp_root: Path | None = None
        self._socket: socket.socket | None = None
        self._stopped = False
        self.url = ""
        self.run_root: Path | None = None  # where Space files are materialised; children run inside it
        self.hub: Hub

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind the port, load state, restart previously running Spaces, serve in a background thread."""
        # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else ~40 ms per request)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port))
        except OSError as error:
            sock.close()
            raise UserError(f"cannot listen on 127.0.0.1:{self._port}: {error.strerror}") from None
        sock.listen(128)
        self._socket = sock
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            run_root = self.data_dir / "runtime"
        else:
            self._tmp_root = Path(tempfile.mkdtemp(prefix="hf-sandbox-"))
            run_root = self._tmp_root / "runtime"
        self.run_root = run_root
        store = Store(self.data_dir)
        timeout, interval = self._health

        def supervisor(reporter: Hub) -> Supervisor:
            return Supervisor(run_root, reporter, health_timeout=timeout, health_interval=interval)

        self.hub = Hub(store, supervisor, owner=self.owner, env_overrides=self._env_overrides)
        config = uvicorn.Config(
            build_app(self.hub, self.plan), log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=2, date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="sandbox-uvicorn")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise UserError("the sandbox server did not start")
            time.sleep(0.01)
        self.hub.boot()
        return self

    def stop(self) -> None:
        """Stop serving and stop every Space process; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        if hasattr(self, "hub"):
            self.hub.supervisor.close()
        if self._tmp_root is not None:
            shutil.rmtree(self._tmp_root, ignore_errors=True)

    # --- conveniences for tests and scripts ----------------------------------------------------------

    @property
    def token(self) -> str:
        """Token of the default user, a member (admin) of `owner`."""
        return self.hub.user(DEFAULT_USER).token

    @property
    def other_token(self) -> str:
        """Token of a second user who is not a member of `owner` (for 403/404 checks)."""
        return self.hub.user(OTHER_USER).token

    @property
    def user(self) -> str:
        """Name of the default user."""
        return DEFAULT_USER

    def add_user(self, name: str, orgs: dict[str, str] | list[str] | None = None, token_role: str = "write") -> str:
        """Add a user (orgs: name -> role, or a list for role 'write'); return its token."""
        if isinstance(orgs, list):
            orgs = {org: "write" for org in orgs}
        return self.hub.add_user(name, orgs, token_role).token

    def stats(self) -> dict[str, Any]:
        """Counters per Space (builds, restarts, write_calls, writes_by_route) and totals."""
        data = self.hub.store.stats_snapshot()
        data["faults"] = {"injected": self.plan.snapshot()["injected"]}
        return data

    def set_faults(self, rules: list[FaultRule | dict[str, Any]]) -> None:
        """Replace the fault plan."""
        self.plan.set(rules)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.plan.clear()

    def set_stage(self, space_id: str, stage: str, error: str | None = None) -> None:
        """Force a Space's stage (RUNNING starts it; SLEEPING, PAUSED, errors... stop its process)."""
        self.hub.set_stage(space_id, stage, error)

    def stage(self, space_id: str) -> str:
        """The Space's current stage."""
        with self.hub.store.lock:
            return self.hub.store.spaces[space_id].stage

    def wait_for_stage(self, space_id: str, stages: tuple[str, ...] = TERMINAL_STAGES, timeout: float = 30) -> str:
        """Block until the Space reaches one of `stages`; return it (TimeoutError with the log otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            stage = self.stage(space_id)
            if stage in stages:
                return stage
            if time.monotonic() > deadline:
                raise TimeoutError(f"{space_id} still {stage} after {timeout}s; log: {self.logs(space_id)}")
            time.sleep(0.05)

    def logs(self, space_id: str) -> dict[str, list[dict[str, str]]]:
        """Build and run logs of a Space."""
        return self.hub.supervisor.logs(space_id)

    def child_pids(self) -> list[int]:
        """Process ids of the live Space processes."""
        return self.hub.supervisor.pids()

    def host(self, space_id: str) -> str:
        """The URL the Space answers on."""
        with self.hub.store.lock:
            return f"http://127.0.0.1:{self.hub.store.spaces[space_id].port}"

    def ping(self) -> bool:
        """Whether the server answers."""
        try:
            return httpx.get(f"{self.url}/_sandbox/health", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def run_sandbox(
    owner: str = "acme-ai",
    data_dir: str | Path | None = None,
    faults: list[FaultRule | dict[str, Any]] | None = None,
    port: int = 0,
    **options: Any,
) -> Iterator[Sandbox]:
    """Run a sandbox Hub for the duration of a `with` block; everything is stopped on exit."""
    sandbox = Sandbox(owner=owner, data_dir=data_dir, faults=faults, port=port, **options).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def serve_forever(sandbox: Sandbox, announce: Any = print) -> None:
    """Start `sandbox`, announce the exportable lines, serve until Ctrl-C or SIGTERM, then stop it."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        sandbox.start()
        announce(f"HF_ENDPOINT={sandbox.url}")
        announce(f"HF_TOKEN={sandbox.token}")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def owner_from_config(config: str | Path, owner: str | None = None, *, required: bool = False,
                      environ: Any = None) -> str:
    """The owner the sandbox's default user belongs to.

    `owner` wins; then the toolkit's owner override variables (HUGGINGFACE_ORG, VITE_HUGGINGFACE_ORG);
    then the `owner:` key of the declaration; then `acme-ai`. Only the owner key is read, so a
    declaration with other problems still lets the sandbox start.
    """
    if owner:
        return owner
    environ = os.environ if environ is None else environ
    for name in OWNER_VARIABLES:
        if environ.get(name, "").strip():
            return str(environ[name]).strip()
    path = Path(config)
    if not path.exists():
        if required:
            raise UserError(f"{path}: no such declaration file (use --owner, or --config PATH)")
        return DEFAULT_OWNER
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error}); pass --owner to skip reading it") from None
    value = data.get("owner") if isinstance(data, dict) else None
    return str(value) if isinstance(value, str) and value.strip() else DEFAULT_OWNER

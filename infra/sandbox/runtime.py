"""Runs each Space's committed app as a child process on 127.0.0.1, the way the Hub runs its container.

Docker is not available, so "building" a Space means materialising the files of the head commit into a
directory and checking them; "running" it means `sys.executable app.py` in that directory with `PORT`,
`HOST`, the Space's variables and secrets, the Hub's `SPACE_*` variables and the sandbox's engine
overrides (default `LLM_ENGINE=echo`, since model weights cannot be downloaded) in a clean environment.
The Space is `RUNNING` once `GET /health` answers 200.

Children never outlive the sandbox: each runs in its own process group (stopped with SIGTERM, then
SIGKILL), every supervisor is stopped at interpreter exit (atexit), and on Linux each child asks the
kernel for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`, set by a bootstrap after exec, never in a
`preexec_fn`). That signal fires when the *thread* that forked the child ends, so all children are
forked by one long-lived spawner thread.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from infra.sandbox.state import now_iso

LOG_LINES = 5000

# Set in the child *after* exec, by a tiny bootstrap, then exec the app: Python code in a
# `preexec_fn` can deadlock in a multi-threaded parent (a lock held by another thread at fork time).
# The parent-death signal survives exec, and the pid check closes the race with an early parent death.
_BOOTSTRAP = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"  # 1 = PR_SET_PDEATHSIG
    "os.getppid() == int(sys.argv[1]) or sys.exit('sandbox parent is gone')\n"
    "os.execv(sys.executable, [sys.executable, '-u', 'app.py'])\n"
)


def app_command() -> list[str]:
    """`python app.py`, wrapped (on Linux) so the app dies with the process that started it."""
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _BOOTSTRAP, str(os.getpid())]
    return [sys.executable, "-u", "app.py"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def front_matter(readme: str) -> dict[str, Any] | None:
    """The YAML front matter of a repo card; None when absent; ValueError when it is not valid YAML."""
    if not readme.startswith("---"):
        return None
    end = readme.find("\n---", 3)
    if end == -1:
        raise ValueError("front matter is not closed by '---'")
    try:
        data = yaml.safe_load(readme[3:end])
    except yaml.YAMLError as error:
        raise ValueError(f"invalid YAML in front matter: {error}") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("front matter must be a mapping")
    return data


class _Spawner:
    """One long-lived thread that forks every child, so PR_SET_PDEATHSIG only fires when the process dies."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sandbox-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            func, future = job
            try:
                future.set_result(func())
            except BaseException as error:  # handed to the caller
                future.set_exception(error)

    def call(self, func: Callable[[], Any]) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((func, future))
        return future.result()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


@dataclass
class LaunchSpec:
    """Everything needed to build and start one revision of a Space."""

    space_id: str
    generation: int
    sha: str
    files: dict[str, bytes]
    env: dict[str, str]
    port: int
    starting_stage: str  # BUILDING for a new revision, APP_STARTING for a restart


@dataclass
class _Child:
    space_id: str
    generation: int
    popen: subprocess.Popen[bytes]
    port: int
    log: deque[tuple[str, str]]
    stopping: bool = False
    reader: threading.Thread | None = None
    exited: threading.Event = field(default_factory=threading.Event)


class Reporter:
    """What the supervisor tells the Hub; implemented by `infra.sandbox.hub.Hub`."""

    def is_current(self, space_id: str, generation: int) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def report(
        self, space_id: str, generation: int, stage: str, *, error: str | None = None, port: int | None = None
    ) -> None:  # pragma: no cover - interface
        raise NotImplementedError


_SUPERVISORS: weakref.WeakSet[Supervisor] = weakref.WeakSet()


@atexit.register
def _reap_all() -> None:
    for supervisor in list(_SUPERVISORS):
        supervisor.close()


class Supervisor:
    """Builds, starts, health-checks and stops Space processes; keeps their build and run logs."""

    def __init__(
        self,
        run_root: Path,
        reporter: Reporter,
        *,
        health_timeout: float = 60.0,
        health_interval: float = 0.1,
        stop_timeout: float = 5.0,
    ) -> None:
        self.run_root = run_root
        self.reporter = reporter
        self.health_timeout = health_timeout
        self.health_interval = health_interval
        self.stop_timeout = stop_timeout
        self._children: dict[str, _Child] = {}
        self._build_logs: dict[str, list[tuple[str, str]]] = {}
        self._run_logs: dict[str, deque[tuple[str, str]]] = {}
        self._space_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._spawner = _Spawner()
        _SUPERVISORS.add(self)

    # --- public ------------------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> None:
        """Build and start `spec` in a background thread (the API answers before the Space is up)."""
        thread = threading.Thread(target=self._launch_guarded, args=(spec,), name=f"build-{spec.space_id}")
        thread.daemon = True
        with self._lock:
            if self._closed:
                return
            self._threads.add(thread)
        thread.start()

    def stop(self, space_id: str) -> None:
        """Stop the Space's process (if any) and wait for it to be gone."""
        with self._space_lock(space_id):
            self._stop_locked(space_id)

    def forget(self, space_id: str) -> None:
        """Stop the Space and drop its logs and files (repo deleted)."""
        self.stop(space_id)
        with self._lock:
            self._build_logs.pop(space_id, None)
            self._run_logs.pop(space_id, None)
        shutil.rmtree(self._space_dir(space_id), ignore_errors=True)

    def alive(self, space_id: str) -> bool:
        """Whether the Space has a live process."""
        child = self._children.get(space_id)
        return child is not None and child.popen.poll() is None

    def pids(self) -> list[int]:
        """Process ids of all live children."""
        return [c.popen.pid for c in list(self._children.values()) if c.popen.poll() is None]

    def logs(self, space_id: str) -> dict[str, list[dict[str, str]]]:
        """The build log and the run log (stdout+stderr of the last process) of a Space."""
        with self._lock:
            build = list(self._build_logs.get(space_id, []))
            run = list(self._run_logs.get(space_id, []))
        return {
            "build": [{"timestamp": ts, "data": line} for ts, line in build],
            "run": [{"timestamp": ts, "data": line} for ts, line in run],
        }

    def close(self) -> None:
        """Stop every child and the spawner; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for space_id in list(self._children):
            with contextlib.suppress(Exception):
                self._stop_child(self._children.pop(space_id))
        for thread in threads:
            thread.join(timeout=self.stop_timeout + 1)
        for space_id in list(self._children):  # launched while we were joining
            with contextlib.suppress(Exception):
                self._stop_child(self._children.pop(space_id))
        self._spawner.close()

    # --- build and start ---------------------------------------------------------------------------

    def _space_lock(self, space_id: str) -> threading.Lock:
        with self._lock:
            return self._space_locks.setdefault(space_id, threading.Lock())

    def _space_dir(self, space_id: str) -> Path:
        return self.run_root / space_id.replace("/", "--")

    def _launch_guarded(self, spec: LaunchSpec) -> None:
        try:
            self._launch(spec)
        except Exception as error:  # a sandbox bug must show as a Space error, not a silent thread death
            self._build_log(spec.space_id, f"sandbox error: {type(error).__name__}: {error}")
            self.reporter.report(spec.space_id, spec.generation, "RUNTIME_ERROR", error=f"sandbox error: {error}")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _build_log(self, space_id: str, line: str) -> None:
        with self._lock:
            self._build_logs.setdefault(space_id, []).append((now_iso(), line))

    def _launch(self, spec: LaunchSpec) -> None:
        current = lambda: not self._closed and self.reporter.is_current(spec.space_id, spec.generation)  # noqa: E731
        with self._space_lock(spec.space_id):
            if not current():
                return
            self._stop_locked(spec.space_id)
            with self._lock:
                self._build_logs[spec.space_id] = []
            self._build_log(spec.space_id, f"===== {spec.starting_stage.lower()} revision {spec.sha} =====")
            workdir = self._materialise(spec)
            problem = self._check(spec)
            if problem is not None:
                stage, message = problem
                self._build_log(spec.space_id, message)
                error = None if stage == "NO_APP_FILE" else message
                self.reporter.report(spec.space_id, spec.generation, stage, error=error)
                return
            port = spec.port
            if not port_is_free(port):
                port = free_port()
                self._build_log(spec.space_id, f"port {spec.port} is taken; using {port}")
            env = {**spec.env, "PORT": str(port), "SPACE_HOST": f"127.0.0.1:{port}"}
            self._build_log(spec.space_id, f"starting {sys.executable} app.py on 127.0.0.1:{port}")
            child = self._spawn(spec, workdir, env, port)
            self._children[spec.space_id] = child
            if not current():
                self._stop_locked(spec.space_id)
                return
            self.reporter.report(spec.space_id, spec.generation, spec.starting_stage, port=port)
            outcome = self._wait_healthy(child, current)
            if outcome == "stale":
                self._stop_locked(spec.space_id)
            elif outcome == "healthy":
                self._build_log(spec.space_id, "health check passed: RUNNING")
                self.reporter.report(spec.space_id, spec.generation, "RUNNING", port=port)
            else:
                self._stop_locked(spec.space_id)
                self._build_log(spec.space_id, outcome)
                self.reporter.report(spec.space_id, spec.generation, "RUNTIME_ERROR", error=outcome)

    def _materialise(self, spec: LaunchSpec) -> Path:
        space_dir = self._space_dir(spec.space_id)
        shutil.rmtree(space_dir, ignore_errors=True)
        workdir = space_dir / f"{spec.sha[:12]}-{spec.generation}"
        for path, data in spec.files.items():
            target = workdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        workdir.mkdir(parents=True, exist_ok=True)
        self._build_log(spec.space_id, f"materialised {len(spec.files)} file(s)")
        return workdir

    def _check(self, spec: LaunchSpec) -> tuple[str, str] | None:
        readme = spec.files.get("README.md")
        if readme is not None:
            try:
                front_matter(readme.decode("utf-8", errors="replace"))
            except ValueError as error:
                return "CONFIG_ERROR", f"README.md: {error}"
        if "app.py" not in spec.files:
            if "Dockerfile" not in spec.files:
                return "NO_APP_FILE", "no Dockerfile and no app.py: nothing to run"
            return "BUILD_ERROR", "app.py is missing: the sandbox runs a Space as `python app.py`"
        try:
            compile(spec.files["app.py"], "app.py", "exec")
        except (SyntaxError, ValueError) as error:
            return "BUILD_ERROR", f"app.py does not compile: {error}"
        return None

    def _spawn(self, spec: LaunchSpec, workdir: Path, env: dict[str, str], port: int) -> _Child:
        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                app_command(),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        popen = self._spawner.call(start)
        log: deque[tuple[str, str]] = deque(maxlen=LOG_LINES)
        with self._lock:
            self._run_logs[spec.space_id] = log
        child = _Child(spec.space_id, spec.generation, popen, port, log)
        child.reader = threading.Thread(target=self._read, args=(child,), name=f"log-{spec.space_id}", daemon=True)
        child.reader.start()
        return child

    def _read(self, child: _Child) -> None:
        assert child.popen.stdout is not None
        for raw in child.popen.stdout:
            child.log.append((now_iso(), raw.decode("utf-8", errors="replace").rstrip("\n")))
        code = child.popen.wait()
        child.exited.set()
        if not child.stopping and self._children.get(child.space_id) is child:
            child.log.append((now_iso(), f"process exited with code {code}"))
            self.reporter.report(
                child.space_id, child.generation, "RUNTIME_ERROR", error=f"app exited with code {code}"
            )

    def _wait_healthy(self, child: _Child, current: Callable[[], bool]) -> str:
        deadline = time.monotonic() + self.health_timeout
        url = f"http://127.0.0.1:{child.port}/health"
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:
                if not current():
                    return "stale"
                if child.popen.poll() is not None:
                    return f"app exited with code {child.popen.returncode} before it was healthy"
                try:
                    if client.get(url).status_code == 200:
                        return "healthy"
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    return f"app did not answer 200 on /health within {self.health_timeout:g}s"
                time.sleep(self.health_interval)

    # --- stop --------------------------------------------------------------------------------------

    def _stop_locked(self, space_id: str) -> None:
        child = self._children.pop(space_id, None)
        if child is not None:
            self._stop_child(child)

    def _stop_child(self, child: _Child) -> None:
        child.stopping = True
        popen = child.popen
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=self.stop_timeout)
        # the group may hold grandchildren even when the leader is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        if child.reader is not None:
            child.reader.join(timeout=self.stop_timeout)

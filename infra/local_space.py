"""Run a rendered Space app as a local process on 127.0.0.1, for tests and the sandbox demo.

Docker is not needed: a Docker Space rendered by this toolkit runs as `python app.py` with
`HOST`/`PORT` set, which is exactly its Dockerfile's command. The process is always stopped on
exit, and `/health` is polled so callers get a URL that already answers.

The app never outlives its parent, even a SIGKILLed one that runs no clean-up: on Linux it is started
through the sandbox runtime's post-exec bootstrap (`infra.sandbox.runtime.app_command`), which sets
`PR_SET_PDEATHSIG` (SIGTERM) and then execs `app.py`; a `preexec_fn` could deadlock a threaded parent.
The signal fires when the *thread* that started the child ends, so enter and leave the context on one
thread that lives as long as the app should.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from infra.errors import UserError
from infra.render import write_space
from infra.sandbox.runtime import app_command, free_port  # the PR_SET_PDEATHSIG bootstrap, shared on purpose


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll `url/health` until 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the Space app exited with code {process.returncode} before it was healthy")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise UserError(f"the Space app at {url} was not healthy within {timeout:.0f}s")


@contextmanager
def serve_space_locally(
    files: Mapping[str, bytes],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Start the rendered app from `files` with `env` added (e.g. SPACE_API_KEY, LLM_ENGINE); yield its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="space-") as directory:
        write_space(dict(files), Path(directory))
        child_env = {**os.environ, "LLM_ENGINE": "echo", **(env or {}), "HOST": "127.0.0.1", "PORT": str(port)}
        log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - closed in finally
        process = subprocess.Popen(
            app_command(), cwd=directory, env=child_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()

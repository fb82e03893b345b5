"""Wait for Spaces to reach RUNNING after a write, or fail fast on an error stage with its log tail."""

from __future__ import annotations

import itertools
import time

from huggingface_hub import HfApi

from infra.errors import UserError
from infra.hub import call
from infra.progress import SILENT, Progress

ERROR_STAGES = frozenset({"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"})


class SpaceFailedError(UserError):
    """A Space ended in an error stage (or never got to RUNNING in time)."""

    def __init__(self, repo_id: str, stage: str, log_tail: list[str]) -> None:
        self.repo_id, self.stage, self.log_tail = repo_id, stage, log_tail
        tail = "\n".join(f"    | {line}" for line in log_tail) or "    | (no log available)"
        super().__init__(f"{repo_id}: {stage}; last log lines:\n{tail}")


def log_tail(api: HfApi, repo_id: str, build: bool, lines: int = 20) -> list[str]:
    """The last `lines` lines of a Space's build or run log, best effort (an empty list if unavailable)."""
    try:
        events = api.fetch_space_logs(repo_id, build=build)
        collected = [str(event.get("data", event)).rstrip() if isinstance(event, dict) else str(event).rstrip()
                     for event in itertools.islice(events, 10_000)]
    except Exception:  # noqa: BLE001 - a missing log must not hide the stage that failed
        return []
    return [line for line in collected if line][-lines:]


def wait_running(api: HfApi, repo_id: str, timeout: float = 600.0, poll: float = 1.0,
                 progress: Progress = SILENT) -> str:
    """Poll the runtime until RUNNING; raise `SpaceFailedError` on an error stage or timeout."""
    started = time.monotonic()
    last_stage = None
    while True:
        stage = str(call(repo_id, "runtime", lambda: api.get_space_runtime(repo_id)).stage)
        if stage != last_stage:
            progress.line(repo_id, "stage", stage, time.monotonic() - started)
            last_stage = stage
        if stage == "RUNNING":
            return stage
        if stage in ERROR_STAGES:
            raise SpaceFailedError(repo_id, stage, log_tail(api, repo_id, build=stage == "BUILD_ERROR"))
        if time.monotonic() - started > timeout:
            raise SpaceFailedError(repo_id, f"still {stage} after {timeout:.0f}s", log_tail(api, repo_id, False))
        time.sleep(poll)

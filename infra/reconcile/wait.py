"""Wait for Spaces to reach RUNNING after a write, or fail fast on an error stage with its log tail."""

from __future__ import annotations

import itertools
import time

from huggingface_hub import HfApi

from infra.errors import UserError
from infra.hub import call
from infra.progress import SILENT, Progress

ERROR_STAGES = frozenset({"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"})
TRANSITIONAL_STAGES = frozenset({"BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
ERROR_GRACE = 5.0  # seconds after a commit during which an error stage may still be the previous build's


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
                 progress: Progress = SILENT, expected_sha: str | None = None) -> str:
    """Poll the runtime until RUNNING; raise `SpaceFailedError` on an error stage or timeout.

    With `expected_sha` (the commit just made), RUNNING counts only once the runtime serves that
    commit: right after a commit the Hub may still report the previous build as RUNNING."""
    started = time.monotonic()
    last_seen = None
    while True:
        runtime = call(repo_id, "runtime", lambda: api.get_space_runtime(repo_id))
        stage = str(runtime.stage)
        serving = (runtime.raw or {}).get("sha")
        current = expected_sha is None or serving is None or serving == expected_sha
        seen = (stage, current)
        if seen != last_seen:
            detail = stage if current else f"{stage} (still the previous build {str(serving)[:12]})"
            progress.line(repo_id, "stage", detail, time.monotonic() - started)
            last_seen = seen
        if stage == "RUNNING" and current:
            return stage
        # An error of the previous build is not this commit's: wait for the Hub to pick the commit up (it may
        # not report which build errored, so give it a short grace period after the commit).
        settled = expected_sha is None or serving == expected_sha or time.monotonic() - started > ERROR_GRACE
        if stage in ERROR_STAGES and current and settled:
            raise SpaceFailedError(repo_id, stage, log_tail(api, repo_id, build=stage == "BUILD_ERROR"))
        if time.monotonic() - started > timeout:
            raise SpaceFailedError(repo_id, f"still {stage} after {timeout:.0f}s", log_tail(api, repo_id, False))
        time.sleep(poll)

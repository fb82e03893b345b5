"""What the admin page shows, gathered read-only: flags and history per environment, Space status
from the Hub, and the last smoke result from `.state/smoke-<env>.json`.

Nothing here writes. Every source may be down at 3 a.m., so each one degrades on its own: a flag
store that cannot be read shows its error (the rollback form stays usable), a Hub that does not answer
in a few seconds shows "unknown", and a missing smoke report shows "no result yet".
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import UserError
from infra.flags import FlagDocument, HistoryEntry, Snapshot

logger = logging.getLogger("infra.admin")

HUB_TIMEOUT = 4.0
HUB_CACHE_SECONDS = 15.0


@dataclass
class FlagView:
    """One environment's flags: the snapshot (may be None if the store failed) and its history."""

    store: str
    snapshot: Snapshot | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    error: str | None = None

    @property
    def document(self) -> FlagDocument | None:
        return self.snapshot.document if self.snapshot else None

    @property
    def version_token(self) -> str:
        """What a form carries to detect stale writes: the store's revision, or `none` if empty."""
        if self.snapshot is None:
            return "unknown"
        return self.snapshot.revision or "none"


@dataclass
class SpaceView:
    """One Space as the Hub reports it; fields are None when unknown."""

    tier: str
    repo_id: str
    stage: str | None = None
    hardware: str | None = None
    requested_hardware: str | None = None
    sha: str | None = None
    sha_kind: str = "running"
    url: str | None = None
    error: str | None = None
    smoke: dict[str, Any] | None = None


@dataclass
class SmokeView:
    """The last smoke report for an environment, if the smoke task saved one."""

    ok: bool | None = None
    finished_at: str | None = None
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    present: bool = False


def read_flags(store: Any, limit: int = 10) -> FlagView:
    view = FlagView(store=store.description)
    try:
        view.snapshot = store.snapshot()
        view.history = store.history(limit)
    except UserError as error:
        view.error = str(error)
    except Exception as error:  # noqa: BLE001 - a page must render whatever the store does
        logger.exception("reading flags from %s failed", store.description)
        view.error = f"reading {store.description} failed: {type(error).__name__}"
    return view


def read_smoke(state_dir: Path, env: str) -> SmokeView:
    path = state_dir / f"smoke-{env}.json"
    if not path.is_file():
        return SmokeView()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        spaces = {str(s.get("tier")): s for s in data.get("spaces", []) if isinstance(s, dict)}
        return SmokeView(ok=bool(data.get("ok")), finished_at=str(data.get("finished_at") or ""),
                         spaces=spaces, present=True)
    except (OSError, ValueError, AttributeError, TypeError) as error:
        return SmokeView(present=True, error=f"{path} is not a readable smoke report: {type(error).__name__}")


def _describe_hub_error(error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    name = type(error).__name__
    if status in (401, 403):
        return f"the Hub refused the request ({status}): set HF_TOKEN with read access"
    if status == 404:
        return "not found on the Hub (not provisioned yet, or no access with this token)"
    if status:
        return f"the Hub answered {status} ({name})"
    return f"Hub unreachable ({name})"


def _space_url(info: Any, runtime: Any) -> str | None:
    host = getattr(info, "host", None)
    if host:
        return host if str(host).startswith("http") else f"https://{host}"
    domains = (getattr(runtime, "raw", None) or {}).get("domains") or []
    for domain in domains:
        if isinstance(domain, dict) and domain.get("domain"):
            return f"https://{domain['domain']}"
    return None


def fetch_space(api: Any, tier: str, repo_id: str) -> SpaceView:
    """Ask the Hub about one Space, read-only: `space_info`, and `get_space_runtime` if needed."""
    view = SpaceView(tier=tier, repo_id=repo_id)
    try:
        info = api.space_info(repo_id)
        runtime = getattr(info, "runtime", None) or api.get_space_runtime(repo_id)
    except Exception as error:  # noqa: BLE001 - any Hub failure means "unknown", never a broken page
        view.error = _describe_hub_error(error)
        return view
    raw = getattr(runtime, "raw", None) or {}
    view.stage = str(getattr(runtime, "stage", None) or "") or None
    view.hardware = getattr(runtime, "hardware", None)
    view.requested_hardware = getattr(runtime, "requested_hardware", None)
    if raw.get("sha"):
        view.sha = str(raw["sha"])
    elif getattr(info, "sha", None):
        view.sha, view.sha_kind = str(info.sha), "head"
    view.url = _space_url(info, runtime)
    return view


class SpaceStatus:
    """Space status for every (env, tier), fetched concurrently with a deadline and cached briefly."""

    def __init__(self, api: Any | None, *, timeout: float = HUB_TIMEOUT, cache_seconds: float = HUB_CACHE_SECONDS,
                 unavailable: str | None = None) -> None:
        self.api = api
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.unavailable = unavailable
        self._cache: dict[str, tuple[float, list[SpaceView]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="admin-hub")

    def get(self, env: str, spaces: list[tuple[str, str]]) -> list[SpaceView]:
        cached = self._cache.get(env)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        if self.api is None:
            return [SpaceView(tier, repo, error=self.unavailable or "Hub not configured") for tier, repo in spaces]
        futures = [(tier, repo, self._pool.submit(fetch_space, self.api, tier, repo)) for tier, repo in spaces]
        deadline = time.monotonic() + self.timeout
        views = []
        for tier, repo, future in futures:
            try:
                views.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                views.append(SpaceView(tier, repo, error=f"Hub did not answer within {self.timeout:g}s"))
        self._cache[env] = (time.monotonic(), views)
        return views

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def default_hub_api() -> tuple[Any | None, str | None]:
    """A read-only `HfApi` on HF_ENDPOINT with the resolved token (`infra.hub`), or (None, why)."""
    import os

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return None, "HF_HUB_OFFLINE is set: Space status not fetched"
    try:
        from infra.hub import make_api

        return make_api(), None
    except Exception as error:  # noqa: BLE001 - the page works without the Hub
        return None, f"Hub client unavailable ({type(error).__name__})"

"""The Hub's stored state: Space repos, their commits and files, settings, secrets, stats.

File contents live in a content-addressed blob store keyed by git blob id; a commit records the full
path -> blob id map of its tree, so any revision can be listed or downloaded. With a data directory
everything is written to disk after each change (`state.json` + `blobs/`, atomically replaced, mode
0600 because Space secrets are stored there just as the Hub stores them); without one it is in memory.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.sandbox.auth import User, Users
from infra.sandbox.hashing import git_blob_sha

STATE_VERSION = 1


def now_iso() -> str:
    """The current time in the Hub's ISO format (milliseconds, `Z`)."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Commit:
    """One commit of a Space: metadata plus the complete path -> blob id map of its tree."""

    id: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, str]


@dataclass
class Space:
    """A Space repo and its settings; `stage` and friends describe its runtime."""

    id: str
    private: bool
    sdk: str
    created_at: str
    last_modified: str
    head: str = ""  # commit id of branch `main`
    commits: dict[str, Commit] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {value, description, updatedAt}
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {value, description, updatedAt}
    hardware: str = "cpu-basic"  # requested flavor
    current_hardware: str | None = None  # flavor it last started on
    sleep_time: int | None = None
    gated: bool | str = False
    stage: str = "NO_APP_FILE"
    error_message: str | None = None
    port: int | None = None
    running_sha: str | None = None

    @property
    def namespace(self) -> str:
        """The owner (user or organisation)."""
        return self.id.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The repo name without owner."""
        return self.id.split("/", 1)[1]

    def head_commit(self) -> Commit:
        """The commit `main` points to."""
        return self.commits[self.head]

    def history(self, start: str) -> list[Commit]:
        """Commits reachable from `start`, newest first (first-parent chain; history is linear)."""
        out = []
        sha: str | None = start
        while sha:
            commit = self.commits[sha]
            out.append(commit)
            sha = commit.parents[0] if commit.parents else None
        return out


def _empty_stats() -> dict[str, Any]:
    return {"builds": 0, "restarts": 0, "write_calls": 0, "writes_by_route": {}}


class Store:
    """All repos, users, blobs and counters, guarded by one lock, optionally persisted to a directory."""

    def __init__(self, data_dir: Path | None) -> None:
        self.lock = threading.RLock()
        self.data_dir = data_dir
        self.spaces: dict[str, Space] = {}
        self.users = Users()
        self.stats: dict[str, dict[str, Any]] = {}
        self.total_writes = 0
        self._blobs: dict[str, bytes] = {}
        if data_dir is not None:
            (data_dir / "blobs").mkdir(parents=True, exist_ok=True)
            self._load()

    # --- blobs -------------------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        """Store `data`; return its git blob id."""
        sha = git_blob_sha(data)
        if self.data_dir is None:
            self._blobs[sha] = data
        else:
            path = self._blob_path(sha)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
        return sha

    def blob(self, sha: str) -> bytes:
        """The content of a stored blob."""
        if self.data_dir is None:
            return self._blobs[sha]
        return self._blob_path(sha).read_bytes()

    def blob_size(self, sha: str) -> int:
        """The size in bytes of a stored blob."""
        if self.data_dir is None:
            return len(self._blobs[sha])
        return self._blob_path(sha).stat().st_size

    def _blob_path(self, sha: str) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "blobs" / sha[:2] / sha[2:]

    # --- counters ----------------------------------------------------------------------------------

    def space_stats(self, space_id: str) -> dict[str, Any]:
        """The mutable counters of one Space (kept after the Space is deleted)."""
        return self.stats.setdefault(space_id, _empty_stats())

    def count_write(self, space_id: str, route: str) -> None:
        """Record one mutating API call aimed at `space_id`."""
        with self.lock:
            stats = self.space_stats(space_id)
            stats["write_calls"] += 1
            stats["writes_by_route"][route] = stats["writes_by_route"].get(route, 0) + 1
            self.total_writes += 1
            self.save()

    def stats_snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of all counters."""
        with self.lock:
            return {
                "spaces": json.loads(json.dumps(self.stats)),
                "total": {
                    "write_calls": self.total_writes,
                    "builds": sum(s["builds"] for s in self.stats.values()),
                    "restarts": sum(s["restarts"] for s in self.stats.values()),
                },
            }

    # --- persistence -------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the state to disk (no-op in memory mode)."""
        if self.data_dir is None:
            return
        with self.lock:
            doc = {
                "version": STATE_VERSION,
                "spaces": [asdict(space) for space in self.spaces.values()],
                "users": [asdict(user) for user in self.users.all()],
                "stats": self.stats,
                "total_writes": self.total_writes,
            }
            path = self.data_dir / "state.json"
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(doc, handle)
            os.replace(tmp, path)

    def _load(self) -> None:
        assert self.data_dir is not None
        path = self.data_dir / "state.json"
        if not path.exists():
            return
        doc = json.loads(path.read_text())
        for raw in doc.get("spaces", []):
            commits = {sha: Commit(**c) for sha, c in raw.pop("commits").items()}
            self.spaces[raw["id"]] = Space(**raw, commits=commits)
        for raw in doc.get("users", []):
            self.users.add(User(**raw))
        self.stats = doc.get("stats", {})
        self.total_writes = doc.get("total_writes", 0)

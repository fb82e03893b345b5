"""Helpers for tests: paths of the repo and running Invoke tasks as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "spaces.yaml"
# The value tests give $SPACE_HF_TOKEN (the Spaces' read token, declared as their HF_TOKEN secret).
SPACE_HF_TOKEN_FOR_TESTS = "space-read-token-for-tests"


def run_invoke(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` as a user would, from the repo root; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )

"""Waiting for a Space after a write: only the new commit's state counts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from infra.reconcile.wait import SpaceFailedError, wait_running


class ScriptedRuntime:
    """`get_space_runtime` answers from a script of (stage, serving sha); the last answer repeats."""

    def __init__(self, script: list[tuple[str, str | None]]) -> None:
        self.script = list(script)

    def get_space_runtime(self, repo_id: str) -> SimpleNamespace:
        stage, sha = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return SimpleNamespace(stage=stage, raw={"stage": stage, "sha": sha})

    def fetch_space_logs(self, repo_id: str, build: bool) -> list[dict]:
        return [{"data": "boom"}]


def test_an_error_of_the_previous_build_is_not_this_commits() -> None:
    api = ScriptedRuntime([("RUNTIME_ERROR", "old"), ("BUILDING", None), ("RUNNING", "old"), ("RUNNING", "new")])
    assert wait_running(api, "acme-ai/x", poll=0, expected_sha="new") == "RUNNING"
    assert api.script == [("RUNNING", "new")], "the old build's RUNNING was not taken for the new one"


def test_an_error_of_the_new_commit_fails_at_once_with_the_log() -> None:
    api = ScriptedRuntime([("BUILDING", None), ("BUILD_ERROR", "new")])
    with pytest.raises(SpaceFailedError, match="BUILD_ERROR") as caught:
        wait_running(api, "acme-ai/x", poll=0, expected_sha="new")
    assert caught.value.log_tail == ["boom"]


def test_without_an_expected_commit_any_error_stage_fails() -> None:
    with pytest.raises(SpaceFailedError, match="RUNTIME_ERROR"):
        wait_running(ScriptedRuntime([("RUNTIME_ERROR", None)]), "acme-ai/x", poll=0)

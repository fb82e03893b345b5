"""Which revision `--to-revision PREVIOUS` (or a sha) restores, on a scripted commit history."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from huggingface_hub.hf_api import RepoFile

from infra.errors import UserError
from infra.hub import RetryPolicy
from infra.release import ROLLBACK_TITLE, _resolve_revision

POLICY = RetryPolicy(attempts=1)


class ScriptedHub:
    """`list_repo_commits` (newest first) and `list_repo_tree`; C0 is the Hub's creation commit (no app)."""

    def __init__(self, commits: list[tuple[str, str]]) -> None:
        self.commits = commits

    def list_repo_commits(self, repo_id: str, repo_type: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(commit_id=sha, title=title) for sha, title in self.commits]

    def list_repo_tree(self, repo_id: str, repo_type: str, recursive: bool, revision: str) -> list[RepoFile]:
        creation = revision.lower().startswith("c0")
        paths = [".gitattributes", "README.md"] if creation else ["app.py", "Dockerfile", "README.md"]
        return [RepoFile(path=path, size=1, oid="0" * 40) for path in paths]


def _previous(commits: list[tuple[str, str]], head: str) -> str:
    return _resolve_revision(ScriptedHub(commits), "acme-ai/x", head, "PREVIOUS", POLICY)


def test_previous_is_what_ran_before_even_across_a_rollback_commit() -> None:
    history = [("D4", "Deploy"), ("R1", f"{ROLLBACK_TITLE}D2 (PREVIOUS of D3)"), ("D3", "Deploy"),
               ("D2", "Deploy"), ("D1", "Deploy"), ("C0", "initial commit")]
    assert _previous(history, "D4") == "D2", "R1 ran D2's files, so D2 is what ran before D4"
    assert _previous(history[1:], "R1") == "D1", "running a rollback to D2: previous is before D2"
    assert _previous(history[2:], "D3") == "D2"


def test_previous_never_restores_the_creation_commit() -> None:
    with pytest.raises(UserError, match="no deployed revision before D1"):
        _previous([("D1", "Deploy"), ("C0", "initial commit")], "D1")


def test_a_sha_without_the_app_is_refused_and_a_short_sha_is_resolved() -> None:
    hub = ScriptedHub([("d1aaaaaaaa", "Deploy"), ("c0ccccccccc", "initial commit")])
    with pytest.raises(UserError, match="has no app.py or Dockerfile"):
        _resolve_revision(hub, "acme-ai/x", "d1aaaaaaaa", "c0ccccccccc", POLICY)
    assert _resolve_revision(hub, "acme-ai/x", "d1aaaaaaaa", "d1aaaaa", POLICY) == "d1aaaaaaaa"

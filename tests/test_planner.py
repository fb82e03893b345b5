"""The planner alone (no Hub): how the Hub's own defaults read against the declaration."""

from __future__ import annotations

from support import CONFIG

from infra import fingerprint
from infra.reconcile.actual import git_blob_id
from infra.reconcile.model import ActualSpace, DesiredSpace
from infra.reconcile.planner import plan_space
from infra.spec import load_declaration


def _desired(env: str = "prod") -> DesiredSpace:
    space = load_declaration(CONFIG, environ={}).space(env, "base")
    return DesiredSpace(space=space, files={"app.py": b"print()\n"}, variables=dict(space.variables),
                        secrets={"SPACE_API_KEY": "k"})


def _actual(desired: DesiredSpace, **changes) -> ActualSpace:  # noqa: ANN003
    space = desired.space
    values = dict(repo_id=space.repo_id, exists=True, sha="a" * 40, private=space.private,
                  files={".gitattributes": "x", **{p: git_blob_id(c) for p, c in desired.files.items()}},
                  hardware=space.hardware, requested_hardware=space.hardware, sleep_time=space.sleep_time,
                  stage="RUNNING", variables=dict(desired.variables),
                  secrets={"SPACE_API_KEY": fingerprint.make("k")})
    values.update(changes)
    return ActualSpace(**values)


def test_matching_space_has_no_changes_and_hub_files_are_kept() -> None:
    desired = _desired()
    assert not plan_space(desired, _actual(desired)).has_changes


def test_no_reported_sleep_time_on_upgraded_hardware_means_never_sleep() -> None:
    desired = _desired("prod")  # declares sleep_time -1 on t4-small
    assert desired.space.sleep_time == -1
    assert not plan_space(desired, _actual(desired, sleep_time=None)).has_changes
    assert plan_space(desired, _actual(desired, sleep_time=3600)).sleep_time == (3600, -1)


def test_toolkit_variables_survive_and_unknown_ones_are_removed() -> None:
    desired = _desired()
    plan = plan_space(desired, _actual(desired, variables={**desired.variables, "TOOLKIT_PROMOTED_FROM": "x@y",
                                                           "STALE": "1"}))
    assert plan.variables_deleted == ["STALE"]


def test_secret_not_declared_any_more_is_removed_and_printed_by_name_only() -> None:
    desired = _desired()
    plan = plan_space(desired, _actual(desired, secrets={"SPACE_API_KEY": fingerprint.make("k"), "OLD": None}))
    assert plan.secrets_deleted == ["OLD"] and plan.describe() == ["- secret OLD: (removed)"]
    rotated = plan_space(desired, _actual(desired, secrets={"SPACE_API_KEY": fingerprint.make("other")}))
    assert rotated.describe() == ["~ secret SPACE_API_KEY: (changed)"]
    assert "other" not in repr(rotated.to_json())

"""Plan and apply against the sandbox Hub, counted by the sandbox: only the writes a change needs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from huggingface_hub import HfApi
from support import CONFIG, SPACE_HF_TOKEN_FOR_TESTS, run_invoke

from infra.hub import RetryPolicy, make_api
from infra.reconcile import apply_environment, desired_spaces, plan_environment
from infra.reconcile.apply import ConcurrentChangeError, apply_plan
from infra.reconcile.model import DesiredSpace
from infra.sandbox import run_sandbox
from infra.spec import load_declaration

SECRETS = {"SPACE_API_KEY": "space-key-1", "SPACE_HF_TOKEN": SPACE_HF_TOKEN_FOR_TESTS}
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def sandbox() -> Iterator:
    with run_sandbox(owner="acme-ai") as sb:
        yield sb


def _api(sb) -> HfApi:  # noqa: ANN001
    return make_api(sb.url, sb.token)


def _desired(env: str = "staging", secrets: dict | None = None) -> list[DesiredSpace]:
    return desired_spaces(load_declaration(CONFIG, environ={}), env, environ=secrets or SECRETS)


def _up(sb, desired: list[DesiredSpace], policy: RetryPolicy = FAST) -> list:  # noqa: ANN001
    api = _api(sb)
    plans = plan_environment(api, desired, policy=policy)
    return apply_environment(api, plans, policy=policy, poll=0.1, timeout=60)


def _writes(sb) -> dict[str, dict]:  # noqa: ANN001
    return {space: dict(stats["writes_by_route"]) for space, stats in sb.stats()["spaces"].items()}


def _delta(before: dict, after: dict) -> dict[str, dict]:
    changed = {}
    for space, routes in after.items():
        diff = {route: n - before.get(space, {}).get(route, 0) for route, n in routes.items()}
        diff = {route: n for route, n in diff.items() if n}
        if diff:
            changed[space] = diff
    return changed


def test_create_from_nothing_gives_three_running_spaces_serving_the_app(sandbox) -> None:  # noqa: ANN001
    results = _up(sandbox, _desired())
    assert [r.error for r in results] == [None, None, None]
    assert all(r.stage == "RUNNING" and r.steps == ["create", "commit"] for r in results)
    stats = sandbox.stats()["spaces"]
    assert all(stats[r.plan.repo_id]["builds"] == 1 and stats[r.plan.repo_id]["restarts"] == 0 for r in results)
    api = _api(sandbox)
    for result in results:
        info = api.space_info(result.plan.repo_id)
        assert info.runtime.hardware == "cpu-upgrade" or info.runtime.requested_hardware == "cpu-upgrade"
        assert set(api.get_space_secrets(result.plan.repo_id)) == set(result.plan.desired.secrets)
        models = httpx.get(f"{info.host}/v1/models", headers={"Authorization": "Bearer space-key-1"})
        assert models.json()["data"][0]["id"] == result.plan.desired.space.model


def test_second_up_makes_zero_write_calls(sandbox) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    before = sandbox.stats()["total"]
    plans = plan_environment(_api(sandbox), _desired())
    assert not any(p.has_changes for p in plans)
    results = _up(sandbox, _desired())
    assert all(r.steps == [] for r in results)
    assert sandbox.stats()["total"] == before


def _change(desired: list[DesiredSpace], tier: str, **updates) -> list[DesiredSpace]:  # noqa: ANN003
    for item in desired:
        if item.space.tier == tier:
            space_updates = {k: v for k, v in updates.items() if k in ("hardware", "private", "sleep_time")}
            item.space = item.space.model_copy(update=space_updates)
            if "files" in updates:
                item.files = updates["files"](item.files)
            if "variables" in updates:
                item.variables = {**item.variables, **updates["variables"]}
            if "secrets" in updates:
                item.secrets = {**item.secrets, **updates["secrets"]}
    return desired


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"files": lambda f: {**f, "app.py": f["app.py"] + b"\n# touched\n"}}, {"create_commit": 1}),
        ({"files": lambda f: {k: v for k, v in f.items() if k != "requirements.txt"} | {"NOTES.md": b"x\n"}},
         {"create_commit": 1}),
        ({"hardware": "t4-small"}, {"request_space_hardware": 1}),
        ({"hardware": "t4-small", "sleep_time": 7200}, {"request_space_hardware": 1}),
        ({"sleep_time": 7200}, {"set_space_sleep_time": 1}),
        ({"private": False}, {"update_repo_settings": 1}),
        ({"variables": {"LOG_LEVEL": "debug"}}, {"space_variable": 1}),
        ({"secrets": {"SPACE_API_KEY": "space-key-2"}}, {"space_secret": 1}),
    ],
    ids=["file-changed", "file-deleted-and-added", "hardware", "hardware+sleep", "sleep", "visibility",
         "variable", "secret-rotated"],
)
def test_each_kind_of_change_makes_exactly_its_writes(sandbox, change: dict, expected: dict) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    before = _writes(sandbox)
    desired = _change(_desired(), "company", **change)
    plans = plan_environment(_api(sandbox), desired)
    assert [p.tier for p in plans if p.has_changes] == ["company"]
    results = _up(sandbox, desired)
    assert all(r.ok for r in results), [r.error for r in results]
    assert _delta(before, _writes(sandbox)) == {"acme-ai/company-specific-llm-staging": expected}
    assert not any(p.has_changes for p in plan_environment(_api(sandbox), desired)), "converged"


def test_file_removed_from_templates_is_deleted_in_the_same_commit(sandbox) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    desired = _change(_desired(), "base", files=lambda f: {**f, "requirements.txt": b"starlette\n", "extra.txt": b"x"})
    [plan] = [p for p in plan_environment(_api(sandbox), desired) if p.has_changes]
    assert plan.files_added == ["extra.txt"] and plan.files_changed == ["requirements.txt"]
    _up(sandbox, desired)
    desired = _change(_desired(), "base", files=lambda f: {k: v for k, v in f.items() if k != "requirements.txt"})
    [plan] = [p for p in plan_environment(_api(sandbox), desired) if p.has_changes]
    assert plan.files_deleted == ["extra.txt", "requirements.txt"]
    commits_before = len(_api(sandbox).list_repo_commits(plan.repo_id, repo_type="space"))
    apply_plan(_api(sandbox), plan)
    api = _api(sandbox)
    assert {"extra.txt", "requirements.txt"}.isdisjoint(api.list_repo_files(plan.repo_id, repo_type="space"))
    assert len(api.list_repo_commits(plan.repo_id, repo_type="space")) == commits_before + 1


def test_secret_rotation_is_detected_without_reading_values(sandbox) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    rotated = _desired(secrets={**SECRETS, "SPACE_HF_TOKEN": "hf-token-2"})
    changes = {p.tier: p.secrets_set for p in plan_environment(_api(sandbox), rotated) if p.has_changes}
    assert changes == {"company": {"HF_TOKEN": "changed"}, "abstraction": {"HF_TOKEN": "changed"}}


@pytest.mark.parametrize(
    "fault",
    [{"route": "POST /api/repos/create", "status": 429, "retry_after": 0, "count": 2},
     {"route": "POST /api/spaces/.*/commit/", "status": 500, "count": 2},
     {"route": "GET /api/spaces/", "drop_connection": True, "count": 2},
     {"route": "POST /api/spaces/.*/commit/", "drop_connection": True, "count": 1}],
    ids=["429-retry-after", "500", "dropped-read", "dropped-commit"],
)
def test_faults_are_survived_and_state_converges(sandbox, fault: dict) -> None:  # noqa: ANN001
    sandbox.set_faults([fault])
    results = _up(sandbox, _desired())
    assert all(r.ok for r in results), [r.error for r in results]
    assert sandbox.stats()["faults"]["injected"] >= 1
    sandbox.clear_faults()
    assert not any(p.has_changes for p in plan_environment(_api(sandbox), _desired()))


def test_persistent_fault_gives_a_clear_error_naming_space_and_step(sandbox) -> None:  # noqa: ANN001
    sandbox.set_faults([{"route": "POST /api/spaces/.*company-base.*/commit/", "status": 503}])
    results = _up(sandbox, _desired(), policy=RetryPolicy(attempts=2, base_delay=0.01))
    failed = [r for r in results if not r.ok]
    assert len(failed) == 1
    assert failed[0].error.startswith("acme-ai/company-base-llm-staging: commit failed after 2 attempts: HTTP 503")


def test_apply_interrupted_half_way_converges_on_rerun(sandbox) -> None:  # noqa: ANN001
    # Every commit fails: each Space is created (with settings) but has no files yet.
    sandbox.set_faults([{"route": "POST /api/spaces/.*/commit/", "status": 500}])
    results = _up(sandbox, _desired(), policy=RetryPolicy(attempts=1))
    assert not any(r.ok for r in results)
    sandbox.clear_faults()
    plans = plan_environment(_api(sandbox), _desired())
    assert all(not p.create and p.files_added for p in plans), "the re-run resumes: no re-create"
    results = _up(sandbox, _desired())
    assert all(r.ok and r.stage == "RUNNING" for r in results)
    assert not any(p.has_changes for p in plan_environment(_api(sandbox), _desired()))


def test_concurrent_writer_is_detected_not_overwritten(sandbox) -> None:  # noqa: ANN001
    from huggingface_hub import CommitOperationAdd

    _up(sandbox, _desired())
    desired = _change(_desired(), "base", files=lambda f: {**f, "app.py": f["app.py"] + b"#mine\n"})
    [plan] = [p for p in plan_environment(_api(sandbox), desired) if p.has_changes]
    _api(sandbox).create_commit(plan.repo_id, repo_type="space", commit_message="someone else",
                                operations=[CommitOperationAdd("theirs.txt", b"theirs")])
    with pytest.raises(ConcurrentChangeError, match="changed since it was read"):
        apply_plan(_api(sandbox), plan)
    assert "theirs.txt" in _api(sandbox).list_repo_files(plan.repo_id, repo_type="space")


def test_tasks_plan_up_status_with_exit_codes_and_no_secret_in_output(sandbox) -> None:  # noqa: ANN001
    canary = "canary-secret-value-9b1e"
    env = {"HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "SPACE_API_KEY": canary, "SPACE_HF_TOKEN": canary}
    first = run_invoke("plan", "--env", "staging", "--json", env=env)
    assert first.returncode == 2, first.stderr
    plan = json.loads(first.stdout)
    assert plan["changes"] == 3 and {s["action"] for s in plan["spaces"]} == {"create"}
    up = run_invoke("up", "--env", "staging", "--yes", env=env)
    assert up.returncode == 0, up.stderr
    again = run_invoke("plan", "--env", "staging", env=env)
    assert again.returncode == 0 and "No changes." in again.stdout
    status = run_invoke("status", "--env", "staging", "--json", env=env)
    rows = json.loads(status.stdout)["spaces"]
    assert [row["stage"] for row in rows] == ["RUNNING"] * 3 and all(row["url"] for row in rows)
    rotated = run_invoke("plan", "--env", "staging", env={**env, "SPACE_API_KEY": canary + "-2"})
    assert rotated.returncode == 2 and "SPACE_API_KEY: (changed)" in rotated.stdout
    for result in (first, up, again, status, rotated):
        assert canary not in result.stdout + result.stderr
        assert sandbox.token not in result.stdout + result.stderr


def test_plan_without_secret_values_fails_before_any_hub_call(sandbox) -> None:  # noqa: ANN001
    env = {"HF_ENDPOINT": sandbox.url, "HF_TOKEN": "", "SPACE_API_KEY": "", "SPACE_HF_TOKEN": ""}
    result = run_invoke("plan", "--env", "staging", env=env)
    assert result.returncode == 1
    assert "missing secret values" in result.stderr and "$SPACE_API_KEY" in result.stderr
    assert sandbox.stats()["total"]["write_calls"] == 0


def test_destroy_asks_and_deletes_with_yes(sandbox) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    env = {"HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token}
    refused = run_invoke("destroy", "--env", "staging", env=env)
    assert refused.returncode == 1 and "aborted" in refused.stderr
    assert run_invoke("destroy", "--env", "staging", "--yes", env=env).returncode == 0
    api = _api(sandbox)
    assert not any(api.repo_exists(d.space.repo_id, repo_type="space") for d in _desired())


def test_up_killed_mid_apply_converges_on_rerun(sandbox) -> None:  # noqa: ANN001
    import os
    import signal
    import subprocess
    import sys
    import time

    from support import ROOT

    env = {**os.environ, "HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "SPACE_API_KEY": "kill-key"}
    sandbox.set_faults([{"route": "POST /api/spaces/.*/commit/", "latency_ms": 1500}])
    process = subprocess.Popen([sys.executable, "-m", "invoke", "up", "--env", "staging", "--yes"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sandbox.stats()["total"]["write_calls"] < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert sandbox.stats()["total"]["write_calls"] >= 3, "killed after the creates, while commits were in flight"
    sandbox.clear_faults()
    rerun = run_invoke("up", "--env", "staging", "--yes", env={k: env[k] for k in ("HF_ENDPOINT", "HF_TOKEN",
                                                                                  "SPACE_API_KEY")})
    assert rerun.returncode == 0, rerun.stderr
    final = run_invoke("plan", "--env", "staging", env={"HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token,
                                                        "SPACE_API_KEY": "kill-key"})
    assert final.returncode == 0 and "No changes." in final.stdout


def test_up_with_nothing_to_write_still_reports_a_broken_space(sandbox) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    broken = "acme-ai/company-abstraction-llm-staging"
    sandbox.set_stage(broken, "RUNTIME_ERROR", error="crashed")
    env = {"HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "SPACE_API_KEY": SECRETS["SPACE_API_KEY"]}
    result = run_invoke("up", "--env", "staging", "--yes", env={**env, "HF_TOKEN": sandbox.token})
    assert result.returncode == 1
    assert f"{broken}: RUNTIME_ERROR" in result.stderr
    assert sandbox.stats()["total"]["write_calls"] == 6, "reporting a broken Space writes nothing"


def test_wait_requires_the_new_commit_to_be_served(sandbox) -> None:  # noqa: ANN001
    results = _up(sandbox, _desired())
    api = _api(sandbox)
    for result in results:
        runtime = api.get_space_runtime(result.plan.repo_id)
        assert result.plan.committed and runtime.raw["sha"] == result.plan.committed


def test_up_with_nothing_to_write_leaves_a_sleeping_space_alone(sandbox) -> None:  # noqa: ANN001
    _up(sandbox, _desired())
    sleeping = "acme-ai/company-base-llm-staging"
    sandbox.set_stage(sleeping, "SLEEPING")
    env = {"HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "SPACE_API_KEY": SECRETS["SPACE_API_KEY"]}
    result = run_invoke("up", "--env", "staging", "--yes", "--timeout", "20", env=env)
    assert result.returncode == 0, result.stderr
    assert "No changes." in result.stdout
    assert sandbox.stage(sleeping) == "SLEEPING"

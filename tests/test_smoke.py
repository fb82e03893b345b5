"""Smoke checks on the sandbox Hub: pass on healthy Spaces, fail precisely (tier + check) otherwise."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from huggingface_hub import HfApi
from support import CONFIG, run_invoke

from infra.hub import RetryPolicy, make_api
from infra.reconcile import apply_environment, desired_spaces, plan_environment
from infra.sandbox import run_sandbox
from infra.smoke import CHECKS, SmokeReport, api_key_from_environ, save_report, smoke_environment
from infra.spec import load_declaration

KEY = "smoke-key-0123456789"
SECRETS = {"SPACE_API_KEY": KEY, "SPACE_HF_TOKEN": "hf-token-smoke"}
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
DECL = load_declaration(CONFIG, environ={})


@pytest.fixture
def staging() -> Iterator:
    """A sandbox with the staging environment up and RUNNING."""
    with run_sandbox(owner="acme-ai") as sb:
        api = make_api(sb.url, sb.token)
        plans = plan_environment(api, desired_spaces(DECL, "staging", environ=SECRETS), policy=FAST)
        results = apply_environment(api, plans, policy=FAST, poll=0.1, timeout=60)
        assert all(r.ok for r in results), [r.error for r in results]
        yield sb


def _api(sb) -> HfApi:  # noqa: ANN001
    return make_api(sb.url, sb.token)


def _smoke(sb, key: str = KEY, **kwargs) -> SmokeReport:  # noqa: ANN001, ANN003
    kwargs = {"timeout": 30, "request_timeout": 5, "poll": 0.1, "policy": FAST, **kwargs}
    return smoke_environment(_api(sb), DECL, "staging", key, **kwargs)


def _repo(tier: str) -> str:
    return DECL.space("staging", tier).repo_id


def test_healthy_spaces_pass_every_check_and_the_report_has_the_admin_shape(staging, tmp_path) -> None:  # noqa: ANN001
    report = _smoke(staging)
    assert report.ok, report.failures
    assert [s.tier for s in report.spaces] == ["base", "company", "abstraction"]
    for space in report.spaces:
        assert [c.name for c in space.checks] == list(CHECKS)
        assert space.url == staging.host(space.space)  # the URL came from the Hub
        assert all(c.latency_ms >= 0 for c in space.checks)
    assert report.space("company").check("models").detail == "acme-ai/acme-llm"
    path = save_report(report, tmp_path / ".state")
    saved = json.loads(path.read_text())
    assert path.name == "smoke-staging.json"
    assert {"env", "ok", "finished_at", "spaces"} <= set(saved)
    assert saved["ok"] is True and saved["env"] == "staging"
    assert set(saved["spaces"][0]) >= {"tier", "space", "ok", "checks"}
    assert set(saved["spaces"][0]["checks"][0]) == {"name", "ok", "latency_ms", "detail"}
    assert KEY not in path.read_text()


def test_a_crashing_app_fails_running_at_once_with_its_log_tail(staging) -> None:  # noqa: ANN001
    crash = b"raise SystemExit('boom: the app crashed at start-up')\n"
    _api(staging).upload_file(path_or_fileobj=crash, path_in_repo="app.py", repo_id=_repo("company"),
                              repo_type="space", commit_message="break the app")
    started = time.monotonic()
    report = _smoke(staging, timeout=60)
    assert time.monotonic() - started < 20  # an error stage fails at once, not at the timeout
    assert not report.ok
    assert report.failed_checks() == {"company": ["running"]}
    detail = report.space("company").check("running").detail
    assert "RUNTIME_ERROR" in detail and "boom: the app crashed" in detail
    assert any(line.startswith("company: running: RUNTIME_ERROR") for line in report.failures)


def test_a_sleeping_space_is_woken_and_passes(staging) -> None:  # noqa: ANN001
    staging.set_stage(_repo("base"), "SLEEPING")
    restarts = staging.stats()["spaces"][_repo("base")]["restarts"]
    report = _smoke(staging)
    assert report.ok, report.failures
    assert "woken" in report.space("base").check("running").detail
    assert staging.stats()["spaces"][_repo("base")]["restarts"] == restarts + 1


def test_a_sleeping_space_that_cannot_be_woken_fails_clearly(staging) -> None:  # noqa: ANN001
    staging.set_stage(_repo("base"), "SLEEPING")
    staging.set_faults([{"route": r"POST /api/spaces/acme-ai/company-base-llm-staging/restart", "status": 503}])
    report = _smoke(staging)
    assert report.failed_checks() == {"base": ["running"]}
    detail = report.space("base").check("running").detail
    assert "wake failed" in detail and "503" in detail


def test_a_space_stuck_building_times_out_naming_the_stage(staging) -> None:  # noqa: ANN001
    staging.set_stage(_repo("abstraction"), "BUILDING")
    report = _smoke(staging, timeout=1.5)
    assert report.failed_checks() == {"abstraction": ["running"]}
    assert report.space("abstraction").check("running").detail.startswith("still BUILDING after 2s")


def test_a_wrong_key_fails_the_authenticated_checks_of_every_tier_and_is_never_printed(staging) -> None:  # noqa: ANN001
    wrong = "not-the-key-987654321"
    report = _smoke(staging, key=wrong)
    assert report.failed_checks() == {tier: ["models", "chat", "stream"] for tier in ("base", "company", "abstraction")}
    base = report.space("base")
    assert base.check("health").ok and base.check("auth_refused").ok
    assert "401" in base.check("models").detail
    text = json.dumps(report.to_json())
    assert wrong not in text and KEY not in text


def test_api_key_comes_from_the_declared_variable() -> None:
    assert api_key_from_environ(DECL, {"SPACE_API_KEY": "k"}) == "k"
    with pytest.raises(Exception, match=r"\$SPACE_API_KEY"):
        api_key_from_environ(DECL, {})


def test_invoke_smoke_json_report_and_exit_codes(staging, tmp_path) -> None:  # noqa: ANN001
    env = {"HF_ENDPOINT": staging.url, "HF_TOKEN": staging.token, "SPACE_API_KEY": KEY}
    state = tmp_path / "state"
    ok = run_invoke("smoke", "--env", "staging", "--json", "--timeout", "30", "--request-timeout", "5",
                    "--state-dir", str(state), env=env)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True and len(report["spaces"]) == 3
    assert json.loads((state / "smoke-staging.json").read_text())["ok"] is True
    assert "auth_refused" in ok.stderr  # the table went to stderr

    bad = run_invoke("smoke", "--env", "staging", "--timeout", "30", "--request-timeout", "5",
                     "--state-dir", str(state), env={**env, "SPACE_API_KEY": "wrong-key-123456"})
    assert bad.returncode == 1
    assert "error: company: models: " in bad.stderr
    assert "wrong-key-123456" not in bad.stdout + bad.stderr
    assert json.loads((state / "smoke-staging.json").read_text())["ok"] is False

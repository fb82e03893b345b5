"""Promotion staging -> prod and revision rollback, on the sandbox Hub with moto's server as the flag store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import boto3
import httpx
import pytest
from huggingface_hub import HfApi
from moto.server import ThreadedMotoServer
from support import CONFIG, run_invoke

from infra.errors import UserError
from infra.flags import FlagChange, SSMFlagStore, apply_change
from infra.hub import RetryPolicy, make_api
from infra.progress import SILENT
from infra.reconcile import apply_environment, desired_spaces, plan_environment, read_actual
from infra.release import (
    ENVIRONMENT_FILES,
    PROMOTED_FROM_VARIABLE,
    SourceRevision,
    promote,
    promoted_files,
    read_revision_files,
    rollback_revision,
)
from infra.render import render_space
from infra.sandbox import run_sandbox
from infra.smoke import smoke_environment
from infra.spec import load_declaration

KEY = "release-key-0123456789"
SECRETS = {"SPACE_API_KEY": KEY, "SPACE_HF_TOKEN": "hf-token-release"}
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
DECL = load_declaration(CONFIG, environ={})
PROD_PARAM = "/triple-llm/prod/flags"
TIERS = ("base", "company", "abstraction")
FAST_KW = {"wait_timeout": 60, "smoke_timeout": 30, "request_timeout": 5, "poll": 0.1, "policy": FAST}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def flags(moto_url: str) -> SSMFlagStore:
    """prod's flag store in moto's SSM, emptied for each test."""
    client = boto3.client("ssm", region_name="eu-west-1", endpoint_url=moto_url, aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # noqa: S106 - moto's fake credentials
    with contextlib.suppress(client.exceptions.ParameterNotFound):
        client.delete_parameter(Name=PROD_PARAM)
    return SSMFlagStore(PROD_PARAM, client=client, region="eu-west-1")


@pytest.fixture
def sandbox() -> Iterator:
    """A sandbox with staging up and RUNNING (prod not created yet)."""
    with run_sandbox(owner="acme-ai") as sb:
        _up(sb, "staging")
        yield sb


def _api(sb) -> HfApi:  # noqa: ANN001
    return make_api(sb.url, sb.token)


def _up(sb, env: str) -> None:  # noqa: ANN001
    api = _api(sb)
    plans = plan_environment(api, desired_spaces(DECL, env, environ=SECRETS), policy=FAST)
    results = apply_environment(api, plans, policy=FAST, poll=0.1, timeout=60)
    assert all(r.ok for r in results), [r.error for r in results]


def _repo(env: str, tier: str) -> str:
    return DECL.space(env, tier).repo_id


def _ship_v2_to_staging(sb) -> dict[str, str]:  # noqa: ANN001
    """A new tested staging revision whose behaviour differs visibly: replies start with `[<tier>-v2]`."""
    api, shas = _api(sb), {}
    for tier in TIERS:
        repo = _repo("staging", tier)
        app = render_space(DECL, "staging", tier)["app.py"].decode()
        assert "f\"[{CONFIG['tier']}] {last_user}\"" in app
        v2 = app.replace("f\"[{CONFIG['tier']}] {last_user}\"", "f\"[{CONFIG['tier']}-v2] {last_user}\"")
        api.upload_file(path_or_fileobj=v2.encode(), path_in_repo="app.py", repo_id=repo, repo_type="space",
                        commit_message="v2 replies")
    for tier in TIERS:
        assert sb.wait_for_stage(_repo("staging", tier)) == "RUNNING"
        shas[tier] = api.space_info(_repo("staging", tier)).sha
    return shas


def _chat(sb, repo: str) -> str:  # noqa: ANN001
    response = httpx.post(f"{sb.host(repo)}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"messages": [{"role": "user", "content": "hello"}]}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def _provider(store: SSMFlagStore) -> str | None:
    snapshot = store.snapshot()
    return snapshot.document.provider if snapshot.document else None


def _promote(sb, store: SSMFlagStore, **kwargs):  # noqa: ANN001, ANN003, ANN202
    return promote(_api(sb), DECL, "staging", "prod", environ=SECRETS, flag_store=store, actor="ci-bot",
                   **{**FAST_KW, **kwargs})


def _write_calls(sb) -> int:  # noqa: ANN001
    return sb.stats()["total"]["write_calls"]


def test_promote_runs_staging_code_on_prod_and_flips_the_flag_only_after_a_green_smoke(sandbox, flags) -> None:  # noqa: ANN001
    shas = _ship_v2_to_staging(sandbox)
    seen_at_smoke: list[str | None] = []

    def observed_smoke(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen_at_smoke.append(_provider(flags))
        report = smoke_environment(*args, **kwargs)
        seen_at_smoke.append(_provider(flags))
        return report

    report = _promote(sandbox, flags, smoke=observed_smoke)
    assert report.ok, report.error
    assert [s.name for s in report.steps] == ["read source", "plan target", "flag openai", "apply target",
                                              "smoke target", "flag huggingface"]
    assert all(step.seconds >= 0 for step in report.steps)
    assert seen_at_smoke == [None, None]  # nothing stored (= OpenAI) before and after smoke: flipped only after
    assert report.smoke is not None and report.smoke.ok and report.smoke.env == "prod"

    api = _api(sandbox)
    for tier in TIERS:
        prod, staging = _repo("prod", tier), _repo("staging", tier)
        actual = read_actual(api, prod)
        assert actual.stage == "RUNNING"
        assert actual.variables[PROMOTED_FROM_VARIABLE] == f"{staging}@{shas[tier]}"
        assert actual.requested_hardware == DECL.space("prod", tier).hardware or actual.hardware == \
            DECL.space("prod", tier).hardware
        prod_files = read_revision_files(api, prod, actual.sha)
        staging_files = read_revision_files(api, staging, shas[tier])
        for path in staging_files.keys() - set(ENVIRONMENT_FILES):
            assert prod_files[path] == staging_files[path], path  # code byte for byte
        rendered = render_space(DECL, "prod", tier)
        for path in ENVIRONMENT_FILES:
            assert prod_files[path] == rendered[path], path  # configuration is prod's own
        assert json.loads(prod_files["space.json"])["repo_id"] == prod
        assert _chat(sandbox, prod).startswith(f"[{tier}-v2]")  # prod runs staging's code
        message = api.list_repo_commits(prod, repo_type="space")[0].title
        assert message == f"Promote {staging}@{shas[tier]} to prod"

    current = flags.snapshot().document
    assert current.provider == "huggingface" and current.updated_by == "ci-bot"
    assert all(shas[tier] in current.reason for tier in TIERS)
    history = [entry.document.provider for entry in flags.history(10)]
    assert history == ["huggingface"]  # one flag write, after the smoke

    # Re-running the promotion converges without touching the Hub or the flag.
    writes, revision = _write_calls(sandbox), flags.snapshot().revision
    again = _promote(sandbox, flags)
    assert again.ok, again.error
    assert [s.name for s in again.steps] == ["read source", "plan target", "apply target", "smoke target",
                                             "flag huggingface"]
    assert _write_calls(sandbox) == writes
    assert flags.snapshot().revision == revision


def test_dry_run_prints_the_plan_and_changes_nothing(sandbox, flags) -> None:  # noqa: ANN001
    writes = _write_calls(sandbox)
    report = _promote(sandbox, flags, dry_run=True)
    assert report.ok and report.dry_run
    assert [s.name for s in report.steps] == ["read source", "plan target"]
    assert [p.create for p in report.plans] == [True, True, True]
    assert all(p.desired.variables[PROMOTED_FROM_VARIABLE].startswith(p.repo_id + "-staging@") for p in report.plans)
    assert _write_calls(sandbox) == writes
    assert flags.snapshot().revision is None
    assert KEY not in json.dumps(report.to_json())


def test_a_prod_space_broken_at_smoke_leaves_the_flag_on_openai(sandbox, flags) -> None:  # noqa: ANN001
    _up(sandbox, "prod")
    apply_change(flags, FlagChange(provider="huggingface"), reason="the previous release", actor="ci-bot")
    _ship_v2_to_staging(sandbox)
    broken = _repo("prod", "company")

    def smoke_with_a_broken_space(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        assert _provider(flags) == "openai"  # traffic went back to OpenAI before prod was rebuilt
        sandbox.set_stage(broken, "RUNTIME_ERROR", "injected: the model failed to load")
        return smoke_environment(*args, **kwargs)

    report = _promote(sandbox, flags, smoke=smoke_with_a_broken_space)
    assert not report.ok
    assert report.failed_step == "smoke target"
    assert "company: running: RUNTIME_ERROR" in report.error
    assert report.flag == "openai" and _provider(flags) == "openai"
    assert [e.document.provider for e in flags.history(10)] == ["openai", "huggingface"]  # never flipped back
    assert report.steps[-1].name == "fall back to openai" and report.steps[-1].ok


def test_invoke_promote_with_a_failing_prod_commit_exits_nonzero_and_returns_the_flag(sandbox, flags,  # noqa: ANN001
                                                                                     moto_url) -> None:
    _up(sandbox, "prod")
    apply_change(flags, FlagChange(provider="huggingface"), reason="the previous release", actor="ci-bot")
    _ship_v2_to_staging(sandbox)
    sandbox.set_faults([{"route": r"POST /api/spaces/acme-ai/company-specific-llm/commit/main", "status": 500}])
    env = {**SECRETS, "HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "AWS_ENDPOINT_URL": moto_url,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
           "FLAGS_ACTOR": "ci-bot", "FLAG_STORE": "ssm"}
    done = run_invoke("promote", "--from", "staging", "--to", "prod", "--json", "--timeout", "60",
                      "--smoke-timeout", "30", env=env, timeout=240)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["failed_step"] == "apply target"
    assert "company" in report["error"] and "HTTP 500" in report["error"]
    assert "error: promotion staging -> prod failed at apply target" in done.stderr
    assert "prod's flag: openai" in done.stderr
    assert _provider(flags) == "openai"
    assert KEY not in done.stdout + done.stderr and "hf-token-release" not in done.stdout + done.stderr


def test_invoke_promote_dry_run_and_success(sandbox, flags, moto_url) -> None:  # noqa: ANN001
    env = {**SECRETS, "HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "AWS_ENDPOINT_URL": moto_url,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
           "FLAG_STORE": "ssm"}
    writes = _write_calls(sandbox)
    dry = run_invoke("promote", "--from", "staging", "--to", "prod", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "+ create" in dry.stdout and "dry run: nothing was changed" in dry.stderr
    assert _write_calls(sandbox) == writes

    done = run_invoke("promote", "--from", "staging", "--to", "prod", "--timeout", "60", "--smoke-timeout", "30",
                      env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "promoted staging -> prod; prod's flag: huggingface" in done.stderr
    assert _provider(flags) == "huggingface"
    status = run_invoke("status", "--env", "prod", "--json", env=env)
    rows = json.loads(status.stdout)["spaces"]
    assert all(row["promoted_from"].startswith(row["space"] + "-staging@") for row in rows)


def test_a_hand_edited_staging_config_is_refused_before_prod_is_touched(sandbox, flags) -> None:  # noqa: ANN001
    repo = _repo("staging", "base")
    config = json.loads(render_space(DECL, "staging", "base")["space.json"])
    config["model"] = "someone/else"
    _api(sandbox).upload_file(path_or_fileobj=json.dumps(config).encode(), path_in_repo="space.json", repo_id=repo,
                              repo_type="space")
    sandbox.wait_for_stage(repo)
    writes = _write_calls(sandbox)
    report = _promote(sandbox, flags)
    assert report.failed_step == "plan target"
    assert "space.json differ from what this declaration renders for staging" in report.error
    assert _write_calls(sandbox) == writes  # prod untouched
    assert report.flag == "openai"


def test_promoted_files_rule() -> None:
    staging = render_space(DECL, "staging", "company")
    source = SourceRevision("company", _repo("staging", "company"), "a" * 40,
                            {**staging, "app.py": staging["app.py"] + b"# tested\n", "extra.txt": b"x"})
    files = promoted_files(DECL, "staging", "prod", source)
    prod = render_space(DECL, "prod", "company")
    assert files["app.py"] == source.files["app.py"] and files["extra.txt"] == b"x"
    assert files["Dockerfile"] == staging["Dockerfile"]
    assert {name: files[name] for name in ENVIRONMENT_FILES} == {name: prod[name] for name in ENVIRONMENT_FILES}
    with pytest.raises(UserError, match="README.md differ"):
        promoted_files(DECL, "staging", "prod", SourceRevision("company", "x/y", "b" * 40,
                                                                {**staging, "README.md": b"edited"}))


def test_promote_refuses_bad_input_before_any_hub_call(flags) -> None:  # noqa: ANN001
    api = make_api("http://127.0.0.1:9", "unused")
    with pytest.raises(UserError, match="unknown environment 'qa'"):
        promote(api, DECL, "staging", "qa", environ=SECRETS, flag_store=flags)
    with pytest.raises(UserError, match="SPACE_API_KEY"):
        promote(api, DECL, "staging", "prod", environ={"HF_TOKEN": "x"}, flag_store=flags)
    with pytest.raises(UserError, match="both 'prod'"):
        promote(api, DECL, "prod", "prod", environ=SECRETS, flag_store=flags)


# --------------------------------------------------------------------------- revision rollback


def _break_staging(sb) -> dict[str, str]:  # noqa: ANN001
    """One bad commit per staging Space: app.py changed, a file added, one deleted. Returns good shas."""
    api, good = _api(sb), {}
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    for tier in TIERS:
        repo = _repo("staging", tier)
        good[tier] = api.space_info(repo).sha
        app = render_space(DECL, "staging", tier)["app.py"] + b"\n# bad release\n"
        api.create_commit(repo, repo_type="space", commit_message="bad release", operations=[
            CommitOperationAdd("app.py", app), CommitOperationAdd("NOTES.md", b"oops\n"),
            CommitOperationDelete("requirements.txt")])
    for tier in TIERS:
        sb.wait_for_stage(_repo("staging", tier))
    return good


def test_rollback_to_previous_restores_each_space_in_one_commit(sandbox) -> None:  # noqa: ANN001
    good = _break_staging(sandbox)
    api = _api(sandbox)
    before = {t: len(api.list_repo_commits(_repo("staging", t), repo_type="space")) for t in TIERS}
    stats = sandbox.stats()["spaces"]
    report = rollback_revision(api, DECL, "staging", "PREVIOUS", policy=FAST, poll=0.1, timeout=60)
    assert report.ok, report.failures
    after_stats = sandbox.stats()["spaces"]
    for space in report.spaces:
        repo = space.space
        assert space.to_sha == good[space.tier]
        assert (space.files_added, space.files_changed, space.files_deleted) == (
            ["requirements.txt"], ["app.py"], ["NOTES.md"])
        assert len(api.list_repo_commits(repo, repo_type="space")) == before[space.tier] + 1
        restored = read_actual(api, repo)
        good_files = read_actual_files(api, repo, good[space.tier])
        assert restored.files == good_files and restored.sha == space.commit
        assert restored.stage == space.stage == "RUNNING"
        writes = {k: v - stats[repo]["writes_by_route"].get(k, 0)
                  for k, v in after_stats[repo]["writes_by_route"].items()}
        assert {k: v for k, v in writes.items() if v} == {"create_commit": 1}  # settings untouched
        assert after_stats[repo]["restarts"] == stats[repo]["restarts"]
        message = api.list_repo_commits(repo, repo_type="space")[0].title
        assert message.startswith(f"Roll back to the files of {good[space.tier]} (PREVIOUS")

    # PREVIOUS again steps back past the restored deploy, never forward to the bad release; before the
    # first deploy there is only the Hub's creation commit (no app), so it refuses and writes nothing.
    writes_before = sandbox.stats()["total"]["write_calls"]
    again = rollback_revision(api, DECL, "staging", "PREVIOUS", policy=FAST, poll=0.1, timeout=60)
    assert not again.ok
    assert all("no deployed revision before" in s.error for s in again.spaces)
    assert sandbox.stats()["total"]["write_calls"] == writes_before


def read_actual_files(api: HfApi, repo: str, sha: str) -> dict[str, str]:
    from huggingface_hub.hf_api import RepoFile

    return {e.path: e.blob_id for e in api.list_repo_tree(repo, repo_type="space", recursive=True, revision=sha)
            if isinstance(e, RepoFile)}


def test_rollback_to_a_sha_on_one_tier_and_unknown_revisions_fail_clearly(sandbox) -> None:  # noqa: ANN001
    good = _break_staging(sandbox)
    api = _api(sandbox)
    report = rollback_revision(api, DECL, "staging", good["company"][:10], tiers=["company"], policy=FAST,
                               poll=0.1, timeout=60)
    assert report.ok, report.failures
    assert [s.tier for s in report.spaces] == ["company"]
    company = _repo("staging", "company")
    assert read_actual(api, company).files == read_actual_files(api, company, good["company"])

    writes = _write_calls(sandbox)
    same = rollback_revision(api, DECL, "staging", good["company"], tiers=["company"], policy=FAST, poll=0.1)
    assert same.ok and same.spaces[0].commit is None  # already those files: no commit
    bad = rollback_revision(api, DECL, "staging", "deadbeefdeadbeef", policy=FAST, poll=0.1, timeout=60,
                            progress=SILENT)
    assert not bad.ok and len(bad.failures) == 3
    assert "is not a commit of this Space" in bad.failures[0]
    assert _write_calls(sandbox) == writes


def test_an_interrupted_promotion_still_returns_the_flag_to_openai(sandbox, flags) -> None:  # noqa: ANN001
    apply_change(flags, FlagChange(provider="huggingface"), reason="the previous release", actor="ci-bot")

    def interrupted_smoke(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _promote(sandbox, flags, smoke=interrupted_smoke)
    assert _provider(flags) == "openai"


def test_revision_rollback_cli_helper_prints_and_fails_with_exit_1(sandbox, monkeypatch, capsys) -> None:  # noqa: ANN001
    from invoke.exceptions import Exit

    from infra.cli.release_tasks import revision_rollback

    good = _break_staging(sandbox)
    monkeypatch.setenv("HF_ENDPOINT", sandbox.url)
    monkeypatch.setenv("HF_TOKEN", sandbox.token)
    revision_rollback("staging", "PREVIOUS", config=str(CONFIG), timeout=60)
    out = capsys.readouterr().out
    assert out.count("restored the files of") == 3 and good["base"][:12] in out
    with pytest.raises(Exit):
        revision_rollback("staging", "0123456789abc", config=str(CONFIG), tiers=["base"])
    assert "error: base: acme-ai/company-base-llm-staging: revision '0123456789abc' is not a commit" in \
        capsys.readouterr().err


def test_previous_on_a_space_deployed_once_is_refused_not_emptied(sandbox) -> None:  # noqa: ANN001
    """The only earlier commit is the Hub's creation commit (no app): restoring it would kill the Space."""
    api = _api(sandbox)
    writes = sandbox.stats()["total"]["write_calls"]
    report = rollback_revision(api, DECL, "staging", "PREVIOUS", policy=FAST, poll=0.1, timeout=60)
    assert not report.ok
    assert all("no deployed revision before" in space.error for space in report.spaces)
    assert sandbox.stats()["total"]["write_calls"] == writes
    assert all(api.get_space_runtime(_repo("staging", tier)).stage == "RUNNING" for tier in TIERS)

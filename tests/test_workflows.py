"""Checks on the GitHub Actions workflows in `.github/workflows/` (offline, no Actions runner).

- every workflow validates against the GitHub workflow JSON schema vendored by check-jsonschema;
- the deploy job graph: prod needs staging (which smoke-tests), prod is behind `production`,
  one deploy per environment through `concurrency`, rollback to OpenAI on failure;
- least `permissions`: `contents: read`, and `id-token: write` only on jobs that assume an AWS role;
- no script injection: no `${{ ... }}` inside `run:` (secrets and inputs reach scripts through `env:`);
- secrets are bound only in step `env:` (the one exception: a job-level "is it set?" boolean) and
  never echoed;
- every `run:` command is on an explicit allow-list, so a person can run the same step locally;
- every `invoke <task> --option` used by a workflow exists in the `tasks.py` collection.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOW_NAMES = ("ci.yml", "deploy.yml", "rollback.yml")

AWS_CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"

# The commands a `run:` step may start with (token prefixes, after shell quoting is removed).
# Anything else is logic that belongs in an Invoke task.
ALLOWED_COMMANDS: dict[tuple[str, ...], str] = {
    ("invoke",): "any Invoke task (checked against tasks.py below)",
    ("python", "-m", "pip", "install"): "installing the package",
    ("pip", "install"): "installing the package",
    ("python", "-m", "pytest"): "the tests",
    ("ruff", "check"): "the linter",
    ("bash", ".ci/run"): "the CI entry point",
    ("tee",): "keeping a copy of a report while it is printed (pipe target only)",
    ("cat",): "writing a report to the job summary (must append to $GITHUB_STEP_SUMMARY)",
    ("printf",): "markdown framing in the job summary (must append to $GITHUB_STEP_SUMMARY)",
    ("test", "$?", "-eq", "2"): "mapping `invoke plan` exit 2 (changes pending) to success",
}
SUMMARY_ONLY = {("cat",), ("printf",)}
PIPE_TARGET_ONLY = {("tee",)}
SHELL_OPERATORS = {"|", "||", "&&", ";", "&"}
REDIRECTIONS = {">", ">>", "<", "2>", "&>"}


# --------------------------------------------------------------------------- loading


def _normalise_on(document: dict[Any, Any]) -> dict[Any, Any]:
    """YAML 1.1 (PyYAML) reads the key `on` as the boolean True; GitHub reads it as "on"."""
    if True in document:
        document["on"] = document.pop(True)
    return document


def load_workflow(name: str) -> dict[str, Any]:
    with (WORKFLOWS_DIR / name).open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    assert isinstance(document, dict), f"{name}: not a mapping"
    return _normalise_on(document)


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    return {name: load_workflow(name) for name in WORKFLOW_NAMES}


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.protocols.Validator:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "github-workflows.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def iter_jobs(workflows: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for wf_name, workflow in workflows.items():
        for job_name, job in workflow["jobs"].items():
            yield wf_name, job_name, job


def iter_steps(workflows: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    for wf_name, job_name, job in iter_jobs(workflows):
        for index, step in enumerate(job.get("steps", [])):
            yield wf_name, job_name, index, step


def where(wf_name: str, job_name: str, index: int, step: dict[str, Any]) -> str:
    return f"{wf_name}: jobs.{job_name}.steps[{index}] ({step.get('name') or step.get('uses') or 'run'})"


# --------------------------------------------------------------------------- shell parsing


def logical_lines(script: str) -> list[str]:
    """Lines of a `run:` script, continuations joined, blanks and comments dropped."""
    joined = re.sub(r"\\\n", " ", script)
    lines = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


def split_commands(line: str) -> list[tuple[list[str], str | None]]:
    """Split one shell line into simple commands: (tokens, operator that preceded it)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[tuple[list[str], str | None]] = []
    current: list[str] = []
    preceding: str | None = None
    for token in lexer:
        if token in SHELL_OPERATORS:
            commands.append((current, preceding))
            current, preceding = [], token
        else:
            current.append(token)
    commands.append((current, preceding))
    return commands


def redirect_targets(tokens: list[str]) -> list[str]:
    return [tokens[i + 1] for i, tok in enumerate(tokens[:-1]) if tok in REDIRECTIONS]


def all_run_scripts(workflows: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], str]]:
    for wf_name, job_name, index, step in iter_steps(workflows):
        if "run" in step:
            yield where(wf_name, job_name, index, step), step, step["run"]


def invoke_calls(workflows: dict[str, dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """Every `invoke <task> [options]` in the workflows: (where, task name, option names)."""
    calls = []
    for location, _step, script in all_run_scripts(workflows):
        for line in logical_lines(script):
            for tokens, _op in split_commands(line):
                if not tokens or tokens[0] != "invoke":
                    continue
                args = tokens[1:]
                cut = next((i for i, tok in enumerate(args) if tok in REDIRECTIONS), len(args))
                args = args[:cut]
                assert args and not args[0].startswith("-"), f"{location}: `invoke` without a task name"
                options = [tok.split("=", 1)[0][2:] for tok in args[1:] if tok.startswith("--")]
                calls.append((location, args[0], options))
    return calls


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_validates_against_github_workflow_schema(
    name: str, schema_validator: jsonschema.protocols.Validator
) -> None:
    document = load_workflow(name)
    errors = sorted(schema_validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    messages = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not messages, f"{name} is not a valid workflow:\n" + "\n".join(messages)


def test_schema_check_is_not_vacuous(schema_validator: jsonschema.protocols.Validator) -> None:
    """A workflow with a misspelled key and a job without `runs-on` must be rejected."""
    broken = {"on": {"push": None}, "jobz": {}, "jobs": {"x": {"steps": [{"run": "true"}]}}}
    assert list(schema_validator.iter_errors(broken))


def test_pyyaml_on_key_is_normalised(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        assert True not in workflow and "on" in workflow, name
    assert "pull_request" in workflows["ci.yml"]["on"]
    assert workflows["deploy.yml"]["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in workflows["deploy.yml"]["on"]


# --------------------------------------------------------------------------- ci.yml


def test_ci_runs_lint_tests_render_and_a_guarded_plan(workflows: dict[str, dict[str, Any]]) -> None:
    ci = workflows["ci.yml"]
    assert set(ci["on"]) == {"pull_request"}
    steps = [step for job in ci["jobs"].values() for step in job["steps"]]
    runs = [step["run"].strip() for step in steps if "run" in step]
    assert "python -m pip install -e '.[dev]'" in runs
    assert "ruff check ." in runs
    assert "bash .ci/run" in runs
    assert "invoke render --env staging" in runs
    assert "invoke render --env prod" in runs

    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert setup["with"]["cache"] == "pip"

    plan = next(s for s in steps if "invoke plan" in s.get("run", ""))
    assert "--env staging" in plan["run"] and "--json" in plan["run"]
    assert "test $? -eq 2" in plan["run"], "exit 2 (changes pending) must count as success"
    # Only when Hub credentials exist (forks get no secrets); `secrets` is not allowed in `if:`.
    assert "HAS_HF_TOKEN" in plan["if"] and "secrets." not in plan["if"]
    has_token = next(job["env"]["HAS_HF_TOKEN"] for job in ci["jobs"].values())
    assert re.fullmatch(r"\$\{\{\s*secrets\.HF_TOKEN\s*!=\s*''\s*\}\}", has_token)
    assert plan.get("id"), "the summary step refers to the plan step by id"
    summary = [s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary and all(plan["id"] in s.get("if", "") for s in summary)


# --------------------------------------------------------------------------- deploy.yml


def test_deploy_job_graph(workflows: dict[str, dict[str, Any]]) -> None:
    jobs = workflows["deploy.yml"]["jobs"]
    assert set(jobs) == {"staging", "prod"}
    staging, prod = jobs["staging"], jobs["prod"]

    needs = prod["needs"] if isinstance(prod["needs"], list) else [prod["needs"]]
    assert needs == ["staging"], "prod must need staging (which ran the smoke tests)"
    assert "needs" not in staging

    assert environment_name(staging) == "staging"
    assert environment_name(prod) == "production", "prod must sit behind the protected environment"

    staging_runs = [s["run"] for s in staging["steps"] if "run" in s]
    up = index_of(staging_runs, "invoke up --env staging --yes")
    smoke = index_of(staging_runs, "invoke smoke --env staging --json")
    assert up < smoke, "staging smoke runs after staging up"
    report = [s for s in staging["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert report and report[0]["if"] == "always()", "the smoke report is kept even when smoke fails"

    prod_runs = [s["run"] for s in prod["steps"] if "run" in s]
    promote = index_of(prod_runs, "invoke promote --from staging --to prod")
    status = index_of(prod_runs, "invoke status --env prod")
    assert promote < status


def test_deploy_failure_falls_back_to_openai(workflows: dict[str, dict[str, Any]]) -> None:
    for job_name, env in (("prod", "prod"), ("staging", "staging")):
        job = workflows["deploy.yml"]["jobs"][job_name]
        fallback = [s for s in job["steps"] if f"invoke rollback --env {env}" in s.get("run", "")]
        assert fallback, f"{job_name}: no rollback step"
        assert fallback[-1]["if"] == "failure()"
        assert fallback[-1] is job["steps"][-1], f"{job_name}: the rollback step must come last"
        assert "--reason" in fallback[-1]["run"] and "$GITHUB_SHA" in fallback[-1]["run"]
        assert "--to-revision" not in fallback[-1]["run"], "the fallback is the flag, not the Hub"


def test_deploy_concurrency_one_deploy_per_environment(workflows: dict[str, dict[str, Any]]) -> None:
    for job_name, job in workflows["deploy.yml"]["jobs"].items():
        concurrency = job.get("concurrency")
        assert isinstance(concurrency, dict), f"deploy.yml: jobs.{job_name} has no concurrency"
        assert environment_name(job) in concurrency["group"], f"{job_name}: group must name the env"
        assert concurrency["cancel-in-progress"] is False, f"{job_name}: never cancel a running deploy"
    groups = [job["concurrency"]["group"] for job in workflows["deploy.yml"]["jobs"].values()]
    assert len(set(groups)) == len(groups)
    # The whole pipeline is serialised too, so promote takes the revision this run smoke-tested.
    assert workflows["deploy.yml"]["concurrency"]["cancel-in-progress"] is False


# --------------------------------------------------------------------------- rollback.yml


def test_rollback_is_manual_with_environment_and_reason(workflows: dict[str, dict[str, Any]]) -> None:
    rollback = workflows["rollback.yml"]
    assert set(rollback["on"]) == {"workflow_dispatch"}
    inputs = rollback["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == ["staging", "prod"]
    assert inputs["environment"]["required"] is True
    assert inputs["reason"]["type"] == "string" and inputs["reason"]["required"] is True
    assert inputs["to_revision"].get("required", False) is False

    (job,) = rollback["jobs"].values()
    env = job["env"]
    assert re.fullmatch(r"\$\{\{\s*inputs\.environment\s*\}\}", env["TARGET_ENV"])
    assert re.fullmatch(r"\$\{\{\s*inputs\.reason\s*\}\}", env["REASON"])
    assert re.fullmatch(r"\$\{\{\s*inputs\.to_revision\s*\}\}", env["TO_REVISION"])

    runs = [s for s in job["steps"] if "invoke rollback" in s.get("run", "")]
    flag, files = runs
    assert flag["run"].strip() == 'invoke rollback --env "$TARGET_ENV" --reason "$REASON"'
    assert "if" not in flag, "the flag flip always runs"
    assert '--to-revision "$TO_REVISION"' in files["run"]
    assert "inputs.to_revision" in files["if"]
    assert job["steps"].index(flag) < job["steps"].index(files), "flag first: it never waits on the Hub"


# --------------------------------------------------------------------------- permissions


def test_least_permissions(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        assert workflow.get("permissions") == {"contents": "read"}, f"{name}: top-level permissions"
    for wf_name, job_name, job in iter_jobs(workflows):
        permissions = job.get("permissions", workflows[wf_name]["permissions"])
        assert isinstance(permissions, dict), f"{wf_name}: jobs.{job_name}: no write-all/read-all"
        uses_oidc = any(s.get("uses", "").startswith(AWS_CREDENTIALS_ACTION) for s in job["steps"])
        expected = {"contents": "read", "id-token": "write"} if uses_oidc else {"contents": "read"}
        assert permissions == expected, f"{wf_name}: jobs.{job_name}: permissions {permissions}"


def test_aws_credentials_come_from_an_oidc_role(workflows: dict[str, dict[str, Any]]) -> None:
    steps = [
        (where(*loc[:3], loc[3]), loc[3])
        for loc in iter_steps(workflows)
        if loc[3].get("uses", "").startswith(AWS_CREDENTIALS_ACTION)
    ]
    assert len(steps) >= 3, "deploy staging, deploy prod and rollback all need the flag store"
    for location, step in steps:
        assert step["uses"] == f"{AWS_CREDENTIALS_ACTION}@v4", location
        with_ = step["with"]
        assert re.fullmatch(r"\$\{\{\s*vars\.AWS_ROLE_ARN\s*\}\}", with_["role-to-assume"]), location
        assert "aws-region" in with_, location
        assert not {"aws-access-key-id", "aws-secret-access-key"} & set(with_), f"{location}: no keys"


def test_actions_are_pinned(workflows: dict[str, dict[str, Any]]) -> None:
    for wf_name, job_name, index, step in iter_steps(workflows):
        if "uses" in step:
            ref = step["uses"].partition("@")[2]
            pinned = re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", ref)
            assert pinned, f"{where(wf_name, job_name, index, step)}: pin to a version or a commit"


# --------------------------------------------------------------------------- secrets and injection


def test_no_expressions_inside_run_scripts(workflows: dict[str, dict[str, Any]]) -> None:
    """`${{ secrets.* }}`, `${{ inputs.* }}`, `${{ github.event.* }}` (or any expression) spliced into a
    script is script injection or a leak; values reach scripts as environment variables instead."""
    for location, _step, script in all_run_scripts(workflows):
        assert "${{" not in script, f"{location}: use `env:` instead of an expression in `run:`"
        for needle in ("secrets.", "inputs.", "github.event."):
            assert needle not in script, f"{location}: `{needle}` in a script"


def test_secrets_bound_only_in_step_env(workflows: dict[str, dict[str, Any]]) -> None:
    """A secret in a job or workflow `env:` reaches every step, `pip install` included."""
    is_set_check = re.compile(r"\$\{\{\s*secrets\.[A-Z0-9_]+\s*!=\s*''\s*\}\}")

    def secret_values(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from secret_values(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from secret_values(value, (*path, index))
        elif isinstance(node, str) and "secrets." in node:
            yield path, node

    found = 0
    for name, workflow in workflows.items():
        for path, value in secret_values(workflow, ()):
            found += 1
            shape = tuple("*" if isinstance(p, int) else p for p in path)
            location = f"{name}: " + ".".join(map(str, path))
            if len(shape) == 6 and shape[0] == "jobs" and shape[2:5] == ("steps", "*", "env"):
                continue  # a step's env: only that step's process sees it
            job_env = len(shape) == 4 and shape[0] == "jobs" and shape[2] == "env"
            assert job_env and is_set_check.fullmatch(value), f"{location}: secret outside a step `env:`"
    assert found, "no secrets found at all: the walk is broken"


def test_no_secret_is_echoed(workflows: dict[str, dict[str, Any]]) -> None:
    for wf_name, job_name, index, step in iter_steps(workflows):
        if "run" not in step:
            continue
        job = workflows[wf_name]["jobs"][job_name]
        env: dict[str, str] = {**workflows[wf_name].get("env", {}), **job.get("env", {}), **step.get("env", {})}
        secret_vars = {key for key, value in env.items() if "secrets." in str(value)}
        script = step["run"]
        location = where(wf_name, job_name, index, step)
        for var in secret_vars:
            # Tasks read secrets from the environment; a script has no reason to touch them.
            assert not re.search(rf"\$\{{?{var}\b", script), f"{location}: script references ${var}"
        for line in logical_lines(script):
            for tokens, _ in split_commands(line):
                command = tuple(tokens[:2])
                assert tokens[:1] != ["set"] or "x" not in "".join(tokens[1:]), f"{location}: xtrace"
                assert tokens[:1] not in (["echo"], ["env"], ["printenv"]), f"{location}: {line}"
                assert command not in {("export", "-p"), ("declare", "-p")}, f"{location}: {line}"


# --------------------------------------------------------------------------- local-runnable steps


def test_every_run_command_is_allowed(workflows: dict[str, dict[str, Any]]) -> None:
    for location, _step, script in all_run_scripts(workflows):
        for line in logical_lines(script):
            for tokens, preceding in split_commands(line):
                assert tokens, f"{location}: empty command in {line!r}"
                prefix = next((p for p in ALLOWED_COMMANDS if tuple(tokens[: len(p)]) == p), None)
                assert prefix, (
                    f"{location}: `{line}` runs `{tokens[0]}`; allowed: "
                    + ", ".join(" ".join(p) for p in ALLOWED_COMMANDS)
                    + ". Put logic in an Invoke task."
                )
                if prefix in SUMMARY_ONLY:
                    assert "$GITHUB_STEP_SUMMARY" in redirect_targets(tokens), f"{location}: {line}"
                if prefix in PIPE_TARGET_ONLY:
                    assert preceding == "|", f"{location}: `tee` only as a pipe target: {line}"
                if prefix == ("test", "$?", "-eq", "2"):
                    assert preceding == "||" and line.startswith("invoke plan "), f"{location}: {line}"


def test_allowed_command_list_is_enforced() -> None:
    """The shell splitting above sees through operators and quoting."""
    assert [t for t, _ in split_commands('invoke x --reason "a; b" || test $? -eq 2')] == [
        ["invoke", "x", "--reason", "a; b"],
        ["test", "$?", "-eq", "2"],
    ]
    assert [t[0] for t, _ in split_commands("invoke smoke | tee r.json && curl evil")] == [
        "invoke",
        "tee",
        "curl",
    ]
    assert redirect_targets(["cat", "x", ">>", "$GITHUB_STEP_SUMMARY"]) == ["$GITHUB_STEP_SUMMARY"]


def test_scripts_run_with_pipefail(workflows: dict[str, dict[str, Any]]) -> None:
    """`shell: bash` on GitHub means `bash -eo pipefail`, so `invoke smoke | tee` still fails."""
    for name, workflow in workflows.items():
        assert workflow.get("defaults", {}).get("run", {}).get("shell") == "bash", name


# --------------------------------------------------------------------------- tasks exist


def load_task_collection() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    tasks = importlib.import_module("tasks")
    return tasks.ns


def test_invoke_tasks_used_by_workflows_exist_in_tasks_py(workflows: dict[str, dict[str, Any]]) -> None:
    """Fails (rather than skips) until every task the workflows call is in `tasks.py`."""
    ns = load_task_collection()
    calls = invoke_calls(workflows)
    assert {name for _, name, _ in calls} >= {"render", "plan", "up", "smoke", "promote", "status", "rollback"}
    known = set(ns.task_names) | {alias for aliases in ns.task_names.values() for alias in aliases}
    missing = sorted({f"{name} (used in {location})" for location, name, _ in calls if name not in known})
    assert not missing, "tasks.py has no task: " + "; ".join(missing)


def test_invoke_options_used_by_workflows_exist_in_tasks_py(workflows: dict[str, dict[str, Any]]) -> None:
    """Fails (rather than skips) until every `--option` the workflows pass is accepted by its task."""
    ns = load_task_collection()
    problems = []
    for location, name, options in invoke_calls(workflows):
        try:
            task = ns[name]
        except (KeyError, ValueError):
            problems.append(f"{location}: no task {name!r}")
            continue
        accepted = {n for argument in task.get_arguments() for n in argument.names}
        accepted |= {f"no-{n}" for argument in task.get_arguments() if argument.kind is bool for n in argument.names}
        problems += [f"{location}: `invoke {name}` has no --{opt}" for opt in options if opt not in accepted]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- helpers


def environment_name(job: dict[str, Any]) -> str:
    environment = job.get("environment")
    return environment["name"] if isinstance(environment, dict) else environment


def index_of(runs: list[str], command: str) -> int:
    for index, run in enumerate(runs):
        if run.strip().startswith(command):
            return index
    raise AssertionError(f"no step runs `{command}`; steps run: {runs}")

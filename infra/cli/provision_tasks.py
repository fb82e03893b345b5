"""`invoke plan / up / status / destroy`: provision an environment's Spaces through the Hub API.

Exit codes of `plan` follow `terraform plan -detailed-exitcode`: 0 no changes, 2 changes pending,
1 error. Every output shows secrets by name only.
"""

from __future__ import annotations

import json
import sys

from invoke import Collection, task
from invoke.exceptions import Exit

from infra.cli import require_env, user_errors
from infra.hub import call, make_api
from infra.progress import Progress
from infra.reconcile import apply_environment, desired_spaces, plan_environment
from infra.reconcile.model import SpacePlan
from infra.reconcile.wait import ERROR_STAGES, TRANSITIONAL_STAGES
from infra.spec import DEFAULT_CONFIG, load_declaration

HELP_ENV = "environment declared in the config (e.g. staging, prod)"
HELP_CONFIG = f"declaration file (default: {DEFAULT_CONFIG})"
HELP_WORKERS = "how many Spaces to work on in parallel (default 8)"


def _prepare(config: str, env: str | None, quiet: bool):  # noqa: ANN202
    declaration = load_declaration(config)
    env = require_env(env, list(declaration.environments))
    desired = desired_spaces(declaration, env)
    return declaration, env, desired, make_api(), Progress(quiet=quiet)


def print_plans(plans: list[SpacePlan]) -> None:
    """The plan as text: one block per Space, one line per change."""
    for plan in plans:
        header = f"{plan.repo_id} [{plan.tier}]"
        if not plan.has_changes:
            print(f"  {header}: no changes (stage {plan.actual.stage})")
            continue
        print(f"  {header}:")
        for line in plan.describe():
            print(f"      {line}")
    pending = sum(p.has_changes for p in plans)
    print(f"{pending} of {len(plans)} Spaces have changes." if pending else "No changes.")


@task(help={"env": HELP_ENV, "json": "print the plan as JSON", "config": HELP_CONFIG, "workers": HELP_WORKERS})
@user_errors
def plan(c, env=None, json_=False, config=str(DEFAULT_CONFIG), workers=8):
    """Show what `up` would change (exit 0: none, 2: changes pending, 1: error)."""
    _, env, desired, api, progress = _prepare(config, env, quiet=json_)
    plans = plan_environment(api, desired, workers=int(workers), progress=progress)
    if json_:
        print(json.dumps({"environment": env, "changes": sum(p.has_changes for p in plans),
                          "spaces": [p.to_json() for p in plans]}, indent=2))
    else:
        print_plans(plans)
    if any(p.has_changes for p in plans):
        raise Exit(code=2)


@task(help={"env": HELP_ENV, "yes": "apply without asking (CI)", "config": HELP_CONFIG, "workers": HELP_WORKERS,
            "no_wait": "do not wait for changed Spaces to reach RUNNING",
            "timeout": "seconds to wait for each changed Space to be RUNNING (default 900)",
            "json": "print the result as JSON"})
@user_errors
def up(c, env=None, yes=False, config=str(DEFAULT_CONFIG), workers=8, no_wait=False, timeout=900, json_=False):
    """Plan, then apply only the differences and wait for the changed Spaces to be RUNNING."""
    _, env, desired, api, progress = _prepare(config, env, quiet=False)
    plans = plan_environment(api, desired, workers=int(workers), progress=progress)
    if not json_:
        print_plans(plans)
    changes = any(p.has_changes for p in plans)
    if not changes and not any(p.actual.stage in ERROR_STAGES | TRANSITIONAL_STAGES for p in plans):
        if json_:
            print(json.dumps({"environment": env, "ok": True, "spaces": []}))
        return
    if changes and not yes and not _confirm(f"Apply these changes to {env}?"):
        raise Exit("aborted; nothing was changed", code=1)
    results = apply_environment(api, plans, workers=int(workers), progress=progress, wait=not no_wait,
                                timeout=float(timeout))
    failed = [r for r in results if not r.ok]
    if json_:
        print(json.dumps({"environment": env, "ok": not failed, "spaces": [
            {"space": r.plan.repo_id, "tier": r.plan.tier, "steps": r.steps, "stage": r.stage, "error": r.error}
            for r in results]}, indent=2))
    for result in failed:
        print(f"error: {result.error}", file=sys.stderr)
    if failed:
        raise Exit(code=1)
    if not json_:
        print(f"Applied: {sum(bool(r.steps) for r in results)} Spaces changed.")


@task(help={"env": HELP_ENV, "json": "print JSON", "config": HELP_CONFIG})
@user_errors
def status(c, env=None, json_=False, config=str(DEFAULT_CONFIG)):
    """Stage, hardware, running commit, promoted-from and URL of each Space of ENV."""
    declaration = load_declaration(config)
    env = require_env(env, list(declaration.environments))
    rows = space_status(make_api(), [s.repo_id for s in declaration.spaces(env)])
    if json_:
        print(json.dumps({"environment": env, "spaces": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Spaces of {env}")
    for column in ("space", "stage", "hardware", "sha", "promoted from", "url"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["space"], row["stage"] or "absent", row["hardware"] or "-", (row["sha"] or "-")[:12],
                      _short_ref(row["promoted_from"]), row["url"] or "-")
    console = Console()
    if not console.is_terminal:  # piped (CI logs): wide enough for full ids and URLs
        console = Console(width=200)
    console.print(table)


def _short_ref(reference: str | None) -> str:
    """`owner/name@sha` as `name@sha[:12]` for a table cell."""
    if not reference:
        return "-"
    repo, _, sha = reference.partition("@")
    return f"{repo.split('/')[-1]}@{sha[:12]}" if sha else repo


def space_status(api, repo_ids: list[str]) -> list[dict]:  # noqa: ANN001
    """Read-only status of each Space; an absent Space has stage None."""
    from infra.reconcile import read_actual

    rows = []
    for repo_id in repo_ids:
        actual = read_actual(api, repo_id)
        rows.append({"space": repo_id, "exists": actual.exists, "stage": actual.stage,
                     "hardware": actual.hardware, "sha": actual.sha, "url": actual.host,
                     "promoted_from": actual.variables.get("TOOLKIT_PROMOTED_FROM")})
    return rows


@task(help={"env": HELP_ENV, "yes": "delete without asking", "config": HELP_CONFIG})
@user_errors
def destroy(c, env=None, yes=False, config=str(DEFAULT_CONFIG)):
    """Delete every Space of ENV from the Hub (asks to confirm unless --yes)."""
    declaration = load_declaration(config)
    env = require_env(env, list(declaration.environments))
    repo_ids = [s.repo_id for s in declaration.spaces(env)]
    print("Will delete: " + ", ".join(repo_ids))
    if not yes and not _confirm(f"Delete {len(repo_ids)} Spaces of {env}? This cannot be undone."):
        raise Exit("aborted; nothing was deleted", code=1)
    api, progress = make_api(), Progress()
    for repo_id in repo_ids:
        with progress.step(repo_id, "delete"):
            call(repo_id, "delete", lambda r=repo_id: api.delete_repo(r, repo_type="space", missing_ok=True))


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"{question} [y/N] (no terminal: pass --yes)", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def register(ns: Collection) -> None:
    for item in (plan, up, status, destroy):
        ns.add_task(item)

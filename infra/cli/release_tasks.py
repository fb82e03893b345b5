"""`invoke smoke` and `invoke promote`: endpoint checks and staging -> prod promotion.

Thin wrappers over `infra.smoke` and `infra.release`. With `--json` the report goes to stdout and
everything else (progress, table) to stderr, so CI can pipe stdout into a file or a job summary.
Exit code 0 only when every check (or every promotion step) passed.
"""

from __future__ import annotations

import json
import sys

from invoke import Collection, task
from invoke.exceptions import Exit

from infra.cli import require_env, user_errors
from infra.hub import make_api
from infra.progress import Progress
from infra.spec import DEFAULT_CONFIG, load_declaration

HELP_ENV = "environment declared in the config (e.g. staging, prod)"
HELP_CONFIG = f"declaration file (default: {DEFAULT_CONFIG})"
HELP_JSON = "print a machine-readable report on stdout (the table goes to stderr)"
HELP_STATE = "directory for the saved smoke report smoke-<env>.json (default .state; the admin page reads it)"


def _console(to_stderr: bool):  # noqa: ANN202
    from rich.console import Console

    return Console(stderr=to_stderr, width=160 if not sys.stdout.isatty() else None)


@task(help={"env": HELP_ENV, "json": HELP_JSON, "config": HELP_CONFIG,
            "timeout": "seconds each Space may take to reach RUNNING, waking it if asleep (default 300)",
            "request_timeout": "seconds per HTTP request to a Space (default 15)", "state_dir": HELP_STATE,
            "workers": "how many Spaces to check in parallel (default 8)"})
@user_errors
def smoke(c, env=None, json_=False, config=str(DEFAULT_CONFIG), timeout=300, request_timeout=15,
          state_dir=".state", workers=8):
    """Check every Space of ENV: RUNNING, /health, /v1/models, chat, stream, key required. Exit 1 on any failure."""
    from infra.smoke import api_key_from_environ, render_table, save_report, smoke_environment

    declaration = load_declaration(config)
    env = require_env(env, list(declaration.environments))
    api_key = api_key_from_environ(declaration)
    report = smoke_environment(make_api(), declaration, env, api_key, timeout=float(timeout),
                               request_timeout=float(request_timeout), workers=int(workers), progress=Progress())
    path = save_report(report, state_dir)
    render_table(report, _console(to_stderr=json_))
    if json_:
        print(json.dumps(report.to_json(), indent=2))
    print(f"report saved to {path}", file=sys.stderr)
    if not report.ok:
        for line in report.failures:
            print(f"error: {line}", file=sys.stderr)
        raise Exit(code=1)


def _print_promotion(report) -> None:  # noqa: ANN001
    """Human output on stdout: what is promoted, the plan, the steps with their durations."""
    from rich.table import Table

    from infra.cli.provision_tasks import print_plans

    for source in report.sources:
        print(f"{source.tier}: {source.reference} ({len(source.files)} files)")
    if report.plans:
        print(f"Plan for {report.target}:")
        print_plans(report.plans)
    if report.steps:
        table = Table(title=f"promote {report.source} -> {report.target}")
        for column in ("step", "result", "seconds"):
            table.add_column(column, no_wrap=True)
        table.add_column("detail", overflow="fold")
        for step in report.steps:
            table.add_row(step.name, "[green]ok[/green]" if step.ok else "[red]FAILED[/red]", f"{step.seconds:.1f}",
                          step.detail)
        _console(to_stderr=False).print(table)


@task(help={"from": "environment to promote from (default staging)", "to": "environment to promote to (default prod)",
            "dry_run": "print the plan and change nothing", "config": HELP_CONFIG, "json": HELP_JSON,
            "timeout": "seconds each changed Space may take to be RUNNING (default 900)",
            "smoke_timeout": "seconds each Space may take to be RUNNING in the smoke test (default 300)",
            "workers": "how many Spaces to work on in parallel (default 8)"})
@user_errors
def promote(c, from_="staging", to="prod", dry_run=False, config=str(DEFAULT_CONFIG), json_=False, timeout=900,
            smoke_timeout=300, workers=8):
    """Promote the commit each FROM Space runs to TO, smoke TO, then switch TO's flag to huggingface.

    On any failure TO's flag is left on (or returned to) OpenAI and the exit code is 1.
    """
    import os

    from infra.flags import open_flag_store
    from infra.release import promote as run_promotion

    declaration = load_declaration(config)
    source = require_env(from_, list(declaration.environments))
    target = require_env(to, list(declaration.environments))
    report = run_promotion(make_api(), declaration, source, target, environ=os.environ,
                           flag_store=open_flag_store(declaration, target), dry_run=dry_run, progress=Progress(),
                           wait_timeout=float(timeout), smoke_timeout=float(smoke_timeout), workers=int(workers))
    if report.smoke is not None:
        from infra.smoke import save_report

        save_report(report.smoke)  # the admin page shows the target's last smoke result
    if json_:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_promotion(report)
    if not report.ok:
        print(f"error: promotion {source} -> {target} failed at {report.failed_step}: "
              f"{report.error.split(': ', 1)[-1]}", file=sys.stderr)
        print(f"{target}'s flag: {report.flag or 'UNKNOWN'}", file=sys.stderr)
        raise Exit(code=1)
    if dry_run:
        print(f"dry run: nothing was changed ({target}'s flag: {report.flag or 'unset'})", file=sys.stderr)
    else:
        print(f"promoted {source} -> {target}; {target}'s flag: {report.flag}", file=sys.stderr)


def revision_rollback(env: str, revision: str, config: str = str(DEFAULT_CONFIG), timeout: float = 900.0,
                      tiers: list[str] | None = None) -> None:
    """Body of `invoke rollback --to-revision REV` (called by the flag rollback task after the flag flip):
    restore REV's files on each Space of ENV, print the result, raise `Exit(1)` if any Space failed."""
    from infra.release import rollback_revision

    declaration = load_declaration(config)
    env = require_env(env, list(declaration.environments))
    report = rollback_revision(make_api(), declaration, env, revision, progress=Progress(), timeout=float(timeout),
                               tiers=tiers or None)
    for space in report.spaces:
        if not space.ok:
            print(f"  {space.space} [{space.tier}]: FAILED {space.error}")
        elif space.commit:
            changes = len(space.files_added) + len(space.files_changed) + len(space.files_deleted)
            print(f"  {space.space} [{space.tier}]: restored the files of {space.to_sha[:12]} "
                  f"({changes} files) in commit {space.commit[:12]}, {space.stage}")
        else:
            print(f"  {space.space} [{space.tier}]: already has the files of {space.to_sha[:12]}")
    if not report.ok:
        for line in report.failures:
            print(f"error: {line.splitlines()[0]}", file=sys.stderr)
        raise Exit(code=1)


def register(ns: Collection) -> None:
    for item in (smoke, promote):
        ns.add_task(item)

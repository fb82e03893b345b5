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


def register(ns: Collection) -> None:
    for item in (smoke,):
        ns.add_task(item)

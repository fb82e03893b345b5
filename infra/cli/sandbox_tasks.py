"""`invoke sandbox`: run the local Hub emulator (and the Spaces committed to it) in the foreground."""

from __future__ import annotations

import sys

from invoke import Collection, task

from infra.cli import user_errors
from infra.sandbox.server import Sandbox, owner_from_config, serve_forever
from infra.spec import DEFAULT_CONFIG


@task(
    help={
        "port": "port to listen on, on 127.0.0.1 (default 0: any free port)",
        "data": "directory that keeps the Hub's state across restarts (default: in memory only)",
        "config": f"declaration whose `owner:` the default user belongs to (default: {DEFAULT_CONFIG})",
        "owner": "organisation the default user belongs to (overrides --config)",
    }
)
@user_errors
def sandbox(c, port=0, data=None, config=str(DEFAULT_CONFIG), owner=None):
    """Serve a local Hugging Face Hub for Spaces until Ctrl-C; first prints HF_ENDPOINT and HF_TOKEN."""
    explicit_config = config != str(DEFAULT_CONFIG)
    resolved = owner_from_config(config, owner, required=explicit_config)

    def announce(line: str) -> None:
        print(line, flush=True)

    serve_forever(Sandbox(owner=resolved, data_dir=data, port=int(port)), announce)
    print(f"sandbox stopped (owner {resolved})", file=sys.stderr)


def register(ns: Collection) -> None:
    ns.add_task(sandbox)

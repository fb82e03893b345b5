"""`invoke admin` (serve the admin page) and `invoke admin.hash-password` (make ADMIN_PASSWORD_HASH)."""

from __future__ import annotations

import getpass
import logging
import sys
from typing import Any

from invoke import Collection, task

from infra.cli import user_errors
from infra.errors import UserError
from infra.spec import DEFAULT_CONFIG


@task(
    default=True,
    auto_shortflags=False,
    help={
        "host": "address to bind (default 127.0.0.1; anything else needs HTTPS in front: cookies are Secure)",
        "port": "port to listen on (default 8765)",
        "config": f"declaration file (default {DEFAULT_CONFIG})",
    },
)
@user_errors
def serve(c: Any, host: str = "127.0.0.1", port: int = 8765, config: str = str(DEFAULT_CONFIG)) -> None:
    """Serve the admin page (needs ADMIN_TOKEN or ADMIN_PASSWORD_HASH in the environment)."""
    from infra.admin import serve as run

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    admin_logger = logging.getLogger("infra.admin")
    admin_logger.addHandler(handler)
    admin_logger.setLevel(logging.INFO)
    run(config, host=host, port=int(port))


@task(name="hash-password")
@user_errors
def hash_password(c: Any) -> None:
    """Prompt for a password (twice) and print a value for ADMIN_PASSWORD_HASH."""
    from infra.admin.auth import hash_password as make

    if sys.stdin.isatty():
        first = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != first:
            raise UserError("the two passwords differ")
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 12:
        raise UserError("use a password of at least 12 characters")
    print(make(first))


def register(ns: Collection) -> None:
    """Add the `admin` collection (default task: serve) with `admin.hash-password`."""
    admin = Collection("admin")
    admin.add_task(serve, default=True)
    admin.add_task(hash_password, name="hash-password")
    ns.add_collection(admin)

"""`invoke sandbox`: run the local Hub emulator (and the Spaces committed to it) in the foreground."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from invoke import Collection, task

from infra.cli import user_errors
from infra.errors import UserError
from infra.sandbox.server import Sandbox, owner_from_config, serve_forever
from infra.spec import DEFAULT_CONFIG, load_declaration


@task(
    help={
        "port": "port to listen on, on 127.0.0.1 (default 0: any free port)",
        "data": "directory that keeps the Hub's state across restarts (default: in memory only)",
        "config": f"declaration whose `owner:` the default user belongs to (default: {DEFAULT_CONFIG})",
        "owner": "organisation the default user belongs to (overrides --config)",
        "aws": "also serve an in-memory AWS SSM (moto) for the flag store and print its AWS_* lines "
               "(default on; --no-aws to skip)",
    }
)
@user_errors
def sandbox(c, port=0, data=None, config=str(DEFAULT_CONFIG), owner=None, aws=True):
    """Serve a local Hugging Face Hub for Spaces until Ctrl-C; first prints HF_ENDPOINT and HF_TOKEN."""
    explicit_config = config != str(DEFAULT_CONFIG)
    resolved = owner_from_config(config, owner, required=explicit_config)
    with ExitStack() as stack:
        extra = stack.enter_context(_flag_store_server(config)) if aws else []

        def announce(line: str) -> None:
            print(line, flush=True)
            if line.startswith("HF_TOKEN="):  # the two Hub lines come first, as scripts expect
                for more in extra:
                    print(more, flush=True)

        serve_forever(Sandbox(owner=resolved, data_dir=data, port=int(port)), announce)
    print(f"sandbox stopped (owner {resolved})", file=sys.stderr)


@contextmanager
def _flag_store_server(config: str) -> Iterator[list[str]]:
    """moto's server on 127.0.0.1 standing in for AWS SSM, and the lines that point boto3 at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        region = load_declaration(config).flags.store.region or "eu-west-1"
    except UserError:
        region = "eu-west-1"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield [f"AWS_ENDPOINT_URL=http://{host}:{port}", "AWS_ACCESS_KEY_ID=sandbox",
               "AWS_SECRET_ACCESS_KEY=sandbox", f"AWS_DEFAULT_REGION={region}"]
    finally:
        server.stop()


def register(ns: Collection) -> None:
    ns.add_task(sandbox)

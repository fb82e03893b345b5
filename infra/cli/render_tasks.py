"""`invoke render`: write every Space's files for one environment."""

from __future__ import annotations

import json
from pathlib import Path

from invoke import Collection, task

from infra.cli import require_env, user_errors
from infra.render import content_hash, render_space, write_space
from infra.spec import DEFAULT_CONFIG, load_declaration


@task(
    help={
        "env": "environment declared in the config (e.g. staging, prod)",
        "out": "output directory; each Space goes to OUT/ENV/SPACE-NAME (default: out)",
        "config": f"declaration file (default: {DEFAULT_CONFIG})",
        "json": "print a JSON list of {space, tier, hash, files, path} instead of text",
    }
)
@user_errors
def render(c, env=None, out="out", config=str(DEFAULT_CONFIG), json_=False):
    """Render each tier's Space code from space_templates/ (byte-identical for identical inputs)."""
    declaration = load_declaration(config)
    env = require_env(env, list(declaration.environments))
    results = []
    for space in declaration.spaces(env):
        files = render_space(declaration, env, space.tier)
        directory = Path(out) / env / space.name
        write_space(files, directory)
        results.append({"space": space.repo_id, "tier": space.tier, "hash": content_hash(files),
                        "files": sorted(files), "path": str(directory)})
    if json_:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        print(f"{result['space']:<48} {result['hash']}  {len(result['files'])} files -> {result['path']}")


def register(ns: Collection) -> None:
    ns.add_task(render)

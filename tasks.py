"""Invoke entry point: `invoke --list` shows every task. Task bodies live in `infra/cli/`.

Each `infra/cli/*_tasks.py` module exposes `register(ns)`, which adds its tasks (or a
sub-collection such as `flags`) to the namespace.
"""

from invoke import Collection

from infra.cli import render_tasks

ns = Collection()
render_tasks.register(ns)

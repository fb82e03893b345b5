"""Invoke entry point: `invoke --list` shows every task. Task bodies live in `infra/cli/`.

Each `infra/cli/*_tasks.py` module exposes `register(ns)`, which adds its tasks (or a
sub-collection such as `flags`) to the namespace.
"""

from invoke import Collection

from infra.cli import admin_tasks, demo_tasks, flag_tasks, provision_tasks, release_tasks, render_tasks, sandbox_tasks

ns = Collection()
render_tasks.register(ns)
flag_tasks.register(ns)
provision_tasks.register(ns)
admin_tasks.register(ns)
sandbox_tasks.register(ns)
release_tasks.register(ns)
demo_tasks.register(ns)

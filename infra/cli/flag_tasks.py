"""Invoke tasks for the provider flags: `flags` (show), `flags.set`, and top-level `rollback`.

Rollback touches only the flag store, never the Hub, so it works while the Hub is down; it exits 0
only once the store has confirmed provider=openai by reading it back.
"""

from __future__ import annotations

import json
from typing import Any

from invoke import Collection, task
from rich.console import Console
from rich.table import Table

from infra.cli import user_errors
from infra.flags import ChangeResult, FlagChange, Snapshot, apply_change, rollback_to_openai
from infra.flags.factory import initial_document, open_flag_store, tier_names
from infra.flags.operations import parse_percentages, parse_provider, parse_tier_switches

DEFAULT_CONFIG = "config/spaces.yaml"
HELP_ENV = "environment whose flags to use (as declared, e.g. staging or prod)"
HELP_CONFIG = f"declaration file (default {DEFAULT_CONFIG})"
HELP_REASON = "why; kept in the flag history (required)"


def _open(config: str, env: str) -> tuple[Any, Any]:
    from infra.spec import load_declaration

    decl = load_declaration(config)
    return decl, open_flag_store(decl, env)


def _state(snapshot: Snapshot) -> str:
    if snapshot.problem:
        return f"INVALID ({snapshot.problem.splitlines()[0]})"
    if snapshot.document is None:
        return "(nothing stored: clients use OpenAI)"
    return snapshot.document.summary()


def _print_change(title: str, store: Any, result: ChangeResult) -> None:
    print(f"{title} {store.description}")
    print(f"  before: {_state(result.before)}")
    print(f"  after:  {_state(result.after)} (confirmed by the store)")


@task(
    default=True,
    help={"env": HELP_ENV, "json": "print machine-readable JSON", "config": HELP_CONFIG,
          "limit": "how many history entries to show (default 10)"},
)
@user_errors
def show(c: Any, env: str, json_: bool = False, config: str = DEFAULT_CONFIG, limit: int = 10) -> None:
    """Show the current provider flags of ENV and their recent history."""
    _, store = _open(config, env)
    snapshot = store.snapshot()
    history = store.history(limit)
    if json_:
        payload = {
            "store": store.description,
            "revision": snapshot.revision,
            "problem": snapshot.problem,
            "current": snapshot.document.model_dump(mode="json") if snapshot.document else None,
            "history": [
                {"revision": e.revision, "modified_at": e.modified_at.isoformat() if e.modified_at else None,
                 "document": e.document.model_dump(mode="json") if e.document else None, "problem": e.problem}
                for e in history
            ],
        }
        print(json.dumps(payload, indent=2))
        return
    console = Console()
    console.print(f"[bold]{env}[/bold] flags in {store.description}: {_state(snapshot)}", markup=True,
                  highlight=False)
    table = Table("version", "provider", "updated", "by", "reason")
    table.add_column("tiers", overflow="fold")
    for entry in history:
        d = entry.document
        if d is None:
            table.add_row("?", "-", "", "", "", f"invalid: {entry.problem}")
            continue
        tiers = " ".join(
            f"{t}={'on' if on else 'off'}" + (f"@{d.percentages[t]}%" if t in d.percentages else "")
            for t, on in d.tiers.items()
        )
        table.add_row(str(d.version), d.provider, d.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                      d.updated_by, d.reason, tiers)
    console.print(table)


@task(
    name="set",
    iterable=["tier", "percent"],
    help={
        "env": HELP_ENV,
        "provider": "openai or huggingface",
        "tier": "tier switch TIER=on|off; repeat for several tiers",
        "percent": "share of a tier's requests sent to its Space, TIER=0..100 or TIER=none; repeatable",
        "reason": HELP_REASON,
        "config": HELP_CONFIG,
    },
)
@user_errors
def set_flags(
    c: Any,
    env: str,
    config: str = DEFAULT_CONFIG,
    reason: str = "",
    provider: str | None = None,
    tier: list[str] | None = None,
    percent: list[str] | None = None,
) -> None:
    """Change ENV's provider, tier switches or percentages in one conditional write."""
    from infra.errors import UserError

    decl, store = _open(config, env)
    names = tier_names(decl)
    change = FlagChange(provider=parse_provider(provider), tiers=parse_tier_switches(tier or [], names),
                        percentages=parse_percentages(percent or [], names))
    if change.is_empty():
        raise UserError("nothing to change: give --provider, --tier TIER=on|off or --percent TIER=N")
    result = apply_change(store, change, reason=reason, initial=initial_document(decl), tier_names=names)
    _print_change("updated", store, result)


@task(
    help={"env": HELP_ENV, "reason": HELP_REASON, "config": HELP_CONFIG,
          "to_revision": "also restore the Spaces' files to this commit sha, or PREVIOUS (what ran before "
                         "the running deploy), in one commit per Space; the flag is flipped first",
          "tier": "with --to-revision: only this tier's Space (repeatable; a sha belongs to one Space)"},
    iterable=["tier"],
)
@user_errors
def rollback(c: Any, env: str, reason: str = "", config: str = DEFAULT_CONFIG, to_revision: str | None = None,
             tier: list[str] | None = None) -> None:
    """Send all of ENV's traffic back to OpenAI: one flag write, no Hub call; exit 0 once confirmed.
    With --to-revision, then restore the Spaces' files too (that part does call the Hub)."""
    if tier and not to_revision:
        from infra.errors import UserError

        raise UserError("--tier only applies with --to-revision (the flag rollback covers every tier)")
    decl, store = _open(config, env)
    result = rollback_to_openai(store, reason=reason, initial=initial_document(decl),
                                tier_names=tier_names(decl))
    _print_change("rolled back to OpenAI:", store, result)
    if to_revision:
        from infra.cli.release_tasks import revision_rollback

        revision_rollback(env, to_revision, config=config, tiers=tier or None)


def register(ns: Collection) -> None:
    """Add the `flags` collection (default task: show) and the top-level `rollback` task."""
    flags = Collection("flags")
    flags.add_task(show, default=True)
    flags.add_task(set_flags, name="set")
    ns.add_collection(flags)
    ns.add_task(rollback)

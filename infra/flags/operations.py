"""What the flag tasks do, as plain functions: show, change, and roll back to OpenAI.

Kept apart from the Invoke tasks so the tasks stay thin (a later `--to-revision` rollback only adds
a step) and so the admin page and tests call exactly the same code.

Conflicts: `apply_change` never retries on its own, because a change computed from a state that has
since moved (say, a rollback) could undo it. `rollback_to_openai` does retry: its outcome does not
depend on what it read, so re-reading and writing again is always what the operator meant.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from infra.errors import UserError
from infra.flags.document import DEFAULT_TIERS, PROVIDERS, FlagDocument, Provider, now_utc
from infra.flags.store import FlagConflictError, FlagStore, FlagStoreError, Snapshot

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


@dataclass(frozen=True)
class FlagChange:
    """A requested change; fields left empty keep their current value. A percentage of None clears."""

    provider: Provider | None = None
    tiers: Mapping[str, bool] = field(default_factory=dict)
    percentages: Mapping[str, int | None] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """True when nothing would change except the audit fields."""
        return self.provider is None and not self.tiers and not self.percentages


@dataclass(frozen=True)
class ChangeResult:
    """The state before the write and the state the store confirmed after it."""

    before: Snapshot
    after: Snapshot


def default_actor() -> str:
    """Who is writing, for `updated_by`: FLAGS_ACTOR, then GITHUB_ACTOR, then user@host."""
    actor = os.environ.get("FLAGS_ACTOR") or os.environ.get("GITHUB_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def parse_tier_switches(items: Iterable[str], known_tiers: Iterable[str]) -> dict[str, bool]:
    """Parse `tier=on|off` options, naming the bad item and what is valid."""
    known = list(known_tiers)
    switches: dict[str, bool] = {}
    for item in items:
        tier, value = _split(item, "--tier", "TIER=on|off", known)
        lowered = value.lower()
        if lowered not in _TRUE | _FALSE:
            raise UserError(f"--tier {item!r}: {value!r} is not a switch; valid: on or off")
        switches[tier] = lowered in _TRUE
    return switches


def parse_percentages(items: Iterable[str], known_tiers: Iterable[str]) -> dict[str, int | None]:
    """Parse `tier=N` (0-100) or `tier=none` (clear) options."""
    known = list(known_tiers)
    percentages: dict[str, int | None] = {}
    for item in items:
        tier, value = _split(item, "--percent", "TIER=0..100 or TIER=none", known)
        if value.lower() in {"none", "clear", ""}:
            percentages[tier] = None
            continue
        try:
            percent = int(value.rstrip("%"))
        except ValueError:
            percent = -1
        if not 0 <= percent <= 100:
            raise UserError(f"--percent {item!r}: {value!r} is not valid; valid: an integer 0-100 or none")
        percentages[tier] = percent
    return percentages


def parse_provider(value: str | None) -> Provider | None:
    """Validate `--provider`."""
    if value is None:
        return None
    lowered = value.lower()
    if lowered not in PROVIDERS:
        raise UserError(f"--provider {value!r} is not valid; valid: {' or '.join(PROVIDERS)}")
    return lowered  # type: ignore[return-value]


def _split(item: str, option: str, shape: str, known: list[str]) -> tuple[str, str]:
    if "=" not in item:
        raise UserError(f"{option} {item!r} is not valid; expected {shape}")
    tier, value = (part.strip() for part in item.split("=", 1))
    if tier not in known:
        raise UserError(f"{option} {item!r}: unknown tier {tier!r}; valid: {', '.join(known)}")
    return tier, value


def _next_version(store: FlagStore, current: Snapshot) -> int:
    if current.document is not None:
        return current.document.version + 1
    if current.revision is None:
        return 1
    # Stored text is invalid: continue after the newest valid version in the history.
    try:
        versions = [entry.document.version for entry in store.history(100) if entry.document]
    except FlagStoreError:
        versions = []
    return max(versions, default=0) + 1


def build_next(
    current: Snapshot,
    change: FlagChange,
    *,
    version: int,
    reason: str,
    actor: str,
    initial: FlagDocument | None = None,
    tier_names: Iterable[str] = DEFAULT_TIERS,
) -> FlagDocument:
    """The document to write: current (or initial, or all-on defaults) with the change applied."""
    base = current.document or initial
    provider: Provider = base.provider if base else "openai"
    tiers = dict(base.tiers) if base else dict.fromkeys(tier_names, True)
    percentages = dict(base.percentages) if base else {}
    if change.provider is not None:
        provider = change.provider
    tiers.update(change.tiers)
    for tier, percent in change.percentages.items():
        if percent is None:
            percentages.pop(tier, None)
        else:
            percentages[tier] = percent
    return FlagDocument(
        provider=provider, tiers=tiers, percentages=percentages, version=version,
        updated_at=now_utc(), updated_by=actor, reason=reason,
    )


def _require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise UserError("--reason is required: say why, it is kept in the flag history")
    return reason.strip()


def apply_change(
    store: FlagStore,
    change: FlagChange,
    *,
    reason: str,
    actor: str | None = None,
    initial: FlagDocument | None = None,
    tier_names: Iterable[str] = DEFAULT_TIERS,
) -> ChangeResult:
    """One conditional write of `change`; raises FlagConflictError if the store moved meanwhile."""
    reason = _require_reason(reason)
    before = store.snapshot()
    if before.problem and before.document is None and not _covers_everything(change, tier_names):
        raise UserError(
            f"the stored flags are invalid, so a partial change cannot be applied:\n{before.problem}\n"
            f"run `invoke rollback` or set --provider and every --tier explicitly"
        )
    document = build_next(before, change, version=_next_version(store, before), reason=reason,
                          actor=actor or default_actor(), initial=initial, tier_names=tier_names)
    after = store.write(document, expected_revision=before.revision)
    return ChangeResult(before, after)


def _covers_everything(change: FlagChange, tier_names: Iterable[str]) -> bool:
    return change.provider is not None and set(tier_names) <= set(change.tiers)


def rollback_to_openai(
    store: FlagStore,
    *,
    reason: str,
    actor: str | None = None,
    initial: FlagDocument | None = None,
    tier_names: Iterable[str] = DEFAULT_TIERS,
    attempts: int = 3,
) -> ChangeResult:
    """Set provider=openai in one write and confirm it; works even if the stored text is invalid.

    Tier switches and percentages are kept, so flipping back to huggingface restores the rollout.
    """
    reason = _require_reason(reason)
    for attempt in range(attempts):
        before = store.snapshot()
        document = build_next(before, FlagChange(provider="openai"), version=_next_version(store, before),
                              reason=reason, actor=actor or default_actor(), initial=initial,
                              tier_names=tier_names)
        try:
            after = store.write(document, expected_revision=before.revision)
        except FlagConflictError:
            if attempt + 1 == attempts:
                raise
            continue
        if after.document is None or after.document.provider != "openai":
            raise FlagStoreError(f"{store.description} did not confirm provider=openai after the write")
        return ChangeResult(before, after)
    raise AssertionError("unreachable")  # pragma: no cover

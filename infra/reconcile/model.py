"""What a plan is: per Space, the differences between the declaration and the Hub.

A `SpacePlan` holds only names and non-secret values; secrets appear as `(added)`, `(changed)`
or `(removed)`, so a plan can be printed, logged and serialised as JSON without masking later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.spec import ResolvedSpace


@dataclass(frozen=True)
class ActualSpace:
    """What the Hub reports for one Space right now (`exists=False` when it does not)."""

    repo_id: str
    exists: bool
    sha: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # path -> git blob id
    private: bool | None = None
    hardware: str | None = None
    requested_hardware: str | None = None
    sleep_time: int | None = None
    stage: str | None = None
    running_sha: str | None = None  # the commit the runtime serves, when the Hub reports it
    host: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str | None] = field(default_factory=dict)  # name -> description (fingerprint)


@dataclass
class DesiredSpace:
    """The Space as it should be: settings from the declaration, files and secret values supplied."""

    space: ResolvedSpace
    files: dict[str, bytes]
    variables: dict[str, str]
    secrets: dict[str, str]  # name -> value; never printed
    commit_message: str = "Deploy from the triple-LLM Spaces toolkit"


@dataclass
class SpacePlan:
    """The writes that take one Space from `actual` to `desired`."""

    desired: DesiredSpace
    actual: ActualSpace
    create: bool = False
    files_added: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    private: tuple[bool | None, bool] | None = None
    hardware: tuple[str | None, str] | None = None
    sleep_time: tuple[int | None, int] | None = None
    variables_set: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    variables_deleted: list[str] = field(default_factory=list)
    secrets_set: dict[str, str] = field(default_factory=dict)  # name -> "added" | "changed"
    secrets_deleted: list[str] = field(default_factory=list)
    committed: str | None = None  # set by apply: the commit that carries the file changes

    @property
    def repo_id(self) -> str:
        return self.desired.space.repo_id

    @property
    def tier(self) -> str:
        return self.desired.space.tier

    @property
    def has_file_changes(self) -> bool:
        return bool(self.files_added or self.files_changed or self.files_deleted)

    @property
    def has_changes(self) -> bool:
        return self.create or self.has_file_changes or any(
            (self.private, self.hardware, self.sleep_time, self.variables_set, self.variables_deleted,
             self.secrets_set, self.secrets_deleted))

    def describe(self) -> list[str]:
        """Human-readable change lines; secret values never appear."""
        if self.create:
            space = self.desired.space
            lines = [f"+ create ({space.hardware}, {'private' if space.private else 'public'}, "
                     f"{len(self.desired.files)} files, {len(self.desired.variables)} variables, "
                     f"secrets: {', '.join(sorted(self.desired.secrets)) or 'none'})"]
            return lines
        lines = [f"~ file {path} (added)" for path in self.files_added]
        lines += [f"~ file {path} (changed)" for path in self.files_changed]
        lines += [f"- file {path} (deleted)" for path in self.files_deleted]
        if self.private:
            lines.append(f"~ visibility: {_visibility(self.private[0])} -> {_visibility(self.private[1])}")
        if self.hardware:
            lines.append(f"~ hardware: {self.hardware[0]} -> {self.hardware[1]}")
        if self.sleep_time:
            lines.append(f"~ sleep_time: {self.sleep_time[0]} -> {self.sleep_time[1]}")
        lines += [f"~ variable {name}: {old!r} -> {new!r}" for name, (old, new) in self.variables_set.items()]
        lines += [f"- variable {name}" for name in self.variables_deleted]
        lines += [f"~ secret {name}: ({how})" for name, how in self.secrets_set.items()]
        lines += [f"- secret {name}: (removed)" for name in self.secrets_deleted]
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view for CI: names and non-secret values only."""
        return {
            "space": self.repo_id,
            "tier": self.tier,
            "environment": self.desired.space.environment,
            "action": "create" if self.create else ("update" if self.has_changes else "none"),
            "stage": self.actual.stage,
            "files": {"added": self.files_added, "changed": self.files_changed, "deleted": self.files_deleted},
            "private": list(self.private) if self.private else None,
            "hardware": list(self.hardware) if self.hardware else None,
            "sleep_time": list(self.sleep_time) if self.sleep_time else None,
            "variables": {"set": {k: list(v) for k, v in self.variables_set.items()},
                          "deleted": self.variables_deleted},
            "secrets": {"set": self.secrets_set, "deleted": self.secrets_deleted},
            "changes": self.describe() if self.has_changes else [],
        }


def _visibility(private: bool | None) -> str:
    return "unknown" if private is None else ("private" if private else "public")

"""Desired vs actual -> `SpacePlan`. Pure: no Hub calls, so it is easy to test and to reason about."""

from __future__ import annotations

from infra import fingerprint
from infra.reconcile.actual import HUB_MANAGED_FILES, git_blob_id
from infra.reconcile.model import ActualSpace, DesiredSpace, SpacePlan

# Variables the toolkit sets outside the declaration (e.g. where a prod Space was promoted from);
# the reconciler neither deletes nor rewrites them.
MANAGED_VARIABLE_PREFIX = "TOOLKIT_"


def effective_sleep_time(actual: ActualSpace) -> int | None:
    """The Hub reports no sleep time (`gcTimeout` null) for an upgraded Space that never sleeps: that is -1."""
    hardware = actual.requested_hardware or actual.hardware
    if actual.sleep_time is None and hardware not in (None, "cpu-basic"):
        return -1
    return actual.sleep_time


def diff_files(files: dict[str, bytes], actual: ActualSpace) -> tuple[list[str], list[str], list[str]]:
    """Paths added, changed (by git blob id, no download) and deleted to turn the Space's files into `files`;
    files the Hub manages itself are never deleted."""
    added = [path for path in sorted(files) if path not in actual.files]
    changed = [path for path in sorted(files)
               if path in actual.files and actual.files[path] != git_blob_id(files[path])]
    deleted = sorted(path for path in actual.files if path not in files and path not in HUB_MANAGED_FILES)
    return added, changed, deleted


def plan_space(desired: DesiredSpace, actual: ActualSpace) -> SpacePlan:
    """The smallest set of writes that makes `actual` match `desired`."""
    plan = SpacePlan(desired=desired, actual=actual)
    space = desired.space
    if not actual.exists:
        plan.create = True
        plan.files_added = sorted(desired.files)
        return plan
    plan.files_added, plan.files_changed, plan.files_deleted = diff_files(desired.files, actual)
    if actual.private != space.private:
        plan.private = (actual.private, space.private)
    current_hardware = actual.requested_hardware or actual.hardware
    if current_hardware != space.hardware:
        plan.hardware = (current_hardware, space.hardware)
    if space.sleep_time is not None and effective_sleep_time(actual) != space.sleep_time:
        plan.sleep_time = (actual.sleep_time, space.sleep_time)
    for name, value in sorted(desired.variables.items()):
        if actual.variables.get(name) != value:
            plan.variables_set[name] = (actual.variables.get(name), value)
    plan.variables_deleted = sorted(
        name for name in actual.variables
        if name not in desired.variables and not name.startswith(MANAGED_VARIABLE_PREFIX))
    for name, value in sorted(desired.secrets.items()):
        if name not in actual.secrets:
            plan.secrets_set[name] = "added"
        elif not fingerprint.matches(actual.secrets[name], value):
            plan.secrets_set[name] = "changed"
    plan.secrets_deleted = sorted(name for name in actual.secrets if name not in desired.secrets)
    return plan

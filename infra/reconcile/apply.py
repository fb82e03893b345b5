"""Apply a `SpacePlan` with exactly its writes.

Order matters because every write restarts or rebuilds a Space: settings first (each a restart the
Hub cannot batch), then all file changes in ONE commit (one rebuild) with `parent_commit` set, so
a concurrent writer is detected instead of overwritten. A new Space gets hardware, sleep time,
secrets and variables in `create_repo` itself, then one commit.
"""

from __future__ import annotations

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from infra import fingerprint
from infra.errors import UserError
from infra.hub import DEFAULT_POLICY, HubError, RetryPolicy, call
from infra.progress import SILENT, Progress
from infra.reconcile.model import SpacePlan


class ConcurrentChangeError(UserError):
    """Someone else committed to the Space since we read it; we refuse to overwrite their work."""


def apply_plan(api: HfApi, plan: SpacePlan, progress: Progress = SILENT,
               policy: RetryPolicy = DEFAULT_POLICY) -> list[str]:
    """Perform the plan's writes; returns the names of the steps done (for reports)."""
    if not plan.has_changes:
        return []
    repo_id, space, desired = plan.repo_id, plan.desired.space, plan.desired
    done: list[str] = []

    def run(step: str, action) -> None:  # noqa: ANN001
        with progress.step(repo_id, step):
            call(repo_id, step, action, policy)
        done.append(step)

    if plan.create:
        secrets = [{"key": k, "value": v, "description": fingerprint.make(v)} for k, v in desired.secrets.items()]
        variables = [{"key": k, "value": v} for k, v in desired.variables.items()]
        run("create", lambda: _create(api, repo_id, space, secrets, variables))
    else:
        if plan.private:
            run("visibility", lambda: api.update_repo_settings(repo_id, private=space.private, repo_type="space"))
        if plan.hardware:
            sleep_time = plan.sleep_time[1] if plan.sleep_time else None
            run("hardware", lambda: api.request_space_hardware(repo_id, space.hardware, sleep_time=sleep_time))
        elif plan.sleep_time:
            run("sleep", lambda: api.set_space_sleep_time(repo_id, plan.sleep_time[1]))
        for name in plan.secrets_set:
            value = desired.secrets[name]
            run(f"secret {name}", lambda n=name, v=value: api.add_space_secret(
                repo_id, n, v, description=fingerprint.make(v)))
        for name in plan.secrets_deleted:
            run(f"secret {name}", lambda n=name: api.delete_space_secret(repo_id, n))
        for name in plan.variables_set:
            run(f"var {name}", lambda n=name: api.add_space_variable(repo_id, n, desired.variables[n]))
        for name in plan.variables_deleted:
            run(f"var {name}", lambda n=name: api.delete_space_variable(repo_id, n))
    if plan.has_file_changes:
        parent = None if plan.create else plan.actual.sha
        run("commit", lambda: _commit(api, plan, parent))
    return done


def _create(api: HfApi, repo_id: str, space, secrets: list[dict], variables: list[dict]) -> None:  # noqa: ANN001
    api.create_repo(
        repo_id, repo_type="space", space_sdk=space.sdk, private=space.private,
        space_hardware=space.hardware, space_sleep_time=space.sleep_time,
        space_secrets=secrets or None, space_variables=variables or None, exist_ok=False,
    )


def _commit(api: HfApi, plan: SpacePlan, parent: str | None) -> None:
    files = plan.desired.files
    operations: list = [CommitOperationAdd(path, files[path]) for path in plan.files_added + plan.files_changed]
    operations += [CommitOperationDelete(path) for path in plan.files_deleted]
    try:
        info = api.create_commit(plan.repo_id, repo_type="space", operations=operations,
                                 commit_message=plan.desired.commit_message, parent_commit=parent)
        plan.committed = info.oid
    except Exception as error:
        if getattr(getattr(error, "response", None), "status_code", None) in (409, 412):
            raise ConcurrentChangeError(
                f"{plan.repo_id}: the Space changed since it was read (expected parent {parent}); "
                "someone else is deploying. Re-run `invoke plan` to see the current state.") from None
        raise


__all__ = ["ConcurrentChangeError", "HubError", "apply_plan"]

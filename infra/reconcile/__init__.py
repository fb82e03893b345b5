"""Desired vs actual Spaces -> plan -> apply, for a whole environment, through `HfApi`.

`desired_spaces` builds what should exist (rendered files, declared settings, secret values from
the environment, all checked before the first Hub call); `plan_environment` reads the Hub in
parallel and diffs; `apply_environment` writes only the differences, then waits for RUNNING.
Re-running after success makes no write call; re-running after an interruption converges,
because every run starts from what the Hub reports now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from huggingface_hub import HfApi

from infra.errors import UserError
from infra.hub import DEFAULT_POLICY, HubError, RetryPolicy
from infra.progress import SILENT, Progress
from infra.reconcile.actual import git_blob_id, read_actual
from infra.reconcile.apply import ConcurrentChangeError, apply_plan
from infra.reconcile.model import ActualSpace, DesiredSpace, SpacePlan
from infra.reconcile.planner import plan_space
from infra.reconcile.wait import ERROR_STAGES, TRANSITIONAL_STAGES, SpaceFailedError, log_tail, wait_running
from infra.render import render_space
from infra.spec import Declaration

__all__ = [
    "ActualSpace", "ApplyResult", "DesiredSpace", "SpaceFailedError", "SpacePlan", "apply_environment",
    "converge", "desired_spaces", "git_blob_id", "plan_environment", "read_actual", "secret_values",
]

T = TypeVar("T")
DEFAULT_WORKERS = 8


def secret_values(declaration: Declaration, names: set[str], environ: Mapping[str, str] | None = None) -> dict:
    """Values of the named secrets from where the declaration says they live; all missing ones at once."""
    environ = os.environ if environ is None else environ
    values, missing = {}, []
    for name in sorted(names):
        variable = declaration.secrets[name].env
        if environ.get(variable):
            values[name] = environ[variable]
        else:
            missing.append(f"{name} (from ${variable})")
    if missing:
        raise UserError("missing secret values, set these environment variables: " + ", ".join(missing))
    return values


def desired_spaces(declaration: Declaration, env: str, environ: Mapping[str, str] | None = None,
                   tiers: list[str] | None = None) -> list[DesiredSpace]:
    """Render and resolve every Space of `env` (or the given tiers); fails before any Hub call."""
    spaces = [s for s in declaration.spaces(env) if tiers is None or s.tier in tiers]
    values = secret_values(declaration, {name for s in spaces for name in s.secrets}, environ)
    return [
        DesiredSpace(space=s, files=render_space(declaration, env, s.tier), variables=dict(s.variables),
                     secrets={name: values[name] for name in s.secrets})
        for s in spaces
    ]


def parallel(items: list, work: Callable[..., T], workers: int) -> list[T]:
    """`work` over `items` on a bounded pool, results in input order; the first error is raised."""
    if workers <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(work, items))


def plan_environment(api: HfApi, desired: list[DesiredSpace], workers: int = DEFAULT_WORKERS,
                     progress: Progress = SILENT, policy: RetryPolicy = DEFAULT_POLICY) -> list[SpacePlan]:
    """Read each Space from the Hub (in parallel) and diff it against the desired state."""

    def one(item: DesiredSpace) -> SpacePlan:
        with progress.step(item.space.repo_id, "read"):
            return plan_space(item, read_actual(api, item.space.repo_id, policy))

    return parallel(desired, one, workers)


@dataclass
class ApplyResult:
    plan: SpacePlan
    steps: list[str] = field(default_factory=list)
    stage: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def converge(api: HfApi, plan: SpacePlan, progress: Progress = SILENT,
             policy: RetryPolicy = DEFAULT_POLICY) -> list[str]:
    """Apply `plan`; if a write's outcome is ambiguous (a retried create or commit reports a conflict),
    re-read the Space and accept only when it now matches the declaration."""
    try:
        return apply_plan(api, plan, progress, policy)
    except (ConcurrentChangeError, HubError) as error:
        if isinstance(error, HubError) and error.status != 409:
            raise
        again = plan_space(plan.desired, read_actual(api, plan.repo_id, policy))
        if again.has_changes:
            raise
        return ["converged"]


def apply_environment(api: HfApi, plans: list[SpacePlan], workers: int = DEFAULT_WORKERS,
                      progress: Progress = SILENT, policy: RetryPolicy = DEFAULT_POLICY,
                      wait: bool = True, timeout: float = 600.0, poll: float = 1.0) -> list[ApplyResult]:
    """Apply every plan with changes in parallel, then wait for those Spaces to be RUNNING. A Space with
    nothing to write is still waited for if it is building, and reported if it is in an error stage; a
    sleeping or paused one is left as it is."""

    def one(plan: SpacePlan) -> ApplyResult:
        result = ApplyResult(plan=plan, stage=plan.actual.stage)
        if not plan.has_changes and plan.actual.stage not in ERROR_STAGES | TRANSITIONAL_STAGES:
            return result  # RUNNING, or asleep / paused by choice: nothing to do
        try:
            if plan.has_changes:
                result.steps = converge(api, plan, progress, policy)
            elif plan.actual.stage in ERROR_STAGES:  # nothing to write, but the Space is broken: say so
                raise SpaceFailedError(plan.repo_id, plan.actual.stage,
                                       log_tail(api, plan.repo_id, build=plan.actual.stage == "BUILD_ERROR"))
            if wait:
                result.stage = wait_running(api, plan.repo_id, timeout=timeout, poll=poll, progress=progress,
                                            expected_sha=plan.committed)
        except UserError as error:
            result.error = str(error)
            progress.line(plan.repo_id, "error", str(error).splitlines()[0])
        return result

    return parallel(plans, one, workers)

"""Release orchestration: promote the tested staging revision to prod, and roll Spaces back to a revision.

Promotion (`promote`)
---------------------
1. **read source**: for each tier, the commit the source Space runs now (`space_info().sha`, which
   must be RUNNING: that is the revision the source smoke test exercised) and every file of it at
   that sha (`list_repo_tree` + `hf_hub_download` at the revision).
2. **plan target**: the target's desired state is the target's own declaration (hardware,
   visibility, sleep time, variables, secrets) with the *source commit's files*, plus the variable
   `TOOLKIT_PROMOTED_FROM=<source repo_id>@<sha>` (the reconciler never deletes `TOOLKIT_*`
   variables), and a commit message naming the source commit. `--dry-run` stops here.
3. **flag openai** (only when the target's flag is not already on OpenAI and there is something to
   change): the Spaces about to be rebuilt take no traffic while they are rebuilt.
4. **apply target** through the reconciler (one commit per Space, settings first), then wait for RUNNING.
5. **smoke target** (`infra.smoke`), against URLs read from the Hub.
6. **flag huggingface**: only now, with a reason naming every source commit.

On *any* failure (including one before the target was touched) the target's flag is left on, or
returned to, OpenAI (`rollback_to_openai`, confirmed by reading it back) and the report says which
step failed and why. A failing promotion therefore always ends in the safe state, and re-running it
after the cause is fixed converges (every step starts from what the Hub reports now).

The file rule (which bytes reach prod)
--------------------------------------
Rendered Spaces carry a few environment-specific files. The rule is: **code is promoted verbatim,
configuration is rendered for the target.** Every file of the source commit is copied byte for byte
(`app.py`, `Dockerfile`, `requirements.txt`, and any other file in the commit), except the
configuration files in `ENVIRONMENT_FILES`:

- `space.json` (repo id, environment, model, generation settings the app reads at start-up), and
- `README.md` (the Space card: the Hub reads hardware, port and title from its front matter),

which are rendered from the declaration for the target environment. To keep "the tested revision"
honest, promotion first checks that the source's configuration files are exactly what the current
declaration renders for the source environment; if not (the declaration or templates changed since
staging was deployed, or someone edited staging by hand), it refuses: deploy and smoke staging from
this checkout first. So prod gets staging's tested code and the tested configuration, translated to
prod's identity and settings and nothing else. (Comments in `app.py`/`Dockerfile` that name the
environment are code under this rule and travel as they are.)

Rollback of the Spaces (`rollback_revision`)
--------------------------------------------
Restores, on each Space of an environment, the files of a revision (a commit sha present in that
Space's history, abbreviated or full, or `PREVIOUS`: the deploy before the one running) in one
commit per Space, deletions included, with `parent_commit` set so a concurrent deploy is detected.
Settings, variables and secrets are not touched. It adds a commit rather than rewriting history;
`PREVIOUS` steps over the toolkit's own rollback commits, so running it again goes one deploy further
back (never forward to the release just rolled back), and a revision without the Space app (such as
the Hub's creation commit) is refused rather than restored. It does not touch flags: the
flag rollback (`infra.flags.rollback_to_openai`) is the fast path; this restores the Spaces themselves.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFile

from infra.errors import UserError
from infra.flags import FlagChange, FlagStore, apply_change, rollback_to_openai
from infra.flags.factory import initial_document, tier_names
from infra.hub import DEFAULT_POLICY, RetryPolicy, call
from infra.progress import SILENT, Progress
from infra.reconcile import (
    ApplyResult,
    DesiredSpace,
    apply_environment,
    desired_spaces,
    plan_environment,
    read_actual,
)
from infra.reconcile.actual import HUB_MANAGED_FILES
from infra.reconcile.apply import apply_plan
from infra.reconcile.model import SpacePlan
from infra.reconcile.planner import diff_files
from infra.reconcile.wait import wait_running
from infra.render import render_space
from infra.smoke import SmokeReport, api_key_from_environ, smoke_environment
from infra.spec import Declaration

__all__ = [
    "ENVIRONMENT_FILES", "PREVIOUS", "PROMOTED_FROM_VARIABLE", "PromotionReport", "RevisionRollbackReport",
    "SourceRevision", "SpaceRollback", "Step", "promote", "promoted_files", "read_revision_files", "read_source",
    "rollback_revision",
]

ENVIRONMENT_FILES = ("README.md", "space.json")
PROMOTED_FROM_VARIABLE = "TOOLKIT_PROMOTED_FROM"
PREVIOUS = "PREVIOUS"


# --------------------------------------------------------------------------- reports


@dataclass
class Step:
    """One step of a promotion: name, outcome, duration and a one-line detail."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass
class SourceRevision:
    """The commit a source Space runs, with its files."""

    tier: str
    repo_id: str
    sha: str
    files: dict[str, bytes]

    @property
    def reference(self) -> str:
        return f"{self.repo_id}@{self.sha}"


@dataclass
class PromotionReport:
    """What a promotion did (or, with `dry_run`, would do), step by step."""

    source: str
    target: str
    dry_run: bool = False
    steps: list[Step] = field(default_factory=list)
    sources: list[SourceRevision] = field(default_factory=list)
    plans: list[SpacePlan] = field(default_factory=list)
    applied: list[ApplyResult] = field(default_factory=list)
    smoke: SmokeReport | None = None
    flag: str | None = None  # the target's provider when the promotion ended, as confirmed by the store
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(step.ok for step in self.steps)

    @property
    def failed_step(self) -> str | None:
        return next((step.name for step in self.steps if not step.ok), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "target": self.target, "dry_run": self.dry_run, "ok": self.ok,
            "failed_step": self.failed_step, "error": self.error, "flag": self.flag,
            "steps": [step.to_json() for step in self.steps],
            "promoted": [{"tier": s.tier, "from": s.reference, "files": sorted(s.files)} for s in self.sources],
            "plan": [plan.to_json() for plan in self.plans],
            "applied": [{"space": r.plan.repo_id, "tier": r.plan.tier, "steps": r.steps, "stage": r.stage,
                         "error": r.error} for r in self.applied],
            "smoke": self.smoke.to_json() if self.smoke else None,
        }


class _StepFailed(UserError):
    pass


class _Steps:
    """Runs named steps, recording duration and outcome; a failure is recorded and re-raised."""

    def __init__(self, report: PromotionReport, progress: Progress) -> None:
        self.report, self.progress = report, progress

    def run(self, name: str, body: Callable[[], str | None]) -> None:
        started = time.monotonic()
        subject = f"{self.report.source} -> {self.report.target}"
        try:
            detail = body() or "done"
        except Exception as error:  # noqa: BLE001 - any failure of a step must reach the fall-back
            seconds = time.monotonic() - started
            message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            self.report.steps.append(Step(name, False, seconds, message))
            self.progress.line(subject, name, f"FAILED {(message.splitlines() or [''])[0]}", seconds)
            raise _StepFailed(f"{name}: {message}") from None
        seconds = time.monotonic() - started
        self.report.steps.append(Step(name, True, seconds, detail))
        self.progress.line(subject, name, detail, seconds)


# --------------------------------------------------------------------------- reading revisions


def read_revision_files(api: HfApi, repo_id: str, revision: str,
                        policy: RetryPolicy = DEFAULT_POLICY) -> dict[str, bytes]:
    """Every file of `repo_id` at `revision` (a full sha), except files the Hub manages itself."""
    tree = call(repo_id, f"list files at {revision[:12]}", lambda: list(
        api.list_repo_tree(repo_id, repo_type="space", recursive=True, revision=revision)), policy)
    paths = sorted(entry.path for entry in tree if isinstance(entry, RepoFile) and entry.path not in HUB_MANAGED_FILES)
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="promote-") as directory:
        for path in paths:
            local = call(repo_id, f"download {path}@{revision[:12]}", lambda p=path: api.hf_hub_download(
                repo_id, p, repo_type="space", revision=revision, local_dir=directory), policy)
            files[path] = Path(local).read_bytes()
    return files


def read_source(api: HfApi, declaration: Declaration, env: str, *, policy: RetryPolicy = DEFAULT_POLICY,
                progress: Progress = SILENT) -> list[SourceRevision]:
    """The commit each Space of `env` runs now, with its files; every Space must be RUNNING."""
    revisions, problems = [], []
    for space in declaration.spaces(env):
        repo_id = space.repo_id
        actual = read_actual(api, repo_id, policy)
        if not actual.exists:
            problems.append(f"{repo_id} does not exist; run `invoke up --env {env}` first")
            continue
        if actual.stage != "RUNNING":
            problems.append(f"{repo_id} is {actual.stage}, not RUNNING, so its commit is not a tested one; "
                            f"fix it and run `invoke smoke --env {env}`")
            continue
        if actual.running_sha and actual.running_sha != actual.sha:
            problems.append(f"{repo_id} runs {actual.running_sha[:12]} but its head is {actual.sha[:12]} (a build "
                            f"is in progress); wait for it and run `invoke smoke --env {env}`")
            continue
        with progress.step(repo_id, "download", f"files at {actual.sha[:12]}"):
            files = read_revision_files(api, repo_id, actual.sha, policy)
        revisions.append(SourceRevision(tier=space.tier, repo_id=repo_id, sha=actual.sha, files=files))
    if problems:
        raise UserError("cannot promote from " + env + ":\n" + "\n".join(f"  - {p}" for p in problems))
    return revisions


def promoted_files(declaration: Declaration, source_env: str, target_env: str, revision: SourceRevision,
                   target_files: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The target's files under the module's file rule; refuses a source whose configuration drifted."""
    expected = render_space(declaration, source_env, revision.tier)
    drifted = [name for name in ENVIRONMENT_FILES if revision.files.get(name) != expected.get(name)]
    if drifted:
        raise UserError(
            f"{revision.reference}: {', '.join(drifted)} differ from what this declaration renders for "
            f"{source_env}, so the tested configuration cannot be translated to {target_env}. Deploy and smoke "
            f"{source_env} from this checkout first (`invoke up --env {source_env}`, `invoke smoke --env "
            f"{source_env}`).")
    rendered = dict(target_files) if target_files is not None else render_space(declaration, target_env,
                                                                                  revision.tier)
    files = {path: content for path, content in revision.files.items() if path not in ENVIRONMENT_FILES}
    files.update({name: rendered[name] for name in ENVIRONMENT_FILES if name in rendered})
    return dict(sorted(files.items()))


def _promotion_desired(declaration: Declaration, source: str, target: str, environ: Mapping[str, str],
                       revisions: list[SourceRevision]) -> list[DesiredSpace]:
    desired = desired_spaces(declaration, target, environ)
    by_tier = {revision.tier: revision for revision in revisions}
    for item in desired:
        revision = by_tier[item.space.tier]
        item.files = promoted_files(declaration, source, target, revision, item.files)
        item.variables = {**item.variables, PROMOTED_FROM_VARIABLE: revision.reference}
        item.commit_message = f"Promote {revision.reference} to {target}"
    return desired


# --------------------------------------------------------------------------- promotion


def _provider(store: FlagStore) -> str | None:
    """The stored provider; `openai` when nothing is stored (clients then use OpenAI), None if unreadable."""
    snapshot = store.snapshot()
    if snapshot.document is not None:
        return snapshot.document.provider
    return "openai" if snapshot.revision is None and not snapshot.problem else None


def promote(api: HfApi, declaration: Declaration, source: str, target: str, *, environ: Mapping[str, str],
            flag_store: FlagStore, dry_run: bool = False, progress: Progress = SILENT, actor: str | None = None,
            wait_timeout: float = 900.0, smoke_timeout: float = 300.0, request_timeout: float = 15.0,
            poll: float = 2.0, workers: int = 8, policy: RetryPolicy = DEFAULT_POLICY,
            smoke: Callable[..., SmokeReport] = smoke_environment) -> PromotionReport:
    """Promote what `source` runs to `target` (see the module docstring); never raises for a failed step.

    Input errors (unknown environments, missing secrets) raise `UserError` before any Hub call.
    `smoke` is the smoke function (the default is `infra.smoke.smoke_environment`; tests wrap it).
    """
    for env in (source, target):
        if env not in declaration.environments:
            raise UserError(f"unknown environment {env!r}; declared environments: "
                            f"{', '.join(declaration.environments)}")
    if source == target:
        raise UserError(f"--from and --to are both {source!r}; promotion needs two environments")
    desired_spaces(declaration, target, environ)  # every secret present, before the first Hub call
    api_key = api_key_from_environ(declaration, environ)
    report = PromotionReport(source=source, target=target, dry_run=dry_run)
    steps = _Steps(report, progress)
    desired: list[DesiredSpace] = []
    touched_flag = False

    def read() -> str:
        report.sources = read_source(api, declaration, source, policy=policy, progress=progress)
        return ", ".join(f"{s.tier}={s.sha[:12]}" for s in report.sources)

    def plan() -> str:
        desired[:] = _promotion_desired(declaration, source, target, environ, report.sources)
        report.plans = plan_environment(api, desired, workers=workers, progress=progress, policy=policy)
        return f"{sum(p.has_changes for p in report.plans)} of {len(report.plans)} Spaces change"

    def to_openai_first() -> str:
        nonlocal touched_flag
        current = _provider(flag_store)
        if current == "openai":
            return "already openai"
        touched_flag = True
        rollback_to_openai(flag_store, reason=f"promotion {source} -> {target} in progress: {_refs(report)}",
                           actor=actor, initial=initial_document(declaration), tier_names=tier_names(declaration))
        return f"{current or 'unset'} -> openai while the Spaces rebuild"

    def apply() -> str:
        changing = [p for p in report.plans if p.has_changes]
        report.applied = apply_environment(api, changing, workers=workers, progress=progress, policy=policy,
                                           wait=True, timeout=wait_timeout, poll=poll)
        failed = [r for r in report.applied if not r.ok]
        if failed:
            raise UserError("; ".join(f"{r.plan.tier}: {r.error}" for r in failed))
        return f"{len(changing)} Spaces updated" if changing else "nothing to change"

    def smoke_target() -> str:
        report.smoke = smoke(api, declaration, target, api_key, timeout=smoke_timeout,
                             request_timeout=request_timeout, poll=poll, workers=workers, policy=policy,
                             progress=progress)
        if not report.smoke.ok:
            raise UserError("smoke failed: " + "; ".join(report.smoke.failures))
        return f"{sum(len(s.checks) for s in report.smoke.spaces)} checks passed"

    def flip() -> str:
        nonlocal touched_flag
        current = _provider(flag_store)
        if current == "huggingface":
            return "already huggingface"
        touched_flag = True
        result = apply_change(flag_store, FlagChange(provider="huggingface"),
                              reason=f"promoted {source} -> {target}: {_refs(report)}", actor=actor,
                              initial=initial_document(declaration), tier_names=tier_names(declaration))
        report.flag = result.after.document.provider if result.after.document else None
        if report.flag != "huggingface":
            raise UserError(f"{flag_store.description} did not confirm provider=huggingface")
        return f"{current or 'unset'} -> huggingface"

    try:
        steps.run("read source", read)
        steps.run("plan target", plan)
        if dry_run:
            report.flag = _safe_provider(flag_store)
            return report
        if any(p.has_changes for p in report.plans):
            steps.run("flag openai", to_openai_first)
        steps.run("apply target", apply)
        steps.run("smoke target", smoke_target)
        steps.run("flag huggingface", flip)
        report.flag = "huggingface"
    except _StepFailed as failure:
        report.error = str(failure)
        _fall_back(report, flag_store, declaration, actor, progress)
    except KeyboardInterrupt:  # an operator's Ctrl-C mid-promotion still ends on OpenAI
        report.error = "interrupted"
        report.steps.append(Step("interrupted", False, 0.0, "KeyboardInterrupt"))
        _fall_back(report, flag_store, declaration, actor, progress)
        raise
    return report


def _refs(report: PromotionReport) -> str:
    return ", ".join(source.reference for source in report.sources) or "(source not read)"


def _safe_provider(store: FlagStore) -> str | None:
    try:
        return _provider(store)
    except UserError:
        return None


def _fall_back(report: PromotionReport, store: FlagStore, declaration: Declaration, actor: str | None,
               progress: Progress) -> None:
    """After a failure: make sure the target's flag says openai, and record how that went."""
    started = time.monotonic()
    subject = f"{report.source} -> {report.target}"
    try:
        if _provider(store) == "openai":
            detail = "already openai"
        else:
            rollback_to_openai(store, reason=f"promotion {report.source} -> {report.target} failed at "
                                             f"{report.failed_step}: {_refs(report)}"[:500],
                               actor=actor, initial=initial_document(declaration),
                               tier_names=tier_names(declaration))
            detail = "returned to openai"
        report.flag = "openai"
        report.steps.append(Step("fall back to openai", True, time.monotonic() - started, detail))
        progress.line(subject, "fall back", detail, time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - the report must say the flag state is unknown
        report.flag = None
        message = f"could not confirm provider=openai in {store.description}: {error}; run `invoke rollback " \
                  f"--env {report.target}` now"
        report.steps.append(Step("fall back to openai", False, time.monotonic() - started, message))
        report.error = f"{report.error}\n{message}"
        progress.line(subject, "fall back", f"FAILED {message}", time.monotonic() - started)


# --------------------------------------------------------------------------- revision rollback


@dataclass
class SpaceRollback:
    """One Space's revision rollback."""

    tier: str
    space: str
    from_sha: str | None = None
    to_sha: str | None = None  # the revision whose files were restored
    commit: str | None = None  # the new commit (None when nothing had to change)
    files_added: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    stage: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "space": self.space, "ok": self.ok, "from": self.from_sha, "to": self.to_sha,
                "commit": self.commit, "files": {"added": self.files_added, "changed": self.files_changed,
                                                 "deleted": self.files_deleted},
                "stage": self.stage, "error": self.error}


@dataclass
class RevisionRollbackReport:
    env: str
    revision: str
    spaces: list[SpaceRollback] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(space.ok for space in self.spaces)

    @property
    def failures(self) -> list[str]:
        return [f"{s.tier}: {s.error}" for s in self.spaces if not s.ok]

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "revision": self.revision, "ok": self.ok, "spaces": [s.to_json() for s in self.spaces]}


ROLLBACK_TITLE = "Roll back to the files of "
APP_FILES = ("app.py", "Dockerfile")  # a revision without them is not a deploy (e.g. the Hub's creation commit)


def _is_deploy(api: HfApi, repo_id: str, sha: str, policy: RetryPolicy) -> bool:
    tree = call(repo_id, f"list files at {sha[:12]}", lambda: list(
        api.list_repo_tree(repo_id, repo_type="space", recursive=True, revision=sha)), policy)
    return set(APP_FILES) <= {entry.path for entry in tree if isinstance(entry, RepoFile)}


def _resolve_revision(api: HfApi, repo_id: str, head: str, revision: str, policy: RetryPolicy) -> str:
    """The full sha to restore. PREVIOUS is what ran before the running deploy; a toolkit rollback commit
    counts as the commit whose files it restored, so repeating PREVIOUS walks further back, never forward
    to the release that was rolled back. A revision that carries no Space app is refused."""
    commits = call(repo_id, "list commits", lambda: api.list_repo_commits(repo_id, repo_type="space"), policy)
    ids = [commit.commit_id for commit in commits]
    titles = {commit.commit_id: commit.title or "" for commit in commits}
    def origin(sha: str) -> str:
        """A toolkit rollback commit carries the files of the commit it restored: follow it back."""
        while titles[sha].startswith(ROLLBACK_TITLE):
            restored = titles[sha][len(ROLLBACK_TITLE):].split(" ", 1)[0]
            if restored not in ids:
                break
            sha = restored
        return sha

    if revision.upper() == PREVIOUS:
        current = origin(head if head in ids else ids[0])  # running a rollback of X: "previous" is before X
        for candidate in ids[ids.index(current) + 1:]:
            target = origin(candidate)  # what ran then: a rollback commit ran the files it restored
            if target != current and _is_deploy(api, repo_id, target, policy):
                return target
        raise UserError(f"{repo_id}: no deployed revision before {current[:12]} to roll back to")
    matches = [commit_id for commit_id in ids if commit_id.startswith(revision.lower())]
    if len(revision) < 7 or len(matches) != 1:
        how = "is ambiguous" if len(matches) > 1 else "is not a commit of this Space"
        raise UserError(f"{repo_id}: revision {revision!r} {how} (give a full sha or {PREVIOUS})")
    if not _is_deploy(api, repo_id, matches[0], policy):
        raise UserError(f"{repo_id}: revision {matches[0][:12]} has no {' or '.join(APP_FILES)}; restoring it "
                        "would leave the Space without an app")
    return matches[0]


def rollback_revision(api: HfApi, declaration: Declaration, env: str, revision: str, *,
                      progress: Progress = SILENT, policy: RetryPolicy = DEFAULT_POLICY, wait: bool = True,
                      timeout: float = 900.0, poll: float = 2.0, workers: int = 8,
                      tiers: list[str] | None = None) -> RevisionRollbackReport:
    """Restore the files of `revision` (a sha, or PREVIOUS) on each Space of `env` (or of the given `tiers`:
    a sha belongs to one Space's history, so a sha usually goes with one tier): one commit per Space."""
    if not revision or not revision.strip():
        raise UserError(f"--to-revision is required: a commit sha or {PREVIOUS}")
    revision = revision.strip()
    unknown = sorted(set(tiers or []) - set(declaration.tier_names))
    if unknown:
        raise UserError(f"unknown tier {', '.join(unknown)}; declared tiers: {', '.join(declaration.tier_names)}")
    spaces = [s for s in declaration.spaces(env) if tiers is None or s.tier in tiers]
    report = RevisionRollbackReport(env=env, revision=revision)

    def one(space: Any) -> SpaceRollback:
        result = SpaceRollback(tier=space.tier, space=space.repo_id)
        try:
            actual = read_actual(api, space.repo_id, policy)
            if not actual.exists:
                raise UserError(f"{space.repo_id} does not exist")
            result.from_sha = actual.sha
            result.to_sha = _resolve_revision(api, space.repo_id, actual.sha, revision, policy)
            files = read_revision_files(api, space.repo_id, result.to_sha, policy)
            how = f"{PREVIOUS} of {actual.sha[:12]}" if revision.upper() == PREVIOUS else revision
            plan = _files_only_plan(space, actual, files, f"{ROLLBACK_TITLE}{result.to_sha} ({how})")
            result.files_added, result.files_changed = plan.files_added, plan.files_changed
            result.files_deleted = plan.files_deleted
            result.stage = actual.stage
            if not plan.has_file_changes:
                progress.line(space.repo_id, "rollback", f"already has the files of {result.to_sha[:12]}")
                return result
            apply_plan(api, plan, progress, policy)
            result.commit = plan.committed
            if wait:
                result.stage = wait_running(api, space.repo_id, timeout=timeout, poll=poll, progress=progress,
                                            expected_sha=plan.committed)
        except UserError as error:
            result.error = str(error)
            progress.line(space.repo_id, "rollback", f"FAILED {str(error).splitlines()[0]}")
        return result

    from infra.reconcile import parallel

    report.spaces = parallel(spaces, one, workers)
    return report


def _files_only_plan(space: Any, actual: Any, files: dict[str, bytes], message: str) -> SpacePlan:
    desired = DesiredSpace(space=space, files=files, variables=dict(actual.variables), secrets={},
                           commit_message=message)
    plan = SpacePlan(desired=desired, actual=actual)
    plan.files_added, plan.files_changed, plan.files_deleted = diff_files(files, actual)
    return plan

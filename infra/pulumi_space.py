"""Pulumi dynamic provider for one Space: create/read/diff/update/delete delegate to the reconciler.

The stateful IaC path for teams that run the Pulumi engine. The provider renders the Space from the
declaration on the machine running `pulumi up` and converges it with the same code as `invoke up`,
so both paths agree. Secret values arrive as Pulumi secrets and are replaced in the resource's
outputs by salted fingerprints: Pulumi state never holds a plaintext secret.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from infra import fingerprint

SETTINGS = ("hardware", "private", "sleep_time", "variables", "content_hash")
REPLACE_ON = ("repo_id",)


def _desired(props: dict[str, Any]):  # noqa: ANN202 - a DesiredSpace
    """The resource's inputs (hardware, visibility, sleep time, variables) are what gets applied; the
    files are rendered from the declaration at `config_path` and tracked by `content_hash`."""
    from infra.reconcile import DesiredSpace
    from infra.render import render_space
    from infra.spec import load_declaration

    declaration = load_declaration(props["config_path"])
    space = declaration.space(props["environment"], props["tier"])
    space = space.model_copy(update={key: props[key] for key in ("hardware", "private", "sleep_time") if key in props})
    return DesiredSpace(space=space, files=render_space(declaration, space.environment, space.tier),
                        variables=dict(props.get("variables") or space.variables),
                        secrets=dict(props.get("secrets") or {}))


def _api(props: dict[str, Any]):  # noqa: ANN202 - an HfApi
    from infra.hub import make_api

    return make_api(endpoint=props.get("endpoint") or None)


def _outputs(props: dict[str, Any], actual) -> dict[str, Any]:  # noqa: ANN001
    """Inputs minus secret values, plus what the Hub reports; fingerprints stand in for secrets."""
    outs = {key: value for key, value in props.items() if key != "secrets"}
    outs["secret_fingerprints"] = {name: description or "" for name, description in actual.secrets.items()}
    outs.update(sha=actual.sha, stage=actual.stage, url=actual.host or "")
    return outs


class SpaceProvider(dynamic.ResourceProvider):
    """CRUD for a Space through `HfApi`; the Hub, not Pulumi state, decides what a write must change."""

    def __init__(self, wait_timeout: float = 900.0, poll: float = 2.0) -> None:
        self.wait_timeout, self.poll = wait_timeout, poll

    def _converge(self, props: dict[str, Any]):  # noqa: ANN202
        from infra.reconcile import converge, plan_space, read_actual, wait_running

        api, desired = _api(props), _desired(props)
        plan = plan_space(desired, read_actual(api, props["repo_id"]))
        if plan.has_changes:
            converge(api, plan)
            wait_running(api, props["repo_id"], timeout=self.wait_timeout, poll=self.poll,
                         expected_sha=plan.committed)
        return read_actual(api, props["repo_id"])

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_=props["repo_id"], outs=_outputs(props, self._converge(props)))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=_outputs(news, self._converge(news)))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        from infra.reconcile import read_actual

        actual = read_actual(_api(props), id_)
        if not actual.exists:
            return dynamic.ReadResult(id_="", outs={})  # gone: Pulumi drops it from state
        return dynamic.ReadResult(id_=id_, outs=_outputs(props, actual))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [key for key in SETTINGS if olds.get(key) != news.get(key)]
        fingerprints = olds.get("secret_fingerprints") or {}
        new_secrets = news.get("secrets") or {}
        if set(fingerprints) != set(new_secrets) or any(
                not fingerprint.matches(fingerprints.get(name), value) for name, value in new_secrets.items()):
            changed.append("secrets")
        replaces = [key for key in REPLACE_ON if olds.get(key) != news.get(key)]
        return dynamic.DiffResult(changes=bool(changed or replaces), replaces=replaces,
                                  delete_before_replace=bool(replaces))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.hub import call

        api = _api(props)
        call(id_, "delete", lambda: api.delete_repo(id_, repo_type="space", missing_ok=True))


class Space(dynamic.Resource, module="triple-llm", name="Space"):
    """One tier's Space in one environment."""

    repo_id: pulumi.Output[str]
    sha: pulumi.Output[str]
    stage: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None,
                 provider: SpaceProvider | None = None) -> None:
        outputs = {"sha": None, "stage": None, "url": None, "secret_fingerprints": None}
        super().__init__(provider or SpaceProvider(), name, {**outputs, **props},
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                             additional_secret_outputs=["secrets", "secret_fingerprints"])))

"""The Pulumi stack for one environment: three `Space` resources and the flag parameter.

Kept apart from `infra/__main__.py` so Pulumi's unit-test mocks can run it as a function. The
flag store is a `pulumi_aws.ssm.Parameter` created with the declaration's initial flags and
`ignore_changes=["value"]`, so a flag flipped at run time (rollback) is never reverted by `pulumi up`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.pulumi_space import Space
from infra.render import content_hash, render_space
from infra.spec import Declaration


def initial_flag_document(declaration: Declaration) -> str:
    """The flag document a new store starts with (the declaration's `flags.initial`)."""
    from infra.flags.factory import initial_document

    return initial_document(declaration).to_json()


def secret_inputs(declaration: Declaration, names: tuple[str, ...], config: pulumi.Config) -> dict:
    """Secret values from Pulumi config secrets first, else from the declared environment variables."""
    values = {}
    for name in names:
        value = config.get_secret(name)
        if value is None:
            raw = os.environ.get(declaration.secrets[name].env)
            if not raw:
                raise ValueError(f"secret {name}: set `pulumi config set --secret {name}` or "
                                 f"${declaration.secrets[name].env}")
            value = pulumi.Output.secret(raw)
        values[name] = value
    return values


def _region_provider(env: str, region: str | None) -> aws.Provider | None:
    """The parameter lives where clients read it (`flags.store.region`). Only when that differs from the
    stack's `aws:region` is an explicit provider used (it would not inherit other `aws:*` settings, and
    switching an existing parameter's provider could plan a replacement)."""
    if not region or region == pulumi.Config("aws").get("region"):
        return None
    return aws.Provider(f"{env}-flags-region", region=region)


def define_stack(declaration: Declaration, env: str, config: pulumi.Config | None = None) -> dict:
    """Declare the environment's resources; returns them by name (for exports and tests)."""
    config = config or pulumi.Config()
    resources: dict = {}
    for space in declaration.spaces(env):
        props = {
            "repo_id": space.repo_id, "environment": env, "tier": space.tier,
            "config_path": str(Path(declaration.source_path).resolve()),
            "endpoint": os.environ.get("HF_ENDPOINT", ""),
            "content_hash": content_hash(render_space(declaration, env, space.tier)),
            "hardware": space.hardware, "private": space.private, "sleep_time": space.sleep_time,
            "variables": dict(space.variables),
            "secrets": secret_inputs(declaration, space.secrets, config),
        }
        resources[space.tier] = Space(f"{env}-{space.tier}", props)
    store = declaration.flags.store
    if store.kind == "ssm":
        resources["flags"] = aws.ssm.Parameter(
            f"{env}-flags", name=store.name.format(env=env), type="String",
            value=initial_flag_document(declaration),
            description=f"LLM provider flags for {env} (flipped at run time by rollback / admin)",
            opts=pulumi.ResourceOptions(ignore_changes=["value"], provider=_region_provider(env, store.region)))
    return resources

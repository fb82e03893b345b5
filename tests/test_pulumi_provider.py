"""The Pulumi dynamic provider's create/read/diff/update/delete, called directly against the sandbox."""

from __future__ import annotations

import pytest
from support import CONFIG

from infra.pulumi_space import SpaceProvider
from infra.render import content_hash, render_space
from infra.sandbox import run_sandbox
from infra.spec import load_declaration

SECRETS = {"SPACE_API_KEY": "provider-canary-key"}


def _props(sandbox_url: str, **overrides) -> dict:  # noqa: ANN003
    declaration = load_declaration(CONFIG, environ={})
    space = declaration.space("staging", "base")
    props = {
        "repo_id": space.repo_id, "environment": "staging", "tier": "base", "config_path": str(CONFIG),
        "endpoint": sandbox_url, "content_hash": content_hash(render_space(declaration, "staging", "base")),
        "hardware": space.hardware, "private": space.private, "sleep_time": space.sleep_time,
        "variables": dict(space.variables), "secrets": dict(SECRETS),
    }
    return {**props, **overrides}


def test_provider_lifecycle_against_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = SpaceProvider(wait_timeout=60, poll=0.1)
    with run_sandbox(owner="acme-ai") as sandbox:
        monkeypatch.setenv("HF_TOKEN", sandbox.token)
        props = _props(sandbox.url)

        created = provider.create(props)
        assert created.id == "acme-ai/company-base-llm-staging"
        outs = created.outs
        assert outs["stage"] == "RUNNING" and outs["url"].startswith("http://127.0.0.1:")
        assert "secrets" not in outs, "secret values must never reach Pulumi state"
        assert "provider-canary-key" not in repr(outs)
        assert set(outs["secret_fingerprints"]) == {"SPACE_API_KEY"}

        assert provider.diff(created.id, outs, props).changes is False
        rotated = _props(sandbox.url, secrets={"SPACE_API_KEY": "rotated-key"})
        assert provider.diff(created.id, outs, rotated).changes is True
        moved = _props(sandbox.url, hardware="t4-small")
        diff = provider.diff(created.id, outs, moved)
        assert diff.changes is True and not diff.replaces
        renamed = provider.diff(created.id, outs, _props(sandbox.url, repo_id="acme-ai/other"))
        assert renamed.replaces == ["repo_id"]

        writes_before = sandbox.stats()["total"]["write_calls"]
        updated = provider.update(created.id, outs, moved)
        assert updated.outs["stage"] == "RUNNING"
        assert sandbox.stats()["total"]["write_calls"] == writes_before + 1, "only the hardware request"

        read = provider.read(created.id, moved)
        assert read.id == created.id and read.outs["sha"] == outs["sha"]

        provider.delete(created.id, moved)
        assert provider.read(created.id, moved).id == ""

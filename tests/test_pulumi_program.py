"""The Pulumi program under Pulumi's unit-test mocks: three Spaces and one flag parameter per stack."""

from __future__ import annotations

import json

import pulumi
import pytest
from support import CONFIG

from infra.spec import load_declaration

SIG_KEY, SECRET_SIG = pulumi.runtime.rpc._special_sig_key, pulumi.runtime.rpc._special_secret_sig


def is_secret(value: object) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):  # noqa: ANN201
        self.resources.append(args)
        return f"{args.name}-id", {**args.inputs, "url": f"http://{args.name}", "sha": "0" * 40}

    def call(self, args: pulumi.runtime.MockCallArgs):  # noqa: ANN201
        return {}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_each_stack_declares_three_spaces_and_one_flag_parameter(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACE_API_KEY", "pulumi-canary-key")
    monkeypatch.setenv("HF_TOKEN", "pulumi-canary-token")
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="triple-llm-spaces", stack=env, preview=False)
    from infra.stack import define_stack

    declaration = load_declaration(CONFIG, environ={})
    resources = define_stack(declaration, env)

    def check(_):  # noqa: ANN001, ANN202
        spaces = [r for r in mocks.resources if r.typ.endswith("triple-llm:Space")]
        parameters = [r for r in mocks.resources if r.typ == "aws:ssm/parameter:Parameter"]
        assert sorted(r.inputs["tier"] for r in spaces) == ["abstraction", "base", "company"]
        assert {r.inputs["repo_id"] for r in spaces} == {s.repo_id for s in declaration.spaces(env)}
        assert all(r.inputs["environment"] == env for r in spaces)
        assert len(parameters) == 1
        regions = [r.inputs.get("region") for r in mocks.resources if r.typ == "pulumi:providers:aws"]
        assert regions == ["eu-west-1"], "the parameter is created where clients read it (flags.store.region)"
        assert parameters[0].inputs["name"] == f"/triple-llm/{env}/flags"
        value = parameters[0].inputs["value"]
        if is_secret(value):  # pulumi_aws marks the value secret
            value = value["value"]
        document = json.loads(value)
        assert document["provider"] == "openai" and document["tiers"]["company"] is True
        company = next(r for r in spaces if r.inputs["tier"] == "company")
        secrets = company.inputs["secrets"]
        assert is_secret(secrets), "secret values must reach Pulumi as secrets"
        assert set(secrets["value"]) == {"HF_TOKEN", "SPACE_API_KEY"}
        assert company.inputs["hardware"] == declaration.space(env, "company").hardware

    pulumi.runtime.test(lambda: pulumi.Output.all(*(r.urn for r in resources.values())).apply(check))()


def test_flag_parameter_ignores_value_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag flipped at run time (rollback, admin) must not be reverted by the next `pulumi up`."""
    monkeypatch.setenv("SPACE_API_KEY", "k")
    monkeypatch.setenv("HF_TOKEN", "t")
    pulumi.runtime.set_mocks(RecordingMocks(), project="triple-llm-spaces", stack="prod", preview=False)
    from infra import stack

    seen: list[pulumi.ResourceOptions] = []
    original = stack.aws.ssm.Parameter

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(kwargs["opts"])
        return original(*args, **kwargs)

    monkeypatch.setattr(stack.aws.ssm, "Parameter", recording)
    stack.define_stack(load_declaration(CONFIG, environ={}), "prod")
    assert len(seen) == 1 and seen[0].ignore_changes == ["value"]


def test_main_program_runs_from_the_infra_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pulumi executes infra/__main__.py with infra/ as the working directory."""
    import runpy

    from support import ROOT

    monkeypatch.setenv("SPACE_API_KEY", "k")
    monkeypatch.setenv("HF_TOKEN", "t")
    monkeypatch.chdir(ROOT / "infra")
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="triple-llm-spaces", stack="staging", preview=False)
    pulumi.runtime.test(lambda: runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"))()
    assert sorted(r.inputs["tier"] for r in mocks.resources if r.typ.endswith("triple-llm:Space")) == [
        "abstraction", "base", "company"]


def test_no_extra_provider_when_the_stack_region_is_the_declared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACE_API_KEY", "k")
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="triple-llm-spaces", stack="prod", preview=False)
    pulumi.runtime.set_all_config({"aws:region": "eu-west-1"})
    try:
        from infra.stack import define_stack

        resources = define_stack(load_declaration(CONFIG, environ={}), "prod")
        pulumi.runtime.test(lambda: pulumi.Output.all(*(r.urn for r in resources.values())))()
    finally:
        pulumi.runtime.set_all_config({})
    assert not [r for r in mocks.resources if r.typ == "pulumi:providers:aws"]
    assert len([r for r in mocks.resources if r.typ == "aws:ssm/parameter:Parameter"]) == 1

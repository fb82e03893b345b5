"""Rules that span fields, checked after the structure is valid.

Each rule yields `(path, message)` pairs; the loader turns them into `file:line: field: message`.
Valid values come from `huggingface_hub` itself (hardware, SDKs, repo-id rules) so the
declaration is judged by the same rules the Hub client applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from huggingface_hub import SpaceHardware
from huggingface_hub.constants import SPACES_SDK_TYPES
from huggingface_hub.utils import HFValidationError, validate_repo_id

from infra.spec.model import TIER_NAMES, Declaration

Problem = tuple[tuple[str | int, ...], str]

HARDWARE = [hardware.value for hardware in SpaceHardware]
TEMPLATE_SDKS = ("docker",)
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{20,})$")


def raw_problems(data: dict[str, Any]) -> Iterator[Problem]:
    """Problems best caught before pydantic sees the data (so messages never echo a secret)."""
    secrets = data.get("secrets")
    if isinstance(secrets, dict):
        for name, ref in secrets.items():
            if not isinstance(ref, dict):
                yield ("secrets", name), (
                    "a literal secret value is not allowed in the declaration; "
                    "reference it instead, e.g. {env: " + f"{name}" + "}"
                )
    for path, variables in _variable_maps(data):
        for key, value in variables.items():
            if SECRET_NAME.search(str(key)) or (isinstance(value, str) and SECRET_VALUE.match(value)):
                yield (*path, key), (
                    "looks like a secret; variables are public on the Space, declare it under "
                    "`secrets:` with {env: VARIABLE} and list it in the tier's `secrets`"
                )


def _variable_maps(data: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict]]:
    sections = [("defaults",), *(("environments", e) for e in _keys(data, "environments"))]
    sections += [("tiers", t) for t in _keys(data, "tiers")]
    for section in sections:
        node: Any = data
        for key in section:
            node = node.get(key) if isinstance(node, dict) else None
        variables = node.get("variables") if isinstance(node, dict) else None
        if isinstance(variables, dict):
            yield (*section, "variables"), variables


def _keys(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    return list(value) if isinstance(value, dict) else []


def model_problems(declaration: Declaration) -> Iterator[Problem]:
    """Cross-field rules on a structurally valid declaration."""
    yield from _tier_set(declaration)
    yield from _owner(declaration)
    for tier_name, tier in declaration.tiers.items():
        base = ("tiers", tier_name)
        yield from _per_env(declaration, (*base, "hardware"), tier.hardware, _hardware)
        yield from _per_env(declaration, (*base, "sleep_time"), tier.sleep_time, _sleep_time)
        yield from _per_env(declaration, (*base, "private"), tier.private, lambda value: None)
        if tier.sdk is not None:
            yield from _sdk((*base, "sdk"), tier.sdk)
        for index, secret in enumerate(tier.secrets):
            if secret not in declaration.secrets:
                declared = ", ".join(declaration.secrets) or "none declared"
                yield (*base, "secrets", index), (
                    f"secret {secret!r} is not declared under top-level `secrets:` (declared: {declared})"
                )
        if "/" not in tier.model or _repo_id_error(tier.model):
            yield (*base, "model"), f"model {tier.model!r} must be a Hub model id like 'owner/name'"
    defaults = declaration.defaults
    yield from _per_env(declaration, ("defaults", "hardware"), defaults.hardware, _hardware)
    yield from _per_env(declaration, ("defaults", "sleep_time"), defaults.sleep_time, _sleep_time)
    yield from _per_env(declaration, ("defaults", "private"), defaults.private, lambda value: None)
    yield from _sdk(("defaults", "sdk"), defaults.sdk)
    yield from _space_names(declaration)
    yield from _free_hardware_sleep(declaration)
    yield from _flags(declaration)


def _tier_set(declaration: Declaration) -> Iterator[Problem]:
    for tier in TIER_NAMES:
        if tier not in declaration.tiers:
            yield ("tiers",), f"missing tier {tier!r}; the toolkit deploys exactly: {', '.join(TIER_NAMES)}"
    for tier in declaration.tiers:
        if tier not in TIER_NAMES:
            yield ("tiers", tier), f"unknown tier {tier!r}{did_you_mean(tier, TIER_NAMES)}"


def _owner(declaration: Declaration) -> Iterator[Problem]:
    error = _repo_id_error(declaration.owner)
    if error or "/" in declaration.owner:
        yield ("owner",), f"owner {declaration.owner!r} is not a valid Hub user or organisation name"


def _per_env(declaration: Declaration, path, value, check) -> Iterator[Problem]:  # noqa: ANN001
    if isinstance(value, dict):
        for environment, item in value.items():
            if environment not in declaration.environments:
                valid = ", ".join(declaration.environments)
                yield (*path, environment), (
                    f"unknown environment {environment!r}{did_you_mean(environment, declaration.environments)}"
                    f"; declared environments: {valid}"
                )
            elif (message := check(item)) is not None:
                yield (*path, environment), message
    elif value is not None and (message := check(value)) is not None:
        yield path, message


def _hardware(value: str) -> str | None:
    if value in HARDWARE:
        return None
    return f"unknown hardware {value!r}{did_you_mean(value, HARDWARE)}; valid: {', '.join(HARDWARE)}"


def _sleep_time(value: int) -> str | None:
    if value == -1 or value >= 60:
        return None
    return f"sleep_time {value} is invalid; use seconds >= 60, or -1 to never sleep (upgraded hardware)"


def _sdk(path, value: str) -> Iterator[Problem]:  # noqa: ANN001
    if value not in SPACES_SDK_TYPES:
        valid = ", ".join(SPACES_SDK_TYPES)
        yield path, f"unknown SDK {value!r}{did_you_mean(value, SPACES_SDK_TYPES)}; valid: {valid}"
    elif value not in TEMPLATE_SDKS:
        yield path, f"SDK {value!r} is valid on the Hub but space_templates render only: {', '.join(TEMPLATE_SDKS)}"


def _space_names(declaration: Declaration) -> Iterator[Problem]:
    seen: dict[str, tuple[str, str]] = {}
    for tier_name, tier in declaration.tiers.items():
        for env_name, env in declaration.environments.items():
            repo_id = f"{declaration.owner}/{tier.space}{env.space_suffix}"
            error = _repo_id_error(repo_id)
            if error:
                yield ("tiers", tier_name, "space"), (
                    f"Space id {repo_id!r} (environment {env_name}) breaks the Hub's repo-name rules: {error}"
                )
                continue
            if repo_id in seen:
                other_tier, other_env = seen[repo_id]
                yield ("tiers", tier_name, "space"), (
                    f"duplicate Space id {repo_id!r}: tier {tier_name} ({env_name}) and "
                    f"tier {other_tier} ({other_env}) would deploy to the same Space"
                )
            seen[repo_id] = (tier_name, env_name)


def _free_hardware_sleep(declaration: Declaration) -> Iterator[Problem]:
    """The Hub refuses a custom sleep time on free `cpu-basic` hardware (it sleeps after 48 h)."""
    if any(problem for problem in _tier_set(declaration)):
        return
    for tier_name, tier in declaration.tiers.items():
        for env_name in declaration.environments:
            space = declaration.space(env_name, tier_name)
            if space.hardware == "cpu-basic" and space.sleep_time is not None:
                owner = ("tiers", tier_name) if tier.sleep_time is not None else ("defaults",)
                where = (*owner, "sleep_time")
                yield where, (f"tier {tier_name} ({env_name}) runs on free cpu-basic hardware, whose sleep time the "
                              "Hub does not let you set; drop sleep_time there or choose upgraded hardware")
                return


def _flags(declaration: Declaration) -> Iterator[Problem]:
    store = declaration.flags.store
    if store.kind == "ssm" and not store.name:
        yield ("flags", "store"), "an ssm flag store needs `name` (parameter name, may contain {env})"
    if store.kind == "ssm" and store.name and not store.name.startswith("/"):
        yield ("flags", "store", "name"), "SSM parameter names with a hierarchy must start with '/'"
    if store.kind == "file" and not store.path:
        yield ("flags", "store"), "a file flag store needs `path` (relative to the declaration, may contain {env})"
    for tier in declaration.flags.initial.tiers:
        if tier not in TIER_NAMES:
            yield ("flags", "initial", "tiers", tier), f"unknown tier {tier!r}{did_you_mean(tier, TIER_NAMES)}"


def _repo_id_error(repo_id: str) -> str | None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return str(error)
    return None


def did_you_mean(word: str, candidates) -> str:  # noqa: ANN001
    """`"; did you mean 'x'?"` when a candidate is close to `word`, else an empty string."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

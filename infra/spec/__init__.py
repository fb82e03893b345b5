"""The declaration: `config/spaces.yaml` -> a typed, validated `Declaration`.

`load_declaration` reports every problem it finds at once, each as `file:line: field: message`
with what would be valid, and raises `SpecError` (a `UserError`, so the CLI prints it without a
traceback). Nothing downstream runs on a declaration that did not load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from infra.errors import SpecError
from infra.spec.checks import did_you_mean, model_problems, raw_problems
from infra.spec.model import TIER_NAMES, Declaration, ResolvedSpace
from infra.spec.overrides import apply_overrides
from infra.spec.yaml_source import YamlSource, YamlSyntaxError, parse_yaml

DEFAULT_CONFIG = Path("config/spaces.yaml")
_TOP_KEYS = "owner, defaults, environments, tiers, secrets, flags"

__all__ = ["DEFAULT_CONFIG", "TIER_NAMES", "Declaration", "ResolvedSpace", "load_declaration"]


def load_declaration(path: str | Path = DEFAULT_CONFIG, environ: Mapping[str, str] | None = None) -> Declaration:
    """Load and validate a declaration, applying environment overrides (see `overrides`)."""
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise SpecError([f"{shown}:1: declaration file not found (pass --config PATH)"])
    try:
        source = parse_yaml(path)
    except YamlSyntaxError as error:
        raise SpecError([f"{shown}:{error.line}: {error.message}"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{shown}:1: not UTF-8 text"]) from None
    if source.data is None:
        raise SpecError([f"{shown}:1: the declaration is empty; expected a mapping of {_TOP_KEYS}"])
    if not isinstance(source.data, dict):
        raise SpecError([f"{shown}:1: the declaration must be a mapping of {_TOP_KEYS}"])

    overridden = apply_overrides(source.data, os.environ if environ is None else environ)
    problems = [_format(source, where, f"duplicate key {where[-1]!r}", line) for where, line in source.duplicates]
    problems += [_format(source, where, message, overridden=overridden) for where, message in raw_problems(source.data)]
    if problems:
        raise SpecError(problems)
    try:
        declaration = Declaration.model_validate(source.data)
    except ValidationError as error:
        raise SpecError(_pydantic_problems(source, error)) from None
    problems = [_format(source, where, msg, overridden=overridden) for where, msg in model_problems(declaration)]
    if problems:
        raise SpecError(problems)
    declaration._source_path = path.resolve()
    return declaration


def _format(
    source: YamlSource,
    where: tuple[str | int, ...],
    message: str,
    line: int | None = None,
    overridden: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    field = ".".join(str(part) for part in where) or "(top level)"
    variable = (overridden or {}).get(tuple(str(part) for part in where))
    origin = f" (value from ${variable})" if variable else ""
    return f"{source.path}:{line or source.line_of(where)}: {field}: {message}{origin}"


def _pydantic_problems(source: YamlSource, error: ValidationError) -> list[str]:
    problems: dict[tuple, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        where, kind = _data_path(source.data, item["loc"]), item["type"]
        if kind == "extra_forbidden":
            valid = _valid_keys(where[:-1])
            message = f"unknown key {where[-1]!r}{did_you_mean(str(where[-1]), valid)}; valid keys: {', '.join(valid)}"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = f"{item['msg']}{_hint(where)}"
        problems.setdefault(where, _format(source, where, message))
    return list(problems.values())


def _data_path(data: Any, loc: tuple) -> tuple[str | int, ...]:
    """Map a pydantic location onto the YAML data, dropping union tags such as 'int' or 'dict[str,int]'."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            path.append(part)
            node = node[part]
        elif index == len(loc) - 1 and isinstance(node, dict):
            path.append(part)  # a missing field: name it
    return tuple(path)


def _valid_keys(where: tuple[str | int, ...]) -> list[str]:
    model: Any = Declaration
    for part in where:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            model = field.annotation if field else None
        elif get_origin(model) is dict:
            model = get_args(model)[1]
        else:
            return []
    if get_origin(model) is dict:
        return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


_HINTS = {
    "hardware": "a hardware name, or a map {environment: hardware}",
    "sleep_time": "seconds (>= 60, or -1 for never), or a map {environment: seconds}",
    "private": "true/false, or a map {environment: true/false}",
    "secrets": "a list of secret names declared under top-level `secrets:`",
    "variables": "a map of NAME: value (strings, numbers or booleans)",
}


def _hint(where: tuple[str | int, ...]) -> str:
    for part in reversed(where):
        if isinstance(part, str) and part in _HINTS:
            return f"; expected {_HINTS[part]}"
    return ""

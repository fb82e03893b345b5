"""The typed declaration: what `config/spaces.yaml` may say, and the per-Space view of it.

Pydantic checks structure and types; `checks.py` adds the rules that span fields (hardware names,
repo-name rules, unique Space ids, environments named by maps). Per-environment fields accept a
single value or a map `{environment: value}`; `ResolvedSpace` is the flattened result that every
later stage (render, reconcile, smoke) consumes, so none of them re-implements the merge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

TIER_NAMES: tuple[str, ...] = ("base", "company", "abstraction")

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Generation(_Strict):
    """Generation defaults the Space app applies when a request does not set them."""

    system_prompt: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)


class Defaults(_Strict):
    sdk: str = "docker"
    private: bool | dict[str, bool] = True
    hardware: str | dict[str, str] = "cpu-basic"
    sleep_time: int | dict[str, int] | None = None
    app_port: int = Field(default=7860, ge=1024, le=65535)
    generation: Generation = Generation()
    variables: dict[str, Scalar] = {}


class Environment(_Strict):
    space_suffix: str = ""
    variables: dict[str, Scalar] = {}


class Tier(_Strict):
    space: str
    model: str
    title: str | None = None
    emoji: str = "🤖"
    description: str | None = None
    sdk: str | None = None
    private: bool | dict[str, bool] | None = None
    hardware: str | dict[str, str] | None = None
    sleep_time: int | dict[str, int] | None = None
    generation: Generation = Generation()
    secrets: list[str] = []
    variables: dict[str, Scalar] = {}


class SecretRef(_Strict):
    """Where a secret's value comes from at apply time. Only environment variables for now."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class FlagStore(_Strict):
    kind: Literal["ssm", "file"]
    name: str | None = None
    region: str | None = None
    path: str | None = None


class InitialFlags(_Strict):
    provider: Literal["openai", "huggingface"] = "openai"
    tiers: dict[str, bool] = {tier: True for tier in TIER_NAMES}


class Flags(_Strict):
    store: FlagStore
    initial: InitialFlags = InitialFlags()


class ResolvedSpace(_Strict):
    """One Space of one environment with every default and per-environment value applied."""

    environment: str
    tier: str
    owner: str
    name: str
    sdk: str
    private: bool
    hardware: str
    sleep_time: int | None
    app_port: int
    model: str
    title: str
    emoji: str
    description: str
    generation: Generation
    variables: dict[str, str]
    secrets: tuple[str, ...]

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.name}"


class Declaration(_Strict):
    owner: str
    defaults: Defaults = Defaults()
    environments: dict[str, Environment]
    tiers: dict[str, Tier]
    secrets: dict[str, SecretRef] = {}
    flags: Flags

    _source_path: Path = PrivateAttr(default=Path("config/spaces.yaml"))

    @property
    def source_path(self) -> Path:
        """The YAML file this declaration was read from."""
        return self._source_path

    @property
    def source_dir(self) -> Path:
        """Directory relative paths in the declaration (such as a file flag store) resolve against."""
        return self._source_path.parent

    @property
    def tier_names(self) -> list[str]:
        return [tier for tier in TIER_NAMES if tier in self.tiers]

    def space_id(self, environment: str, tier: str) -> str:
        return self.space(environment, tier).repo_id

    def spaces(self, environment: str) -> list[ResolvedSpace]:
        return [self.space(environment, tier) for tier in self.tier_names]

    def space(self, environment: str, tier: str) -> ResolvedSpace:
        """Flatten defaults, environment and tier settings into one `ResolvedSpace`."""
        from infra.errors import UserError

        if environment not in self.environments:
            valid = ", ".join(self.environments)
            raise UserError(f"unknown environment {environment!r}; declared environments: {valid}")
        if tier not in self.tiers:
            raise UserError(f"unknown tier {tier!r}; declared tiers: {', '.join(self.tier_names)}")
        env = self.environments[environment]
        spec = self.tiers[tier]
        generation = self.defaults.generation.model_dump(exclude_none=True)
        generation.update(spec.generation.model_dump(exclude_none=True))
        variables = {**self.defaults.variables, **env.variables, **spec.variables}
        return ResolvedSpace(
            environment=environment,
            tier=tier,
            owner=self.owner,
            name=f"{spec.space}{env.space_suffix}",
            sdk=spec.sdk or self.defaults.sdk,
            private=_pick(spec.private, environment, _pick(self.defaults.private, environment, True)),
            hardware=_pick(spec.hardware, environment, _pick(self.defaults.hardware, environment, "cpu-basic")),
            sleep_time=_pick(spec.sleep_time, environment, _pick(self.defaults.sleep_time, environment, None)),
            app_port=self.defaults.app_port,
            model=spec.model,
            title=spec.title or spec.space.replace("-", " ").title(),
            emoji=spec.emoji,
            description=spec.description or f"{tier} tier LLM ({spec.model})",
            generation=Generation(**generation),
            variables={key: _as_text(value) for key, value in sorted(variables.items())},
            secrets=tuple(spec.secrets),
        )


def _pick(value, environment: str, fallback):  # noqa: ANN001, ANN202 - generic over field types
    if value is None:
        return fallback
    if isinstance(value, dict):
        return value.get(environment, fallback)
    return value


def _as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

"""Declaration + `space_templates/` -> the files of one Space, for one (environment, tier).

Rendering is pure: the same declaration and templates give the same bytes, so a content hash
identifies a Space's code and the reconciler can compare it with what the Hub holds. Secrets are
never in the template context (only their names are), so no rendered byte can carry a value.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jinja2
from huggingface_hub import SpaceCard, SpaceCardData

from infra.spec import Declaration, ResolvedSpace

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "space_templates"
SUFFIX = ".j2"


def _environment(templates_dir: Path) -> jinja2.Environment:
    jinja = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - Python, Dockerfile and Markdown, not HTML
    )
    jinja.filters["to_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return jinja


def space_config(space: ResolvedSpace) -> dict:
    """The non-secret settings the Space app reads from `space.json` at start-up."""
    return {
        "repo_id": space.repo_id,
        "environment": space.environment,
        "tier": space.tier,
        "owner": space.owner,
        "model": space.model,
        "generation": space.generation.model_dump(exclude_none=True),
    }


def card_data(space: ResolvedSpace) -> SpaceCardData:
    """The Space card's front matter, which the Hub reads to build and describe the Space."""
    return SpaceCardData(
        title=space.title,
        sdk=space.sdk,
        app_port=space.app_port,
        models=[space.model],
        tags=["llm", "openai-compatible", f"tier-{space.tier}"],
        emoji=space.emoji,
        colorFrom="indigo",
        colorTo="blue",
        pinned=False,
        suggested_hardware=space.hardware,
        short_description=space.description[:60],
    )


def render_space(declaration: Declaration, environment: str, tier: str,
                 templates_dir: Path = TEMPLATES_DIR) -> dict[str, bytes]:
    """Render every template for one Space; returns {path in the repo: bytes}, sorted by path."""
    space = declaration.space(environment, tier)
    jinja = _environment(templates_dir)
    context = {"space": space, "config": space_config(space)}
    files: dict[str, bytes] = {}
    for name in sorted(jinja.list_templates(filter_func=lambda n: n.endswith(SUFFIX))):
        target = name[: -len(SUFFIX)]
        if target == "README.md":
            template = (templates_dir / name).read_text(encoding="utf-8")
            text = str(SpaceCard.from_template(card_data(space), template_str=template, space=space)) + "\n"
        else:
            text = jinja.get_template(name).render(**context)
        files[target] = text.encode("utf-8")
    return files


def content_hash(files: dict[str, bytes]) -> str:
    """A short, stable fingerprint of a Space's files (paths and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(json.dumps(path).encode())
        digest.update(hashlib.sha256(files[path]).digest())
    return digest.hexdigest()[:16]


def write_space(files: dict[str, bytes], directory: Path) -> None:
    """Write a Space's files into `directory`, removing files from an earlier render."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in sorted(p for p in directory.rglob("*") if p.is_file()):
        if stale.relative_to(directory).as_posix() not in files:
            stale.unlink()
    for path, content in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

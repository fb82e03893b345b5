"""Rendering is deterministic, produces complete Docker Spaces, and never carries a secret value."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import SpaceCard
from support import CONFIG, run_invoke

from infra.render import content_hash, render_space
from infra.spec import load_declaration

CANARY = "canary-secret-7f3a9c"  # noqa: S105 - a marker, not a credential
EXPECTED_FILES = ["Dockerfile", "README.md", "app.py", "requirements.txt", "space.json"]


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_render_task_writes_three_complete_spaces_byte_identically(env: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    results = [run_invoke("render", "--env", env, "--out", str(out)) for out in (first, second)]
    assert all(r.returncode == 0 for r in results), results[0].stderr
    assert results[0].stdout == results[1].stdout.replace(str(second), str(first))
    spaces = sorted(p.name for p in (first / env).iterdir())
    assert len(spaces) == 3
    for name in spaces:
        assert sorted(_tree(first / env / name)) == EXPECTED_FILES
        assert _tree(first / env / name) == _tree(second / env / name)
        assert name in results[0].stdout


def test_render_output_names_each_space_and_its_hash() -> None:
    declaration = load_declaration(CONFIG, environ={})
    for space in declaration.spaces("staging"):
        files = render_space(declaration, "staging", space.tier)
        assert len(content_hash(files)) == 16
        assert content_hash(files) == content_hash(render_space(declaration, "staging", space.tier))
    hashes = {content_hash(render_space(declaration, env, "base")) for env in ("staging", "prod")}
    assert len(hashes) == 2, "staging and prod differ (names, hardware) so their hashes must differ"


def test_front_matter_is_a_valid_space_card() -> None:
    declaration = load_declaration(CONFIG, environ={})
    files = render_space(declaration, "prod", "company")
    card = SpaceCard(files["README.md"].decode())
    data = card.data.to_dict()
    assert data["sdk"] == "docker"
    assert data["app_port"] == 7860
    assert data["models"] == ["acme-ai/acme-llm"]
    assert data["suggested_hardware"] == "a10g-small"
    assert data["title"] == "Company Specific LLM"
    assert data["emoji"]


def test_dockerfile_runs_as_uid_1000_on_the_declared_port() -> None:
    declaration = load_declaration(CONFIG, environ={})
    dockerfile = render_space(declaration, "staging", "base")["Dockerfile"].decode()
    assert "--uid 1000" in dockerfile
    assert "USER user" in dockerfile
    assert "EXPOSE 7860" in dockerfile and "PORT=7860" in dockerfile
    assert 'CMD ["python", "app.py"]' in dockerfile


def test_requirements_are_pinned() -> None:
    declaration = load_declaration(CONFIG, environ={})
    lines = render_space(declaration, "staging", "base")["requirements.txt"].decode().splitlines()
    packages = [line for line in lines if line and not line.startswith("#")]
    assert packages and all("==" in line for line in packages)


def test_no_secret_value_reaches_any_rendered_byte(tmp_path: Path) -> None:
    env = {"HF_TOKEN": CANARY, "SPACE_API_KEY": CANARY, "OPENAI_API_KEY": CANARY, "VITE_HUGGINGFACE_API_KEY": CANARY}
    result = run_invoke("render", "--env", "prod", "--out", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    rendered = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert rendered and CANARY.encode() not in rendered
    assert CANARY not in result.stdout + result.stderr


def test_a_file_dropped_from_the_templates_is_removed_on_rerender(tmp_path: Path) -> None:
    stale = tmp_path / "staging" / "company-base-llm-staging" / "old.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("left over")
    assert run_invoke("render", "--env", "staging", "--out", str(tmp_path)).returncode == 0
    assert not stale.exists()


def test_code_is_identical_across_environments_only_config_differs() -> None:
    """Promotion copies staging's code verbatim; only the per-environment config files may differ."""
    declaration = load_declaration(CONFIG, environ={})
    for tier in declaration.tier_names:
        staging, prod = (render_space(declaration, env, tier) for env in ("staging", "prod"))
        assert sorted(path for path in staging if staging[path] != prod[path]) == ["README.md", "space.json"]

"""The declaration loads, and every kind of bad input fails with file, line, field and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import CONFIG, run_invoke

from infra.errors import SpecError
from infra.spec import load_declaration

GOOD = CONFIG.read_text(encoding="utf-8")


def test_shipped_declaration_is_valid_and_resolves_every_space() -> None:
    declaration = load_declaration(CONFIG, environ={})
    assert declaration.tier_names == ["base", "company", "abstraction"]
    ids = {env: [s.repo_id for s in declaration.spaces(env)] for env in ("staging", "prod")}
    assert ids["staging"] == [
        "acme-ai/company-base-llm-staging",
        "acme-ai/company-specific-llm-staging",
        "acme-ai/company-abstraction-llm-staging",
    ]
    assert ids["prod"] == [
        "acme-ai/company-base-llm", "acme-ai/company-specific-llm", "acme-ai/company-abstraction-llm"]
    company_prod = declaration.space("prod", "company")
    assert company_prod.hardware == "a10g-small"
    assert company_prod.sleep_time == -1
    assert company_prod.generation.temperature == 0.3
    assert company_prod.generation.max_tokens == 512  # from defaults
    assert company_prod.secrets == ("HF_TOKEN", "SPACE_API_KEY")
    assert company_prod.variables["DEPLOY_ENV"] == "prod"


@pytest.mark.parametrize("prefix", ["", "VITE_"])
def test_seed_variables_override_owner_and_space_names(prefix: str) -> None:
    environ = {f"{prefix}HUGGINGFACE_ORG": "globex", f"{prefix}HF_BASE_SPACE": "globex-base",
               f"{prefix}HF_COMPANY_SPACE": "globex-co", f"{prefix}HF_ABSTRACTION_SPACE": "globex-abs"}
    declaration = load_declaration(CONFIG, environ=environ)
    assert [s.repo_id for s in declaration.spaces("staging")] == [
        "globex/globex-base-staging", "globex/globex-co-staging", "globex/globex-abs-staging"]


def test_server_side_name_wins_over_vite_name() -> None:
    declaration = load_declaration(CONFIG, environ={"VITE_HUGGINGFACE_ORG": "browser", "HUGGINGFACE_ORG": "server"})
    assert declaration.owner == "server"


def test_an_override_is_validated_and_named() -> None:
    with pytest.raises(SpecError) as caught:
        load_declaration(CONFIG, environ={"HF_BASE_SPACE": "bad--name"})
    assert "$HF_BASE_SPACE" in str(caught.value)
    assert "tiers.base.space" in str(caught.value)


def _replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


BAD_INPUTS = {
    "syntax_error": (_replace("owner: acme-ai", "owner: [acme-ai"), "YAML syntax error", None),
    "tab_indentation": (_replace("  sdk: docker", "\tsdk: docker"), "tab character", None),
    "unknown_hardware": (
        _replace("{staging: cpu-upgrade, prod: t4-small}", "{staging: cpu-mega, prod: t4-small}"),
        "unknown hardware 'cpu-mega'", "cpu-mega"),
    "unknown_key_typo": (_replace("  sleep_time: {staging", "  sleep_tme: {staging"),
                         "unknown key 'sleep_tme' (did you mean 'sleep_time'?)", "sleep_tme"),
    "literal_secret": (_replace("  SPACE_API_KEY: {env: SPACE_API_KEY}", "  SPACE_API_KEY: sk-livekey1234567890abcd"),
                       "literal secret value is not allowed", "SPACE_API_KEY: sk-"),
    "secret_as_variable": (_replace("    LOG_LEVEL: info", "    OPENAI_API_KEY: sk-livekey1234567890abcd"),
                           "looks like a secret", "OPENAI_API_KEY"),
    "duplicate_space_id": (_replace("space: company-abstraction-llm", "space: company-base-llm"),
                           "duplicate Space id 'acme-ai/company-base-llm-staging'", None),
    "bad_repo_name": (_replace("space: company-specific-llm ", "space: company--specific "),
                      "repo-name rules", "company--specific"),
    "unknown_environment_in_map": (
        _replace("{staging: cpu-upgrade, prod: a10g-small}", "{staging: cpu-upgrade, qa: a10g-small}"),
        "unknown environment 'qa'", "qa: a10g-small"),
    "negative_sleep_time": (_replace("sleep_time: {staging: 3600, prod: -1}", "sleep_time: {staging: -30, prod: -1}"),
                            "sleep_time -30 is invalid", "staging: -30"),
    "wrong_type": (_replace("  private: true", "  private: sometimes"), "valid boolean", "private: sometimes"),
    "empty_file": ("", "the declaration is empty", None),
    "duplicate_key": (_replace("owner: acme-ai", "owner: acme-ai\nowner: other"), "duplicate key 'owner'",
                      "owner: other"),
    "unknown_tier": (_replace("  abstraction:\n", "  abstracton:\n"), "unknown tier 'abstracton' (did you mean", None),
    "bad_flag_store": (_replace("{kind: ssm,", "{kind: redis,"), "flags.store.kind", "kind: redis"),
    "undeclared_secret": (_replace("secrets: [SPACE_API_KEY]", "secrets: [SPACE_APIKEY]"),
                          "'SPACE_APIKEY' is not declared", "SPACE_APIKEY"),
    "unsupported_sdk": (_replace("  sdk: docker", "  sdk: gradio"), "render only: docker", "sdk: gradio"),
}


def _without_abstraction_tier() -> str:
    lines, kept, skipping = GOOD.splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith("  abstraction:"):
            skipping = True
            continue
        if skipping and not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


BAD_INPUTS["missing_tier"] = (_without_abstraction_tier(), "missing tier 'abstraction'", None)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_declaration_fails_cleanly_through_the_task(case: str, tmp_path: Path) -> None:
    text, expected, line_needle = BAD_INPUTS[case]
    path = tmp_path / "spaces.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = run_invoke("render", "--env", "staging", "--config", str(path), "--out", str(out))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert expected in result.stderr
    assert f"{path}:" in result.stderr
    if line_needle is not None:
        assert f"{path}:{_line_of(text, line_needle)}:" in result.stderr
    assert not out.exists(), "a bad declaration must change nothing"
    assert "sk-livekey" not in result.stderr + result.stdout, "a literal secret must not be echoed back"


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("cpu-upgrade, prod: t4-small", "cpu-mega, prod: t4-small", 1)
    text = text.replace("sleep_time: {staging: 3600, prod: -1}", "sleep_time: {staging: 5, prod: -1}")
    path = tmp_path / "spaces.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_declaration(path, environ={})
    assert len(caught.value.problems) == 2


def test_declaration_file_not_found_is_clean() -> None:
    result = run_invoke("render", "--env", "staging", "--config", "nope/spaces.yaml")
    assert result.returncode == 1
    assert "declaration file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_sleep_time_on_free_hardware_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("hardware: {staging: cpu-upgrade, prod: t4-small}\n    secrets: [SPACE_API_KEY]",
                        "hardware: {staging: cpu-basic, prod: t4-small}\n    secrets: [SPACE_API_KEY]", 1)
    path = tmp_path / "spaces.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match="free cpu-basic hardware") as caught:
        load_declaration(path, environ={})
    assert f"{path}:{_line_of(text, 'sleep_time: {staging')}: defaults.sleep_time" in str(caught.value)


def test_per_environment_visibility_in_defaults(tmp_path: Path) -> None:
    path = tmp_path / "spaces.yaml"
    path.write_text(GOOD.replace("  private: true", "  private: {staging: false, prod: true}"), encoding="utf-8")
    declaration = load_declaration(path, environ={})
    assert [declaration.space(env, "base").private for env in ("staging", "prod")] == [False, True]
    path.write_text(GOOD.replace("  private: true", "  private: {staging: false, qa: true}"), encoding="utf-8")
    with pytest.raises(SpecError, match="defaults.private.qa: unknown environment 'qa'"):
        load_declaration(path, environ={})

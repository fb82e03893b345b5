"""Shared fixtures: no override variable or user Hub cache leaks into a test."""

from __future__ import annotations

import pytest
from support import SPACE_HF_TOKEN_FOR_TESTS

# Variables that would silently change what a test sees (see infra/spec/overrides.py).
OVERRIDE_VARIABLES = (
    "HUGGINGFACE_ORG", "VITE_HUGGINGFACE_ORG", "HF_BASE_SPACE", "VITE_HF_BASE_SPACE", "HF_COMPANY_SPACE",
    "VITE_HF_COMPANY_SPACE", "HF_ABSTRACTION_SPACE", "VITE_HF_ABSTRACTION_SPACE",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in OVERRIDE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("SPACE_HF_TOKEN", SPACE_HF_TOKEN_FOR_TESTS)
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf-home"))



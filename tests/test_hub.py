"""Hub client settings: where the token comes from, and the warning about `VITE_` keys."""

from __future__ import annotations

import pytest

from infra.hub import RetryPolicy, resolve_token


def test_server_side_token_wins_and_is_not_warned_about(capsys: pytest.CaptureFixture) -> None:
    assert resolve_token({"HF_TOKEN": "server", "VITE_HUGGINGFACE_API_KEY": "browser"}) == "server"
    assert capsys.readouterr().err == ""


def test_vite_key_works_but_warns_that_it_is_public(capsys: pytest.CaptureFixture) -> None:
    assert resolve_token({"VITE_HUGGINGFACE_API_KEY": "browser-visible-key"}) == "browser-visible-key"
    err = capsys.readouterr().err
    assert "bundled into browser code" in err and "HF_TOKEN" in err
    assert "browser-visible-key" not in err


def test_no_token_is_none() -> None:
    assert resolve_token({}) is None


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_delay=10)
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 120.0) == 10
    assert 0 < policy.delay(3, None) <= 10


def test_private_space_proxy_gets_the_read_token_not_the_deploy_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi

    from infra.smoke import proxy_token

    monkeypatch.setenv("SPACE_HF_TOKEN", "read-only-token")
    assert proxy_token(HfApi(token="deploy-write-token")) == "read-only-token"
    monkeypatch.delenv("SPACE_HF_TOKEN")
    assert proxy_token(HfApi(token="deploy-write-token")) == "deploy-write-token"

"""The rendered Space app, run with the echo engine, speaks OpenAI's API to the real `openai` client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import openai
import pytest
from support import CONFIG

from infra.local_space import serve_space_locally
from infra.render import render_space
from infra.spec import load_declaration

KEY = "space-key-for-tests"  # noqa: S105


@pytest.fixture(scope="module")
def space_url() -> Iterator[str]:
    declaration = load_declaration(CONFIG, environ={})
    with serve_space_locally(render_space(declaration, "staging", "company"), {"SPACE_API_KEY": KEY}) as url:
        yield url


@pytest.fixture
def client(space_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{space_url}/v1", api_key=KEY, max_retries=0)


def test_health_and_models(space_url: str, client: openai.OpenAI) -> None:
    health = httpx.get(f"{space_url}/health").json()
    assert health == {"status": "ok", "model": "acme-ai/acme-llm", "engine": "echo", "tier": "company"}
    assert [model.id for model in client.models.list()] == ["acme-ai/acme-llm"]


def test_completion_applies_the_tier_system_prompt_and_defaults(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="acme-ai/acme-llm", messages=[{"role": "user", "content": "hi there"}])
    assert reply.choices[0].message.content == "[company] hi there"
    assert reply.choices[0].finish_reason == "stop"
    system_prompt = "You are Acme's assistant. Use Acme's terminology and policies."
    expected = "fp_" + hashlib.sha256(f"acme-ai/acme-llm\n{system_prompt}".encode()).hexdigest()[:12]
    assert reply.system_fingerprint == expected
    assert reply.usage.completion_tokens == 3
    assert reply.usage.prompt_tokens == len(system_prompt.split()) + 2


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="acme-ai/acme-llm", max_tokens=2, messages=[{"role": "user", "content": "one two three four"}])
    assert reply.choices[0].message.content == "[company] one"
    assert reply.choices[0].finish_reason == "length"


def test_stream_arrives_as_chunks_ending_in_done(space_url: str, client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="acme-ai/acme-llm", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream me please"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[company] stream me please"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    raw = httpx.post(f"{space_url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                     json={"stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_missing_or_wrong_key_is_401(space_url: str) -> None:
    for key in ("wrong-key", ""):
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=f"{space_url}/v1", api_key=key or "x", max_retries=0).models.list()
        assert caught.value.status_code == 401
    bare = httpx.post(f"{space_url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert bare.status_code == 401
    assert bare.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"messages": []}, "messages"),
     ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
     ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
     ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens")],
)
def test_malformed_request_is_4xx_in_openai_error_shape(client: openai.OpenAI, body: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="acme-ai/acme-llm", **body)
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "model_not_found"


def test_body_that_is_not_json_is_400(space_url: str) -> None:
    response = httpx.post(f"{space_url}/v1/chat/completions", content=b"{not json",
                          headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_space_without_a_configured_key_refuses_everything() -> None:
    declaration = load_declaration(CONFIG, environ={})
    with serve_space_locally(render_space(declaration, "staging", "base"), {"SPACE_API_KEY": ""}) as url:
        response = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 401


def test_key_in_x_space_api_key_passes_behind_a_proxy_token(space_url: str) -> None:
    """A private Space's proxy takes the HF token in Authorization; the app reads its key from the header."""
    from infra.service import SpaceService
    from infra.space_auth import request_headers

    proxied = httpx.get(f"{space_url}/v1/models", headers=request_headers(KEY, "hf-proxy-token"))
    assert proxied.status_code == 200
    proxy_only = httpx.get(f"{space_url}/v1/models", headers=request_headers(None, "hf-proxy-token"))
    assert proxy_only.status_code == 401
    service = SpaceService(space_url, KEY, tier="company", hub_token="hf-proxy-token")
    result = service.complete([{"role": "user", "content": "through the proxy"}])
    assert result.text == "[company] through the proxy"


def test_tiered_service_for_private_spaces_needs_a_hub_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.errors import UserError
    from infra.service import build_tiered_service

    for name in ("HF_TOKEN", "HUGGINGFACE_API_KEY", "VITE_HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLAG_STORE", "file")
    declaration = load_declaration(CONFIG, environ={})
    with pytest.raises(UserError, match="private: the Hub's proxy needs a Hugging Face read token"):
        build_tiered_service(declaration, "prod", space_token=KEY)

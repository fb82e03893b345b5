"""Admin page handlers (Starlette TestClient): sign-in, sessions, CSRF, changes, stale writes, panels."""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import SpaceRuntime
from starlette.testclient import TestClient

from infra.admin import Credentials, create_app, hash_password
from infra.admin.auth import COOKIE_NAME, PasswordHash
from infra.errors import UserError
from infra.flags import FileFlagStore, FlagChange, apply_change
from infra.spec import load_declaration
from tests.support import CONFIG, ROOT, run_invoke

TOKEN = "admin-token-0123456789-secret"
SECRETS = {"HF_TOKEN": "hf_SuperSecretHubToken123", "AWS_SECRET_ACCESS_KEY": "awsSecretValue987654",
           "SPACE_API_KEY": "space-api-key-value-xyz"}


# --- fixtures and helpers ------------------------------------------------------------------------


class HubNotFound(Exception):
    """What the client raises for an absent Space: an error whose response says 404."""

    response = SimpleNamespace(status_code=404)


class StubHub:
    """Answers `space_info` like `HfApi` does, from a dict of repo_id -> runtime data (or an exception)."""

    def __init__(self, spaces: dict[str, dict | Exception] | None = None) -> None:
        self.spaces = spaces or {}
        self.calls: list[str] = []

    def space_info(self, repo_id: str) -> SimpleNamespace:
        self.calls.append(repo_id)
        data = self.spaces.get(repo_id, HubNotFound(repo_id))
        if isinstance(data, Exception):
            raise data
        return SimpleNamespace(runtime=SpaceRuntime(data), sha="head" + "0" * 36,
                               host=f"https://{repo_id.replace('/', '-')}.hf.space")

    def get_space_runtime(self, repo_id: str) -> SpaceRuntime:  # pragma: no cover - runtime comes with info
        raise AssertionError("not needed")


@pytest.fixture
def decl():
    return load_declaration(CONFIG)


@pytest.fixture
def stores(tmp_path: Path, decl) -> dict[str, FileFlagStore]:
    return {env: FileFlagStore(tmp_path / "flags" / f"{env}.json") for env in decl.environments}


@pytest.fixture
def hub() -> StubHub:
    return StubHub({"acme-ai/company-base-llm-staging": {
        "stage": "RUNNING", "hardware": {"current": "cpu-upgrade", "requested": "cpu-upgrade"},
        "sha": "abcdef1234567890abcdef1234567890abcdef12"}})


@pytest.fixture
def make_client(decl, stores, hub, tmp_path):
    def make(**options) -> TestClient:
        kwargs = {"stores": stores, "credentials": Credentials(token=TOKEN), "hub_api": hub,
                  "state_dir": tmp_path / "state", "hub_cache_seconds": 0}
        kwargs.update(options)
        return TestClient(create_app(decl, **kwargs), base_url="http://127.0.0.1:8765", follow_redirects=False)

    return make


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def version_of(html: str, env: str = "staging") -> str:
    form = re.search(rf'id="provider-form-{env}".*?name="version" value="([^"]+)"', html, re.S)
    assert form
    return form.group(1)


def sign_in(client: TestClient, name: str = "alice", secret: str = TOKEN) -> str:
    """Sign in through the form; return the index page's HTML."""
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": name, "secret": secret})
    assert response.status_code == 303, response.text
    index = client.get("/")
    assert index.status_code == 200
    return index.text


def post_change(client: TestClient, path: str, html: str, **fields: str):
    env = path.split("/")[2]
    data = {"csrf_token": csrf_of(html), "version": version_of(html, env if env in ("staging", "prod") else "staging"),
            **fields}
    return client.post(path, data=data)


# --- credentials ---------------------------------------------------------------------------------


def test_refuses_to_start_without_a_credential(decl, stores, monkeypatch) -> None:
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("ADMIN_PASSWORD_HASH", raising=False)
    with pytest.raises(UserError, match="needs a credential and has no default.*ADMIN_TOKEN.*ADMIN_PASSWORD_HASH"):
        create_app(decl, stores=stores, hub_api=None)


def test_short_token_and_bad_hash_are_refused_without_echoing_them(monkeypatch) -> None:
    with pytest.raises(UserError, match="too short"):
        Credentials.from_environ({"ADMIN_TOKEN": "short"})
    with pytest.raises(UserError, match="ADMIN_PASSWORD_HASH is not valid") as caught:
        Credentials.from_environ({"ADMIN_PASSWORD_HASH": "md5$notahash-secretish"})
    assert "notahash-secretish" not in str(caught.value)
    assert "set" in repr(Credentials(token=TOKEN)) and TOKEN not in repr(Credentials(token=TOKEN))


def test_password_hash_round_trip_and_sign_in(make_client) -> None:
    hashed = hash_password("correct horse battery", iterations=100_000)
    assert hashed.startswith("pbkdf2_sha256$100000$")
    parsed = PasswordHash.parse(hashed)
    assert parsed.verify("correct horse battery") and not parsed.verify("wrong")
    client = make_client(credentials=Credentials.from_environ({"ADMIN_PASSWORD_HASH": hashed}))
    assert "signed in as" in sign_in(client, "bob", "correct horse battery")


def test_invoke_admin_refuses_to_start_without_credentials_and_hash_password_works() -> None:
    env = {"ADMIN_TOKEN": "", "ADMIN_PASSWORD_HASH": ""}
    done = run_invoke("admin", "--port", "1", env=env, timeout=60)
    assert done.returncode == 1
    assert "needs a credential and has no default" in done.stderr
    assert "Traceback" not in done.stderr
    hashed = subprocess.run([sys.executable, "-m", "invoke", "admin.hash-password"], cwd=ROOT, text=True,
                            input="a long admin password\n", capture_output=True, timeout=60)
    assert hashed.returncode == 0, hashed.stderr
    assert PasswordHash.parse(hashed.stdout.strip()).verify("a long admin password")


# --- sign-in and sessions ------------------------------------------------------------------------


def test_page_requires_sign_in(client) -> None:
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_bad_credentials_are_refused(client) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "eve", "secret": "guess"})
    assert response.status_code == 401
    assert "Wrong token or password" in response.text
    assert client.get("/").status_code == 303


def test_sign_in_needs_a_name_and_the_form_token(client) -> None:
    page = client.get("/login")
    no_name = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "", "secret": TOKEN})
    assert no_name.status_code == 400
    client.cookies.clear()
    no_csrf = client.post("/login", data={"username": "alice", "secret": TOKEN})
    assert no_csrf.status_code == 403
    assert client.get("/").status_code == 303


def test_repeated_failures_are_throttled(client) -> None:
    for _ in range(10):
        page = client.get("/login")
        client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "eve", "secret": "guess"})
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "alice", "secret": TOKEN})
    assert response.status_code == 429


def test_session_cookie_flags_and_security_headers(client, make_client) -> None:
    response = client.get("/login")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # loopback, plain HTTP
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in response.text and "style=" not in response.text
    secure = make_client(secure_cookies=True).get("/login")
    assert "Secure" in secure.headers["set-cookie"]


def test_tampered_or_missing_session_is_not_signed_in(client) -> None:
    sign_in(client)
    value = client.cookies[COOKIE_NAME]
    payload, mac = value.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["a"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, f"{forged}.{mac}")
    assert client.get("/").status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, value)
    assert client.get("/").status_code == 200  # the genuine cookie still works
    client.cookies.clear()
    assert client.get("/").status_code == 303


def test_sign_out(client) -> None:
    html = sign_in(client)
    response = client.post("/logout", data={"csrf_token": csrf_of(html)})
    assert response.status_code == 303
    client.cookies.clear()
    assert client.get("/").status_code == 303


# --- changes -------------------------------------------------------------------------------------


def test_change_without_session_is_refused(client, stores) -> None:
    response = client.post("/envs/staging/provider", data={"provider": "huggingface", "reason": "x",
                                                           "version": "none", "csrf_token": "x"})
    assert response.status_code == 401
    assert stores["staging"].snapshot().document is None


def test_change_without_or_with_wrong_csrf_token_is_refused(client, stores) -> None:
    html = sign_in(client)
    base = {"provider": "huggingface", "reason": "x", "version": version_of(html)}
    assert client.post("/envs/staging/provider", data=base).status_code == 403
    assert client.post("/envs/staging/provider", data={**base, "csrf_token": "forged"}).status_code == 403
    other = TestClient(client.app, base_url="http://127.0.0.1:8765")
    other_token = csrf_of(other.get("/login").text)  # a valid token, but of another session
    assert client.post("/envs/staging/provider", data={**base, "csrf_token": other_token}).status_code == 403
    assert stores["staging"].snapshot().document is None


def test_cross_origin_post_is_refused(client, stores) -> None:
    html = sign_in(client)
    response = client.post("/envs/staging/provider", headers={"origin": "https://evil.example"},
                           data={"csrf_token": csrf_of(html), "version": "none", "provider": "huggingface",
                                 "reason": "x"})
    assert response.status_code == 403
    assert stores["staging"].snapshot().document is None


def test_flip_provider_writes_through_the_store_and_shows_in_history(client, stores, caplog) -> None:
    html = sign_in(client, "alice")
    assert version_of(html) == "none"
    with caplog.at_level(logging.INFO, logger="infra.admin"):
        response = post_change(client, "/envs/staging/provider", html, provider="huggingface",
                               reason="start the Spaces rollout")
    assert response.status_code == 303
    doc = stores["staging"].snapshot().document
    assert (doc.provider, doc.version, doc.updated_by, doc.reason) == ("huggingface", 1, "alice",
                                                                       "start the Spaces rollout")
    assert stores["prod"].snapshot().document is None
    assert any("alice" in r.getMessage() and "staging" in r.getMessage() and "huggingface" in r.getMessage()
               for r in caplog.records)
    page = client.get("/").text
    assert "confirmed by the store" in page
    staging = page[page.index('id="env-staging"'):page.index('id="env-prod"')]
    assert 'id="provider-staging">Hugging Face<' in staging
    history = staging[staging.index('id="history-staging"'):]
    assert "<td>v1</td>" in history and "alice" in history and "start the Spaces rollout" in history
    assert "confirmed by the store" not in client.get("/").text  # the flash shows once


def test_reason_is_required(client, stores) -> None:
    html = sign_in(client)
    response = post_change(client, "/envs/staging/provider", html, provider="huggingface", reason="  ")
    assert response.status_code == 400
    assert "A reason is required" in response.text
    assert stores["staging"].snapshot().document is None


def test_stale_write_is_refused_with_a_clear_message(client, stores) -> None:
    html = sign_in(client, "alice")
    apply_change(stores["staging"], FlagChange(tiers={"company": False}), reason="bob turned company off",
                 actor="bob")
    response = post_change(client, "/envs/staging/provider", html, provider="huggingface", reason="go")
    assert response.status_code == 409
    assert "changed since this page was loaded" in response.text
    assert "set by bob" in response.text and "bob turned company off" in response.text
    doc = stores["staging"].snapshot().document
    assert (doc.version, doc.provider, doc.updated_by) == (1, "openai", "bob")
    # The refusal page shows the current state, so a resubmit from it goes through.
    retry = post_change(client, "/envs/staging/provider", response.text, provider="huggingface", reason="go")
    assert retry.status_code == 303
    assert stores["staging"].snapshot().document.tiers["company"] is False  # bob's change kept


def test_switch_a_tier_and_set_a_percentage(client, stores) -> None:
    html = sign_in(client)
    assert post_change(client, "/envs/prod/tier", html, tier="company", switch="off", percent="",
                       reason="company model misbehaves").status_code == 303
    html = client.get("/").text
    assert post_change(client, "/envs/prod/tier", html, tier="base", switch="on", percent="25",
                       reason="canary").status_code == 303
    doc = stores["prod"].snapshot().document
    assert doc.tiers == {"base": True, "company": False, "abstraction": True}
    assert doc.percentages == {"base": 25} and doc.version == 2
    page = client.get("/").text
    assert "base=on@25% company=off abstraction=on" in page


@pytest.mark.parametrize(("fields", "message"), [
    ({"tier": "base", "switch": "on", "percent": "150"}, "percentage"),
    ({"tier": "nope", "switch": "on", "percent": ""}, "unknown tier"),
    ({"tier": "base", "switch": "maybe", "percent": ""}, "on or off"),
])
def test_bad_tier_input_is_refused(client, stores, fields, message) -> None:
    html = sign_in(client)
    response = post_change(client, "/envs/staging/tier", html, reason="r", **fields)
    assert response.status_code == 400 and message in response.text
    assert stores["staging"].snapshot().document is None


def test_unknown_environment_is_404(client) -> None:
    html = sign_in(client)
    assert post_change(client, "/envs/nowhere/provider", html, provider="openai", reason="r").status_code == 404


def test_rollback_to_openai(client, stores) -> None:
    html = sign_in(client, "carol")
    post_change(client, "/envs/staging/provider", html, provider="huggingface", reason="rollout")
    html = client.get("/").text
    response = post_change(client, "/envs/staging/rollback", html, reason="incident 42")
    assert response.status_code == 303
    doc = stores["staging"].snapshot().document
    assert (doc.provider, doc.version, doc.updated_by, doc.reason) == ("openai", 2, "carol", "incident 42")


def test_rollback_on_a_stale_page_still_rolls_back_but_never_twice(client, stores) -> None:
    html = sign_in(client, "carol")
    post_change(client, "/envs/staging/provider", html, provider="huggingface", reason="rollout")
    html = client.get("/").text
    apply_change(stores["staging"], FlagChange(percentages={"base": 10}), reason="dave narrows base", actor="dave")
    response = post_change(client, "/envs/staging/rollback", html, reason="incident")
    assert response.status_code == 303
    doc = stores["staging"].snapshot().document
    assert (doc.provider, doc.percentages, doc.version) == ("openai", {"base": 10}, 3)
    assert "applied on top of the current state" in client.get("/").text
    # Someone else already rolled back since this page loaded: nothing more is written.
    response = post_change(client, "/envs/staging/rollback", html, reason="incident again")
    assert response.status_code == 303
    assert stores["staging"].snapshot().document.version == 3
    assert "already on OpenAI since v3" in client.get("/").text


# --- panels --------------------------------------------------------------------------------------


def test_space_panel_shows_hub_status_and_unknowns(client, hub) -> None:
    html = sign_in(client)
    row = re.search(r'id="space-staging-base">(.*?)</tr>', html, re.S).group(1)
    assert "RUNNING" in row and "cpu-upgrade" in row and "abcdef1234" in row
    assert "https://acme-ai-company-base-llm-staging.hf.space" in row
    missing = re.search(r'id="space-staging-company">(.*?)</tr>', html, re.S).group(1)
    assert "unknown: not found on the Hub" in missing
    assert "acme-ai/company-base-llm" in hub.calls[0]


def test_space_panel_without_a_hub_still_renders(make_client) -> None:
    client = make_client(hub_api=None)
    html = sign_in(client)
    assert html.count("unknown: Hub not configured") == 6


def test_space_panel_survives_a_hub_that_hangs(make_client) -> None:
    import threading

    gate = threading.Event()

    class Hanging:
        def space_info(self, repo_id):
            gate.wait(5)
            raise TimeoutError

    client = make_client(hub_api=Hanging(), hub_timeout=0.3)
    try:
        html = sign_in(client)
        assert "Hub did not answer within 0.3s" in html
    finally:
        gate.set()


def test_last_smoke_result_is_shown(make_client, tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "smoke-staging.json").write_text(json.dumps({
        "env": "staging", "ok": False, "finished_at": "2026-01-02T03:04:05Z",
        "spaces": [{"tier": "base", "ok": True, "checks": []}, {"tier": "company", "ok": False, "checks": []}]}))
    html = sign_in(make_client(state_dir=state))
    staging = html[html.index('id="env-staging"'):html.index('id="env-prod"')]
    assert "FAILED" in staging and "2026-01-02T03:04:05Z" in staging
    assert ">ok<" in re.search(r'id="space-staging-base">(.*?)</tr>', staging, re.S).group(1)
    assert ">failed<" in re.search(r'id="space-staging-company">(.*?)</tr>', staging, re.S).group(1)
    prod = html[html.index('id="env-prod"'):]
    assert "no result yet" in prod


def test_no_secret_in_any_page(make_client, stores, monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    client = make_client(credentials=Credentials.from_environ())
    pages = [client.get("/login")]
    page = client.get("/login")
    pages.append(client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "x", "secret": "bad"}))
    html = sign_in(client)
    pages.append(client.get("/"))
    pages.append(post_change(client, "/envs/staging/provider", html, provider="huggingface", reason="r"))
    pages.append(client.get("/"))
    pages.append(post_change(client, "/envs/staging/provider", html, provider="openai", reason="stale"))
    pages.append(client.post("/envs/staging/provider", data={"provider": "openai"}))
    for response in pages:
        blob = response.text + json.dumps(dict(response.headers))
        for value in [TOKEN, *SECRETS.values()]:
            assert value not in blob, f"a secret leaked into {response.request.url}"
    cookie = base64.urlsafe_b64decode(client.cookies[COOKIE_NAME].split(".")[0] + "==").decode()
    assert TOKEN not in cookie


def test_sandbox_hub_status_in_the_space_panel(make_client, decl) -> None:
    """The panel reads the sandbox Hub through the real `huggingface_hub` client."""
    from huggingface_hub import HfApi

    from infra.sandbox import run_sandbox

    with run_sandbox() as sandbox:
        api = HfApi(endpoint=sandbox.url, token=sandbox.token)
        repo_id = decl.space("staging", "base").repo_id
        api.create_repo(repo_id, repo_type="space", space_sdk="docker", private=True)
        html = sign_in(make_client(hub_api=api))
        row = re.search(r'id="space-staging-base">(.*?)</tr>', html, re.S).group(1)
        assert "unknown" not in row and 'class="stage stage-' in row
        absent = re.search(r'id="space-staging-company">(.*?)</tr>', html, re.S).group(1)
        assert "not found on the Hub" in absent
        anonymous = sign_in(make_client(hub_api=HfApi(endpoint=sandbox.url, token=False)))
        assert sandbox.token not in html and sandbox.token not in anonymous
        row = re.search(r'id="space-staging-base">(.*?)</tr>', anonymous, re.S).group(1)
        assert "unknown" in row


def test_ssm_store_through_moto_with_no_extra_set_up(decl, monkeypatch) -> None:
    """The default stores come from the declaration (SSM); moto's server needs only AWS_* variables."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("FLAG_STORE", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        client = TestClient(create_app(decl, credentials=Credentials(token=TOKEN), hub_api=None),
                            base_url="http://127.0.0.1", follow_redirects=False)
        html = sign_in(client, "erin")
        assert "ssm:/triple-llm/staging/flags" in html
        assert post_change(client, "/envs/staging/provider", html, provider="huggingface",
                           reason="via ssm").status_code == 303
        ssm = boto3.client("ssm", region_name="eu-west-1")
        stored = json.loads(ssm.get_parameter(Name="/triple-llm/staging/flags")["Parameter"]["Value"])
        assert (stored["provider"], stored["updated_by"], stored["reason"]) == ("huggingface", "erin", "via ssm")
        html = client.get("/").text
        stale = post_change(client, "/envs/staging/provider", html.replace('value="1"', 'value="0"'),
                            provider="openai", reason="stale")
        assert stale.status_code == 409
    finally:
        server.stop()


def test_loopback_serving_rejects_foreign_host_headers(make_client) -> None:
    """`serve` on loopback allows only loopback Host headers (DNS-rebinding guard)."""
    client = make_client(allowed_hosts=["127.0.0.1", "localhost"])
    assert client.get("/login").status_code == 200
    assert client.get("/login", headers={"host": "evil.example"}).status_code == 400

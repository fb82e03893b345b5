"""The admin page in a real browser: Debian's Chromium, headless, driven by Playwright.

The app runs under uvicorn on 127.0.0.1 in a thread, over plain HTTP like `invoke admin` on
loopback. If Chromium is missing these tests FAIL (they do not skip): CI installs it in `.ci/run`.
The screenshot goes to `test-artifacts/admin.png`; set ADMIN_SCREENSHOT_UPDATE=1 to also refresh
`docs/admin.png` (the README's picture), which is written anyway when it does not exist yet.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from infra.admin import Credentials, create_app
from infra.flags import FileFlagStore, FlagChange, apply_change
from infra.spec import load_declaration
from tests.support import CONFIG, ROOT
from tests.test_admin import TOKEN, StubHub

# Debian's chromium (installed by .ci/run); CHROMIUM_PATH or another Chromium-family binary on PATH
# (e.g. google-chrome on a GitHub-hosted Ubuntu runner, where `chromium` is only a snap shim).
CHROMIUM = os.environ.get("CHROMIUM_PATH") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
    "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-proxy-server"]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`, "
                    f"as .ci/run does) or set CHROMIUM_PATH; the browser tests must run, not skip")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Served:
    """The admin app under uvicorn on 127.0.0.1:<free port>, in a background thread."""

    def __init__(self, app: object) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, FileFlagStore]:
    return {env: FileFlagStore(tmp_path / "flags" / f"{env}.json") for env in ("staging", "prod")}


@pytest.fixture
def served(tmp_path: Path, stores: dict[str, FileFlagStore]) -> Iterator[Served]:
    decl = load_declaration(CONFIG)
    state = tmp_path / "state"
    state.mkdir()
    (state / "smoke-staging.json").write_text(json.dumps({
        "env": "staging", "ok": True, "finished_at": "2026-01-02T03:04:05Z",
        "spaces": [{"tier": t, "ok": True, "checks": []} for t in ("base", "company", "abstraction")]}))
    running = {"stage": "RUNNING", "hardware": {"current": "cpu-upgrade", "requested": "cpu-upgrade"},
               "sha": "3f2c9e1b7a64d0c5e8f9a1b2c3d4e5f6a7b8c9d0"}
    spaces = {f"acme-ai/{name}-staging": running
              for name in ("company-base-llm", "company-specific-llm", "company-abstraction-llm")}
    spaces["acme-ai/company-base-llm"] = {**running, "hardware": {"current": "t4-small"}}
    spaces["acme-ai/company-specific-llm"] = {"stage": "BUILDING", "hardware": {"requested": "a10g-small"}}
    hub = StubHub(spaces)
    apply_change(stores["prod"], FlagChange(percentages={"base": 50}), reason="prod canary at 50% for base",
                 actor="ops-bot", tier_names=decl.tier_names)
    app = create_app(decl, stores=stores, credentials=Credentials(token=TOKEN), hub_api=hub, state_dir=state)
    with Served(app) as server:
        yield server


@pytest.fixture
def page(browser, served):  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, served: Served, name: str = "oncall") -> None:  # noqa: ANN001
    page.goto(served.url + "/")
    assert page.url.endswith("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=secret]", TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(served.url + "/")
    assert page.inner_text("#actor") == name


def test_sign_in_flip_to_hugging_face_and_back(page, served, stores) -> None:
    from playwright.sync_api import expect

    page.goto(served.url + "/")
    page.fill("input[name=username]", "oncall")
    page.fill("input[name=secret]", "not the token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong token or password")

    sign_in(page, served)
    expect(page.locator("#provider-staging")).to_have_text("OpenAI")
    expect(page.locator("#version-prod")).to_have_text("v1")
    expect(page.locator("#last-change-prod")).to_contain_text("prod canary at 50% for base")
    expect(page.locator("#space-staging-base")).to_contain_text("RUNNING")
    expect(page.locator("#space-staging-base")).to_contain_text("3f2c9e1b7a")

    staging = page.locator("#provider-form-staging")
    staging.locator("select[name=provider]").select_option("huggingface")
    staging.locator("input[name=reason]").fill("move staging traffic to the Spaces")
    staging.locator("button").click()
    expect(page.locator("#flash")).to_contain_text("confirmed by the store")
    expect(page.locator("#provider-staging")).to_have_text("Hugging Face")
    first_row = page.locator("#history-staging tbody tr").first
    expect(first_row).to_contain_text("oncall")
    expect(first_row).to_contain_text("move staging traffic to the Spaces")
    assert stores["staging"].snapshot().document.provider == "huggingface"

    page.fill("#rollback-reason-staging", "latency spike, back to OpenAI")
    page.click("#rollback-staging button")
    expect(page.locator("#provider-staging")).to_have_text("OpenAI")
    expect(page.locator("#version-staging")).to_have_text("v2")
    rows = page.locator("#history-staging tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("latency spike, back to OpenAI")
    doc = stores["staging"].snapshot().document
    assert (doc.provider, doc.updated_by, doc.version) == ("openai", "oncall", 2)

    # A tier and a percentage, for a screenshot that shows every control in use.
    tier = page.locator("#tier-form-staging-company")
    tier.locator("select[name=switch]").select_option("off")
    tier.locator("input[name=reason]").fill("company model under review")
    tier.locator("button").click()
    expect(page.locator("#tier-staging-company")).to_contain_text("off")
    page.locator("#flash").wait_for()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "admin.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    docs = ROOT / "docs" / "admin.png"
    if os.environ.get("ADMIN_SCREENSHOT_UPDATE") == "1" or not docs.exists():
        docs.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs)


def test_stale_write_is_refused_in_the_browser(page, served, stores) -> None:
    from playwright.sync_api import expect

    sign_in(page, served)
    expect(page.locator("#version-prod")).to_have_text("v1")
    # Someone else changes prod after this page was rendered.
    apply_change(stores["prod"], FlagChange(tiers={"abstraction": False}), reason="dana: abstraction off",
                 actor="dana")
    form = page.locator("#provider-form-prod")
    form.locator("select[name=provider]").select_option("huggingface")
    form.locator("input[name=reason]").fill("switch prod")
    form.locator("button").click()
    expect(page.locator("#flash")).to_contain_text("changed since this page was loaded")
    expect(page.locator("#flash")).to_contain_text("dana: abstraction off")
    doc = stores["prod"].snapshot().document
    assert (doc.version, doc.provider, doc.updated_by) == (2, "openai", "dana")
    # The refusal shows the current state; applying again from it works.
    expect(page.locator("#version-prod")).to_have_text("v2")
    form.locator("select[name=provider]").select_option("huggingface")
    form.locator("input[name=reason]").fill("switch prod, second look")
    form.locator("button").click()
    expect(page.locator("#provider-prod")).to_have_text("Hugging Face")
    assert stores["prod"].snapshot().document.tiers["abstraction"] is False


def test_requests_without_csrf_token_or_session_are_refused(page, served, stores, browser) -> None:
    from playwright.sync_api import expect

    sign_in(page, served)
    form = page.locator("#provider-form-staging")
    form.locator("input[name=csrf_token]").evaluate("element => element.remove()")
    form.locator("select[name=provider]").select_option("huggingface")
    form.locator("input[name=reason]").fill("no csrf")
    with page.expect_response(lambda r: "/envs/staging/provider" in r.url) as answer:
        form.locator("button").click()
    assert answer.value.status == 403
    expect(page.locator("body")).to_contain_text("missing or invalid CSRF token")

    page.goto(served.url + "/")
    page.context.clear_cookies()  # the session is gone, the form (with its token) is still on screen
    form = page.locator("#provider-form-staging")
    form.locator("select[name=provider]").select_option("huggingface")
    form.locator("input[name=reason]").fill("no session")
    with page.expect_response(lambda r: "/envs/staging/provider" in r.url) as answer:
        form.locator("button").click()
    assert answer.value.status == 401
    assert stores["staging"].snapshot().document is None

    # A page of another origin cannot post into the admin page either (SameSite=Strict + origin check).
    other = browser.new_context()
    try:
        response = other.request.post(served.url + "/envs/staging/rollback",
                                      form={"reason": "x", "version": "none", "csrf_token": "x"})
        assert response.status == 401
    finally:
        other.close()
    assert stores["staging"].snapshot().document is None

"""The admin web page: a Starlette app, rendered on the server with Jinja, no JavaScript at all.

Routes: `GET /` (state of every environment), `GET|POST /login`, `POST /logout`, and three change
endpoints per environment: `POST /envs/{env}/provider`, `/envs/{env}/tier`, `/envs/{env}/rollback`.

Every change goes through `infra.flags.apply_change` / `rollback_to_openai`, the same functions the
`invoke flags.set` and `invoke rollback` tasks call, with the signed-in username as the actor. Each
form carries the store revision the page was rendered with; a provider or tier change made on a
page that is out of date is refused (HTTP 409) with what changed, instead of overwriting it. The
check is done inside the conditional write (see `_PinnedStore`), so there is no window between
"check" and "write". The one exception is "Roll back to OpenAI": its outcome does not depend on
what the page showed, so on a stale page it is still applied on top of the current state (keeping
everyone else's tier changes), and the message says so; if someone already rolled back, nothing is
written.

Security: sign-in required (see `auth`), session cookie signed, `HttpOnly`, `SameSite=Strict` and
`Secure` when not on loopback; CSRF token on every POST (sign-in included) and a same-origin check;
CSP without inline scripts or styles, `X-Frame-Options: DENY`, `no-store`. Every change and every
sign-in is logged on the `infra.admin` logger with the actor; no credential is ever rendered or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.admin.auth import COOKIE_NAME, Credentials, LoginThrottle, Session, SessionSigner, clean_actor
from infra.admin.state import FlagView, SpaceStatus, default_hub_api, read_flags, read_smoke
from infra.errors import UserError
from infra.flags import (
    PROVIDERS,
    FlagChange,
    FlagConflictError,
    FlagStoreError,
    Snapshot,
    apply_change,
    rollback_to_openai,
)
from infra.flags.factory import initial_document, open_flag_store, tier_names

logger = logging.getLogger("infra.admin")

HERE = Path(__file__).resolve().parent
PROVIDER_LABELS = {"openai": "OpenAI", "huggingface": "Hugging Face"}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # not no-referrer: Chromium then posts with Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_UNSET: Any = object()


class SecurityHeaders:
    """Adds the security headers to every response (including errors and redirects)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in SECURITY_HEADERS if name not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class StalePageError(FlagConflictError):
    """The store moved since the page was rendered; the change was not applied."""


class _PinnedStore:
    """A flag store view whose reads fail unless the store is still at the revision the page showed.

    `apply_change` reads a snapshot and then writes conditionally on that snapshot's revision, so
    pinning the read pins the write: nothing lands unless the store is exactly what the user saw.
    """

    def __init__(self, store: Any, expected: str, env: str) -> None:
        self._store, self._expected, self._env = store, expected, env
        self.description = store.description

    def snapshot(self) -> Snapshot:
        snapshot = self._store.snapshot()
        if (snapshot.revision or "none") != self._expected:
            raise StalePageError(stale_message(self._env, self._expected, snapshot))
        return snapshot

    def write(self, document: Any, *, expected_revision: str | None) -> Snapshot:
        return self._store.write(document, expected_revision=expected_revision)

    def history(self, limit: int = 10) -> list[Any]:
        return self._store.history(limit)


def stale_message(env: str, expected: str, current: Snapshot) -> str:
    doc = current.document
    now = f"v{doc.version} ({doc.summary().split(' ', 1)[1]}), set by {doc.updated_by} at " \
          f"{_fmt_time(doc.updated_at)}: \u201c{doc.reason}\u201d" if doc else \
          f"store revision {current.revision or 'none'}"
    return (f"Not applied: the {env} flags changed since this page was loaded (the page showed store "
            f"revision {expected}; the store now holds {now}). The page now shows the current state: "
            f"check it and make your change again if it is still needed.")


def _fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "unknown time"


def _is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1", "[::1]"} or host.startswith("127.")


@dataclass
class AdminState:
    decl: Any
    stores: Mapping[str, Any]
    credentials: Credentials
    signer: SessionSigner
    throttle: LoginThrottle
    spaces: SpaceStatus
    state_dir: Path
    secure_cookies: bool
    templates: Environment


def create_app(
    decl: Any,
    *,
    stores: Mapping[str, Any] | None = None,
    credentials: Credentials | None = None,
    hub_api: Any = _UNSET,
    state_dir: str | Path = ".state",
    secure_cookies: bool = False,
    allowed_hosts: list[str] | None = None,
    session_key: bytes | None = None,
    hub_timeout: float = 4.0,
    hub_cache_seconds: float = 15.0,
) -> Starlette:
    """Build the app. Raises `UserError` with a clear message if no credential is configured.

    `stores` (env -> flag store) defaults to `open_flag_store(decl, env)` for each declared
    environment; `hub_api` defaults to a read-only `HfApi` on HF_ENDPOINT/HF_TOKEN (None: no Hub).
    """
    credentials = credentials or Credentials.from_environ()
    if stores is None:
        stores = {env: open_flag_store(decl, env) for env in decl.environments}
    unavailable = None
    if hub_api is _UNSET:
        hub_api, unavailable = default_hub_api()
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                            trim_blocks=True, lstrip_blocks=True)
    templates.filters["when"] = _fmt_time
    templates.globals["provider_label"] = lambda p: PROVIDER_LABELS.get(p, p)
    state = AdminState(
        decl=decl, stores=dict(stores), credentials=credentials, signer=SessionSigner(session_key),
        throttle=LoginThrottle(), spaces=SpaceStatus(hub_api, timeout=hub_timeout, cache_seconds=hub_cache_seconds,
                                                     unavailable=unavailable),
        state_dir=Path(state_dir), secure_cookies=secure_cookies, templates=templates,
    )
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/envs/{env}/provider", change_provider, methods=["POST"]),
        Route("/envs/{env}/tier", change_tier, methods=["POST"]),
        Route("/envs/{env}/rollback", rollback, methods=["POST"]),
        Route("/static/admin.css", stylesheet, methods=["GET"]),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.admin = state
    return app


# --- plumbing ------------------------------------------------------------------------------------


def _admin(request: Request) -> AdminState:
    return request.app.state.admin


def _session(request: Request) -> Session | None:
    return _admin(request).signer.loads(request.cookies.get(COOKIE_NAME))


def _set_session(request: Request, response: Response, session: Session) -> Response:
    admin = _admin(request)
    response.set_cookie(COOKIE_NAME, admin.signer.dumps(session), max_age=admin.signer.max_age, path="/",
                        httponly=True, samesite="strict", secure=admin.secure_cookies)
    return response


def _same_origin(request: Request) -> bool:
    """Reject cross-site form posts: Origin (or Referer), when sent, must be this host."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _admin(request).templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


async def _guarded_form(request: Request) -> tuple[Session, Any] | Response:
    """Session, origin and CSRF checks for a change; returns (session, form) or the refusal."""
    session = _session(request)
    if session is None or not session.signed_in:
        return HTMLResponse("Sign-in required: your session is missing or expired. Open / and sign in.",
                            status_code=401)
    if not _same_origin(request):
        return HTMLResponse("Refused: cross-origin request.", status_code=403)
    form = await request.form(max_files=0, max_fields=50)
    if not session.check_csrf(str(form.get("csrf_token") or "")):
        logger.warning("refused a change by %s: missing or wrong CSRF token", session.actor)
        return HTMLResponse("Refused: missing or invalid CSRF token. Reload the page and try again.",
                            status_code=403)
    return session, form


def _env_or_404(request: Request) -> str | None:
    env = request.path_params["env"]
    return env if env in _admin(request).stores else None


# --- pages ---------------------------------------------------------------------------------------


def _page_context(request: Request, session: Session) -> dict[str, Any]:
    admin = _admin(request)
    envs = []
    for env, store in admin.stores.items():
        flags: FlagView = read_flags(store)
        smoke = read_smoke(admin.state_dir, env)
        try:
            pairs = [(s.tier, s.repo_id) for s in admin.decl.spaces(env)]
        except Exception as error:  # noqa: BLE001 - the page must render
            pairs, spaces_error = [], f"{type(error).__name__}"
        else:
            spaces_error = None
        spaces = admin.spaces.get(env, pairs)
        for space in spaces:
            space.smoke = smoke.spaces.get(space.tier)
        envs.append({"name": env, "flags": flags, "smoke": smoke, "spaces": spaces, "spaces_error": spaces_error,
                     "tiers": tier_names(admin.decl), "initial": initial_document(admin.decl)})
    return {"envs": envs, "actor": session.actor, "csrf": session.csrf, "providers": PROVIDERS}


async def index(request: Request) -> Response:
    session = _session(request)
    if session is None or not session.signed_in:
        return RedirectResponse("/login", status_code=303)
    flash = session.flash
    response = _render(request, "index.html", flash=flash, flash_kind="ok", **_page_context(request, session))
    if flash:
        session.flash = None
        _set_session(request, response, session)
    return response


async def login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    session = _session(request)
    if session is not None and session.signed_in and error is None:
        return RedirectResponse("/", status_code=303)
    session = Session()  # fresh pre-sign-in session: its CSRF token protects the sign-in form
    response = _render(request, "login.html", status=status, csrf=session.csrf, error=error)
    return _set_session(request, response, session)


async def login(request: Request) -> Response:
    admin = _admin(request)
    session = _session(request)
    if not _same_origin(request):
        return HTMLResponse("Refused: cross-origin request.", status_code=403)
    form = await request.form(max_files=0, max_fields=10)
    if session is None or not session.check_csrf(str(form.get("csrf_token") or "")):
        return await login_form(request, "Your sign-in form expired; please try again.", status=403)
    if admin.throttle.blocked():
        logger.warning("sign-in refused: too many failed attempts")
        return await login_form(request, "Too many failed sign-ins; wait a minute and try again.", status=429)
    actor = clean_actor(str(form.get("username") or ""))
    if actor is None:
        return await login_form(request, "Enter your name (letters, digits, . _ @ + -; up to 64): it is "
                                         "recorded in the flag history with every change.", status=400)
    if not admin.credentials.check(str(form.get("secret") or "")):
        admin.throttle.failed()
        logger.warning("failed sign-in as %s", actor)
        return await login_form(request, "Wrong token or password.", status=401)
    logger.info("%s signed in", actor)
    response = RedirectResponse("/", status_code=303)
    return _set_session(request, response, Session(actor=actor))  # new CSRF token after sign-in


async def logout(request: Request) -> Response:
    guarded = await _guarded_form(request)
    if isinstance(guarded, Response):
        return guarded
    session, _ = guarded
    logger.info("%s signed out", session.actor)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=_admin(request).secure_cookies)
    return response


async def stylesheet(request: Request) -> Response:
    return FileResponse(HERE / "static" / "admin.css", media_type="text/css")


# --- changes -------------------------------------------------------------------------------------


async def _change(request: Request, build: Any, *, is_rollback: bool = False) -> Response:
    """Shared path of every change: checks, the write, the log line, then redirect or explain."""
    guarded = await _guarded_form(request)
    if isinstance(guarded, Response):
        return guarded
    session, form = guarded
    env = _env_or_404(request)
    if env is None:
        return HTMLResponse("Unknown environment.", status_code=404)
    admin = _admin(request)
    store = admin.stores[env]
    reason = str(form.get("reason") or "").strip()
    expected = str(form.get("version") or "")
    try:
        if not reason:
            raise UserError("A reason is required: say why, it is kept in the flag history.")
        if not expected:
            raise UserError("The form did not say which version it was made from; reload the page.")
        if is_rollback:
            result = _rollback(store, env, expected, reason, session.actor, admin.decl)
            if isinstance(result, str):
                return _done(request, session, result)
            note = ""
            if (result.before.revision or "none") != expected:
                note = (" The flags had changed since your page was loaded; the rollback was applied on top "
                        "of the current state, keeping its tier switches and percentages.")
        else:
            change = build(form, admin.decl)
            note = ""
            result = apply_change(_PinnedStore(store, expected, env), change, reason=reason, actor=session.actor,
                                  initial=initial_document(admin.decl), tier_names=tier_names(admin.decl))
    except StalePageError as error:
        logger.warning("stale change by %s in %s refused: %s", session.actor, env, error)
        return _page_with_error(request, session, str(error), 409)
    except FlagConflictError as error:
        logger.warning("conflicting change by %s in %s refused: %s", session.actor, env, error)
        return _page_with_error(request, session, f"Not applied: {error}", 409)
    except FlagStoreError as error:
        logger.error("change by %s in %s failed: %s", session.actor, env, error)
        return _page_with_error(request, session, f"Not applied: {error}", 502)
    except UserError as error:
        return _page_with_error(request, session, f"Not applied: {error}", 400)
    before = result.before.document.summary() if result.before.document else "(nothing stored)"
    after = result.after.document.summary() if result.after.document else "(unconfirmed)"
    logger.info("flags changed by %s in %s (%s): %s -> %s; reason: %s", session.actor, env, store.description,
                before, after, reason)
    return _done(request, session, f"{env}: {after} \u2014 confirmed by the store.{note}")


def _rollback(store: Any, env: str, expected: str, reason: str, actor: str | None, decl: Any) -> Any:
    current = store.snapshot()
    if (current.revision or "none") != expected and current.document and current.document.provider == "openai":
        doc = current.document
        logger.info("rollback by %s in %s not needed: already openai (v%s by %s)", actor, env, doc.version,
                    doc.updated_by)
        return (f"{env}: already on OpenAI since v{doc.version} ({doc.updated_by} at {_fmt_time(doc.updated_at)}: "
                f"\u201c{doc.reason}\u201d); nothing written.")
    return rollback_to_openai(store, reason=reason, actor=actor, initial=initial_document(decl),
                              tier_names=tier_names(decl))


def _done(request: Request, session: Session, message: str) -> Response:
    session.flash = message
    return _set_session(request, RedirectResponse(f"/#env-{request.path_params['env']}", status_code=303), session)


def _page_with_error(request: Request, session: Session, message: str, status: int) -> Response:
    return _render(request, "index.html", status=status, flash=message, flash_kind="error",
                   **_page_context(request, session))


def _provider_change(form: Any, decl: Any) -> FlagChange:
    provider = str(form.get("provider") or "")
    if provider not in PROVIDERS:
        raise UserError(f"provider {provider!r} is not valid; valid: {' or '.join(PROVIDERS)}")
    return FlagChange(provider=provider)  # type: ignore[arg-type]


def _tier_change(form: Any, decl: Any) -> FlagChange:
    names = tier_names(decl)
    tier = str(form.get("tier") or "")
    if tier not in names:
        raise UserError(f"unknown tier {tier!r}; valid: {', '.join(names)}")
    switch = str(form.get("switch") or "")
    if switch not in {"on", "off"}:
        raise UserError("the tier switch must be on or off")
    raw = str(form.get("percent") or "").strip().rstrip("%")
    percent: int | None
    if raw == "":
        percent = None
    else:
        try:
            percent = int(raw)
        except ValueError:
            percent = -1
        if not 0 <= percent <= 100:
            raise UserError(f"percentage {raw!r} is not valid; valid: an integer 0-100, or empty for all traffic")
    return FlagChange(tiers={tier: switch == "on"}, percentages={tier: percent})


async def change_provider(request: Request) -> Response:
    return await _change(request, _provider_change)


async def change_tier(request: Request) -> Response:
    return await _change(request, _tier_change)


async def rollback(request: Request) -> Response:
    return await _change(request, None, is_rollback=True)


# --- serving -------------------------------------------------------------------------------------


def serve(config: str, host: str = "127.0.0.1", port: int = 8765, *, log_level: str = "info") -> None:
    """Load the declaration, check credentials, and serve until interrupted (used by `invoke admin`)."""
    import uvicorn

    from infra.spec import load_declaration

    credentials = Credentials.from_environ()  # fail before anything else if none is configured
    decl = load_declaration(config)
    loopback = _is_loopback(host)
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None
    app = create_app(decl, credentials=credentials, secure_cookies=not loopback, allowed_hosts=allowed,
                     state_dir=Path(".state"))
    if not loopback:
        logger.warning("binding to %s: the session cookie is Secure-only, so serve this behind HTTPS", host)
    print(f"admin page: http://{'[' + host + ']' if ':' in host else host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, proxy_headers=False)

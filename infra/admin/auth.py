"""Sign-in, sessions and CSRF for the admin page, with no third-party crypto and no default credential.

Credentials come only from the environment:

* `ADMIN_TOKEN`: a shared secret of at least 16 characters, typed into the sign-in form, or
* `ADMIN_PASSWORD_HASH`: `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`, made with
  `invoke admin.hash-password` or
  `python -c "import getpass; from infra.admin.auth import hash_password; print(hash_password(getpass.getpass()))"`.

If both are set either one signs in. Every comparison is constant-time (`hmac.compare_digest`).

The session is a cookie holding `base64(json).base64(hmac-sha256)`; the key is random per process
unless `ADMIN_SESSION_SECRET` is set (so a restart signs everyone out). It carries the actor name,
a CSRF token and its issue time, never a credential. A session exists before sign-in too, so the
sign-in form itself is CSRF-protected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.errors import UserError

PBKDF2_ALGORITHM = "pbkdf2_sha256"
PBKDF2_ITERATIONS = 600_000
MIN_TOKEN_LENGTH = 16
SESSION_MAX_AGE = 12 * 3600
COOKIE_NAME = "admin_session"
_ACTOR_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+-")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- password hashes -----------------------------------------------------------------------------


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: str | None = None) -> str:
    """`pbkdf2_sha256$iterations$salt$hash` for ADMIN_PASSWORD_HASH."""
    if not password:
        raise UserError("the password must not be empty")
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{PBKDF2_ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class PasswordHash:
    """A parsed ADMIN_PASSWORD_HASH."""

    iterations: int
    salt: str
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Parse, with an error that says what the format is but never echoes the value."""
        parts = text.strip().split("$")
        problem = None
        if len(parts) != 4 or parts[0] != PBKDF2_ALGORITHM:
            problem = f"it must look like {PBKDF2_ALGORITHM}$<iterations>$<salt>$<base64 hash>"
        else:
            try:
                iterations = int(parts[1])
                digest = base64.b64decode(parts[3], validate=True)
            except (ValueError, binascii.Error):
                problem = "the iterations must be an integer and the hash base64"
            else:
                if iterations < 100_000 or len(digest) != 32 or not parts[2]:
                    problem = "it needs at least 100000 iterations, a salt and a 32-byte SHA-256 hash"
        if problem:
            raise UserError(f"ADMIN_PASSWORD_HASH is not valid: {problem}; make one with "
                            f"`invoke admin.hash-password`")
        return cls(iterations, parts[2], digest)

    def verify(self, password: str) -> bool:
        """Constant-time check of a password against this hash."""
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt.encode(), self.iterations)
        return hmac.compare_digest(candidate, self.digest)


# --- credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What signs in: a token, a password hash, or both. Never rendered or logged."""

    token: str | None = None
    password_hash: PasswordHash | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never leak the token through a repr in a traceback
        return f"Credentials(token={'set' if self.token else 'unset'}, password_hash=" \
               f"{'set' if self.password_hash else 'unset'})"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ADMIN_TOKEN / ADMIN_PASSWORD_HASH; refuse to run without one (no default credential)."""
        environ = os.environ if environ is None else environ
        token = environ.get("ADMIN_TOKEN") or None
        hashed = environ.get("ADMIN_PASSWORD_HASH") or None
        if token is None and hashed is None:
            raise UserError(
                "the admin page needs a credential and has no default: set ADMIN_TOKEN (a random string "
                f"of at least {MIN_TOKEN_LENGTH} characters, e.g. `python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\"`) or ADMIN_PASSWORD_HASH (make one with "
                "`invoke admin.hash-password`) in the environment"
            )
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise UserError(f"ADMIN_TOKEN is too short: use at least {MIN_TOKEN_LENGTH} random characters")
        return cls(token=token, password_hash=PasswordHash.parse(hashed) if hashed else None)

    def check(self, secret: str) -> bool:
        """True if `secret` is the token or matches the password hash; every branch constant-time."""
        if not secret:
            return False
        ok = False
        if self.token is not None:
            ok = hmac.compare_digest(secret.encode(), self.token.encode()) or ok
        if self.password_hash is not None:
            ok = self.password_hash.verify(secret) or ok
        return ok


def clean_actor(name: str) -> str | None:
    """The sign-in username as history's `updated_by`: 1-64 safe characters, else None."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 64 or not set(name) <= _ACTOR_ALLOWED:
        return None
    return name


class LoginThrottle:
    """At most `limit` failed sign-ins per `window` seconds (process-wide): slows guessing."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._failures: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()

    def blocked(self) -> bool:
        self._trim(time.monotonic())
        return len(self._failures) >= self.limit

    def failed(self) -> None:
        self._failures.append(time.monotonic())


# --- signed session cookie -----------------------------------------------------------------------


@dataclass
class Session:
    """The cookie's content: who signed in (None before sign-in), the CSRF token, a one-shot flash."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    actor: str | None = None
    issued: float = field(default_factory=time.time)
    flash: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.actor is not None

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionSigner:
    """Signs and verifies session cookies with HMAC-SHA256; expired or tampered cookies read as None."""

    def __init__(self, key: bytes | None = None, *, max_age: int = SESSION_MAX_AGE) -> None:
        secret = os.environ.get("ADMIN_SESSION_SECRET")
        self.key = key or (hashlib.sha256(secret.encode()).digest() if secret else secrets.token_bytes(32))
        self.max_age = max_age

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest())

    def dumps(self, session: Session) -> str:
        data: dict[str, Any] = {"c": session.csrf, "a": session.actor, "i": int(session.issued)}
        if session.flash:
            data["f"] = session.flash[:1500]
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def loads(self, value: str | None) -> Session | None:
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(csrf=str(data["c"]), actor=data.get("a"), issued=float(data["i"]),
                              flash=data.get("f"))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if time.time() - session.issued > self.max_age:
            return None
        return session

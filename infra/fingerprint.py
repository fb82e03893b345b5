"""Salted fingerprints of secret values, kept in each Space secret's description on the Hub.

The Hub never returns secret values, yet an apply must not rewrite an unchanged secret (each
write restarts the Space) and must rewrite a changed one. A slow salted hash (PBKDF2) of the value
is stored as the secret's description: comparing needs the value we hold now, never the Hub's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

PREFIX = "toolkit-fp:pbkdf2_sha256"
ITERATIONS = 60_000


@functools.lru_cache(maxsize=1024)
def _derive(value: str, salt: bytes, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", value.encode(), salt, iterations)
    return base64.b64encode(digest).decode()


def make(value: str) -> str:
    """A new fingerprint of `value` with a fresh random salt."""
    salt = os.urandom(12)
    return f"{PREFIX}${ITERATIONS}${base64.b64encode(salt).decode()}${_derive(value, salt, ITERATIONS)}"


def matches(fingerprint: str | None, value: str) -> bool:
    """True when `fingerprint` (as stored on the Hub) was made from `value`."""
    if not fingerprint or not fingerprint.startswith(PREFIX + "$"):
        return False
    try:
        _, iterations, salt, digest = fingerprint.split("$")
        expected = _derive(value, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, digest)

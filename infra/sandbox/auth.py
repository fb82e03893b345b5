"""Users, tokens and organisations: who may read and who may write which namespace.

Modelled on the Hub: a token belongs to one user; a user writes to its own namespace and to the
organisations it belongs to with a write role; private repos are invisible (404) to everyone else;
anonymous callers may read public repos only. Tokens are opaque strings and are never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from infra.sandbox.errors import HubError

WRITE_ROLES = ("admin", "write", "contributor")


@dataclass
class User:
    """A Hub account: its token, and its organisations with the role held in each."""

    name: str
    token: str
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> role ("admin", "write", "read")
    token_role: str = "write"  # a "read" token cannot write anywhere

    def can_write(self, namespace: str) -> bool:
        """Whether this user's token may create or change repos under `namespace`."""
        if self.token_role != "write":
            return False
        return namespace == self.name or self.orgs.get(namespace) in WRITE_ROLES

    def can_read_private(self, namespace: str) -> bool:
        """Whether private repos under `namespace` are visible to this user."""
        return namespace == self.name or namespace in self.orgs

    def whoami(self) -> dict[str, Any]:
        """The body of `GET /api/whoami-v2` for this user."""
        return {
            "type": "user",
            "id": _object_id(self.name),
            "name": self.name,
            "fullname": self.name,
            "email": f"{self.name}@users.noreply.sandbox",
            "emailVerified": True,
            "canPay": False,
            "isPro": False,
            "periodEnd": None,
            "avatarUrl": "",
            "orgs": [
                {
                    "type": "org",
                    "id": _object_id(org),
                    "name": org,
                    "fullname": org,
                    "email": None,
                    "canPay": False,
                    "periodEnd": None,
                    "avatarUrl": "",
                    "roleInOrg": role,
                    "isEnterprise": False,
                }
                for org, role in sorted(self.orgs.items())
            ],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "sandbox", "role": self.token_role, "createdAt": None},
            },
        }


def _object_id(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:24]


def new_token() -> str:
    """A fresh random token in the Hub's `hf_...` shape."""
    return "hf_sandbox_" + secrets.token_hex(16)


class Users:
    """The user registry; looks tokens up and answers 401 the way the Hub does."""

    def __init__(self) -> None:
        self._by_token: dict[str, User] = {}
        self._by_name: dict[str, User] = {}

    def add(self, user: User) -> User:
        """Register (or replace) a user."""
        old = self._by_name.pop(user.name, None)
        if old is not None:
            self._by_token.pop(old.token, None)
        self._by_name[user.name] = user
        self._by_token[user.token] = user
        return user

    def get(self, name: str) -> User | None:
        """The user called `name`, if any."""
        return self._by_name.get(name)

    def all(self) -> list[User]:
        """Every registered user."""
        return list(self._by_name.values())

    def namespaces(self) -> set[str]:
        """Every user and organisation name known to the sandbox."""
        names = set(self._by_name)
        for user in self._by_name.values():
            names.update(user.orgs)
        return names

    def authenticate(self, authorization: str | None) -> User | None:
        """The caller from an `Authorization` header; None when anonymous; 401 for a bad token."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        user = self._by_token.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

"""Errors answered the way the Hub answers them, so `hf_raise_for_status` raises its real exceptions.

The client reads the status, the `X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound,
GatedRepo) and the message from `X-Error-Message` and the JSON body's `error` field.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class HubError(Exception):
    """An API failure with the Hub's status, error code and message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The HTTP answer for this error."""
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message, **self.extra}, status_code=self.status, headers=headers)


def repo_not_found(status: int = 404) -> HubError:
    """Missing repo, or one the caller may not see (the Hub never tells the two apart)."""
    return HubError(status, "Repository not found", code="RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    """A branch or commit that does not exist in the repo."""
    return HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


def entry_not_found(path: str, message: str | None = None, headers: dict[str, str] | None = None) -> HubError:
    """A path that does not exist at the revision."""
    return HubError(404, message or f"Entry not found: {path}", code="EntryNotFound", headers=headers)


def bad_request(message: str) -> HubError:
    """Malformed input (the client raises `BadRequestError`)."""
    return HubError(400, message)


def not_modelled(what: str) -> HubError:
    """A Hub feature the sandbox does not emulate: never a silent success."""
    return HubError(501, f"Not implemented by the sandbox Hub: {what}")

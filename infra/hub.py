"""The Hub client: one configured `HfApi`, the token, and bounded retries around every call.

All Hub traffic goes through `huggingface_hub.HfApi`; `HF_ENDPOINT` points it at the sandbox or
another Hub. `call` retries 429 (honouring `Retry-After`), 5xx and dropped connections a bounded
number of times, then raises a `UserError` naming the Space and the step, never a token.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import httpx
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from infra.errors import UserError

try:  # huggingface_hub 2.x talks through httpx2; 1.x through httpx
    import httpx2

    TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    TRANSPORT_ERRORS = (httpx.TransportError,)

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGINGFACE_API_KEY", "VITE_HUGGINGFACE_API_KEY")


def resolve_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The Hub token from the environment. `VITE_HUGGINGFACE_API_KEY` works but is warned about:
    a `VITE_` variable is bundled into browser code, so the key would be public."""
    environ = os.environ if environ is None else environ
    for name in TOKEN_VARIABLES:
        if environ.get(name):
            if name.startswith("VITE_"):
                print(
                    f"warning: using {name}; VITE_ variables are bundled into browser code, so this key "
                    "is public. Set HF_TOKEN server-side instead (see README, 'Security').",
                    file=sys.stderr,
                )
            return environ[name]
    return None


def make_api(endpoint: str | None = None, token: str | None = None) -> HfApi:
    """An `HfApi` for `endpoint` (default: `HF_ENDPOINT`, else huggingface.co) and the resolved token."""
    return HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token or resolve_token())


class RetryPolicy:
    """How often and how long to retry a transient Hub failure."""

    def __init__(self, attempts: int = 5, base_delay: float = 0.5, max_delay: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.attempts, self.base_delay, self.max_delay, self.sleep = attempts, base_delay, max_delay, sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay) * (0.5 + random.random() / 2)  # noqa: S311


DEFAULT_POLICY = RetryPolicy()


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a Hub error, if it carries one."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def describe(error: BaseException) -> str:
    """A one-line description of a Hub error: status and the Hub's own message, no headers or tokens."""
    status = status_of(error)
    message = getattr(error, "server_message", None) or str(error).splitlines()[0]
    return f"HTTP {status}: {message}" if status else f"{type(error).__name__}: {message}"


def call(what: str, step: str, action: Callable[[], T], policy: RetryPolicy = DEFAULT_POLICY) -> T:
    """Run one Hub call for `what` (a Space id) at `step`, retrying transient failures."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except HfHubHTTPError as error:
            if status_of(error) not in RETRY_STATUSES or attempt == policy.attempts:
                raise HubError(what, step, error, attempt) from None
            policy.sleep(policy.delay(attempt, _retry_after(error)))
        except TRANSPORT_ERRORS as error:
            if attempt == policy.attempts:
                raise HubError(what, step, error, attempt) from None
            policy.sleep(policy.delay(attempt, None))
    raise AssertionError("unreachable")  # pragma: no cover


class HubError(UserError):
    """A Hub call that failed for good: which Space, which step, what the Hub said."""

    def __init__(self, what: str, step: str, error: BaseException, attempts: int) -> None:
        self.status = status_of(error)
        self.cause = error
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{what}: {step} failed{tries}: {describe(error)}")

"""Invoke task modules, one per concern; `tasks.py` assembles them into the namespace.

Tasks are thin: they parse options, call into `infra`, and print. `user_errors` turns a `UserError`
into a clean message and exit code instead of a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.exceptions import Exit

from infra.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Wrap a task body so that a `UserError` prints to stderr and exits with its code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise Exit(code=error.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def require_env(env: str | None, declared: list[str] | Any) -> str:
    """The `--env` value, or a clear error listing the declared environments."""
    valid = ", ".join(declared)
    if not env:
        raise UserError(f"--env is required; declared environments: {valid}")
    if env not in declared:
        raise UserError(f"unknown environment {env!r}; declared environments: {valid}")
    return env

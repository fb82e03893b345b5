"""Errors a user can act on.

Every failure caused by input or by a remote service surfaces as a `UserError`: the CLI prints its
message (no traceback) and exits non-zero. Keeping one type lets tasks stay thin.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure explained in words the user can act on; printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SpecError(UserError):
    """One or more problems in a declaration file, each with file, line, field and what is valid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the declaration:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in problems)]))

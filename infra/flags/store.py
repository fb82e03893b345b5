"""The store interface every flag backend implements, and the errors they share.

Writes use optimistic concurrency on the store's own revision (an SSM parameter version, a file's
content hash): a writer states the revision it read, and the store refuses if anything moved since,
so two operators never silently overwrite each other. The revision also covers stored text that
does not validate, which a rollback must still be able to replace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from infra.errors import UserError
from infra.flags.document import FlagDocument, FlagDocumentError

T = TypeVar("T")


class FlagStoreError(UserError):
    """The store could not be reached or answered unexpectedly, after bounded retries."""


class FlagConflictError(UserError):
    """Someone else wrote the flags between our read and our write; re-read and decide again."""

    exit_code = 3


@dataclass(frozen=True)
class Snapshot:
    """What the store holds now: the document (if valid), the store revision, and any problem."""

    document: FlagDocument | None
    revision: str | None  # None: nothing stored yet
    problem: str | None = None  # set when stored text exists but does not validate

    def require(self) -> FlagDocument | None:
        """The document, raising the validation problem if the stored text is bad."""
        if self.problem:
            raise FlagDocumentError(self.problem)
        return self.document


@dataclass(frozen=True)
class HistoryEntry:
    """One past write, newest first in `history()`; `document` is None if that text was invalid."""

    revision: str
    document: FlagDocument | None
    modified_at: datetime | None
    problem: str | None = None


@runtime_checkable
class FlagStore(Protocol):
    """A place the flag document lives. `description` names it for humans (no secrets)."""

    description: str

    def snapshot(self) -> Snapshot:
        """Read the current state, including its revision for a later conditional write."""
        ...

    def write(self, document: FlagDocument, *, expected_revision: str | None) -> Snapshot:
        """Write if the store is still at `expected_revision`; return the confirmed new state."""
        ...

    def history(self, limit: int = 10) -> list[HistoryEntry]:
        """Past writes, newest first."""
        ...


def read_document(store: FlagStore) -> FlagDocument | None:
    """The current valid document, None if never written; raises if the stored text is bad."""
    return store.snapshot().require()


def check_successor(current: Snapshot, document: FlagDocument) -> None:
    """Versions only move forward, so readers can tell newer from older at a glance."""
    if current.document is not None and document.version <= current.document.version:
        raise FlagConflictError(
            f"refusing to write version {document.version}: the store already holds version "
            f"{current.document.version}; re-read the flags and apply the change again"
        )


def with_retries(
    action: Callable[[], T],
    *,
    what: str,
    attempts: int,
    retry_on: tuple[type[BaseException], ...],
    describe: Callable[[BaseException], str],
    delay: float = 0.1,
) -> T:
    """Run `action`, retrying transient faults a bounded number of times, then a clear UserError."""
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            return action()
        except retry_on as error:
            last = error
            if attempt + 1 < attempts:
                time.sleep(delay * (2**attempt))
    assert last is not None
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    raise FlagStoreError(f"{what} failed{tries}: {describe(last)}") from None

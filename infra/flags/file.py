"""Flags in a local JSON file: the embedded default when no AWS account is involved.

Writes take an exclusive `flock` on a lock file beside the document, check the content hash the
writer read (the file's revision), replace the file atomically (temp file + fsync + `os.replace`)
and append the new document to a JSON-lines history file, so readers never see a half-written
document and concurrent writers are detected instead of overwriting each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from infra.flags.document import FlagDocument, FlagDocumentError, now_utc, parse_document, validate_document
from infra.flags.store import (
    FlagConflictError,
    FlagStoreError,
    HistoryEntry,
    Snapshot,
    check_successor,
    with_retries,
)


def _revision(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class FileFlagStore:
    """A flag store on a local file, with `<name>.history.jsonl` and `<name>.lock` beside it."""

    def __init__(self, path: str | os.PathLike[str], *, read_attempts: int = 3) -> None:
        self.path = Path(path)
        self.history_path = self.path.with_name(self.path.stem + ".history.jsonl")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.read_attempts = read_attempts
        self.description = f"file:{self.path}"

    def _read_bytes(self) -> bytes | None:
        def action() -> bytes | None:
            try:
                return self.path.read_bytes()
            except FileNotFoundError:
                return None

        return with_retries(action, what=f"reading {self.description}", attempts=self.read_attempts,
                            retry_on=(OSError,), describe=lambda e: f"{type(e).__name__}: {e}", delay=0.02)

    def _snapshot_of(self, data: bytes | None) -> Snapshot:
        if data is None:
            return Snapshot(document=None, revision=None)
        revision = _revision(data)
        try:
            return Snapshot(parse_document(data, source=self.description), revision)
        except FlagDocumentError as error:
            return Snapshot(document=None, revision=revision, problem=str(error))

    def snapshot(self) -> Snapshot:
        """Current document and content-hash revision."""
        return self._snapshot_of(self._read_bytes())

    def history(self, limit: int = 10) -> list[HistoryEntry]:
        """Newest first, from the JSON-lines history file."""
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise FlagStoreError(f"reading history of {self.description} failed: {error}") from None
        entries: list[HistoryEntry] = []
        for number, line in reversed(list(enumerate(lines, start=1))):
            if not line.strip():
                continue
            source = f"{self.history_path}:{number}"
            try:
                record = json.loads(line)
                document = validate_document(record.get("document"), source=source)
                entries.append(HistoryEntry(record.get("revision", ""), document,
                                            datetime.fromisoformat(record["written_at"])))
            except (ValueError, KeyError, TypeError, AttributeError, FlagDocumentError) as error:
                entries.append(HistoryEntry("", None, None, problem=f"{source}: {error}"))
            if len(entries) >= limit:
                break
        return entries

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+b")  # noqa: SIM115 - held across the yield
        except OSError as error:
            raise FlagStoreError(f"cannot lock {self.description}: {error}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def write(self, document: FlagDocument, *, expected_revision: str | None) -> Snapshot:
        """Conditional, atomic write under an exclusive lock; confirmed by reading back."""
        data = (document.to_json() + "\n").encode()
        with self._locked():
            current = self.snapshot()
            if current.revision != expected_revision:
                raise FlagConflictError(
                    f"flags in {self.description} changed since they were read; re-read and try again"
                )
            check_successor(current, document)
            try:
                self._replace(data)
                record = {"revision": _revision(data), "written_at": now_utc().isoformat(),
                          "document": json.loads(document.to_json())}
                with open(self.history_path, "a", encoding="utf-8") as history:
                    history.write(json.dumps(record) + "\n")
            except OSError as error:
                raise FlagStoreError(f"writing {self.description} failed: {error}") from None
            confirmed = self.snapshot()
        if confirmed.document != document:
            raise FlagStoreError(f"writing {self.description} was not confirmed by reading it back")
        return confirmed

    def _replace(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

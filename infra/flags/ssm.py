"""Flags in AWS SSM Parameter Store: the default for real deployments.

SSM has no conditional put, so a write is check-then-put-then-confirm: the parameter version we
read must still be current; `put_parameter` must return exactly that version + 1 (anything else
means a writer raced us between check and put); and a read-back must show our text. Any mismatch
is reported as a conflict, never absorbed, and both writes stay visible in the parameter history.
A first write uses `Overwrite=False`, which SSM does enforce atomically.

`AWS_ENDPOINT_URL`, `AWS_REGION`, profiles and credentials all work through boto3 unchanged, which
is how moto's server stands in for AWS in tests and the sandbox.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from infra.flags.document import FlagDocument, FlagDocumentError, parse_document
from infra.flags.store import (
    FlagConflictError,
    FlagStoreError,
    HistoryEntry,
    Snapshot,
    check_successor,
    with_retries,
)

DEFAULT_REGION = "us-east-1"


def make_ssm_client(
    region: str | None = None,
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    max_attempts: int = 3,
) -> Any:
    """A boto3 SSM client with short timeouts and bounded retries, so a dead store fails fast.

    Retries are botocore's "standard" mode (backoff, throttling-aware); `AWS_MAX_ATTEMPTS` overrides.
    """
    max_attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or max_attempts)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.client("ssm", region_name=region, config=config)


def describe_aws_error(error: BaseException) -> str:
    """A short, secret-free description of a boto error for messages."""
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'ClientError')}: {info.get('Message', '')}".strip()
    return f"{type(error).__name__}: {error}"


class SSMFlagStore:
    """A flag store on one SSM String parameter; history is the parameter's own history."""

    def __init__(
        self,
        parameter_name: str,
        *,
        client: Any | None = None,
        region: str | None = None,
        read_attempts: int = 1,
    ) -> None:
        if not parameter_name.startswith("/"):
            raise FlagStoreError(
                f"SSM parameter name {parameter_name!r} must be a path starting with '/'"
            )
        self.parameter_name = parameter_name
        self.client = client if client is not None else make_ssm_client(region)
        self.read_attempts = read_attempts  # on top of the client's own retries (see make_ssm_client)
        region_name = getattr(getattr(self.client, "meta", None), "region_name", None) or region
        self.description = f"ssm:{parameter_name} ({region_name})"

    # -- reads ------------------------------------------------------------------------------------

    def _call(self, what: str, action: Any) -> Any:
        return with_retries(
            action,
            what=f"{what} {self.description}",
            attempts=self.read_attempts,
            retry_on=(BotoCoreError, ClientError),
            describe=describe_aws_error,
        )

    def _get(self) -> dict[str, Any] | None:
        def action() -> dict[str, Any] | None:
            try:
                return self.client.get_parameter(Name=self.parameter_name)["Parameter"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                    return None
                raise

        return self._call("reading", action)

    def _snapshot_of(self, parameter: dict[str, Any] | None) -> Snapshot:
        if parameter is None:
            return Snapshot(document=None, revision=None)
        revision = str(parameter["Version"])
        source = f"{self.description} version {revision}"
        try:
            return Snapshot(parse_document(parameter["Value"], source=source), revision)
        except FlagDocumentError as error:
            return Snapshot(document=None, revision=revision, problem=str(error))

    def snapshot(self) -> Snapshot:
        """Current document and parameter version."""
        return self._snapshot_of(self._get())

    def history(self, limit: int = 10) -> list[HistoryEntry]:
        """Newest first, from `get_parameter_history` (SSM keeps the last 100 versions)."""

        def action() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"Name": self.parameter_name, "MaxResults": 50}
            try:
                while True:
                    page = self.client.get_parameter_history(**kwargs)
                    items.extend(page.get("Parameters", []))
                    if not page.get("NextToken"):
                        return items
                    kwargs["NextToken"] = page["NextToken"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                    return []
                raise

        entries = []
        for item in sorted(self._call("reading history of", action), key=lambda p: -int(p["Version"])):
            snap = self._snapshot_of(item)
            entries.append(HistoryEntry(snap.revision or "", snap.document, item.get("LastModifiedDate"),
                                        snap.problem))
            if len(entries) >= limit:
                break
        return entries

    # -- writes -----------------------------------------------------------------------------------

    def write(self, document: FlagDocument, *, expected_revision: str | None) -> Snapshot:
        """Conditional write: refuse if the parameter moved since `expected_revision`; confirm."""
        current = self.snapshot()
        if current.revision != expected_revision:
            raise FlagConflictError(
                f"flags in {self.description} changed since they were read (parameter version "
                f"{expected_revision or 'none'} -> {current.revision or 'none'}); re-read and try again"
            )
        check_successor(current, document)
        text = document.to_json()
        try:
            if current.revision is None:
                response = self.client.put_parameter(
                    Name=self.parameter_name, Value=text, Type="String", Overwrite=False,
                    Description="triple-llm provider flags (managed by `invoke flags.set` / `rollback`)",
                )
            else:
                response = self.client.put_parameter(
                    Name=self.parameter_name, Value=text, Type="String", Overwrite=True
                )
            written = int(response["Version"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ParameterAlreadyExists":
                raise FlagConflictError(
                    f"another writer created {self.description} at the same moment; re-read and try again"
                ) from None
            written = self._recover_unconfirmed_put(text, error)
        except BotoCoreError as error:
            written = self._recover_unconfirmed_put(text, error)

        expected_next = int(current.revision or 0) + 1
        if written != expected_next:
            raise FlagConflictError(
                f"another writer wrote {self.description} between our check and our write (expected "
                f"parameter version {expected_next}, got {written}); both are in the history - run "
                f"`invoke flags` and re-apply if needed"
            )
        confirmed = self.snapshot()
        if confirmed.revision != str(written) or confirmed.document != document:
            raise FlagConflictError(
                f"our write to {self.description} (parameter version {written}) was replaced by another "
                f"writer (now at {confirmed.revision}); run `invoke flags` to see the current state"
            )
        return confirmed

    def _recover_unconfirmed_put(self, text: str, error: BaseException) -> int:
        """A put that failed in transit may still have landed: look before reporting failure."""
        try:
            parameter = self._get()
        except FlagStoreError:
            parameter = None
        if parameter is not None and parameter["Value"] == text:
            return int(parameter["Version"])
        raise FlagStoreError(
            f"writing {self.description} was not confirmed: {describe_aws_error(error)}"
        ) from None

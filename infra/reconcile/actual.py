"""Read one Space's actual state from the Hub: files with blob ids, settings, variables, secret names."""

from __future__ import annotations

import hashlib

from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.hf_api import RepoFile

from infra.hub import RetryPolicy, call
from infra.reconcile.model import ActualSpace

HUB_MANAGED_FILES = frozenset({".gitattributes"})  # created by the Hub with the repo; never ours to delete


def git_blob_id(content: bytes) -> str:
    """The git blob SHA-1 the Hub reports as a file's `blob_id`, computed locally."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def read_actual(api: HfApi, repo_id: str, policy: RetryPolicy | None = None) -> ActualSpace:
    """Everything a plan compares, in a handful of read calls; `exists=False` if the Space is absent."""
    kwargs = {"policy": policy} if policy else {}
    try:
        info = call(repo_id, "read", lambda: api.space_info(repo_id), **kwargs)
    except Exception as error:  # HubError wraps the client's exception
        if isinstance(getattr(error, "cause", None), RepositoryNotFoundError):
            return ActualSpace(repo_id=repo_id, exists=False)
        raise
    sha = info.sha
    tree = call(repo_id, "read files", lambda: list(
        api.list_repo_tree(repo_id, repo_type="space", recursive=True, revision=sha)), **kwargs)
    files = {entry.path: entry.blob_id for entry in tree if isinstance(entry, RepoFile)}
    variables = call(repo_id, "read variables", lambda: api.get_space_variables(repo_id), **kwargs)
    secrets = call(repo_id, "read secrets", lambda: api.get_space_secrets(repo_id), **kwargs)
    runtime = info.runtime
    return ActualSpace(
        repo_id=repo_id,
        exists=True,
        sha=sha,
        files=files,
        private=info.private,
        hardware=runtime.hardware if runtime else None,
        requested_hardware=runtime.requested_hardware if runtime else None,
        sleep_time=runtime.sleep_time if runtime else None,
        stage=str(runtime.stage) if runtime else None,
        running_sha=(runtime.raw or {}).get("sha") if runtime else None,
        host=getattr(info, "host", None),
        variables={key: variable.value for key, variable in variables.items()},
        secrets={key: secret.description for key, secret in secrets.items()},
    )

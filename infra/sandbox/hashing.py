"""Git object ids, computed the way git (and so the Hub) computes them.

Blob ids are what `list_repo_tree` / `paths-info` report as `oid` and `space_info(files_metadata=True)`
as `blobId`; a reconciler compares them with `huggingface_hub.utils.sha.git_hash(local_bytes)` to know
whether a file changed without downloading it. Tree and commit ids are real git object ids too, so a
commit sha is a 40-hex string that identifies the exact file set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def git_blob_sha(data: bytes) -> str:
    """The id `git hash-object` gives `data`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _tree_object(entries: list[tuple[str, str, str]]) -> bytes:
    # git sorts entries by name, with directories compared as if their name ended in "/".
    def key(entry: tuple[str, str, str]) -> bytes:
        mode, name, _ = entry
        return (name + "/" if mode == "40000" else name).encode()

    body = b"".join(
        f"{mode} {name}".encode() + b"\0" + bytes.fromhex(sha) for mode, name, sha in sorted(entries, key=key)
    )
    return b"tree %d\0" % len(body) + body


def tree_shas(files: Mapping[str, str]) -> dict[str, str]:
    """Map every folder path ("" for the root) of a path->blob-id listing to its git tree id."""
    children: dict[str, dict[str, tuple[str, str]]] = {"": {}}
    for path, blob in files.items():
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            parent = "/".join(parts[:depth])
            folder = "/".join(parts[: depth + 1])
            children.setdefault(parent, {})[parts[depth]] = ("40000", folder)
            children.setdefault(folder, {})
        parent = "/".join(parts[:-1])
        children.setdefault(parent, {})[parts[-1]] = ("100644", blob)

    result: dict[str, str] = {}

    def compute(folder: str) -> str:
        entries = []
        for name, (mode, ref) in children[folder].items():
            entries.append((mode, name, compute(ref) if mode == "40000" else ref))
        sha = hashlib.sha1(_tree_object(entries)).hexdigest()
        result[folder] = sha
        return sha

    compute("")
    return result


def git_commit_sha(tree: str, parents: list[str], author: str, timestamp: int, message: str) -> str:
    """The id of a git commit object with these fields (author and committer are the same)."""
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    ident = f"{author} <{author}@users.noreply.sandbox> {timestamp} +0000"
    lines += [f"author {ident}", f"committer {ident}", "", message]
    body = "\n".join(lines).encode()
    return hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()

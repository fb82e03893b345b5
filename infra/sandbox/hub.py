"""The emulated Hub's behaviour for Spaces, independent of HTTP: repos, commits, settings, lifecycle.

Routes in `infra.sandbox.api` parse requests and call these methods; the test-facing Python API and
the `/_sandbox/*` control routes call them directly. Every method that reads or changes a Space checks
the caller the way the Hub does (see `infra.sandbox.auth`). Process work (stop, build, health checks)
never runs under the store lock, because the supervisor's threads report back through that lock.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from infra.sandbox.auth import User, new_token
from infra.sandbox.errors import (
    HubError,
    bad_request,
    entry_not_found,
    not_modelled,
    repo_not_found,
    revision_not_found,
)
from infra.sandbox.hashing import git_commit_sha, tree_shas
from infra.sandbox.runtime import LaunchSpec, Reporter, Supervisor, free_port, front_matter
from infra.sandbox.state import Commit, Space, Store, now_iso

DEFAULT_USER = "sandbox-user"
OTHER_USER = "other-user"
OTHER_ORG = "other-org"
HARDWARE = (
    "cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4",
    "l40sx8", "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4",
    "a100x8", "rtx-pro-6000", "rtx-pro-6000x2", "rtx-pro-6000x4", "rtx-pro-6000x8",
)
SDKS = ("gradio", "streamlit", "docker", "static")
STAGES = (
    "NO_APP_FILE", "CONFIG_ERROR", "BUILDING", "BUILD_ERROR", "RUNNING", "RUNNING_BUILDING",
    "RUNTIME_ERROR", "DELETING", "STOPPED", "PAUSED", "APP_STARTING", "RUNNING_APP_STARTING", "SLEEPING",
)
LIVE_STAGES = ("BUILDING", "APP_STARTING", "RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")
CPU_BASIC_SLEEP = 172800
NAME_RE = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,94}[A-Za-z0-9]$|^[A-Za-z0-9]$")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV", "PYTHONPATH")

GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
"""


def _initial_readme(name: str, sdk: str) -> bytes:
    return (
        f"---\ntitle: {name}\nemoji: \U0001f680\ncolorFrom: blue\ncolorTo: green\nsdk: {sdk}\npinned: false\n---\n\n"
        "Check out the configuration reference at https://huggingface.co/docs/hub/spaces-config-reference\n"
    ).encode()


@dataclass
class CommitResult:
    """What the commit endpoint answers."""

    sha: str


class Hub(Reporter):
    """The sandbox Hub: all Space operations, with the Hub's permission checks and errors."""

    def __init__(
        self,
        store: Store,
        supervisor_factory: Any,
        *,
        owner: str,
        env_overrides: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.env_overrides = {"LLM_ENGINE": "echo"} if env_overrides is None else dict(env_overrides)
        self._generation: dict[str, int] = {}
        self.supervisor: Supervisor = supervisor_factory(self)
        self._ensure_users()

    # --- users -------------------------------------------------------------------------------------

    def _ensure_users(self) -> None:
        with self.store.lock:
            users = self.store.users
            default = users.get(DEFAULT_USER)
            if default is None:
                default = users.add(User(DEFAULT_USER, new_token()))
            if self.owner != DEFAULT_USER:
                default.orgs.setdefault(self.owner, "admin")
            if users.get(OTHER_USER) is None:
                users.add(User(OTHER_USER, new_token(), orgs={OTHER_ORG: "admin"}))
            self.store.save()

    def add_user(self, name: str, orgs: dict[str, str] | None = None, token_role: str = "write") -> User:
        """Create (or replace) a user with a fresh token; `orgs` maps organisation -> role."""
        if not NAME_RE.match(name):
            raise bad_request(f"invalid user name {name!r}")
        if token_role not in ("read", "write"):
            raise bad_request("token role must be 'read' or 'write'")
        with self.store.lock:
            user = self.store.users.add(User(name, new_token(), dict(orgs or {}), token_role))
            self.store.save()
            return user

    def user(self, name: str) -> User:
        """A registered user by name."""
        user = self.store.users.get(name)
        if user is None:
            raise KeyError(name)
        return user

    # --- lookups and permissions -------------------------------------------------------------------

    def visible(self, caller: User | None, space_id: str) -> Space:
        """The Space if the caller may see it; the Hub's 401/404 RepoNotFound otherwise."""
        space = self.store.spaces.get(space_id)
        if space is not None and (not space.private or (caller and caller.can_read_private(space.namespace))):
            return space
        raise repo_not_found(401 if caller is None else 404)

    def writable(self, caller: User | None, space_id: str) -> Space:
        """The Space if the caller may change it; 401 anonymous, 404 invisible, 403 read-only."""
        if caller is None:
            raise HubError(401, "You must be authenticated to access this resource")
        space = self.visible(caller, space_id)
        if not caller.can_write(space.namespace):
            raise HubError(403, f"You don't have the rights to modify {space_id}")
        return space

    def commit_at(self, space: Space, revision: str) -> Commit:
        """The commit a revision (branch `main`, a full sha or a 7+ char prefix) points to."""
        if revision == "main":
            return space.head_commit()
        if revision in space.commits:
            return space.commits[revision]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [sha for sha in space.commits if sha.startswith(revision)]
            if len(matches) == 1:
                return space.commits[matches[0]]
        raise revision_not_found(revision)

    # --- repo lifecycle ----------------------------------------------------------------------------

    def create(self, caller: User | None, payload: dict[str, Any], base_url: str) -> dict[str, Any]:
        """`POST /api/repos/create`: a new Space with its initial commit (README.md + .gitattributes)."""
        if caller is None:
            raise HubError(401, "You must be authenticated to create a repo")
        repo_type = payload.get("type") or "model"
        if repo_type != "space":
            raise not_modelled(f"creating {repo_type} repos (the sandbox hosts Spaces only)")
        name = payload.get("name")
        namespace = payload.get("organization") or caller.name
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise bad_request(f"Invalid repo name {name!r}: letters, digits, '-', '_', '.'; no '--' or '..'")
        sdk = payload.get("sdk")
        if sdk not in SDKS:
            raise bad_request(f"Invalid sdk {sdk!r}: expected one of {', '.join(SDKS)}")
        if payload.get("template"):
            raise not_modelled("Space templates")
        space_id = f"{namespace}/{name}"
        url = f"{base_url}/spaces/{space_id}"
        if not caller.can_write(namespace):
            raise HubError(403, f'You don\'t have the rights to create a space under the namespace "{namespace}"')
        hardware = self._check_hardware(payload.get("hardware") or "cpu-basic")
        secrets = self._key_values(payload.get("secrets"), "secrets")
        variables = self._key_values(payload.get("variables"), "variables")
        private = payload.get("visibility", "public") != "public"
        with self.store.lock:
            existing = {s.lower() for s in self.store.spaces}
            if space_id.lower() in existing:
                raise HubError(409, "You already created this space repo", extra={"url": url})
            now = now_iso()
            space = Space(
                id=space_id, private=private, sdk=sdk, created_at=now, last_modified=now, hardware=hardware
            )
            space.sleep_time = payload.get("sleepTimeSeconds")
            space.port = self._new_port()
            space.secrets = {k: {"value": v, "description": d, "updatedAt": now} for k, v, d in secrets}
            space.variables = {k: {"value": v, "description": d, "updatedAt": now} for k, v, d in variables}
            files = {".gitattributes": GITATTRIBUTES, "README.md": _initial_readme(name, sdk)}
            self._add_commit(space, caller.name, "initial commit", "", files={}, changes=files)
            self.store.spaces[space_id] = space
            self.store.space_stats(space_id)
            space.stage = "NO_APP_FILE"  # the initial commit has nothing to run: no build, as on the Hub
            self.store.save()
        return {"url": url, "name": space_id, "id": space.id}

    def delete(self, caller: User | None, payload: dict[str, Any]) -> None:
        """`DELETE /api/repos/delete`: stop the Space and remove the repo."""
        if (payload.get("type") or "model") != "space":
            raise not_modelled("deleting non-Space repos")
        namespace = payload.get("organization") or (caller.name if caller else "")
        space_id = f"{namespace}/{payload.get('name')}"
        with self.store.lock:
            self.writable(caller, space_id)
            del self.store.spaces[space_id]
            self._bump(space_id)
            self.store.save()
        self.supervisor.forget(space_id)

    def update_settings(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> None:
        """`PUT /api/spaces/{id}/settings`: visibility and gating."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            if "visibility" in payload:
                if payload["visibility"] not in ("public", "private", "protected"):
                    raise bad_request("visibility must be public, private or protected")
                space.private = payload["visibility"] != "public"
            if "gated" in payload:
                if payload["gated"] not in ("auto", "manual", False):
                    raise bad_request("gated must be 'auto', 'manual' or false")
                space.gated = payload["gated"]
            self.store.save()

    def duplicate(self, caller: User | None, from_id: str, payload: dict[str, Any], base_url: str) -> dict[str, Any]:
        """`POST /api/spaces/{id}/duplicate`: copy history, variables and settings; secrets from the payload."""
        if caller is None:
            raise HubError(401, "You must be authenticated to duplicate a repo")
        target = payload.get("repository")
        if not isinstance(target, str) or target.count("/") != 1:
            raise bad_request("repository must be 'namespace/name'")
        namespace, name = target.split("/")
        if not NAME_RE.match(name):
            raise bad_request(f"Invalid repo name {name!r}")
        url = f"{base_url}/spaces/{target}"
        hardware = self._check_hardware(payload.get("hardware") or "cpu-basic")
        secrets = self._key_values(payload.get("secrets"), "secrets")
        variables = self._key_values(payload.get("variables"), "variables")
        with self.store.lock:
            source = self.visible(caller, from_id)
            if not caller.can_write(namespace):
                raise HubError(403, f'You don\'t have the rights to create a space under the namespace "{namespace}"')
            if target.lower() in {s.lower() for s in self.store.spaces}:
                raise HubError(409, "You already created this space repo", extra={"url": url})
            now = now_iso()
            visibility = payload.get("visibility")
            space = Space(
                id=target,
                private=source.private if visibility is None else visibility != "public",
                sdk=source.sdk,
                created_at=now,
                last_modified=now,
                head=source.head,
                commits=dict(source.commits),
                hardware=hardware,
                sleep_time=payload.get("sleepTimeSeconds"),
                port=self._new_port(),
            )
            space.variables = {k: dict(v) for k, v in source.variables.items()}
            space.variables.update({k: {"value": v, "description": d, "updatedAt": now} for k, v, d in variables})
            space.secrets = {k: {"value": v, "description": d, "updatedAt": now} for k, v, d in secrets}
            self.store.spaces[target] = space
            self.store.space_stats(target)["builds"] += 1
            self._start_locked(space, "BUILDING")
            self.store.save()
        return {"url": url}

    # --- files and commits -------------------------------------------------------------------------

    def _add_commit(
        self,
        space: Space,
        author: str,
        title: str,
        description: str,
        *,
        files: dict[str, str],
        changes: dict[str, bytes | None],
    ) -> Commit:
        new_files = dict(files)
        for path, data in changes.items():
            if data is None:
                new_files.pop(path, None)
            else:
                new_files[path] = self.store.put_blob(data)
        tree = tree_shas(new_files)[""]
        parents = [space.head] if space.head else []
        message = title if not description else f"{title}\n\n{description}"
        now = now_iso()
        sha = git_commit_sha(tree, parents, author, int(time.time()), message)
        commit = Commit(sha, parents, title, description, author, now, new_files)
        space.commits[sha] = commit
        space.head = sha
        space.last_modified = now
        return commit

    def preupload(
        self, caller: User | None, space_id: str, revision: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """`POST .../preupload/{rev}`: upload mode, gitignore verdict and the remote blob id per path."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            if revision != "main":
                raise revision_not_found(revision)
            commit = space.head_commit()
            files = payload.get("files")
            if not isinstance(files, list):
                raise bad_request("files must be a list")
            gitignore = payload.get("gitIgnore")
            if gitignore is None and ".gitignore" in commit.files:
                gitignore = self.store.blob(commit.files[".gitignore"]).decode("utf-8", errors="replace")
            patterns = _gitignore_patterns(gitignore or "")
            out = []
            for item in files:
                path = _clean_path(item.get("path"))
                out.append(
                    {
                        "path": path,
                        "uploadMode": "regular",
                        "shouldIgnore": _ignored(path, patterns),
                        "oid": commit.files.get(path),
                    }
                )
            return {"files": out, "commitOid": commit.id}

    def commit(
        self, caller: User | None, space_id: str, revision: str, body: bytes, params: dict[str, str]
    ) -> CommitResult:
        """`POST .../commit/{rev}` with the client's NDJSON: header, file, deletedFile, deletedFolder."""
        if params.get("create_pr") in ("1", "true", "True"):
            raise not_modelled("pull requests (create_pr)")
        if params.get("hot_reload") in ("1", "true", "True"):
            raise not_modelled("hot reload")
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise bad_request(f"commit payload is not NDJSON: {error}") from None
        header = next((line.get("value", {}) for line in lines if line.get("key") == "header"), None)
        if header is None:
            raise bad_request("commit payload has no header line")
        with self.store.lock:
            space = self.writable(caller, space_id)
            if revision != "main":
                raise revision_not_found(revision)
            head = space.head_commit()
            parent = header.get("parentCommit")
            if parent is not None and not (len(parent) >= 7 and head.id.startswith(parent)):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            changes = self._changes(head, lines)
            assert caller is not None
            summary = header.get("summary") or "Upload files"
            commit = self._add_commit(
                space, caller.name, summary, header.get("description") or "", files=head.files, changes=changes
            )
            if space.stage != "PAUSED":
                self.store.space_stats(space_id)["builds"] += 1
                self._start_locked(space, "BUILDING")
            self.store.save()
            return CommitResult(commit.id)

    def _changes(self, head: Commit, lines: list[dict[str, Any]]) -> dict[str, bytes | None]:
        present = set(head.files)
        changes: dict[str, bytes | None] = {}
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            if key == "header":
                continue
            if key == "file":
                path = _clean_path(value.get("path"))
                if value.get("encoding", "base64") != "base64":
                    raise bad_request(f"unsupported encoding {value.get('encoding')!r}")
                try:
                    changes[path] = base64.b64decode(value.get("content", ""), validate=True)
                except (binascii.Error, ValueError):
                    raise bad_request(f"content of {path} is not valid base64") from None
                present.add(path)
            elif key == "deletedFile":
                path = _clean_path(value.get("path"))
                if path not in present:
                    raise entry_not_found(path, f"A file with this name doesn't exist: {path}")
                changes[path] = None
                present.discard(path)
            elif key == "deletedFolder":
                folder = _clean_path(value.get("path")).rstrip("/")
                doomed = [p for p in present if p.startswith(folder + "/")]
                if not doomed:
                    raise entry_not_found(folder, f"A folder with this name doesn't exist: {folder}")
                for path in doomed:
                    changes[path] = None
                    present.discard(path)
            elif key == "lfsFile":
                raise not_modelled("LFS/Xet file uploads (preupload always answers uploadMode=regular)")
            else:
                raise bad_request(f"unknown commit operation {key!r}")
        return changes

    def tree(
        self, caller: User | None, space_id: str, revision: str, path: str, recursive: bool, expand: bool
    ) -> list[dict[str, Any]]:
        """Entries of `GET .../tree/{rev}/{path}`: files and folders under `path`."""
        with self.store.lock:
            space = self.visible(caller, space_id)
            commit = self.commit_at(space, revision)
            folders = tree_shas(commit.files)
            prefix = path.strip("/")
            if prefix and prefix not in folders:
                raise entry_not_found(prefix)
            entries: list[dict[str, Any]] = []
            for folder, oid in sorted(folders.items()):
                if folder and _under(folder, prefix, recursive):
                    entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
            for file_path, oid in sorted(commit.files.items()):
                if _under(file_path, prefix, recursive):
                    entries.append(self._file_entry(space, commit, file_path, oid, expand))
            return entries

    def paths_info(
        self, caller: User | None, space_id: str, revision: str, paths: list[str], expand: bool
    ) -> list[dict[str, Any]]:
        """`POST .../paths-info/{rev}`: the entries that exist among `paths` (missing ones are skipped)."""
        with self.store.lock:
            space = self.visible(caller, space_id)
            commit = self.commit_at(space, revision)
            folders = tree_shas(commit.files)
            out = []
            for raw in paths:
                path = raw.strip("/")
                if path in commit.files:
                    out.append(self._file_entry(space, commit, path, commit.files[path], expand))
                elif path and path in folders:
                    out.append({"type": "directory", "oid": folders[path], "size": 0, "path": path})
            return out

    def _file_entry(self, space: Space, commit: Commit, path: str, oid: str, expand: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": oid, "size": self.store.blob_size(oid), "path": path}
        if expand:
            last = commit
            for candidate in space.history(commit.id):
                if candidate.files.get(path) != oid:
                    break
                last = candidate
            entry["lastCommit"] = {"id": last.id, "title": last.title, "date": last.date}
        return entry

    def read_file(self, caller: User | None, space_id: str, revision: str, path: str) -> tuple[Commit, str, bytes]:
        """The commit, blob id and content of a file at a revision (404 EntryNotFound with X-Repo-Commit)."""
        with self.store.lock:
            space = self.visible(caller, space_id)
            commit = self.commit_at(space, revision)
            oid = commit.files.get(path)
            if oid is None:
                raise entry_not_found(path, headers={"X-Repo-Commit": commit.id})
            return commit, oid, self.store.blob(oid)

    def commits(self, caller: User | None, space_id: str, revision: str) -> list[dict[str, Any]]:
        """`GET .../commits/{rev}`: history newest first, in the Hub's item shape."""
        with self.store.lock:
            space = self.visible(caller, space_id)
            commit = self.commit_at(space, revision)
            return [
                {
                    "id": c.id,
                    "title": c.title,
                    "message": c.message,
                    "authors": [{"user": c.author, "avatar": ""}],
                    "date": c.date,
                    "formatted": {"title": c.title, "message": c.message},
                }
                for c in space.history(commit.id)
            ]

    def refs(self, caller: User | None, space_id: str) -> dict[str, Any]:
        """`GET .../refs`: the one branch the sandbox models."""
        with self.store.lock:
            space = self.visible(caller, space_id)
            return {
                "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": space.head}],
                "converts": [],
                "tags": [],
            }

    # --- info --------------------------------------------------------------------------------------

    def runtime(self, space: Space) -> dict[str, Any]:
        """The Hub's runtime object (`SpaceRuntime` reads stage, hardware, gcTimeout)."""
        running = space.stage in ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")
        sleep = space.sleep_time
        if sleep is None and space.hardware == "cpu-basic":
            sleep = CPU_BASIC_SLEEP
        data: dict[str, Any] = {
            "stage": space.stage,
            "hardware": {"current": space.current_hardware, "requested": space.hardware},
            "storage": None,
            "gcTimeout": sleep,
            "replicas": {"current": 1 if running else 0, "requested": 1},
            "devMode": False,
            "domains": [{"domain": f"127.0.0.1:{space.port}", "stage": "READY" if running else "STOPPED"}],
            "sha": space.running_sha,
        }
        if space.error_message:
            data["errorMessage"] = space.error_message
        return data

    def info(
        self,
        caller: User | None,
        space_id: str,
        revision: str | None,
        blobs: bool,
        expand: list[str],
    ) -> dict[str, Any]:
        """`GET /api/spaces/{id}[/revision/{rev}]` in the Hub's shape (`SpaceInfo`)."""
        with self.store.lock:
            space = self.visible(caller, space_id)
            commit = self.commit_at(space, revision or "main")
            return self._info(space, commit, blobs, expand)

    def _info(self, space: Space, commit: Commit, blobs: bool, expand: list[str]) -> dict[str, Any]:
        card = None
        if "README.md" in commit.files:
            try:
                card = front_matter(self.store.blob(commit.files["README.md"]).decode("utf-8", errors="replace"))
            except ValueError:
                card = None
        siblings = []
        for path, oid in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=self.store.blob_size(oid), blobId=oid)
            siblings.append(sibling)
        sdk = (card or {}).get("sdk") or space.sdk
        data = {
            "_id": space.id.replace("/", ""),
            "id": space.id,
            "author": space.namespace,
            "sha": commit.id,
            "lastModified": space.last_modified if commit.id == space.head else commit.date,
            "createdAt": space.created_at,
            "private": space.private,
            "gated": space.gated,
            "disabled": False,
            "host": f"http://127.0.0.1:{space.port}",
            "subdomain": re.sub(r"[^a-z0-9]+", "-", space.id.lower()).strip("-"),
            "likes": 0,
            "sdk": sdk,
            "tags": [sdk, "region:us"],
            "siblings": siblings,
            "runtime": self.runtime(space),
            "cardData": card,
            "models": [],
            "datasets": [],
            "usedStorage": sum(self.store.blob_size(oid) for oid in set(commit.files.values())),
            "trendingScore": 0,
        }
        if expand:
            return {"_id": data["_id"], "id": data["id"], **{k: data[k] for k in expand if k in data}}
        return data

    def list_spaces(self, caller: User | None, author: str | None, search: str | None) -> list[dict[str, Any]]:
        """`GET /api/spaces?author=...&search=...`: the visible Spaces, summary shape."""
        with self.store.lock:
            out = []
            for space in sorted(self.store.spaces.values(), key=lambda s: s.id):
                if author and space.namespace != author:
                    continue
                if search and search.lower() not in space.id.lower():
                    continue
                try:
                    self.visible(caller, space.id)
                except HubError:
                    continue
                info = self._info(space, space.head_commit(), False, [])
                out.append({k: info[k] for k in ("_id", "id", "author", "sha", "lastModified", "private", "sdk",
                                                   "likes", "tags", "createdAt", "host", "subdomain")})
            return out

    # --- settings that restart ---------------------------------------------------------------------

    def secrets(self, caller: User | None, space_id: str) -> dict[str, Any]:
        """`GET .../secrets`: keys, descriptions and update times; never values."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            return {k: {"description": v.get("description"), "updatedAt": v["updatedAt"]}
                    for k, v in space.secrets.items()}

    def put_secret(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> None:
        """`POST .../secrets`: add or replace one secret; the Space restarts (even if the value is the same)."""
        key, value, description = self._key_value(payload)
        with self.store.lock:
            space = self.writable(caller, space_id)
            space.secrets[key] = {"value": value, "description": description, "updatedAt": now_iso()}
            self._restart_for_settings(space)

    def delete_secret(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> None:
        """`DELETE .../secrets`: remove a secret; restarts when one was removed."""
        key = payload.get("key")
        with self.store.lock:
            space = self.writable(caller, space_id)
            if space.secrets.pop(str(key), None) is not None:
                self._restart_for_settings(space)
            self.store.save()

    def variables(self, caller: User | None, space_id: str) -> dict[str, Any]:
        """`GET .../variables`: key -> {value, description, updatedAt}."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            return {k: dict(v) for k, v in space.variables.items()}

    def put_variable(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`POST .../variables`: add or replace a variable; restarts; answers all variables."""
        key, value, description = self._key_value(payload)
        with self.store.lock:
            space = self.writable(caller, space_id)
            space.variables[key] = {"value": value, "description": description, "updatedAt": now_iso()}
            self._restart_for_settings(space)
            return {k: dict(v) for k, v in space.variables.items()}

    def delete_variable(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`DELETE .../variables`: remove a variable; restarts when one was removed; answers all variables."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            if space.variables.pop(str(payload.get("key")), None) is not None:
                self._restart_for_settings(space)
            self.store.save()
            return {k: dict(v) for k, v in space.variables.items()}

    def request_hardware(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`POST .../hardware` {flavor, sleepTimeSeconds?}: restarts the Space on the new flavor."""
        flavor = self._check_hardware(payload.get("flavor"))
        with self.store.lock:
            space = self.writable(caller, space_id)
            space.hardware = flavor
            if payload.get("sleepTimeSeconds") is not None:
                space.sleep_time = int(payload["sleepTimeSeconds"])
            self._restart_for_settings(space)
            return self.runtime(space)

    def set_sleep_time(self, caller: User | None, space_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`POST .../sleeptime` {seconds}: recorded (sleeping after inactivity is not simulated)."""
        seconds = payload.get("seconds")
        if not isinstance(seconds, int):
            raise bad_request("seconds must be an integer")
        with self.store.lock:
            space = self.writable(caller, space_id)
            space.sleep_time = seconds
            self.store.save()
            return self.runtime(space)

    def pause(self, caller: User | None, space_id: str) -> dict[str, Any]:
        """`POST .../pause`: stop the process; PAUSED until restarted."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            self._halt_locked(space, "PAUSED")
            runtime = self.runtime(space)
        self.supervisor.stop(space_id)
        return runtime

    def restart(self, caller: User | None, space_id: str, factory: bool) -> dict[str, Any]:
        """`POST .../restart[?factory=true]`: start again (a factory reboot counts as a build)."""
        with self.store.lock:
            space = self.writable(caller, space_id)
            stats = self.store.space_stats(space_id)
            stats["builds" if factory else "restarts"] += 1
            self._start_locked(space, "BUILDING" if factory else "APP_STARTING")
            self.store.save()
            return self.runtime(space)

    def _restart_for_settings(self, space: Space) -> None:
        if space.stage != "PAUSED":
            self.store.space_stats(space.id)["restarts"] += 1
            self._start_locked(space, "APP_STARTING")
        self.store.save()

    # --- lifecycle internals -----------------------------------------------------------------------

    def _bump(self, space_id: str) -> int:
        self._generation[space_id] = self._generation.get(space_id, 0) + 1
        return self._generation[space_id]

    def _start_locked(self, space: Space, stage: str) -> None:
        generation = self._bump(space.id)
        space.stage = stage
        space.error_message = None
        commit = space.head_commit()
        files = {path: self.store.blob(oid) for path, oid in commit.files.items()}
        if space.port is None:
            space.port = self._new_port()
        spec = LaunchSpec(space.id, generation, commit.id, files, self._env(space), space.port, stage)
        self.supervisor.launch(spec)

    def _halt_locked(self, space: Space, stage: str, error: str | None = None) -> None:
        self._bump(space.id)
        space.stage = stage
        space.error_message = error
        space.running_sha = None
        self.store.save()

    def _env(self, space: Space) -> dict[str, str]:
        env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        env.update(
            SYSTEM="spaces",
            SPACE_ID=space.id,
            SPACE_AUTHOR_NAME=space.namespace,
            SPACE_REPO_NAME=space.name,
            PYTHONUNBUFFERED="1",
        )
        env.update({k: str(v["value"]) for k, v in space.variables.items()})
        env.update({k: str(v["value"]) for k, v in space.secrets.items()})
        env["HOST"] = "127.0.0.1"
        env.update(self.env_overrides)
        return env

    def is_current(self, space_id: str, generation: int) -> bool:
        """Whether a background build for this generation is still wanted."""
        with self.store.lock:
            return self._generation.get(space_id) == generation and space_id in self.store.spaces

    def report(
        self, space_id: str, generation: int, stage: str, *, error: str | None = None, port: int | None = None
    ) -> None:
        """Apply a stage change from the supervisor, unless a newer action superseded it."""
        with self.store.lock:
            space = self.store.spaces.get(space_id)
            if space is None or self._generation.get(space_id) != generation:
                return
            space.stage = stage
            space.error_message = error
            if port is not None:
                space.port = port
            if stage == "RUNNING":
                space.running_sha = space.head
                space.current_hardware = space.hardware
            elif stage not in LIVE_STAGES:
                space.running_sha = None
            self.store.save()

    def set_stage(self, space_id: str, stage: str, error: str | None = None) -> None:
        """Force a Space into a stage (test hook): RUNNING (re)starts it, any other stage stops its process."""
        if stage not in STAGES:
            raise bad_request(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        with self.store.lock:
            space = self.store.spaces.get(space_id)
            if space is None:
                raise repo_not_found()
            if stage == "RUNNING":
                if self.supervisor.alive(space_id) and space.stage in LIVE_STAGES:
                    space.stage = "RUNNING"
                    self.store.save()
                    return
                self._start_locked(space, "APP_STARTING")
                self.store.save()
                return
            self._halt_locked(space, stage, error)
        self.supervisor.stop(space_id)

    def boot(self) -> None:
        """After a restart of the sandbox, start again the Spaces that were running or starting."""
        with self.store.lock:
            for space in self.store.spaces.values():
                if space.stage in LIVE_STAGES:
                    self._start_locked(space, "APP_STARTING")
            self.store.save()

    def _new_port(self) -> int:
        """A free port no other Space has reserved, so each Space keeps its own stable `host`."""
        taken = {s.port for s in self.store.spaces.values()}
        while (port := free_port()) in taken:
            continue
        return port

    # --- validation helpers ------------------------------------------------------------------------

    @staticmethod
    def _check_hardware(flavor: Any) -> str:
        if flavor not in HARDWARE:
            raise bad_request(f"Invalid hardware flavor {flavor!r}: expected one of {', '.join(HARDWARE)}")
        return str(flavor)

    @staticmethod
    def _key_value(payload: dict[str, Any]) -> tuple[str, str, str | None]:
        key, value = payload.get("key"), payload.get("value")
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise bad_request(f"Invalid key {key!r}: letters, digits and '_', not starting with a digit")
        if not isinstance(value, str):
            raise bad_request(f"value of {key} must be a string")
        description = payload.get("description")
        return key, value, description if isinstance(description, str) else None

    def _key_values(self, items: Any, what: str) -> list[tuple[str, str, str | None]]:
        if items is None:
            return []
        if not isinstance(items, list):
            raise bad_request(f"{what} must be a list of {{key, value}}")
        return [self._key_value(item if isinstance(item, dict) else {}) for item in items]


def _clean_path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip("/"):
        raise bad_request(f"invalid path {raw!r}")
    path = raw.lstrip("/")
    if any(part in ("", ".", "..") for part in path.rstrip("/").split("/")) or path.startswith(".git/"):
        raise bad_request(f"invalid path {raw!r}")
    return path


def _under(path: str, prefix: str, recursive: bool) -> bool:
    if prefix:
        if not path.startswith(prefix + "/"):
            return False
        rest = path[len(prefix) + 1 :]
    else:
        rest = path
    return recursive or "/" not in rest


def _gitignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: Iterable[str]) -> bool:
    ignored = False
    name = PurePosixPath(path).name
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        anchored = pat.startswith("/")
        pat = pat.lstrip("/")
        hit = fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*")
        if not anchored and "/" not in pat:
            hit = hit or fnmatch.fnmatch(name, pat) or any(fnmatch.fnmatch(p, pat) for p in path.split("/")[:-1])
        if hit:
            ignored = not negate
    return ignored

"""The sandbox Hub answers the real `huggingface_hub` client as the Hub does: shapes, auth, commits, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
)
from huggingface_hub.errors import (
    BadRequestError,
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils.sha import git_hash

from infra.sandbox import Sandbox, run_sandbox

OWNER = "acme-ai"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with run_sandbox(owner=OWNER, health_timeout=15, health_interval=0.05) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: Sandbox) -> HfApi:
    return HfApi(endpoint=sb.url, token=sb.token)


def _space(api: HfApi, name: str, **kwargs: object) -> str:
    repo_id = f"{OWNER}/{name}"
    api.create_repo(repo_id, repo_type="space", space_sdk="docker", **kwargs)  # type: ignore[arg-type]
    return repo_id


def _status(error: HfHubHTTPError) -> int:
    assert error.response is not None
    return error.response.status_code


def test_whoami_names_the_default_user_and_its_org(sb: Sandbox, api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == sb.user
    assert [org["name"] for org in me["orgs"]] == [OWNER]
    assert me["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError) as bad:
        HfApi(endpoint=sb.url, token="hf_not_a_real_token").whoami()
    assert _status(bad.value) == 401


def test_create_repo_returns_url_and_space_info_has_the_hub_shape(sb: Sandbox, api: HfApi) -> None:
    url = api.create_repo(
        f"{OWNER}/shape", repo_type="space", space_sdk="docker", private=True, space_hardware="cpu-upgrade",
        space_sleep_time=3600, space_secrets=[{"key": "API_KEY", "value": "s3cret"}],
        space_variables=[{"key": "GREETING", "value": "hi", "description": "says hi"}],
    )
    assert url.repo_id == f"{OWNER}/shape" and url.repo_type == "space"
    info = api.space_info(f"{OWNER}/shape")
    assert len(info.sha or "") == 40
    assert info.private is True
    assert info.sdk == "docker" and info.card_data is not None and info.card_data.sdk == "docker"
    assert sorted(s.rfilename for s in info.siblings or []) == [".gitattributes", "README.md"]
    assert info.host is not None and info.host.startswith("http://127.0.0.1:")
    assert info.subdomain == "acme-ai-shape"
    assert info.last_modified is not None and info.created_at is not None
    assert info.runtime is not None and info.runtime.stage == "NO_APP_FILE"
    assert info.runtime.requested_hardware == "cpu-upgrade" and info.runtime.sleep_time == 3600
    # repo_info is the same call
    assert api.repo_info(f"{OWNER}/shape", repo_type="space").sha == info.sha
    # expand returns only what was asked
    expanded = api.space_info(f"{OWNER}/shape", expand=["sha", "private"])
    assert expanded.sha == info.sha and expanded.siblings is None
    variables = api.get_space_variables(f"{OWNER}/shape")
    assert variables["GREETING"].value == "hi" and variables["GREETING"].description == "says hi"
    secrets = api.get_space_secrets(f"{OWNER}/shape")
    assert list(secrets) == ["API_KEY"]
    assert "s3cret" not in httpx.get(f"{sb.url}/api/spaces/{OWNER}/shape/secrets", trust_env=False,
                                      headers={"authorization": f"Bearer {sb.token}"}).text


def test_create_repo_conflict_and_exist_ok(api: HfApi) -> None:
    repo_id = _space(api, "twice")
    with pytest.raises(HfHubHTTPError) as conflict:
        _space(api, "twice")
    assert _status(conflict.value) == 409
    again = api.create_repo(repo_id, repo_type="space", space_sdk="docker", exist_ok=True)
    assert again.repo_id == repo_id


def test_tenancy_401_403_404(sb: Sandbox, api: HfApi) -> None:
    other = HfApi(endpoint=sb.url, token=sb.other_token)
    anonymous = HfApi(endpoint=sb.url, token=False)
    private = _space(api, "secret-space", private=True)
    public = _space(api, "open-space", private=False)

    with pytest.raises(RepositoryNotFoundError) as hidden:
        other.space_info(private)
    assert _status(hidden.value) == 404
    with pytest.raises(RepositoryNotFoundError) as anon:
        anonymous.space_info(private)
    assert _status(anon.value) == 401
    assert other.space_info(public).id == public
    assert anonymous.space_info(public).id == public

    with pytest.raises(HfHubHTTPError) as forbidden:
        other.add_space_variable(public, "X", "1")
    assert _status(forbidden.value) == 403
    with pytest.raises(RepositoryNotFoundError):
        other.add_space_secret(private, "X", "1")
    with pytest.raises(HfHubHTTPError) as create_elsewhere:
        other.create_repo(f"{OWNER}/intruder", repo_type="space", space_sdk="docker")
    assert _status(create_elsewhere.value) == 403
    with pytest.raises(HfHubHTTPError) as anonymous_write:
        anonymous.create_repo(f"{OWNER}/anon", repo_type="space", space_sdk="docker")
    assert _status(anonymous_write.value) == 401
    # the other user owns its own namespace
    assert other.create_repo("other-org/mine", repo_type="space", space_sdk="docker").repo_id == "other-org/mine"
    # an added read-only member sees private Spaces but cannot write
    reader = HfApi(endpoint=sb.url, token=sb.add_user("reader", {OWNER: "read"}))
    assert reader.space_info(private).id == private
    with pytest.raises(HfHubHTTPError) as read_only:
        reader.add_space_variable(private, "X", "1")
    assert _status(read_only.value) == 403


def test_missing_repo_revision_and_file_raise_the_clients_exceptions(api: HfApi, tmp_path: Path) -> None:
    repo_id = _space(api, "lookups")
    with pytest.raises(RepositoryNotFoundError):
        api.space_info(f"{OWNER}/nope")
    with pytest.raises(RevisionNotFoundError):
        api.space_info(repo_id, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt", repo_type="space", endpoint=api.endpoint, token=api.token,
                        cache_dir=tmp_path)
    assert api.file_exists(repo_id, "README.md", repo_type="space")
    assert not api.file_exists(repo_id, "missing.txt", repo_type="space")
    assert api.repo_exists(repo_id, repo_type="space") and not api.repo_exists(f"{OWNER}/nope", repo_type="space")


def test_commit_tree_download_history_and_blob_ids(api: HfApi, tmp_path: Path) -> None:
    repo_id = _space(api, "files")
    first = api.create_commit(
        repo_id, repo_type="space", commit_message="add files", commit_description="two files",
        operations=[
            CommitOperationAdd("app.py", b"print('hi')\n"),
            CommitOperationAdd("pkg/data/config.json", b'{"a": 1}\n'),
            CommitOperationAdd("notes.txt", b"temporary\n"),
        ],
    )
    assert len(first.oid) == 40 and first.commit_url.endswith(first.oid)
    assert api.space_info(repo_id).sha == first.oid

    files = sorted(api.list_repo_files(repo_id, repo_type="space"))
    assert files == [".gitattributes", "README.md", "app.py", "notes.txt", "pkg/data/config.json"]
    top = {e.path: e for e in api.list_repo_tree(repo_id, repo_type="space")}
    assert set(top) == {".gitattributes", "README.md", "app.py", "notes.txt", "pkg"}
    assert top["app.py"].blob_id == git_hash(b"print('hi')\n") and top["app.py"].size == 12
    nested = [e.path for e in api.list_repo_tree(repo_id, "pkg", repo_type="space", recursive=True)]
    assert nested == ["pkg/data", "pkg/data/config.json"]
    expanded = next(iter(api.list_repo_tree(repo_id, "pkg/data", repo_type="space", expand=True)))
    assert expanded.last_commit is not None and expanded.last_commit.oid == first.oid
    info = api.space_info(repo_id, files_metadata=True)
    blobs = {s.rfilename: s.blob_id for s in info.siblings or []}
    assert blobs["pkg/data/config.json"] == git_hash(b'{"a": 1}\n')
    paths = api.get_paths_info(repo_id, ["app.py", "pkg", "absent"], repo_type="space")
    assert [(type(p).__name__, p.path) for p in paths] == [("RepoFile", "app.py"), ("RepoFolder", "pkg")]

    second = api.create_commit(
        repo_id, repo_type="space", commit_message="rework",
        operations=[
            CommitOperationDelete("notes.txt"),
            CommitOperationCopy("app.py", "copy_of_app.py"),
            CommitOperationAdd("app.py", b"print('bye')\n"),
        ],
    )
    files = sorted(api.list_repo_files(repo_id, repo_type="space"))
    assert files == [".gitattributes", "README.md", "app.py", "copy_of_app.py", "pkg/data/config.json"]
    path = hf_hub_download(repo_id, "copy_of_app.py", repo_type="space", endpoint=api.endpoint,
                           token=api.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"print('hi')\n"
    old = hf_hub_download(repo_id, "app.py", repo_type="space", revision=first.oid, endpoint=api.endpoint,
                          token=api.token, cache_dir=tmp_path)
    assert Path(old).read_bytes() == b"print('hi')\n"
    assert api.list_repo_files(repo_id, repo_type="space", revision=first.oid).count("notes.txt") == 1

    commits = api.list_repo_commits(repo_id, repo_type="space")
    assert [c.commit_id for c in commits[:2]] == [second.oid, first.oid]
    assert [c.title for c in commits] == ["rework", "add files", "initial commit"]
    assert commits[1].message == "two files" and commits[0].authors == ["sandbox-user"]
    refs = api.list_repo_refs(repo_id, repo_type="space")
    assert refs.branches[0].name == "main" and refs.branches[0].target_commit == second.oid

    folder = api.create_commit(repo_id, repo_type="space", commit_message="drop pkg",
                               operations=[CommitOperationDelete("pkg/")])
    assert "pkg/data/config.json" not in api.list_repo_files(repo_id, repo_type="space", revision=folder.oid)
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo_id, repo_type="space", commit_message="x",
                          operations=[CommitOperationDelete("never-there.txt")])


def test_unchanged_files_make_no_commit(sb: Sandbox, api: HfApi) -> None:
    repo_id = _space(api, "idempotent")
    ops = [CommitOperationAdd("a.txt", b"same\n"), CommitOperationAdd("b.txt", b"also same\n")]
    first = api.create_commit(repo_id, repo_type="space", operations=ops, commit_message="one")
    before = sb.stats()["spaces"][repo_id]
    again = api.create_commit(
        repo_id, repo_type="space", commit_message="two",
        operations=[CommitOperationAdd("a.txt", b"same\n"), CommitOperationAdd("b.txt", b"also same\n")],
    )
    after = sb.stats()["spaces"][repo_id]
    assert again.oid == first.oid
    assert after["write_calls"] == before["write_calls"] and after["builds"] == before["builds"]
    assert len(api.list_repo_commits(repo_id, repo_type="space")) == 2


def test_parent_commit_conflict_is_412(api: HfApi) -> None:
    repo_id = _space(api, "racing")
    base = api.space_info(repo_id).sha
    api.create_commit(repo_id, repo_type="space", commit_message="someone else",
                      operations=[CommitOperationAdd("x.txt", b"1")])
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_commit(repo_id, repo_type="space", commit_message="me", parent_commit=base,
                          operations=[CommitOperationAdd("y.txt", b"2")])
    assert _status(conflict.value) == 412
    assert "A commit has happened since" in str(conflict.value)
    head = api.space_info(repo_id).sha
    ok = api.create_commit(repo_id, repo_type="space", commit_message="me", parent_commit=head,
                           operations=[CommitOperationAdd("y.txt", b"2")])
    assert api.space_info(repo_id).sha == ok.oid


def test_invalid_readme_metadata_is_rejected_before_commit(api: HfApi) -> None:
    repo_id = _space(api, "yaml-check")
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.create_commit(repo_id, repo_type="space", commit_message="bad card",
                          operations=[CommitOperationAdd("README.md", b"---\nsdk: [docker\n---\n")])


def test_settings_visibility_and_delete(sb: Sandbox, api: HfApi) -> None:
    repo_id = _space(api, "flip", private=True)
    other = HfApi(endpoint=sb.url, token=sb.other_token)
    with pytest.raises(RepositoryNotFoundError):
        other.space_info(repo_id)
    api.update_repo_settings(repo_id, repo_type="space", private=False)
    assert other.space_info(repo_id).private is False
    api.delete_repo(repo_id, repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        api.space_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo_id, repo_type="space")
    api.delete_repo(repo_id, repo_type="space", missing_ok=True)
    stats = sb.stats()["spaces"][repo_id]
    assert stats["writes_by_route"]["delete_repo"] == 3


@pytest.mark.filterwarnings("ignore:If your Space runs on the default 'cpu-basic'")
def test_write_calls_are_counted_per_space(sb: Sandbox, api: HfApi) -> None:
    repo_id = _space(api, "counted")
    api.set_space_sleep_time(repo_id, 600)
    api.add_space_variable(repo_id, "A", "1")
    api.get_space_variables(repo_id)
    api.space_info(repo_id)
    stats = sb.stats()
    assert stats["spaces"][repo_id]["write_calls"] == 3
    assert stats["spaces"][repo_id]["writes_by_route"] == {
        "create_repo": 1, "set_space_sleep_time": 1, "space_variable": 1,
    }
    assert stats["total"]["write_calls"] >= 3


def test_bad_requests_and_unmodelled_routes(sb: Sandbox, api: HfApi) -> None:
    repo_id = _space(api, "strict")
    with pytest.raises(BadRequestError):
        api.request_space_hardware(repo_id, "quantum-9000")  # type: ignore[arg-type]
    with pytest.raises(HfHubHTTPError) as models:
        api.create_repo(f"{OWNER}/a-model")
    assert _status(models.value) == 501
    answer = httpx.get(f"{sb.url}/api/models/{OWNER}/x/discussions", trust_env=False)
    assert answer.status_code == 501 and "GET /api/models/acme-ai/x/discussions" in answer.json()["error"]


def test_fault_plan_is_observed_by_the_client(sb: Sandbox, api: HfApi) -> None:
    repo_id = _space(api, "faulty")
    try:
        # preupload goes through the client's backoff: one 429 then success
        sb.set_faults([{"route": r"^POST /api/spaces/.*/preupload/", "status": 429, "retry_after": 0, "count": 1}])
        started = time.monotonic()
        api.create_commit(repo_id, repo_type="space", commit_message="retry",
                          operations=[CommitOperationAdd("f.txt", b"1")])
        assert time.monotonic() - started >= 0.9  # Retry-After 0 -> the client waits 1s
        assert sb.stats()["faults"]["injected"] == 1

        # space_info does not retry: the 500 reaches the caller, once
        sb.set_faults([{"route": r"^GET /api/spaces/acme-ai/faulty$", "status": 500, "count": 1}])
        with pytest.raises(HfHubHTTPError) as server_error:
            api.space_info(repo_id)
        assert _status(server_error.value) == 500
        assert api.space_info(repo_id).id == repo_id

        # latency, and a dropped connection the listing call retries through
        sb.set_faults([
            {"route": r"^GET /api/spaces/acme-ai/faulty/tree/", "drop_connection": True, "count": 1},
            {"route": r"^GET /api/spaces/acme-ai/faulty/runtime$", "latency_ms": 300},
        ])
        assert "f.txt" in api.list_repo_files(repo_id, repo_type="space")
        started = time.monotonic()
        api.get_space_runtime(repo_id)
        assert time.monotonic() - started >= 0.3

        # the control route sets and clears plans too
        plan = httpx.post(f"{sb.url}/_sandbox/faults", trust_env=False,
                          json={"rules": [{"route": "whoami", "status": 503, "retry_after": 7}]}).json()
        assert plan["rules"][0]["status"] == 503
        raw = httpx.get(f"{sb.url}/api/whoami-v2", trust_env=False)
        assert raw.status_code == 503 and raw.headers["retry-after"] == "7"
        assert httpx.delete(f"{sb.url}/_sandbox/faults", trust_env=False).json()["rules"] == []
        bad = httpx.post(f"{sb.url}/_sandbox/faults", trust_env=False, json=[{"route": "(", "status": 500}])
        assert bad.status_code == 400
    finally:
        sb.clear_faults()
    assert api.whoami()["name"] == sb.user

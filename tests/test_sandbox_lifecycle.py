"""Spaces committed to the sandbox really run: build, health, restarts, pause, errors, persistence, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from infra.sandbox import Sandbox, run_sandbox

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "sandbox_apps"
ECHO_APP = (APPS / "echo_app.py").read_bytes()
OWNER = "acme-ai"
RUN_ROOTS: list[Path] = []


def space_processes() -> list[int]:
    """Live processes whose working directory is inside a run root of a sandbox started by this module."""
    roots = [str(root) for root in RUN_ROOTS]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(cwd.startswith(root) for root in roots):
            found.append(int(entry))
    return found


@pytest.fixture(scope="module", autouse=True)
def no_orphans() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while space_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert space_processes() == [], "a Space process outlived its sandbox"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with run_sandbox(owner=OWNER, health_timeout=15, health_interval=0.05) as sandbox:
        assert sandbox.run_root is not None
        RUN_ROOTS.append(sandbox.run_root)
        yield sandbox


@pytest.fixture
def api(sb: Sandbox) -> HfApi:
    return HfApi(endpoint=sb.url, token=sb.token)


def app_files(app: bytes = ECHO_APP, dockerfile: bool = True) -> list[CommitOperationAdd]:
    ops = [CommitOperationAdd("app.py", app)]
    if dockerfile:
        ops.append(CommitOperationAdd("Dockerfile", b'FROM python:3.11-slim\nCMD ["python", "app.py"]\n'))
    return ops


def deploy(api: HfApi, name: str, app: bytes = ECHO_APP, **create: object) -> str:
    repo_id = f"{OWNER}/{name}"
    api.create_repo(repo_id, repo_type="space", space_sdk="docker", **create)  # type: ignore[arg-type]
    api.create_commit(repo_id, repo_type="space", operations=app_files(app), commit_message="deploy")
    return repo_id


def wait(api: HfApi, repo_id: str) -> str:
    return str(api.wait_for_space(repo_id, timeout=20, poll_interval=0.05).stage)


def env_of(api: HfApi, repo_id: str) -> dict[str, str]:
    host = api.space_info(repo_id).host
    return httpx.get(f"{host}/env", trust_env=False, timeout=5).json()


def refused(url: str) -> bool:
    try:
        httpx.get(url, trust_env=False, timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_commit_builds_and_runs_the_space_on_its_host(sb: Sandbox, api: HfApi) -> None:
    repo_id = f"{OWNER}/echo"
    api.create_repo(repo_id, repo_type="space", space_sdk="docker", private=True,
                    space_secrets=[{"key": "API_KEY", "value": "s3cret"}],
                    space_variables=[{"key": "GREETING", "value": "hello"}, {"key": "LLM_ENGINE", "value": "hf"}])
    api.create_commit(repo_id, repo_type="space", operations=app_files(), commit_message="deploy")
    assert api.get_space_runtime(repo_id).stage in ("BUILDING", "RUNNING")  # the API answers before the build
    assert wait(api, repo_id) == "RUNNING"
    info = api.space_info(repo_id)
    assert info.runtime is not None and info.runtime.hardware == "cpu-basic"
    assert info.runtime.raw["sha"] == info.sha
    assert httpx.get(f"{info.host}/health", trust_env=False).status_code == 200
    env = env_of(api, repo_id)
    assert env == {"SPACE_ID": repo_id, "LLM_ENGINE": "echo", "GREETING": "hello", "API_KEY": "s3cret",
                   "SPACE_AUTHOR_NAME": OWNER}
    assert sb.stats()["spaces"][repo_id]["builds"] == 1
    run_log = "".join(api.fetch_space_logs(repo_id))
    assert "echo app starting" in run_log
    build_log = "".join(api.fetch_space_logs(repo_id, build=True))
    assert "health check passed" in build_log


def test_secret_variable_and_hardware_changes_restart(sb: Sandbox, api: HfApi) -> None:
    repo_id = deploy(api, "restarts")
    assert wait(api, repo_id) == "RUNNING"
    stats = lambda: sb.stats()["spaces"][repo_id]  # noqa: E731

    api.add_space_secret(repo_id, "API_KEY", "v2")
    assert api.get_space_runtime(repo_id).stage == "APP_STARTING"
    assert wait(api, repo_id) == "RUNNING" and env_of(api, repo_id)["API_KEY"] == "v2"
    assert stats()["restarts"] == 1

    variables = api.add_space_variable(repo_id, "GREETING", "bonjour")
    assert variables["GREETING"].value == "bonjour"
    assert wait(api, repo_id) == "RUNNING" and env_of(api, repo_id)["GREETING"] == "bonjour"
    assert api.delete_space_variable(repo_id, "GREETING") == {}
    api.delete_space_secret(repo_id, "API_KEY")
    assert wait(api, repo_id) == "RUNNING"
    assert env_of(api, repo_id)["GREETING"] is None and env_of(api, repo_id)["API_KEY"] is None
    assert stats()["restarts"] == 4

    runtime = api.request_space_hardware(repo_id, "cpu-upgrade")
    assert runtime.requested_hardware == "cpu-upgrade" and runtime.hardware == "cpu-basic"
    assert wait(api, repo_id) == "RUNNING"
    assert api.get_space_runtime(repo_id).hardware == "cpu-upgrade"
    assert stats()["restarts"] == 5

    assert api.set_space_sleep_time(repo_id, 900).sleep_time == 900
    assert api.get_space_runtime(repo_id).stage == "RUNNING" and stats()["restarts"] == 5
    assert stats()["builds"] == 1


def test_pause_stops_the_process_and_restart_brings_it_back(sb: Sandbox, api: HfApi) -> None:
    repo_id = deploy(api, "pausable")
    assert wait(api, repo_id) == "RUNNING"
    host = api.space_info(repo_id).host
    assert api.pause_space(repo_id).stage == "PAUSED"
    assert refused(f"{host}/health")
    # a secret change does not wake a paused Space
    api.add_space_secret(repo_id, "K", "v")
    assert api.get_space_runtime(repo_id).stage == "PAUSED"
    assert api.restart_space(repo_id).stage == "APP_STARTING"
    assert wait(api, repo_id) == "RUNNING"
    assert httpx.get(f"{api.space_info(repo_id).host}/health", trust_env=False).status_code == 200
    assert sb.stats()["spaces"][repo_id]["restarts"] == 1
    assert api.restart_space(repo_id, factory_reboot=True).stage == "BUILDING"
    assert wait(api, repo_id) == "RUNNING" and sb.stats()["spaces"][repo_id]["builds"] == 2


def test_broken_spaces_land_in_error_stages_with_their_log(sb: Sandbox, api: HfApi) -> None:
    fresh = f"{OWNER}/fresh"
    api.create_repo(fresh, repo_type="space", space_sdk="docker")
    assert api.get_space_runtime(fresh).stage == "NO_APP_FILE"

    crash = f"{OWNER}/crashing"
    api.create_repo(crash, repo_type="space", space_sdk="docker",
                    space_variables=[{"key": "CRASH_ON_START", "value": "1"}])
    api.create_commit(crash, repo_type="space", operations=app_files(), commit_message="deploy")
    runtime = api.wait_for_space(crash, timeout=20, poll_interval=0.05)
    assert runtime.stage == "RUNTIME_ERROR" and "exited with code 3" in runtime.raw["errorMessage"]
    assert "crashing on purpose" in "".join(api.fetch_space_logs(crash))
    logs = httpx.get(f"{sb.url}/_sandbox/spaces/{crash}/logs", trust_env=False).json()
    assert logs["stage"] == "RUNTIME_ERROR" and any("crashing" in e["data"] for e in logs["run"])

    broken = deploy(api, "syntax", app=b"def broken(:\n")
    runtime = api.wait_for_space(broken, timeout=20, poll_interval=0.05)
    assert runtime.stage == "BUILD_ERROR" and "does not compile" in runtime.raw["errorMessage"]

    no_app = f"{OWNER}/no-app"
    api.create_repo(no_app, repo_type="space", space_sdk="docker")
    api.create_commit(no_app, repo_type="space", commit_message="only a Dockerfile",
                      operations=[CommitOperationAdd("Dockerfile", b"FROM python:3.11\n")])
    assert api.wait_for_space(no_app, timeout=20, poll_interval=0.05).stage == "BUILD_ERROR"
    assert "app.py is missing" in "".join(api.fetch_space_logs(no_app, build=True))


def test_a_space_never_healthy_times_out_into_runtime_error() -> None:
    with run_sandbox(owner=OWNER, health_timeout=1.5, health_interval=0.05) as sandbox:
        assert sandbox.run_root is not None
        RUN_ROOTS.append(sandbox.run_root)
        api = HfApi(endpoint=sandbox.url, token=sandbox.token)
        repo_id = deploy(api, "slow", app=(APPS / "unhealthy_app.py").read_bytes())
        runtime = api.wait_for_space(repo_id, timeout=20, poll_interval=0.05)
        assert runtime.stage == "RUNTIME_ERROR" and "/health" in runtime.raw["errorMessage"]
        assert sandbox.child_pids() == []


def test_forced_stages_for_later_tests(sb: Sandbox, api: HfApi) -> None:
    repo_id = deploy(api, "forced")
    assert wait(api, repo_id) == "RUNNING"
    host = api.space_info(repo_id).host
    answer = httpx.post(f"{sb.url}/_sandbox/spaces/{repo_id}/stage", json={"stage": "SLEEPING"}, trust_env=False)
    assert answer.status_code == 200 and answer.json()["stage"] == "SLEEPING"
    assert api.get_space_runtime(repo_id).stage == "SLEEPING" and refused(f"{host}/health")
    sb.set_stage(repo_id, "RUNNING")
    assert wait(api, repo_id) == "RUNNING"
    sb.set_stage(repo_id, "BUILDING")
    assert api.get_space_runtime(repo_id).stage == "BUILDING" and refused(f"{host}/health")
    sb.set_stage(repo_id, "RUNTIME_ERROR", error="out of memory")
    assert api.get_space_runtime(repo_id).raw["errorMessage"] == "out of memory"
    bad = httpx.post(f"{sb.url}/_sandbox/spaces/{repo_id}/stage", json={"stage": "DANCING"}, trust_env=False)
    assert bad.status_code == 400


def test_duplicate_and_delete(sb: Sandbox, api: HfApi) -> None:
    source = deploy(api, "original", space_variables=[{"key": "GREETING", "value": "copied"}])
    assert wait(api, source) == "RUNNING"
    url = api.duplicate_repo(source, f"{OWNER}/copy", repo_type="space", private=True,
                             space_secrets=[{"key": "API_KEY", "value": "dup"}])
    assert url.repo_id == f"{OWNER}/copy"
    assert api.space_info(f"{OWNER}/copy").sha == api.space_info(source).sha
    assert wait(api, f"{OWNER}/copy") == "RUNNING"
    assert env_of(api, f"{OWNER}/copy")["GREETING"] == "copied" and env_of(api, f"{OWNER}/copy")["API_KEY"] == "dup"
    assert len(api.list_repo_commits(f"{OWNER}/copy", repo_type="space")) == 2
    assert api.duplicate_repo(source, f"{OWNER}/copy", repo_type="space", exist_ok=True).repo_id == f"{OWNER}/copy"

    host = api.space_info(f"{OWNER}/copy").host
    api.delete_repo(f"{OWNER}/copy", repo_type="space")
    assert refused(f"{host}/health")
    with pytest.raises(RepositoryNotFoundError):
        api.get_space_runtime(f"{OWNER}/copy")


def test_rendered_echo_space_serves_v1_models(sb: Sandbox, api: HfApi) -> None:
    from infra.render import render_space
    from infra.spec import load_declaration

    declaration = load_declaration(ROOT / "config" / "spaces.yaml")
    space = declaration.space("staging", "base")
    files = render_space(declaration, "staging", "base")
    api.create_repo(space.repo_id, repo_type="space", space_sdk="docker", private=True,
                    space_secrets=[{"key": "SPACE_API_KEY", "value": "k-123"}])
    api.create_commit(space.repo_id, repo_type="space", commit_message="render",
                      operations=[CommitOperationAdd(path, data) for path, data in files.items()])
    assert wait(api, space.repo_id) == "RUNNING", sb.logs(space.repo_id)
    host = api.space_info(space.repo_id).host
    models = httpx.get(f"{host}/v1/models", headers={"authorization": "Bearer k-123"}, trust_env=False)
    assert models.status_code == 200
    assert space.model in models.text
    assert httpx.get(f"{host}/v1/models", trust_env=False).status_code == 401


@pytest.mark.filterwarnings("ignore:If your Space runs on the default 'cpu-basic'")
def test_state_survives_a_restart_and_running_spaces_start_again(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    with run_sandbox(owner=OWNER, data_dir=data, health_timeout=15, health_interval=0.05) as first:
        assert first.run_root is not None
        RUN_ROOTS.append(first.run_root)
        api = HfApi(endpoint=first.url, token=first.token)
        repo_id = deploy(api, "durable", private=True, space_secrets=[{"key": "API_KEY", "value": "kept"}])
        paused = deploy(api, "asleep")
        assert wait(api, repo_id) == "RUNNING" and wait(api, paused) == "RUNNING"
        api.pause_space(paused)
        api.set_space_sleep_time(repo_id, 1200)
        token, sha, stats = first.token, api.space_info(repo_id).sha, first.stats()
        pids = first.child_pids()
        assert len(pids) == 1
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert (data / "state.json").stat().st_mode & 0o077 == 0

    with run_sandbox(owner=OWNER, data_dir=data, health_timeout=15, health_interval=0.05) as second:
        assert second.token == token
        api = HfApi(endpoint=second.url, token=token)
        assert api.space_info(repo_id).sha == sha
        assert wait(api, repo_id) == "RUNNING"
        assert env_of(api, repo_id)["API_KEY"] == "kept"
        assert api.get_space_runtime(repo_id).sleep_time == 1200
        assert api.get_space_runtime(paused).stage == "PAUSED"
        assert second.stats()["spaces"] == stats["spaces"]
        assert [c.title for c in api.list_repo_commits(repo_id, repo_type="space")] == ["deploy", "initial commit"]


def start_cli(data: Path, *args: str) -> tuple[subprocess.Popen[str], HfApi]:
    """Run `invoke sandbox` as a user would; return the process and a client built from its two lines."""
    RUN_ROOTS.append(data / "runtime")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "sandbox", "--data", str(data), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert process.stdout is not None
    endpoint_line = process.stdout.readline().strip()
    token_line = process.stdout.readline().strip()
    assert endpoint_line.startswith("HF_ENDPOINT=http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
    assert token_line.startswith("HF_TOKEN=hf_")
    return process, HfApi(endpoint=endpoint_line.split("=", 1)[1], token=token_line.split("=", 1)[1])


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_invoke_sandbox_serves_until_stopped_and_leaves_no_child(tmp_path: Path, stop_signal: int) -> None:
    data = tmp_path / "cli-hub"
    process, api = start_cli(data, "--owner", "cli-org")
    try:
        assert [org["name"] for org in api.whoami()["orgs"]] == ["cli-org"]
        api.create_repo("cli-org/app", repo_type="space", space_sdk="docker")
        api.create_commit("cli-org/app", repo_type="space", operations=app_files(), commit_message="deploy")
        assert wait(api, "cli-org/app") == "RUNNING"
        mine = lambda: [p for p in space_processes() if str(data) in os.readlink(f"/proc/{p}/cwd")]  # noqa: E731
        assert len(mine()) == 1
        process.send_signal(stop_signal)
        code = process.wait(timeout=20)
        assert code == (-signal.SIGKILL if stop_signal == signal.SIGKILL else 0)
        deadline = time.monotonic() + 10  # after SIGKILL the kernel's parent-death signal does the work
        while mine() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mine() == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_invoke_sandbox_reads_the_owner_from_the_declaration(tmp_path: Path) -> None:
    config = tmp_path / "spaces.yaml"
    config.write_text("owner: declared-org\ntiers: {}\n")
    process, api = start_cli(tmp_path / "hub", "--config", str(config))
    try:
        assert [org["name"] for org in api.whoami()["orgs"]] == ["declared-org"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    missing = subprocess.run([sys.executable, "-m", "invoke", "sandbox", "--config", str(tmp_path / "nope.yaml")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no such declaration file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_space_that_dies_while_running_is_a_runtime_error(sb: Sandbox, api: HfApi) -> None:
    repo_id = deploy(api, "mortal")
    assert wait(api, repo_id) == "RUNNING"
    (pid,) = [p for p in sb.child_pids() if "acme-ai--mortal" in os.readlink(f"/proc/{p}/cwd")]
    os.kill(pid, signal.SIGKILL)
    assert sb.wait_for_stage(repo_id, ("RUNTIME_ERROR",), timeout=10) == "RUNTIME_ERROR"
    assert "exited with code -9" in api.get_space_runtime(repo_id).raw["errorMessage"]
    api.restart_space(repo_id)
    assert wait(api, repo_id) == "RUNNING"


def test_list_spaces_and_commit_pagination(sb: Sandbox, api: HfApi) -> None:
    repo_id = f"{OWNER}/paged"
    api.create_repo(repo_id, repo_type="space", space_sdk="docker", private=True)
    for i in range(50):
        api.create_commit(repo_id, repo_type="space", commit_message=f"c{i}",
                          operations=[CommitOperationAdd("n.txt", str(i).encode())])
    commits = api.list_repo_commits(repo_id, repo_type="space")
    assert len(commits) == 51 and commits[0].title == "c49" and commits[-1].title == "initial commit"
    page = httpx.get(f"{sb.url}/api/spaces/{repo_id}/commits/main", trust_env=False,
                     headers={"authorization": f"Bearer {sb.token}"})
    assert len(page.json()) == 50 and 'rel="next"' in page.headers["link"]
    mine = [s.id for s in api.list_spaces(author=OWNER, search="paged")]
    assert mine == [repo_id]
    others_view = HfApi(endpoint=sb.url, token=sb.other_token)
    assert [s.id for s in others_view.list_spaces(author=OWNER, search="paged")] == []

"""`invoke rollback` / `flags` / `flags.set` end to end: a real `invoke` process against moto's server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.flags import SSMFlagStore

REPO = Path(__file__).resolve().parents[1]
PARAM = "/triple-llm/staging/flags"


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch):
    env = {
        "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1", "FLAGS_ACTOR": "ci-bot",
        # Rollback must not need the Hub: point it nowhere reachable and offline.
        "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FLAG_STORE", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("ssm", region_name="eu-west-1", endpoint_url=moto_url)
    with contextlib.suppress(client.exceptions.ParameterNotFound):
        client.delete_parameter(Name=PARAM)
    return env


def invoke(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=60)


def store(moto_url: str) -> SSMFlagStore:
    return SSMFlagStore(PARAM, client=boto3.client("ssm", region_name="eu-west-1", endpoint_url=moto_url))


def test_set_then_rollback_then_show(aws_env, moto_url) -> None:
    done = invoke("flags.set", "--env", "staging", "--provider", "huggingface", "--tier", "company=off",
                  "--percent", "base=25", "--reason", "start rollout")
    assert done.returncode == 0, done.stderr
    assert "before: (nothing stored" in done.stdout
    assert "after:  v1 provider=huggingface base=on@25% company=off abstraction=on" in done.stdout
    assert store(moto_url).snapshot().document.provider == "huggingface"

    rolled = invoke("rollback", "--env", "staging", "--reason", "incident 7")
    assert rolled.returncode == 0, rolled.stderr
    assert "before: v1 provider=huggingface" in rolled.stdout
    assert "after:  v2 provider=openai base=on@25% company=off" in rolled.stdout
    assert "confirmed by the store" in rolled.stdout
    current = store(moto_url).snapshot()
    assert (current.document.provider, current.revision, current.document.reason) == ("openai", "2", "incident 7")
    assert current.document.updated_by == "ci-bot"

    shown = invoke("flags", "--env", "staging", "--json")
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert payload["current"]["provider"] == "openai"
    assert [h["document"]["version"] for h in payload["history"]] == [2, 1]
    table = invoke("flags", "--env", "staging")
    assert table.returncode == 0 and "incident 7" in table.stdout


def test_rollback_is_one_write(aws_env, moto_url) -> None:
    invoke("flags.set", "--env", "staging", "--provider", "huggingface", "--reason", "r")
    before = len(store(moto_url).history(100))
    assert invoke("rollback", "--env", "staging", "--reason", "x").returncode == 0
    assert len(store(moto_url).history(100)) == before + 1


def test_rollback_fails_clearly_when_the_store_is_unreachable(aws_env) -> None:
    done = invoke("rollback", "--env", "staging", "--reason", "x",
                  env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"})
    assert done.returncode != 0
    assert "error: reading ssm:/triple-llm/staging/flags (eu-west-1) failed" in done.stderr
    assert "Traceback" not in done.stderr and "testing" not in done.stderr + done.stdout


def test_rollback_repairs_an_invalid_document_and_rejects_bad_input(aws_env, moto_url) -> None:
    client = boto3.client("ssm", region_name="eu-west-1", endpoint_url=moto_url)
    client.put_parameter(Name=PARAM, Value="{oops", Type="String")
    shown = invoke("flags", "--env", "staging")
    assert shown.returncode == 0 and "INVALID" in shown.stdout
    done = invoke("rollback", "--env", "staging", "--reason", "repair")
    assert done.returncode == 0, done.stderr
    assert "before: INVALID (flag document from ssm:/triple-llm/staging/flags" in done.stdout
    assert store(moto_url).snapshot().document.provider == "openai"
    assert invoke("rollback", "--env", "staging").returncode == 1  # no reason
    bad = invoke("flags.set", "--env", "staging", "--percent", "base=150", "--reason", "x")
    assert bad.returncode == 1 and "valid: an integer 0-100 or none" in bad.stderr
    unknown = invoke("rollback", "--env", "qa", "--reason", "x")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr


def test_file_store_via_flag_store_override(aws_env, tmp_path) -> None:
    config = tmp_path / "spaces.yaml"
    shutil.copy(REPO / "config" / "spaces.yaml", config)
    env = {"FLAG_STORE": "file", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # SSM unused
    done = invoke("flags.set", "--env", "prod", "--config", str(config), "--provider", "huggingface",
                  "--reason", "file store", env=env)
    assert done.returncode == 0, done.stderr
    rolled = invoke("rollback", "--env", "prod", "--config", str(config), "--reason", "back", env=env)
    assert rolled.returncode == 0, rolled.stderr
    stored = json.loads((tmp_path / ".flags" / "prod.json").read_text())
    assert stored["provider"] == "openai" and stored["version"] == 2
    assert len((tmp_path / ".flags" / "prod.history.jsonl").read_text().splitlines()) == 2

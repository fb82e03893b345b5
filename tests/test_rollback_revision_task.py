"""`invoke rollback --to-revision`: flag to OpenAI first, then each Space's files restored in one commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support import CONFIG, run_invoke

from infra.hub import make_api
from infra.reconcile import apply_environment, desired_spaces, plan_environment
from infra.sandbox import run_sandbox
from infra.spec import load_declaration

SECRETS = {"SPACE_API_KEY": "revision-key", "SPACE_HF_TOKEN": "revision-token"}


def test_rollback_to_previous_revision_through_invoke(tmp_path: Path) -> None:
    config = tmp_path / "spaces.yaml"
    shutil.copy(CONFIG, config)
    declaration = load_declaration(config, environ={})
    with run_sandbox(owner="acme-ai") as sandbox:
        api = make_api(sandbox.url, sandbox.token)
        first = desired_spaces(declaration, "staging", environ=SECRETS)
        apply_environment(api, plan_environment(api, first), poll=0.1, timeout=60)
        originals = {d.space.repo_id: api.space_info(d.space.repo_id).sha for d in first}
        edited = desired_spaces(declaration, "staging", environ=SECRETS)
        for item in edited:
            item.files = {**item.files, "app.py": item.files["app.py"] + b"\n# a bad release\n", "NEW.md": b"new\n"}
        results = apply_environment(api, plan_environment(api, edited), poll=0.1, timeout=60)
        assert all(r.ok for r in results)

        env = {"HF_ENDPOINT": sandbox.url, "HF_TOKEN": sandbox.token, "FLAG_STORE": "file", **{
            "SPACE_API_KEY": SECRETS["SPACE_API_KEY"]}}
        result = run_invoke("rollback", "--env", "staging", "--config", str(config), "--reason", "bad release",
                            "--to-revision", "PREVIOUS", env=env)
        assert result.returncode == 0, result.stderr
        assert "rolled back to OpenAI" in result.stdout
        flag = json.loads((tmp_path / ".flags" / "staging.json").read_text())
        assert flag["provider"] == "openai"
        for item in first:
            repo_id = item.space.repo_id
            commits = api.list_repo_commits(repo_id, repo_type="space")
            assert len(commits) == 4, "create, first deploy, bad release, one restoring commit"
            files = set(api.list_repo_files(repo_id, repo_type="space"))
            assert "NEW.md" not in files
            restored = api.hf_hub_download(repo_id, "app.py", repo_type="space", cache_dir=tmp_path / "cache")
            assert Path(restored).read_bytes() == item.files["app.py"]
            assert commits[0].commit_id != originals[repo_id]

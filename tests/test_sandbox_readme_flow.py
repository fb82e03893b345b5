"""The README's sandbox flow as a user runs it: `invoke sandbox`, export its lines, then the tasks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from support import ROOT, run_invoke


def test_exported_sandbox_lines_drive_up_smoke_flags_and_rollback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "AWS_")) and k != "FLAG_STORE"}
    process = subprocess.Popen([sys.executable, "-m", "invoke", "sandbox"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(6)]
        exported = dict(line.split("=", 1) for line in lines)
        assert list(exported)[:2] == ["HF_ENDPOINT", "HF_TOKEN"]
        assert exported["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        exported["SPACE_API_KEY"] = "readme-flow-key"
        for args in (["up", "--env", "staging", "--yes"], ["smoke", "--env", "staging", "--state-dir",
                                                           str(tmp_path / ".state")],
                     ["flags.set", "--env", "staging", "--provider", "huggingface", "--reason", "try it"],
                     ["rollback", "--env", "staging", "--reason", "back"]):
            result = run_invoke(*args, env=exported)
            assert result.returncode == 0, (args, result.stderr[-800:])
        shown = json.loads(run_invoke("flags", "--env", "staging", "--json", env=exported).stdout)
        assert shown["current"]["provider"] == "openai"
        assert "readme-flow-key" not in json.dumps(shown)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0

"""The main job end to end on the sandbox: every step's claim, the JSON report, and no process left."""

from __future__ import annotations

import json
from pathlib import Path

from support import CONFIG

from infra.demo import child_pids, run_demo
from infra.progress import Progress

EXPECTED_STEPS = [
    "start sandbox Hub, moto, OpenAI stand-in",
    "render staging",
    "provision staging",
    "smoke staging",
    "promote staging -> prod",
    "traffic on Hugging Face",
    "break company Space: fallback",
    "invoke rollback --env prod",
    "traffic back on OpenAI",
    "stop everything",
]


def test_demo_runs_every_step_and_leaves_no_process(tmp_path: Path) -> None:
    before = child_pids()
    report = run_demo(CONFIG, tmp_path, requests_per_tier=2, progress=Progress(quiet=True))
    written = json.loads((tmp_path / "demo-report.json").read_text())
    steps = {step["name"]: step for step in written["steps"]}
    assert [step["name"] for step in written["steps"]] == EXPECTED_STEPS, written
    failed = {name: step["detail"] for name, step in steps.items() if not step["ok"]}
    assert not failed and written["ok"] is True and report.ok

    provision = steps["provision staging"]
    assert provision["write_calls"] == 6 and provision["builds"] == 3 and provision["restarts"] == 0
    assert {s["checks"][-1]["name"] for s in steps["smoke staging"]["data"]["smoke"]["spaces"]} == {"auth_refused"}
    assert {r["provider"] for r in steps["traffic on Hugging Face"]["data"]["requests"]} == {"huggingface"}
    fallback = [r for r in steps["break company Space: fallback"]["data"]["requests"] if r["tier"] == "company"]
    assert all(r["provider"] == "openai" and r["fallback"] for r in fallback)
    assert "circuit-open" in {r["reason"] for r in fallback}, "the breaker spares later requests the failure"
    rollback = steps["invoke rollback --env prod"]
    assert rollback["write_calls"] == 0, "rollback never touches the Hub"
    follows = steps["traffic back on OpenAI"]["data"]
    assert follows["seconds"] <= follows["ttl"] + 2.0
    assert {r["provider"] for r in follows["requests"]} == {"openai"}

    providers = [entry["provider"] for entry in written["flag_history"]]
    assert providers[-2:] == ["huggingface", "openai"]
    assert written["flag_history"][-1]["reason"] == "demo: company Space broken"
    assert child_pids() <= before, "no child process outlives the demo"

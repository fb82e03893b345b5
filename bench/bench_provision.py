"""Benchmark: what each kind of deploy costs on the Hub, and what the parallel pool buys.

1. Deploy cost per change kind, against the sandbox Hub running the rendered echo Spaces: first
   creation, no change, one file change, one secret change, one hardware change. For each: write
   calls, builds and restarts per Space (counted by the sandbox) and wall time of plan + apply + wait.
2. Scale: plan + apply of 3, 30 and 300 Spaces with 50 ms injected latency on every Hub call,
   sequential (one worker) versus the bounded pool, measured side by side; the ratio is the speed-up.
   These Spaces hold a one-file card (no app), so the figure is the reconciler's own Hub traffic.

Run: `python -m bench.bench_provision [--sizes 3,30,300] [--latency-ms 50] [--workers 16]`.
`main()` returns the rows so `invoke bench` can aggregate them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import Row, print_rows, row
from infra.hub import RetryPolicy, make_api
from infra.reconcile import apply_environment, desired_spaces, plan_environment
from infra.reconcile.model import DesiredSpace
from infra.sandbox import run_sandbox
from infra.spec import load_declaration

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "spaces.yaml"
SECRETS = {"SPACE_API_KEY": "bench-space-key", "SPACE_HF_TOKEN": "bench-hf-token"}


def _deploy(sandbox, desired: list[DesiredSpace], workers: int = 8, wait: bool = True) -> float:  # noqa: ANN001
    api = make_api(sandbox.url, sandbox.token)
    started = time.perf_counter()
    results = apply_environment(api, plan_environment(api, desired, workers=workers), workers=workers,
                                wait=wait, poll=0.05, timeout=120, policy=RetryPolicy(attempts=3, base_delay=0.05))
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"deploy failed: {failed}")
    return time.perf_counter() - started


def _counts(sandbox) -> dict[str, int]:  # noqa: ANN001
    total = sandbox.stats()["total"]
    return {key: total[key] for key in ("write_calls", "builds", "restarts")}


def bench_change_kinds(config: Path) -> list[Row]:
    """Writes, builds, restarts and time for each kind of deploy on the three declared Spaces."""
    declaration = load_declaration(config, environ={})

    def desired(**change: Any) -> list[DesiredSpace]:
        items = desired_spaces(declaration, "staging", environ={**SECRETS, **change.get("secrets", {})})
        company = next(item for item in items if item.space.tier == "company")
        if "file" in change:
            company.files = {**company.files, "app.py": company.files["app.py"] + b"\n# bench edit\n"}
        if "hardware" in change:
            company.space = company.space.model_copy(update={"hardware": change["hardware"]})
        return items

    scenarios = [
        ("first creation", desired()),
        ("no change", desired()),
        ("one file change", desired(file=True)),
        ("one secret change", desired(file=True, secrets={"SPACE_API_KEY": "bench-space-key-2"})),
        ("one hardware change", desired(file=True, secrets={"SPACE_API_KEY": "bench-space-key-2"},
                                        hardware="t4-small")),
    ]
    rows: list[Row] = []
    with run_sandbox(owner=declaration.owner) as sandbox:
        for name, items in scenarios:
            before = _counts(sandbox)
            seconds = _deploy(sandbox, items)
            after = _counts(sandbox)
            delta = {key: after[key] - before[key] for key in after}
            note = f"{delta['write_calls']} writes, {delta['builds']} builds, {delta['restarts']} restarts (3 Spaces)"
            rows.append(row("deploy", f"{name}: writes per Space", delta["write_calls"] / 3, "calls", note))
            rows.append(row("deploy", f"{name}: time", seconds, "s", "plan + apply + wait for RUNNING"))
    return rows


def _synthetic(declaration, count: int) -> list[DesiredSpace]:  # noqa: ANN001
    template = declaration.space("staging", "base")
    items = []
    for index in range(count):
        space = template.model_copy(update={"name": f"bench-space-{index:03d}", "secrets": ()})
        items.append(DesiredSpace(space=space, files={"README.md": f"---\ntitle: bench {index}\n---\n".encode()},
                                  variables={"INDEX": str(index)}, secrets={}))
    return items


def bench_scale(config: Path, sizes: list[int], latency_ms: int, workers: int) -> list[Row]:
    """Plan + apply of N new Spaces, sequential vs pool, with latency injected on every Hub call."""
    declaration = load_declaration(config, environ={})
    rows: list[Row] = []
    for size in sizes:
        timings = {}
        for mode, pool in (("sequential", 1), ("pool", workers)):
            with run_sandbox(owner=declaration.owner,
                             faults=[{"route": "^(GET|POST|PUT|DELETE) /api/", "latency_ms": latency_ms}]) as sandbox:
                timings[mode] = _deploy(sandbox, _synthetic(declaration, size), workers=pool, wait=False)
        ratio = timings["sequential"] / timings["pool"]
        rows.append(row("scale", f"{size} Spaces sequential", timings["sequential"], "s", f"{latency_ms} ms/call"))
        rows.append(row("scale", f"{size} Spaces pool of {workers}", timings["pool"], "s", f"{latency_ms} ms/call"))
        rows.append(row("scale", f"{size} Spaces speed-up", ratio, "x", "sequential / pool, same run"))
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run both benchmarks, print the table, and return the rows."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_provision", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,30,300", help="comma-separated Space counts for the scale run")
    parser.add_argument("--latency-ms", type=int, default=50, help="latency injected on every Hub call")
    parser.add_argument("--workers", type=int, default=16, help="pool size for the parallel run")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="declaration to deploy")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    rows = bench_change_kinds(args.config) + bench_scale(args.config, sizes, args.latency_ms, args.workers)
    print_rows(rows, title="provisioning benchmark")
    return rows


if __name__ == "__main__":
    main()

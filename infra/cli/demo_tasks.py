"""`invoke demo` (the main job on the sandbox) and `invoke bench` (every benchmark, one table)."""

from __future__ import annotations

import json
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from infra.cli import user_errors
from infra.spec import DEFAULT_CONFIG


@task(help={"config": f"declaration file (default: {DEFAULT_CONFIG})",
            "out": "where the rendered files, smoke state and demo-report.json go (default: out/demo)",
            "json": "print the JSON report instead of tables",
            "requests": "requests per tier in each traffic step (default 3)"})
@user_errors
def demo(c, config=str(DEFAULT_CONFIG), out="out/demo", json_=False, requests=3):
    """Run the whole life cycle on the local sandbox and print a report (exit 1 if a step fails).

    Render, provision, smoke, promote, flip to Hugging Face, fall back, roll back, stop everything."""
    from infra.demo import print_report, run_demo

    report = run_demo(Path(config), Path(out), requests_per_tier=int(requests))
    if json_:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report)
        print(f"JSON report: {Path(out) / 'demo-report.json'}")
    if not report.ok:
        raise Exit(code=1)


@task(help={"quick": "smaller sizes (3 and 30 Spaces) for a fast look"})
@user_errors
def bench(c, quick=False):
    """Run every benchmark of the project (sandbox, moto, local servers) and print one table of figures."""
    from bench.bench_flags import main as flags_main
    from bench.bench_provision import main as provision_main
    from bench.report import print_rows

    rows = provision_main(["--sizes", "3,30" if quick else "3,30,300"]) + flags_main([])
    print()
    print_rows(rows, title="all benchmarks")


def register(ns: Collection) -> None:
    ns.add_task(demo)
    ns.add_task(bench)

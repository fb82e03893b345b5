"""The flags benchmark stays runnable and its figures are sane (small sizes, so it is quick)."""

from __future__ import annotations

from bench.bench_flags import bench_rollback_convergence, bench_service_overhead, main


def test_rollback_converges_within_the_ttl() -> None:
    rows = {row["metric"]: row for row in bench_rollback_convergence(workers=4, ttl=0.3)}
    assert rows["ttl"]["value"] == 0.3
    # Every worker follows within one TTL plus one store read.
    assert 0 <= rows["convergence max"]["value"] <= 0.3 + 0.25
    assert rows["write+confirm"]["unit"] == "ms"


def test_service_overhead_is_reported_as_a_ratio() -> None:
    rows = {row["metric"]: row for row in bench_service_overhead(requests=10)}
    assert rows["overhead ratio"]["unit"] == "x" and rows["overhead ratio"]["value"] > 0
    assert rows["openai client direct p50"]["value"] > 0


def test_main_prints_a_table_and_returns_rows(capsys) -> None:
    rows = main(["--workers", "2", "--ttl", "0.2", "--requests", "5"])
    assert {row["benchmark"] for row in rows} == {"rollback", "service"}
    assert "overhead ratio" in capsys.readouterr().out

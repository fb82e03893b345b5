"""Rows and the one table format every benchmark prints (and `invoke bench` aggregates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

Row = dict[str, Any]


def row(bench: str, metric: str, value: float, unit: str, note: str = "") -> Row:
    """One measured figure."""
    return {"benchmark": bench, "metric": metric, "value": round(value, 3), "unit": unit, "note": note}


def print_rows(rows: Sequence[Row], title: str = "benchmarks", console: Console | None = None) -> None:
    """Render rows as one table."""
    table = Table("benchmark", "metric", "value", "unit", "note", title=title)
    for item in rows:
        table.add_row(item["benchmark"], item["metric"], f"{item['value']:g}", item["unit"], item["note"])
    (console or Console()).print(table)

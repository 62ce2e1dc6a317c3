"""Shared pieces for the benchmarks: data location, table printing, temporary run folders."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINYSHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"


def require_data(path: Path = TINYSHAKESPEARE) -> Path:
    if not path.exists():
        raise SystemExit(f"benchmark data {path} is missing: put tinyshakespeare.txt in ../shared/data/")
    return path


def runs_dir() -> str:
    return tempfile.mkdtemp(prefix="rnn-playground-bench-")


def median(values) -> float:
    return statistics.median(values)


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in row]
                                          for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * width for width in widths))

"""Shared pieces for the benchmarks: data location, table printing, temporary run folders."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def chars_per_second(run_dir: Path, skip: int = 2, since: float = 0.0, until: float = float("inf")
                     ) -> tuple[float, int]:
    """Training throughput from metrics.jsonl step events (elapsed_s excludes pauses), optionally
    only between two wall-clock times."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    config = next(r for r in records if r["event"] == "started")["config"]
    steps = [r for r in records if r["event"] == "step"][skip:]
    steps = [r for r in steps if since <= r["time"] <= until]
    if len(steps) < 2:
        return float("nan"), len(steps)
    first, last = steps[0], steps[-1]
    chars = (last["step"] - first["step"]) * config["batch"] * config["seq"]
    return chars / max(last["elapsed_s"] - first["elapsed_s"], 1e-9), last["step"] - first["step"]


class BusyNeighbour:
    """A process spinning a busy loop on one core (the last CPU this process may use), standing in
    for the other programs of a shared machine. A no-op when `busy` is False."""

    def __init__(self, busy: bool = True):
        self.busy = busy
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BusyNeighbour:
        if self.busy:
            # Spins until its parent is gone, so a killed benchmark leaves no busy loop behind.
            spin = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
            self.process = subprocess.Popen([sys.executable, "-c", spin])
            try:
                os.sched_setaffinity(self.process.pid, {max(os.sched_getaffinity(0))})
            except (AttributeError, OSError):
                pass  # no affinity here: the loop still takes a core's worth of time
            time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

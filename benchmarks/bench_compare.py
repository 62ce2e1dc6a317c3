"""Runs compared: what reading a run's curves costs the Runs screen's comparison (compare_view.CurveReader).

    python -m benchmarks.bench_compare [--steps 20000] [--rounds 5]

A run's metrics.jsonl of --steps step events (a point a step, as --log-every 1 writes) and a validation every
200 steps, written from the trainer's own events. Timed: the first read of the whole file (the fold, then the
curves on three axes), a read again with nothing new (what each tick costs a finished run, were it read), and a
read after 10 new step lines (a live run between two ticks). The baseline is the first read, measured in the
same run; the compare screen reads again at most every 0.5 s, so the last column is the share of that interval.
Medians over --rounds rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from rnn_playground.core.events import RunStarted, StepEvent, ValidationEvent
from rnn_playground.tui.viewmodel.compare_view import CurveReader

from .common import median, print_table

INTERVAL = 0.5  # the compare screen's fastest re-read (screens/compare.py READ_INTERVAL)


def step_line(step: int) -> str:
    loss = 1.3 + 2.9 * math.exp(-step / 4000)
    return json.dumps(StepEvent(step, None, step / 500, loss, 12_800.0, 0.003, step * 0.05, None).to_json()) + "\n"


def write_run(run_dir: Path, steps: int) -> None:
    config = {"batch": 64, "seq": 100, "hidden": 512, "layers": 2, "cell": "lstm"}
    lines = [json.dumps(RunStarted("bench", str(run_dir), "cpu", config, 1, 83, 10**6, 10**5, 0, None).to_json())
             + "\n"]
    for step in range(1, steps + 1):
        lines.append(step_line(step))
        if step % 200 == 0:
            lines.append(json.dumps(ValidationEvent(step, 1.4 + 2.7 * math.exp(-step / 4500), 1.4, True).to_json())
                         + "\n")
    (run_dir / "metrics.jsonl").write_text("".join(lines))


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_compare")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    first, unchanged, grown = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        for _ in range(args.rounds):
            write_run(run_dir, args.steps)
            reader = CurveReader(run_dir)
            first.append(timed(reader.read))
            unchanged.append(timed(reader.read))
            with (run_dir / "metrics.jsonl").open("a") as handle:
                handle.write("".join(step_line(args.steps + i) for i in range(1, 11)))
            grown.append(timed(reader.read))
    base = median(first)
    rows = [[name, f"{median(values) * 1000:.2f}", f"{median(values) / base:.3f}",
             f"{median(values) / INTERVAL:.2%}"]
            for name, values in (("first read, whole file", first), ("again, nothing new", unchanged),
                                 ("again, 10 new step lines", grown))]
    print_table(f"reading a run of {args.steps:,} steps (a point a step, a validation every 200)",
                ["read", "ms", "vs first read", "of a 0.5 s tick"], rows)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

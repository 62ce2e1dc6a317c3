"""The control channel's cost per step: what the Trainer's check of control.json costs, against a step.

    python -m benchmarks.bench_control [--checks 200000] [--steps 8]

At every step boundary the Trainer calls ControlChannel.poll(): one os.stat of the run's control.json,
and a read and parse only when the file changed. Timed here: the check with no control file (a run
nobody has steered), with a file unchanged since the last check (the usual case once steered), and a
check that finds a new command (read, parse, compare; rare: once per command sent). Against: the
seconds per step of the default model (TrainConfig's defaults, on this CPU) measured from the run's
step events, after the first step. Medians over --rounds rounds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import atomic_writer
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.control import ControlChannel
from rnn_playground.core.events import StepEvent
from rnn_playground.core.trainer import Trainer

from .common import median, print_table, require_data, runs_dir


def seconds_per_check(run_dir: Path, case: str, checks: int) -> float:
    channel = ControlChannel(run_dir, "bench")
    path = run_dir / runs.CONTROL
    path.unlink(missing_ok=True)
    if case == "unchanged":
        path.write_text(json.dumps({"run_id": "bench", "seq": 1, "command": "save", "sent_at": 0.0}))
        channel.poll()
    if case == "new command":  # each check finds a new file: write one before each (the write is not timed)
        total = 0.0
        for seq in range(1, checks // 100 + 1):
            with atomic_writer(path) as handle:
                handle.write(json.dumps({"run_id": "bench", "seq": seq, "command": "save", "sent_at": 0.0}).encode())
            began = time.perf_counter()
            assert channel.poll() is not None
            total += time.perf_counter() - began
        return total / (checks // 100)
    began = time.perf_counter()
    for _ in range(checks):
        channel.poll()
    return (time.perf_counter() - began) / checks


TINY = dict(hidden=32, layers=1, embed=16, batch=8, seq=20)  # about the smallest model anyone trains


def seconds_per_step(corpus: Path, steps: int, **model) -> float:
    config = TrainConfig(corpus=str(corpus), steps=steps, log_every=1, val_every=10**9, val_seconds=0,
                         device="cpu", runs_dir=runs_dir(), **model)
    times = [e.elapsed_s for e in Trainer(config).run() if isinstance(e, StepEvent)]
    return (times[-1] - times[0]) / (len(times) - 1)  # from the first step's end: warm-up left out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_control")
    parser.add_argument("--checks", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    corpus = require_data()
    run_dir = Path(runs_dir())
    cases = ("no control file", "unchanged", "new command")
    checks = {case: [] for case in cases}
    steps, tiny_steps = [], []
    for _ in range(args.rounds):
        for case in cases:
            checks[case].append(seconds_per_check(run_dir, case, args.checks))
        steps.append(seconds_per_step(corpus, args.steps))
        tiny_steps.append(seconds_per_step(corpus, args.steps * 25, **TINY))
    step, tiny_step = median(steps), median(tiny_steps)
    c, t = TrainConfig(corpus=str(corpus)), TrainConfig(corpus=str(corpus), **TINY)

    def model(c: TrainConfig) -> str:
        return f"{c.cell.upper()} {c.layers}x{c.hidden} batch {c.batch} seq {c.seq}"

    rows = [[case, f"{median(checks[case]) * 1e6:.2f}", f"{median(checks[case]) / step:.5%}",
             f"{median(checks[case]) / tiny_step:.4%}"] for case in cases]
    print(f"\nA step, CPU: default model ({model(c)}) {step * 1e3:.1f} ms; tiny ({model(t)}) {tiny_step * 1e3:.2f} ms")
    print_table(f"Control channel check per step, medians of {args.rounds}",
                ["check", "us per check", "of a default step", "of a tiny step"], rows)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

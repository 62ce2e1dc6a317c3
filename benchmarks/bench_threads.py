"""CPU threads: where a second thread pays, and what a busy neighbour costs each choice.

    python -m benchmarks.bench_threads [--rounds 3] [--seconds 2.5] [--sizes 32,128,256,512]

Each measurement is a training run, timed from the run's step events: seconds per step between
the second and the last step event (at least 3 steps, or 1 when a step takes over 3 x
`--seconds`). Models: the series default (LSTM 1x32, batch 8, seq 20: the `series train` case),
and character LSTMs 2xH (batch 128 as the default model, seq 25 to keep slow cases short; a
step's cost grows with seq, the parallel part of it, batch x hidden^2, does not) for each H in
`--sizes`.

Choices: 1 thread, 2 threads and torch's default (one per core; on a 2-core machine the same as
2 threads, measured once). Each is measured quiet and beside a busy neighbour: a process this
benchmark starts that spins a busy loop on one core. For the models up to `--variants-up-to`
also: torch's default with OMP_WAIT_POLICY=passive (OpenMP workers sleep instead of spinning
while they wait), quiet and busy, and with torch.set_num_interop_threads(1), busy. The end
shows what the automatic choice (core.device.default_threads) picks for each model at the
load measured.

The cases of one setting (quiet; busy; passive quiet; passive busy; interop 1 busy)
run in one fresh process, since OMP_WAIT_POLICY and the interop threads must be set before torch
starts its thread pools; within it each run sets its own thread count. Every figure is the median
over `--rounds` rounds; within a round every case runs once, in the same order, so a shared
machine's drifting load falls on all alike. Ratios are against 1 thread, quiet, for the same
model, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import TINYSHAKESPEARE, BusyNeighbour, print_table, runs_dir

ROOT = Path(__file__).resolve().parents[1]
SEQ = 25  # characters per window: a quarter of the default's, so that slow cases end in minutes
SKIP_STEPS = 1  # the first step warms up kernels and the allocator


def measure(kind: str, hidden: int, threads: int | None, seconds: float) -> dict:
    """Train until `seconds` have passed (at least 3 timed steps), return the seconds per step and
    the threads the run used."""
    import torch

    from rnn_playground.core.config import TrainConfig
    from rnn_playground.core.trainer import TrainControl, Trainer
    control = TrainControl()
    folder = runs_dir()
    if kind == "series":
        from rnn_playground.core.series import make_config, new_series_trainer
        config = make_config(signal="sine", steps=100_000, val_every=100_000, log_every=1, device="cpu",
                             threads=threads, runs_dir=folder)
        trainer = new_series_trainer(config, control)
    else:
        corpus = TINYSHAKESPEARE if TINYSHAKESPEARE.exists() else "builtin:python-stdlib"
        config = TrainConfig(corpus=str(corpus), hidden=hidden, layers=2, batch=128, seq=SEQ, steps=100_000,
                             val_every=100_000, sample_chars=0, val_fraction=0.01, log_every=1, device="cpu",
                             threads=threads, ema=0.0, runs_dir=folder)
        trainer = Trainer(config, control)
    times: list[tuple[int, float]] = []
    for event in trainer.run():
        if event.kind == "step":
            times.append((event.step, time.perf_counter()))
            timed = len(times) - 1 - SKIP_STEPS
            spent = times[-1][1] - times[SKIP_STEPS][1] if timed > 0 else 0.0
            # At least 3 timed steps, or 1 when each is slower than 3 x `seconds` (a collapse is plain).
            if (spent >= seconds and timed >= 3) or (spent >= 3 * seconds and timed >= 1):
                control.stop("benchmark")
    shutil.rmtree(folder, ignore_errors=True)
    (first_step, first), (last_step, last) = times[SKIP_STEPS], times[-1]
    return {"s_per_step": (last - first) / (last_step - first_step), "threads": trainer.threads,
            "torch_threads": torch.get_num_threads()}


def run_cases(cases: list[dict], seconds: float, passive: bool = False, interop: int | None = None
              ) -> list[dict]:
    """Measure `cases` one after another in one fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "passive"
    command = [sys.executable, "-m", "benchmarks.bench_threads", "--child", json.dumps(cases),
               "--seconds", str(seconds)] + (["--interop", str(interop)] if interop else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    results = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if len(results) != len(cases):
        raise SystemExit(f"cases {cases} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return results


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_threads", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each case (medians reported)")
    parser.add_argument("--seconds", type=float, default=2.5, help="training timed per measurement")
    parser.add_argument("--sizes", default="64,256,512", help="hidden sizes of the character models")
    parser.add_argument("--variants-up-to", type=int, default=256,
                        help="OMP_WAIT_POLICY=passive and interop 1 are measured for models up to this hidden size")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--interop", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch
        if args.interop:
            torch.set_num_interop_threads(args.interop)  # before any parallel work starts the pool
        for case in json.loads(args.child):
            print("RESULT " + json.dumps(measure(case["kind"], case["hidden"], case["threads"], args.seconds)),
                  flush=True)
        return

    import torch
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    default = torch.get_num_threads()
    models = [("series 1x32 b8", "series", 32)] + [(f"char 2x{h} b128", "char", int(h))
                                                    for h in args.sizes.split(",")]
    # Where torch's default is 2 threads (two cores), "2 threads" and "default" are one case.
    choices = [("1 thread", {"threads": 1})] + ([("2 threads = default", {"threads": 2})] if default == 2 else
                                                [("2 threads", {"threads": min(2, cpus)}),
                                                 (f"default ({default})", {"threads": default})])
    # (label, neighbour busy, OMP_WAIT_POLICY=passive, interop threads, choices)
    settings = [("quiet", False, False, None, choices), ("busy", True, False, None, choices),
                ("quiet", False, True, None, [("default, passive", {"threads": default})]),
                ("busy", True, True, None, [("default, passive", {"threads": default})]),
                ("busy", True, False, 1, [("default, interop 1", {"threads": default})])]
    variants = {"default, passive", "default, interop 1"}  # measured on the smaller models only (slow cases)
    print(f"torch {torch.__version__}, {cpus} CPUs, torch's default {default} threads; "
          f"{args.rounds} rounds of {args.seconds:g} s per case; load average at start "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results: dict[tuple, list[float]] = {}
    loads: list[float] = []
    for round_ in range(args.rounds):
        for neighbour, busy, passive, interop, setting_choices in settings:
            cases, keys = [], []
            for label, kind, hidden in models:
                for choice, chosen in setting_choices:
                    if choice in variants and hidden > args.variants_up_to:
                        continue
                    cases.append({"kind": kind, "hidden": hidden, **chosen})
                    keys.append((label, choice, busy))
            with BusyNeighbour(busy):
                measured = run_cases(cases, args.seconds, passive, interop)
            for key, result in zip(keys, measured, strict=True):
                results.setdefault(key, []).append(result["s_per_step"])
                print(f"round {round_ + 1} {neighbour:5} {key[0]:16} {key[1]:20} "
                      f"{result['s_per_step'] * 1000:8.1f} ms/step ({result['threads']} threads)", flush=True)
            loads.append(os.getloadavg()[0])
            print(f"round {round_ + 1}: load average {loads[-1]:.2f}", flush=True)

    def ms(key):
        return statistics.median(results[key]) * 1000

    for label, _, _ in models:
        base = ms((label, "1 thread", False))
        rows = []
        for choice in [c for c, _ in choices] + sorted(variants, reverse=True):
            for busy in (False, True):
                key = (label, choice, busy)
                if key not in results:
                    continue
                rows.append([choice, "busy neighbour" if busy else "quiet", f"{ms(key):.1f}",
                             ", ".join(f"{v * 1000:.0f}" for v in results[key]), f"{ms(key) / base:.2f}x"])
        print_table(f"{label}: ms per training step (median of {args.rounds}); ratio vs 1 thread quiet",
                    ["threads", "neighbour", "median ms", "per round", "vs 1 quiet"], rows)

    from rnn_playground.core.device import default_threads, step_work
    load = statistics.median(loads)
    picks = []
    for label, kind, hidden in models:
        batch = 8 if kind == "series" else 128
        picks.append(f"{label}: {default_threads(step_work(batch, hidden), cpus, load)} "
                     f"(idle: {default_threads(step_work(batch, hidden), cpus, 0.0)})")
    print(f"\nthe automatic choice at the median load average {load:.2f}: " + "; ".join(picks))


if __name__ == "__main__":
    main(sys.argv[1:])

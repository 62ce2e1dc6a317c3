"""System figures' cost to training: the same run with --system-every 0 (off) and 1 (a reading a second).

    python -m benchmarks.bench_sysmetrics [--rounds 3] [--seconds 6] [--every 1]

Each measurement is a training run of `--seconds`, its speed from its own step events (chars/s between the
second step event and the last). Every round runs each case once, off and on interleaved, so a shared
machine's drifting load falls on both alike; the figures are medians over the rounds, and the ratio is
on / off in the same run. Models: a tiny one (LSTM 1x32, batch 8, seq 20: steps of a few ms, where a per-step
cost shows most) and a small one (LSTM 2x128, batch 32, seq 50). Each quiet and beside a busy neighbour
(a process spinning on one core).

Also the parts, timed directly: what the trainer pays at every step boundary (SystemSampler.take: a lock
and an attribute) and what one reading costs the sampler's thread (psutil's process CPU, memory and the
machine's CPU), as a share of a core at one reading per `--every` seconds.
"""

from __future__ import annotations

import argparse
import shutil
import time

import torch

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.events import StepEvent, SystemEvent
from rnn_playground.core.sysmetrics import SystemSampler, _Reader
from rnn_playground.core.trainer import TrainControl, Trainer

from .common import TINYSHAKESPEARE, BusyNeighbour, median, print_table, runs_dir

MODELS = {"tiny LSTM 1x32 b8 s20": dict(hidden=32, layers=1, embed=16, batch=8, seq=20),
          "small LSTM 2x128 b32 s50": dict(hidden=128, layers=2, embed=32, batch=32, seq=50)}


def chars_per_second(model: dict, every: float, seconds: float) -> tuple[float, int]:
    """(training chars/s, system readings recorded) of a run stopped after `seconds`."""
    corpus = TINYSHAKESPEARE if TINYSHAKESPEARE.exists() else "builtin:python-stdlib"
    folder = runs_dir()
    control = TrainControl()
    config = TrainConfig(corpus=str(corpus), steps=10**7, val_every=10**7, val_seconds=0, sample_chars=0,
                         val_fraction=0.01, device="cpu", threads=1, ema=0.0, amp=False, system_every=every,
                         runs_dir=folder, **model)
    steps: list[StepEvent] = []
    readings = 0
    began = time.perf_counter()
    for event in Trainer(config, control).run():
        if isinstance(event, StepEvent):
            steps.append(event)
            if time.perf_counter() - began >= seconds and not control.stopping:
                control.stop("benchmark")
        elif isinstance(event, SystemEvent):
            readings += 1
    shutil.rmtree(folder, ignore_errors=True)
    first, last = steps[1], steps[-1]
    chars = (last.step - first.step) * config.batch * config.seq
    return chars / (last.elapsed_s - first.elapsed_s), readings


def take_cost(calls: int = 200_000) -> float:
    """Seconds per SystemSampler.take() with nothing new: what every step boundary pays."""
    sampler = SystemSampler(3600, torch.device("cpu"))  # never started: take() alone
    began = time.perf_counter()
    for _ in range(calls):
        sampler.take()
    return (time.perf_counter() - began) / calls


def reading_cost(readings: int = 300) -> float:
    """Seconds of one reading on the sampler's thread (psutil: process CPU and memory, the machine's CPU)."""
    reader = _Reader(torch.device("cpu"))
    began = time.perf_counter()
    for _ in range(readings):
        reader.read()
    return (time.perf_counter() - began) / readings


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sysmetrics")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--every", type=float, default=1.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    take, read = take_cost(), reading_cost()
    cases = [(name, busy) for name in MODELS for busy in (False, True)]
    speeds: dict[tuple, list[float]] = {(case, every): [] for case in cases for every in (0.0, args.every)}
    recorded: dict[tuple, int] = {}
    for round_ in range(args.rounds):
        for name, busy in cases:
            with BusyNeighbour(busy):
                # off then on in even rounds, on then off in odd ones: neither always goes first
                order = (0.0, args.every) if round_ % 2 == 0 else (args.every, 0.0)
                for every in order:
                    rate, readings = chars_per_second(MODELS[name], every, args.seconds)
                    speeds[((name, busy), every)].append(rate)
                    recorded[((name, busy), every)] = readings
    rows = []
    for name, busy in cases:
        off, on = median(speeds[((name, busy), 0.0)]), median(speeds[((name, busy), args.every)])
        step_s = MODELS[name]["batch"] * MODELS[name]["seq"] / off
        rows.append([name, "busy" if busy else "quiet", round(off), round(on), f"{on / off:.3f}",
                     recorded[((name, busy), args.every)], f"{step_s * 1e3:.2f}", f"{take / step_s:.4%}"])
    print_table(f"Training with system figures off and every {args.every:g} s: chars/s, medians of {args.rounds} "
                f"runs of {args.seconds:g} s, interleaved",
                ["model", "neighbour", "off", "on", "on/off", "readings in a run", "ms per step",
                 "take() of a step"], rows)
    print_table("The parts, timed directly", ["part", "cost", "share"],
                [["take() at each step boundary", f"{take * 1e6:.2f} us", "per step"],
                 ["one reading (sampler's thread)", f"{read * 1e3:.3f} ms",
                  f"{read / args.every:.4%} of a core at one per {args.every:g} s"]])


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

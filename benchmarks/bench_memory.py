"""What the Memory lesson page costs: the default recall experiment, and the gradient reach of a 2x512 model.

    python -m benchmarks.bench_memory [--skip-experiment]

The experiment (core.memory_task defaults: delays 1..32, hidden 32, 200 steps x batch 32 a model, one torch
thread) is timed cell by cell, wall clock and CPU time, against the vanilla RNN's as the baseline; the page
states the total as its budget. The gradient reach (one loss, 64 characters back) on a CharRNN 2x512 of each
cell, timed the same way against the RNN's: what the page's ReachJob costs a worker.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core.memory_task import CELL_ORDER, MemorySettings, gradient_reach, run_memory_experiment
from rnn_playground.core.model import CharRNN, ModelConfig

from .common import print_table


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory")
    parser.add_argument("--skip-experiment", action="store_true", help="time only the gradient reach")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not args.skip_experiment:
        rows, times = [], {}
        for cell in CELL_ORDER:
            result, wall, cpu = timed(lambda cell=cell: run_memory_experiment(MemorySettings(cells=(cell,))))
            times[cell] = (wall, cpu)
            accuracy = " ".join(f"{a:.0%}" for a in result.accuracy_table[cell].values())
            rows.append([cell.upper(), wall, cpu, f"{cpu / times['rnn'][1]:.2f}x", accuracy])
        total_wall, total_cpu = (sum(t[i] for t in times.values()) for i in (0, 1))
        rows.append(["all three", total_wall, total_cpu, f"{total_cpu / times['rnn'][1]:.2f}x", ""])
        print_table("Memory experiment, defaults (delays 1,2,4,8,16,32; hidden 32; 200 steps x 32)",
                    ["cell", "wall s", "cpu s", "cpu vs RNN", "accuracy by delay"], rows)
    rows, base = [], None
    for cell in CELL_ORDER:
        torch.manual_seed(0)
        model = CharRNN(ModelConfig(vocab_size=80, cell=cell, hidden=512, layers=2)).eval()
        ids = torch.randint(80, (65,))
        gradient_reach(model, ids[:9])   # warm-up
        _, wall, cpu = timed(lambda model=model, ids=ids: gradient_reach(model, ids))
        base = base or cpu
        rows.append([f"{cell.upper()} 2x512", wall, cpu, f"{cpu / base:.2f}x"])
    print_table("Gradient reach, 64 characters back, one loss", ["model", "wall s", "cpu s", "cpu vs RNN"], rows)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

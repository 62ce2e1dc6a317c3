"""Series gate tracer speed: a sine through a series model (random weights), on the CPU.

    python -m benchmarks.bench_series_gates [--points 2000,100000] [--rounds 3]

The series Gates screen traces the whole series when it opens (core.series_gates.SeriesTracer: every gate,
cell and hidden value per point and layer, plus the prediction); this times that against the module's own
forward over the same values (series.teacher_forced, the baseline, measured in the same run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnn_playground.core.series import SeriesModelConfig, SeriesRNN, teacher_forced
from rnn_playground.core.series_data import Normalizer
from rnn_playground.core.series_gates import SeriesTracer

from .common import median, print_table

MODELS = (("lstm", 1, 32), ("gru", 1, 32), ("lstm", 2, 128))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_series_gates")
    parser.add_argument("--points", default="2000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for points in (int(p) for p in args.points.split(",")):
        values = np.sin(np.arange(points) * np.pi / 20).astype(np.float32)[:, None]
        for cell, layers, hidden in MODELS:
            torch.manual_seed(0)
            model = SeriesRNN(SeriesModelConfig(inputs=1, cell=cell, hidden=hidden, layers=layers)).eval()
            tracer = SeriesTracer(model, Normalizer((0.0,), (1.0,)))
            tracer.trace(values[:100])  # warm-up
            traced, forward = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                tracer.trace(values)
                traced.append(time.perf_counter() - started)
                started = time.perf_counter()
                teacher_forced(model, torch.from_numpy(values))
                forward.append(time.perf_counter() - started)
            rows.append([f"{points:,}", f"{cell.upper()} {layers}x{hidden}", f"{median(traced):.3f}",
                         f"{median(forward):.3f}", f"{median(traced) / median(forward):.1f}x",
                         f"{points / median(traced):,.0f}"])
    print_table(f"series gate tracer vs the module's forward (float32, 1 tracer thread, torch "
                f"{torch.get_num_threads()} threads, median of {args.rounds})",
                ["points", "model", "trace s", "module forward s", "trace / forward", "trace points/s"], rows)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

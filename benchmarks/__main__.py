"""Run every benchmark: python -m benchmarks [--quality] (the quality run takes 2 x 10 minutes)."""

from __future__ import annotations

import importlib
import sys

FAST = ["bench_char", "bench_gates", "bench_series", "bench_tui", "bench_sample_ui", "bench_gates_ui", "bench_threads",
        "bench_control", "bench_dropout", "bench_distributed", "bench_eval", "bench_baselines", "bench_beam",
        "bench_sysmetrics", "bench_compare", "bench_ablation", "bench_lesson_ui", "bench_lesson_shapes",
        "bench_encoding", "bench_memory", "bench_series_gates"]


def main(argv: list[str]) -> None:
    for name in FAST:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            continue
        print(f"\n=== {name} ===", flush=True)
        module.main([])
    if "--quality" in argv:
        print("\n=== quality (2 x 10 minutes) ===", flush=True)
        importlib.import_module("benchmarks.quality").main([])


if __name__ == "__main__":
    main(sys.argv[1:])

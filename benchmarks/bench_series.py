"""Time-series quality: the issue's bar on the built-in signals, with the default settings.

    python -m benchmarks.bench_series [--seeds 1234,1,2] [--device auto]

- sine: one-step validation MSE below 1% of the last-value baseline's, and a 100-step free-running
  forecast past the end of the data within 0.1 of the true curve everywhere;
- sines (1, 1.7 and 3.1 times the base frequency; seasonal period 40 = the base period): one-step
  validation MSE below both the last-value and the seasonal-naive baselines.
The course preset (75 steps, batch 1) is shown for comparison; it has no bar to meet.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnn_playground.core.series import FREE_RUN, LAST_VALUE, MODEL, SEASONAL, make_config, new_series_trainer, predict
from rnn_playground.core.series_data import generate_signal

from .common import print_table, runs_dir

FORECAST = 100


def train(seed: int, device: str, **settings):
    config = make_config(seed=seed, device=device, runs_dir=runs_dir(), **settings)
    trainer = new_series_trainer(config)
    started = time.perf_counter()
    events = list(trainer.run())
    if events[-1].kind != "finished":
        raise SystemExit(f"run failed: {events[-1]}")
    seconds = time.perf_counter() - started
    task = trainer.task
    result = predict(task.model, task.data, task.normalizer, config.val_fraction, steps=FORECAST,
                     period=task.period)
    return config, task, result, seconds


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_series", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1234,1,2", help="weight seeds, comma-separated")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # models this small gain nothing from more threads, and lose much on a busy machine
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, failures = [], []
    cases = [("sine", {"signal": "sine"}), ("sines", {"signal": "sines", "period": 40}),
             ("sine, course preset", {"signal": "sine", "preset": "course"})]
    for label, settings in cases:
        for seed in seeds:
            config, task, result, seconds = train(seed, args.device, **settings)
            model, last, free = result.metric(MODEL), result.metric(LAST_VALUE), result.metric(FREE_RUN)
            seasonal = result.metric(SEASONAL) if result.seasonal is not None else None
            forecast_error = float("nan")
            verdict = "-"
            if config.signal == "sine":
                truth = generate_signal("sine", task.data.points + FORECAST)[task.data.points:]
                forecast_error = float(np.abs(result.forecast - truth).max())
            if label == "sine":
                ok = model.mse < 0.01 * last.mse and forecast_error < 0.1
                verdict = "pass" if ok else "FAIL"
            elif label == "sines":
                ok = model.mse < last.mse and model.mse < seasonal.mse
                verdict = "pass" if ok else "FAIL"
            if verdict == "FAIL":
                failures.append(f"{label} seed {seed}")
            rows.append([label, seed, f"{config.cell.upper()} {config.layers}x{config.hidden}",
                         config.train_config().steps, f"{model.mse:.3g}", f"{last.mse:.3g}",
                         f"{model.mse / last.mse:.3%}", f"{seasonal.mse:.3g}" if seasonal else "-",
                         f"{free.mse:.3g}", f"{forecast_error:.4f}" if forecast_error == forecast_error else "-",
                         f"{seconds:.1f}", verdict])
    print_table("time series: validation MSE in signal units (last 20% of 2000 points); forecast = max |error| "
                f"of a {FORECAST}-step free run past the end",
                ["signal", "seed", "model", "steps", "model MSE", "last-value MSE", "model/last", "seasonal MSE",
                 "free-run MSE", "forecast max err", "train s", "bar"], rows)
    if failures:
        print(f"\nFAILED the quality bar: {', '.join(failures)}")
    else:
        print("\nall runs meet the quality bar")


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

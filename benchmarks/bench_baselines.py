"""The evaluation baselines on tinyshakespeare: seconds to fit and to score, and bits per character per order.

    python -m benchmarks.bench_baselines [--rounds 3] [--max-order 10]

Fits `fit_ngram` (interpolated Witten-Bell, core/baselines.py) on the first 90% of tinyshakespeare,
the order chosen on the last 10% (the 111,539 validation characters `train` holds out), then scores
those characters with the chosen model. The reference row counts the same k-grams (k = 1..max order)
the plain-Python way, a `Counter` over string slices, and nothing else: no context totals, no
scoring, so its ratio flatters it. Medians over rounds, the two alternating.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from rnn_playground.core.baselines import DEFAULT_MAX_ORDER, fit_ngram, unigram, unigram_entropy
from rnn_playground.core.corpus import DEFAULT_VAL_FRACTION

from .common import median, print_table, require_data


def count_by_slices(text: str, max_order: int) -> list[Counter]:
    return [Counter(text[i:i + k] for i in range(len(text) - k + 1)) for k in range(1, max_order + 1)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--max-order", type=int, default=DEFAULT_MAX_ORDER, help="highest n-gram order tried")
    args = parser.parse_args(argv)
    text = require_data().read_text(encoding="utf-8")
    n_val = int(len(text) * DEFAULT_VAL_FRACTION)
    train, val = text[:-n_val], text[-n_val:]

    fit_times, score_times, slice_times = [], [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        model = fit_ngram(train, val, args.max_order)
        fit_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        bits = model.bits_per_char(val)
        score_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        count_by_slices(train, args.max_order)
        slice_times.append(time.perf_counter() - started)

    fit, score, slices = median(fit_times), median(score_times), median(slice_times)
    print(f"train {len(train):,} characters, validation {len(val):,}; chosen: {model.name}, {bits:.4f} bits/char")
    print_table("seconds (median of rounds)", ["task", "seconds", "ratio to slice counting"], [
        [f"Counter over slices, orders 1..{args.max_order} (counts only)", f"{slices:.2f}", "1.00x"],
        [f"fit_ngram: counts, orders 1..{args.max_order} scored on validation, choice", f"{fit:.2f}",
         f"{slices / fit:.2f}x"],
        [f"score {len(val):,} characters with the {model.order}-gram", f"{score:.3f}", ""],
    ])
    rows = [["unigram entropy of the training text (no smoothing)", f"{unigram_entropy(train):.4f}"],
            ["unigram (Witten-Bell), validation", f"{unigram(train).bits_per_char(val):.4f}"]]
    rows += [[f"{order}-gram Witten-Bell, validation" + ("  <- chosen" if order == model.order else ""),
              f"{value:.4f}"] for order, value in model.val_bits_per_char.items()]
    print_table("bits per character", ["model", "bits/char"], rows)


if __name__ == "__main__":
    main()

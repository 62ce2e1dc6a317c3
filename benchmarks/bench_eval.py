"""`eval` speed: a 2x512 LSTM (untrained: speed does not depend on the weights) over tinyshakespeare's
111,539 validation characters, read as one stream (--exact) and as chunks side by side (the default).

    python -m benchmarks.bench_eval [--hidden 512] [--layers 2] [--rounds 1] [--device cpu]

Both are timed in the same run (ratio against the exact stream); the scoring includes the bootstrap
interval, as the command computes it. The last column is the batched mean's distance from the exact one.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from rnn_playground.core.corpus import Vocab, split_parts
from rnn_playground.core.evaluate import evaluate_text
from rnn_playground.core.model import CharRNN, ModelConfig

from .common import TINYSHAKESPEARE, median, print_table, require_data


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_eval")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the automatic choice)")
    args = parser.parse_args(argv)

    text = require_data(TINYSHAKESPEARE).read_text(encoding="utf-8")
    val = split_parts(text, 0.1).val
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(len(vocab), hidden=args.hidden, layers=args.layers, embed=64, dropout=0.0))
    model = model.to(args.device).eval()
    results: dict[bool, list] = {True: [], False: []}
    for _ in range(args.rounds):
        for exact in (True, False):
            started = time.perf_counter()
            result = evaluate_text(model, vocab, val, run="bench", name="LSTM", exact=exact,
                                   threads=args.threads)
            results[exact].append((time.perf_counter() - started, result))
    exact_s = median([s for s, _ in results[True]])
    exact_bits = results[True][0][1].bits_per_char
    rows = []
    for exact, label in ((True, "exact: one stream"), (False, "batched chunks (default)")):
        seconds = median([s for s, _ in results[exact]])
        bits = results[exact][0][1].bits_per_char
        rows.append([label, f"{len(val):,}", f"{seconds:.2f}", f"{len(val) / seconds:,.0f}",
                     f"{exact_s / seconds:.2f}x", f"{bits - exact_bits:+.2e}"])
    threads = args.threads or "automatic"
    print_table(f"eval, {args.layers}x{args.hidden} LSTM on {args.device}, threads {threads}, "
                f"median of {args.rounds}", ["reading", "chars", "seconds", "chars/s", "vs exact", "bits/char - exact"],
                rows)


if __name__ == "__main__":
    main(sys.argv[1:])

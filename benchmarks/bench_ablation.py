"""Units ranked by effect: silence each of the 1,024 units of a 2x512 LSTM over 2,000 characters.

    python -m benchmarks.bench_ablation [--chars 2000] [--hidden 512] [--layers 2] [--chunks 512]
        [--threads 1,0] [--precisions fast,exact] [--checkpoint RUN]

core.ablation.rank_units runs copies of the model along the batch dimension, one unit silenced per
copy. The table gives its time beside one unablated pass over the same text in the same run (the
model's own nn.LSTM forward, and the gate tracer), with the ratio: how many unablated passes the
whole ranking costs (a one-unit-at-a-time ranking would cost about layers x hidden of them, and more
for the lower layers, whose silencing reruns the layers above). Target: under a minute for 2x512 over
2,000 characters. CPU seconds (all threads) beside the wall time tell a busy machine from a slow method.

With both precisions timed, a second table says how far the fast ranking (bf16 products) lands from the
exact one: the largest difference of a unit's change against the spread of the changes, the rank
correlation, and how many of the top units the two share. An untrained model's units barely matter, so
give `--checkpoint` a trained run (its text: the last characters of `--file`, tinyshakespeare by default).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rnn_playground.core.ablation import UnitRanking, rank_units
from rnn_playground.core.corpus import Vocab
from rnn_playground.core.device import torch_threads
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import text_feature
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import CharRNN, ModelConfig

from .bench_gates import TINYSHAKESPEARE, bench_text
from .common import print_table


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ablation")
    parser.add_argument("--chars", type=int, default=2_000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--chunks", default="512", help="copies per pass to time, comma-separated")
    parser.add_argument("--threads", default="1,0", help="torch threads to time, comma-separated (0 = torch's "
                                                        "default)")
    parser.add_argument("--precisions", default="fast,exact", help="rank_units precisions to time, comma-separated")
    parser.add_argument("--checkpoint", help="rank a trained run's units instead of an untrained model's")
    parser.add_argument("--file", default=str(TINYSHAKESPEARE), help="with --checkpoint: the text, its last --chars")
    args = parser.parse_args(argv)

    if args.checkpoint:
        model, vocab, _ = load_model(args.checkpoint, device="cpu")
        text = "".join(ch for ch in Path(args.file).read_text(encoding="utf-8") if ch in vocab.index)[-args.chars:]
        described = f"{args.checkpoint} ({model.config.layers}x{model.config.hidden} {model.config.cell.upper()})"
    else:
        text = bench_text(args.chars)
        vocab = Vocab.from_text(text)
        torch.manual_seed(0)
        model = CharRNN(ModelConfig(len(vocab), cell=args.cell, hidden=args.hidden, layers=args.layers,
                                    embed=64, dropout=0.0)).eval()
        described = f"untrained {args.layers}x{args.hidden} {args.cell.upper()}"
    tracer = GateTracer(model, vocab)
    ids = vocab.encode(text).unsqueeze(0)
    threads = torch.get_num_threads()
    with torch.inference_mode(), torch_threads(1):  # the baseline on one thread, like the ranking's default
        model(ids[:, :100])  # warm-up
        module_s, module_cpu = _timed(lambda: model(ids))
    trace_s, trace_cpu = _timed(lambda: tracer.trace(text))
    feature = text_feature(text, "vowel")
    rows = [["one unablated pass: nn.LSTM forward, 1 thread", "-", "-", f"{module_s:.3f}", f"{module_cpu:.3f}",
             "1.0", "-"],
            ["one unablated pass: gate tracer, 1 thread", "-", "-", f"{trace_s:.3f}", f"{trace_cpu:.3f}",
             f"{trace_s / module_s:.1f}", "-"]]
    units = model.config.layers * model.config.hidden
    rankings: dict[str, UnitRanking] = {}
    for precision in args.precisions.split(","):
        for chunk in (int(c) for c in args.chunks.split(",")):
            for loop_threads in (int(t) for t in args.threads.split(",")):
                started, cpu = time.perf_counter(), time.process_time()
                ranking = rank_units(tracer, text, feature=feature, chunk=chunk, threads=loop_threads or None,
                                     precision=precision)
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                rankings[precision] = ranking
                rows.append([f"rank {units:,} units (+ vowel loss), {loop_threads or threads} threads",
                             ranking.precision, f"{chunk}", f"{elapsed:.1f}", f"{cpu:.1f}",
                             f"{elapsed / module_s:,.0f}", "yes" if elapsed < 60 else "NO"])
                best = ranking.ranked(top=1)[0]
                print(f"{precision}, chunk {chunk}, threads {loop_threads or threads}: top unit L{best.layer + 1}:"
                      f"U{best.unit}, loss change {best.change:+.4f} nats/char", flush=True)
    print_table(f"Ranking units by effect: {described}, {len(text):,} characters "
                f"(ratio: wall time against the nn.LSTM pass; torch default {threads} threads)",
                ["what", "precision", "copies", "seconds", "CPU seconds", "ratio", "under 60 s"], rows)
    if {"fast", "exact"} <= rankings.keys():
        print_table("The fast ranking (bf16 products) against the exact one (float32)", ["over", "measure", "value"],
                    agreement(rankings["fast"], rankings["exact"]))


def agreement(fast: UnitRanking, exact: UnitRanking) -> list[list[str]]:
    """How far the fast ranking's changes land from the exact one's, over the text and over the feature."""
    rows = []
    for over, a, b in (("text", fast.change, exact.change), ("vowels", fast.feature_change, exact.feature_change)):
        a, b = a.ravel(), b.ravel()
        difference = np.abs(a - b)
        rows += [[over, "largest |difference| of a change, nats/char", f"{difference.max():.2e}"],
                 [over, "... against the spread (std) of the exact changes", f"{difference.max() / b.std():.3f}"],
                 [over, "rank correlation (Spearman)", f"{np.corrcoef(_ranks(a), _ranks(b))[0, 1]:.4f}"]]
        for top in (10, 50):
            shared = len(set(np.argsort(-a)[:top]) & set(np.argsort(-b)[:top]))
            rows.append([over, f"top {top} units shared", f"{shared}/{top}"])
    return rows


def _ranks(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of fn(): on a shared machine the two differ, and the CPU time is the method's."""
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

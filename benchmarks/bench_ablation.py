"""Units ranked by effect: silence each of the 1,024 units of a 2x512 LSTM over 2,000 characters.

    python -m benchmarks.bench_ablation [--chars 2000] [--hidden 512] [--layers 2] [--chunks 128]

core.ablation.rank_units runs copies of the model along the batch dimension, one unit silenced per
copy. The table gives its time beside one unablated pass over the same text in the same run (the
model's own nn.LSTM forward, and the gate tracer), with the ratio: how many unablated passes the
whole ranking costs (a one-unit-at-a-time ranking would cost about layers x hidden of them, and more
for the lower layers, whose silencing reruns the layers above). Target: under a minute for 2x512 over
2,000 characters. CPU seconds (all threads) beside the wall time tell a busy machine from a slow method.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core.ablation import rank_units
from rnn_playground.core.corpus import Vocab
from rnn_playground.core.device import torch_threads
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import text_feature
from rnn_playground.core.model import CharRNN, ModelConfig

from .bench_gates import bench_text
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
    args = parser.parse_args(argv)

    text = bench_text(args.chars)
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(len(vocab), cell=args.cell, hidden=args.hidden, layers=args.layers,
                                embed=64, dropout=0.0)).eval()
    tracer = GateTracer(model, vocab)
    ids = vocab.encode(text).unsqueeze(0)
    threads = torch.get_num_threads()
    with torch.inference_mode(), torch_threads(1):  # the baseline on one thread, like the ranking's default
        model(ids[:, :100])  # warm-up
        module_s, module_cpu = _timed(lambda: model(ids))
    trace_s, trace_cpu = _timed(lambda: tracer.trace(text))
    feature = text_feature(text, "vowel")
    rows = [["one unablated pass: nn.LSTM forward, 1 thread", "-", f"{module_s:.3f}", f"{module_cpu:.3f}", "1.0",
             "-"],
            ["one unablated pass: gate tracer, 1 thread", "-", f"{trace_s:.3f}", f"{trace_cpu:.3f}",
             f"{trace_s / module_s:.1f}", "-"]]
    units = args.layers * args.hidden
    for chunk in (int(c) for c in args.chunks.split(",")):
        for loop_threads in (int(t) for t in args.threads.split(",")):
            started, cpu = time.perf_counter(), time.process_time()
            ranking = rank_units(tracer, text, feature=feature, chunk=chunk, threads=loop_threads or None)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            rows.append([f"rank {units:,} units (+ vowel loss), {loop_threads or threads} threads", f"{chunk}",
                         f"{elapsed:.1f}", f"{cpu:.1f}", f"{elapsed / module_s:,.0f}", "yes" if elapsed < 60 else "NO"])
            best = ranking.ranked(top=1)[0]
            print(f"chunk {chunk}, threads {loop_threads or threads}: top unit L{best.layer + 1}:U{best.unit}, "
                  f"loss change {best.change:+.4f} nats/char", flush=True)
    print_table(f"Ranking units by effect: {args.layers}x{args.hidden} {args.cell.upper()}, {args.chars:,} characters "
                f"(ratio: wall time against the nn.LSTM pass; torch default {threads} threads)",
                ["what", "copies", "seconds", "CPU seconds", "ratio", "under 60 s"], rows)


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of fn(): on a shared machine the two differ, and the CPU time is the method's."""
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

"""Gate tracer speed: a 10,000-character text through a 2x512 LSTM (random weights), on the CPU.

    python -m benchmarks.bench_gates [--chars 10000] [--hidden 512] [--layers 2] [--rounds 2]

Compares the tracer (every gate, cell and hidden value stored per step, plus next-character
probabilities) with the model's own nn.LSTM forward over the same text, and times stepping
one character at a time, saturation and a unit search. Three thread settings: torch's
default for everything else with the tracer on its default single thread; everything on one
thread; and the tracer left on torch's default too (loop_threads=None).
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.model import CharRNN, ModelConfig

from .common import TINYSHAKESPEARE, median, print_table


def bench_text(chars: int) -> str:
    if TINYSHAKESPEARE.exists():
        text = TINYSHAKESPEARE.read_text(encoding="utf-8")
    else:  # any text will do for timing
        text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200
    return (text * (chars // len(text) + 1))[:chars]


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gates")
    parser.add_argument("--chars", type=int, default=10_000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    text = bench_text(args.chars)
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(len(vocab), cell=args.cell, hidden=args.hidden, layers=args.layers,
                                embed=64, dropout=0.0)).eval()
    ids = vocab.encode(text).unsqueeze(0)
    default_threads = torch.get_num_threads()
    rows = []
    settings = [(default_threads, 1, f"torch {default_threads}, tracer 1 (default)"), (1, 1, "torch 1, tracer 1"),
                (default_threads, None, f"torch {default_threads}, tracer {default_threads}")]
    for threads, loop_threads, shown in settings:
        torch.set_num_threads(threads)
        tracer = GateTracer(model, vocab, loop_threads=loop_threads)
        tracer.trace(text[:200])  # warm-up
        trace_times, module_times = [], []
        trace = None
        for _ in range(args.rounds):
            started = time.perf_counter()
            trace = tracer.trace(text)
            trace_times.append(time.perf_counter() - started)
            with torch.inference_mode():
                module_times.append(timed(lambda: model(ids)))
        steps = 200
        stepper = tracer.trace(text[:100])
        # The lambdas run at once (timed calls them here), so binding the loop's current values is what is meant.
        step_time = timed(lambda: [stepper.extend(ch) for ch in text[100:100 + steps]]) / steps  # noqa: B023
        saturation_time = timed(lambda: trace.saturation())  # noqa: B023
        search_time = timed(lambda: trace.find_units("inside-quotes" if '"' in text else "vowel"))  # noqa: B023
        rows.append([shown, f"{median(trace_times):.2f}", f"{median(module_times):.2f}",
                     f"{args.chars / median(trace_times):,.0f}", f"{step_time * 1e3:.2f}",
                     f"{saturation_time:.2f}", f"{search_time:.2f}"])
    torch.set_num_threads(default_threads)
    stored = sum(t.numel() * t.element_size() for t in (trace._buffers.gates, trace._buffers.hiddens,
                                                        trace._buffers.log_probs, trace._buffers.cells)
                 if t is not None)
    title = (f"gate tracer: {args.chars:,} characters through {args.cell.upper()} {args.layers}x{args.hidden} "
             f"(float32, median of {args.rounds}; stored arrays {stored / 2**20:,.0f} MB)")
    print_table(title, ["threads (nn module, tracer)", "trace s", "nn module forward s", "trace chars/s",
                        "extend ms/char", "saturation s", "unit search s"], rows)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

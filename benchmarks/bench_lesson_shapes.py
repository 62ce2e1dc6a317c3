"""The Shapes lesson page on a 2x512 LSTM: what a key that changes B or T costs, and the pass behind it.

    python -m benchmarks.bench_lesson_shapes [--rounds 5]

The page reads its table from a forward pass of the model at the new batch B and length T. Rows:
the baseline, a real forward pass of the model on the CPU at B x T (what reading the shapes the plain
way costs); the pass `forward_shapes` runs (on torch's meta device at this size: every shape, no
number); and the key as the app pays it (`handle` + `view` with the pass in the page's thread). Medians
over rounds; each round uses a new B so that no table is cached.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.core.shapes import forward_shapes
from rnn_playground.tui.viewmodel.lesson.page import Source
from rnn_playground.tui.viewmodel.lesson.shapes import ShapesPage

from .common import median, print_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (each at a new batch)")
    parser.add_argument("--seq", type=int, default=100, help="the sequence length T")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = CharRNN(ModelConfig(vocab_size=83, cell="lstm", hidden=512, layers=2)).eval()
    batches = [128 + round_ for round_ in range(args.rounds)]

    real, shapes_pass, key = [], [], []
    for batch in batches:
        ids = torch.zeros((batch, args.seq), dtype=torch.long)
        started = time.perf_counter()
        with torch.no_grad():
            model(ids)
        real.append(time.perf_counter() - started)

        started = time.perf_counter()
        forward_shapes(model, batch, args.seq)
        shapes_pass.append(time.perf_counter() - started)

        page = ShapesPage(background=True)
        page.source = Source(model, None, argparse.Namespace(batch=batch, seq=args.seq), "")
        page.batch, page.seq = batch, args.seq  # as set_source leaves them, without reading the pass
        started = time.perf_counter()
        page.handle("batch_up")
        page.view(80, 24)
        key.append(time.perf_counter() - started)
        page.wait()

    base = median(real)
    print_table(f"Shapes page, LSTM 2x512, T={args.seq}, B={batches[0]}..{batches[-1]}: medians of {args.rounds}",
                ["what", "median ms", "max ms", "vs real pass"],
                [["real forward pass on the CPU (baseline)", base * 1e3, max(real) * 1e3, f"{1.0:.3f}"],
                 ["forward_shapes (meta device)", median(shapes_pass) * 1e3, max(shapes_pass) * 1e3,
                  f"{median(shapes_pass) / base:.3f}"],
                 ["key: handle + view (pass in the page's thread)", median(key) * 1e3, max(key) * 1e3,
                  f"{median(key) / base:.4f}"]])


if __name__ == "__main__":
    main()

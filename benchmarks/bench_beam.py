"""Beam search speed: characters per second of beam W = 1, 4, 16 against the single-stream sampler,
alternating in one run, at the default model size (LSTM 2x512, tinyshakespeare's vocabulary).

    python -m benchmarks.bench_beam [--rounds 3] [--length 300] [--hidden 512] [--widths 1,4,16]

A beam's rate is the characters of its result per second: each step runs one forward of the model's
nn module over all W beams, so W beams cost far less than W streams.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core.beam import beam_search
from rnn_playground.core.corpus import Vocab, load_corpus
from rnn_playground.core.device import torch_threads
from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.core.sampling import Sampler, SampleSettings

from .common import median, print_table, require_data


def bench(hidden: int, widths: list[int], rounds: int, length: int, threads: int) -> list[list]:
    vocab = Vocab.from_text(load_corpus(str(require_data())).text)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=hidden, layers=2)).eval()
    samplers = {sampler.weights: sampler for sampler in (Sampler(model, vocab, "fp32"), Sampler(model, vocab))}
    settings = SampleSettings(prime="The", temperature=1.0, top_k=5, length=length, seed=1)
    runs = {f"sampler, {weights} weights": (lambda s=sampler: s.generate(settings))
            for weights, sampler in samplers.items()}
    for width in widths:
        runs[f"beam {width}"] = lambda w=width: beam_search(model, vocab, "The", w, length)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    with torch_threads(threads):
        for run in runs.values():  # warm-up: allocator, oneDNN kernels
            run()
        for _ in range(rounds):
            for name, run in runs.items():
                started = time.perf_counter()
                run()
                rates[name].append(length / (time.perf_counter() - started))
    baseline = median(rates["sampler, fp32 weights"])
    return [[name, round(median(values)), f"{median(values) / baseline:.2f}x"] for name, values in rates.items()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement")
    parser.add_argument("--length", type=int, default=300, help="characters per run")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size (2 layers)")
    parser.add_argument("--widths", default="1,4,16", help="beam widths")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the sampler's automatic choice is 1)")
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    print(f"torch {torch.__version__}, {args.threads} thread(s); LSTM 2x{args.hidden}, {args.length} characters "
          f"per run; medians of {args.rounds} alternating rounds")
    rows = bench(args.hidden, widths, args.rounds, args.length, args.threads)
    print_table("characters per second (ratio: against the sampler with fp32 weights)",
                ["decoder", "chars/s", "ratio"], rows)


if __name__ == "__main__":
    main()

"""Char-RNN speed: our trainer and sampler against the course notebook's, alternating in one run.

    python -m benchmarks.bench_char [--rounds 3] [--steps 5] [--sizes 256,512] [--decoding-only]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

import numpy as np
import torch

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.corpus import Vocab, load_corpus
from rnn_playground.core.device import torch_threads
from rnn_playground.core.events import StepEvent, ValidationEvent
from rnn_playground.core.sampling import Sampler, SampleSettings
from rnn_playground.core.trainer import Trainer

from .common import median, print_table, require_data, runs_dir
from .notebook import NotebookCharRNN, notebook_train, sample

BATCH, SEQ = 128, 100


def our_trainer(hidden: int, **overrides) -> Trainer:
    settings = dict(corpus=str(require_data()), hidden=hidden, layers=2, dropout=0.5, batch=BATCH, seq=SEQ,
                    steps=10**9, val_every=10**9, val_seconds=0, sample_chars=0, log_every=1, runs_dir=runs_dir(),
                    device="cpu")  # no validation: steps alone are timed
    settings.update(overrides)
    return Trainer(TrainConfig(**settings))


def timed_steps(events, count: int) -> float:
    """Pull `count` step events from a running trainer; seconds they took."""
    started = time.perf_counter()
    seen = 0
    for event in events:
        if isinstance(event, StepEvent):
            seen += 1
            if seen == count:
                break
    return time.perf_counter() - started


def bench_training(hidden: int, rounds: int, steps: int) -> tuple[float, float]:
    text = load_corpus(str(require_data())).text
    vocab = Vocab.from_text(text)
    data = vocab.encode(text).numpy().astype(np.int64)
    torch.manual_seed(0)
    net = NotebookCharRNN(vocab.chars, n_hidden=hidden, n_layers=2, drop_prob=0.5)
    ours = our_trainer(hidden)
    events = ours.run()
    timed_steps(events, 2)  # warm-up: allocator, oneDNN kernels
    notebook_train(net, data, 2)
    ours_rates, notebook_rates = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        notebook_train(net, data, steps)
        notebook_rates.append(steps * BATCH * SEQ / (time.perf_counter() - started))
        ours_rates.append(steps * BATCH * SEQ / timed_steps(events, steps))
    events.close()
    return median(ours_rates), median(notebook_rates)


def bench_sampling(hidden: int, rounds: int, length: int) -> tuple[dict[str, float], float]:
    """Chars/s of our sampler with each kind of weights (fp32, and what auto picks here) and of
    the notebook's sample(), alternating."""
    text = load_corpus(str(require_data())).text
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    net = NotebookCharRNN(vocab.chars, n_hidden=hidden, n_layers=2, drop_prob=0.5)
    from rnn_playground.core.model import CharRNN, ModelConfig
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=hidden, layers=2))
    samplers = {sampler.weights: sampler for sampler in (Sampler(model, vocab, "fp32"), Sampler(model, vocab))}
    settings = SampleSettings(prime="The", temperature=1.0, top_k=5, length=length, seed=1)
    sample(net, 50, top_k=5)
    for sampler in samplers.values():
        sampler.generate(SampleSettings(prime="The", top_k=5, length=50, seed=1))
    ours_rates: dict[str, list[float]] = {weights: [] for weights in samplers}
    notebook_rates = []
    with torch.no_grad():
        for _ in range(rounds):
            started = time.perf_counter()
            sample(net, length, prime="The", top_k=5)
            notebook_rates.append(length / (time.perf_counter() - started))
            for weights, sampler in samplers.items():
                started = time.perf_counter()
                for _ in sampler.stream(settings):
                    pass
                ours_rates[weights].append(length / (time.perf_counter() - started))
    return {weights: median(rates) for weights, rates in ours_rates.items()}, median(notebook_rates)


def legacy_stream(sampler: Sampler, settings: SampleSettings):
    """The single-stream loop as it was before decoding grew top-p, stops, several streams and
    log-probabilities (git main, 2026-11-30): step, top-k softmax, draw on the host. The baseline
    the new path must not fall behind."""
    rng = random.Random(settings.seed)
    with torch.inference_mode(), torch_threads(sampler.threads):
        state, token = sampler.prime_state(settings.prime)
        for _ in range(settings.length):
            logits = sampler.step(token, state)[0] / settings.temperature
            values, indices = logits.topk(settings.top_k)
            probs, choices = values.softmax(-1).tolist(), indices.tolist()
            point, total = rng.random() * sum(probs), 0.0
            for index, prob in enumerate(probs):  # noqa: B007
                total += prob
                if point < total:
                    break
            token = choices[index]
            yield sampler.vocab.chars[token]


def bench_decoding(hidden: int, rounds: int, length: int, samples: int, weights: str = "auto") -> dict[str, float]:
    """Microseconds per step, alternating: the old single-stream loop (legacy_stream), today's
    `Sampler.stream`, and one batched pass of 1 and of `samples` streams (`sample_many`, which
    also keeps every stream's text and log-probabilities). `weights` as for `--weights`.
    Timed in this process's CPU time: the sampler runs on one thread, and on a shared machine the
    wall clock also counts the time other programs held the core."""
    vocab = Vocab.from_text(load_corpus(str(require_data())).text)
    from rnn_playground.core.model import CharRNN, ModelConfig
    torch.manual_seed(0)
    sampler = Sampler(CharRNN(ModelConfig(vocab_size=len(vocab), hidden=hidden, layers=2)), vocab, weights)
    settings = SampleSettings(prime="The", temperature=1.0, top_k=5, length=length, seed=1)
    runs = {"before": lambda: sum(1 for _ in legacy_stream(sampler, settings)),
            "stream": lambda: sum(1 for _ in sampler.stream(settings)),
            "batch 1": lambda: sampler.sample_many(settings),
            f"batch {samples}": lambda: sampler.sample_many(replace(settings, samples=samples))}
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.process_time()
            run()
            times[name].append((time.process_time() - started) / length * 1e6)
    return {name: median(values) for name, values in times.items()} | {"weights": sampler.weights}


def bench_precision(hidden: int, steps: int) -> tuple[float, float]:
    """Validation loss after equal steps, bf16 autocast against fp32 (same seed, same data)."""
    losses = []
    for amp in (True, False):
        trainer = our_trainer(hidden, steps=steps, val_every=steps, amp=amp, log_every=0)
        losses.append([e.val_loss for e in trainer.run() if isinstance(e, ValidationEvent)][-1])
    return losses[0], losses[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement")
    parser.add_argument("--steps", type=int, default=5, help="training steps per round")
    parser.add_argument("--sample-length", type=int, default=2000, help="characters per sampling round")
    parser.add_argument("--sizes", default="256,512", help="hidden sizes (2 layers each)")
    parser.add_argument("--precision-steps", type=int, default=300,
                        help="steps for the bf16-vs-fp32 validation check (0 = skip)")
    parser.add_argument("--samples", type=int, default=8, help="streams in the batched decoding row")
    parser.add_argument("--decoding-only", action="store_true",
                        help="only the decoding rows: single stream before and after, batch of N against 1")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, seq {SEQ}, "
          f"tinyshakespeare; medians of {args.rounds} alternating rounds")
    decoding = []
    for hidden, weights in [(hidden, weights) for hidden in sizes for weights in ("auto", "fp32")]:
        us = bench_decoding(hidden, args.rounds, args.sample_length, args.samples, weights)
        many = f"batch {args.samples}"
        decoding.append([f"LSTM 2x{hidden} ({us['weights']})", f"{us['before']:.0f}", f"{us['stream']:.0f}",
                         f"{us['before'] / us['stream']:.2f}x", f"{us['batch 1']:.0f}", f"{us[many]:.0f}",
                         f"{us[many] / us['batch 1']:.2f}x", f"{us[many] / args.samples:.0f}"])
    print_table(f"decoding, CPU microseconds per step (top-k 5, {args.sample_length} characters)",
                ["model", "before", "stream", "speed kept", "N=1", f"N={args.samples}", f"N={args.samples} / N=1",
                 "per char per stream"], decoding)
    if args.decoding_only:
        return
    rows = []
    for hidden in sizes:
        ours, notebook = bench_training(hidden, args.rounds, args.steps)
        rows.append([f"train LSTM 2x{hidden}", round(notebook), round(ours), f"{ours / notebook:.2f}x"])
    for hidden in sizes:
        ours, notebook = bench_sampling(hidden, args.rounds, args.sample_length)
        for weights, rate in ours.items():
            rows.append([f"sample LSTM 2x{hidden} (top-k 5, {weights} weights)", round(notebook), round(rate),
                         f"{rate / notebook:.2f}x"])
    print_table("characters per second", ["task", "notebook", "ours", "ratio"], rows)
    if args.precision_steps:
        bf16, fp32 = bench_precision(sizes[0], args.precision_steps)
        print_table(f"validation loss after {args.precision_steps} steps, LSTM 2x{sizes[0]}",
                    ["fp32", "bf16 autocast", "difference"],
                    [[f"{fp32:.4f}", f"{bf16:.4f}", f"{(bf16 - fp32) / fp32:+.2%}"]])


if __name__ == "__main__":
    main()

"""Quality at a time budget: validation loss after N minutes on tinyshakespeare, our defaults
against the course notebook's loop at its own configuration (2x512, batch 128, seq 100, Adam 0.001).

    python -m benchmarks.quality [--minutes 10]

Validation loss is the mean cross-entropy over the whole validation split (the last 10%),
read as one stream with dropout off, of the weights each side holds when its time is up.
Our trained model then also shows how the sampler's int8 weights predict the first 10,000
validation characters against its fp32 weights (`--agreement-only CHECKPOINT` does just that).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnn_playground.core.chartask import evaluate_char_model
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.corpus import Vocab, load_corpus, split_ids
from rnn_playground.core.events import StepEvent
from rnn_playground.core.loading import load_model
from rnn_playground.core.sampling import Sampler
from rnn_playground.core.trainer import Trainer

from .common import print_table, require_data, runs_dir
from .notebook import NotebookCharRNN, notebook_train, notebook_val_loss

AGREEMENT_CHARS = 10_000


def sampler_weights_agreement(model, vocab: Vocab, text: str) -> list[list]:
    """The sampler's int8 weights against fp32 on a trained model: the mean negative
    log-likelihood of `text` each gives (teacher forced) and how far their distributions differ."""
    probs = {weights: Sampler(model, vocab, weights).teacher_forced(text) for weights in ("fp32", "int8")}
    targets = vocab.encode(text)[1:, None]
    nll = {weights: float(-p.gather(1, targets).log().mean()) for weights, p in probs.items()}
    variation = 0.5 * (probs["fp32"] - probs["int8"]).abs().sum(-1)
    return [[len(text), f"{nll['fp32']:.5f}", f"{nll['int8']:.5f}", f"{nll['int8'] - nll['fp32']:+.5f}",
             f"{float(variation.mean()):.4f}", f"{float(variation.max()):.4f}"]]


def print_agreement(model, vocab: Vocab, text: str) -> None:
    print_table("sampler weights on this model: int8 against fp32 over the first validation characters",
                ["chars", "fp32 nll", "int8 nll", "difference", "mean TV", "max TV"],
                sampler_weights_agreement(model, vocab, text))


def ours(minutes: float, **overrides) -> tuple[float, int, float, TrainConfig]:
    config = TrainConfig(corpus=str(require_data()), minutes=minutes, sample_chars=0, runs_dir=runs_dir(), **overrides)
    trainer = Trainer(config)
    steps = 0
    started = time.perf_counter()
    for event in trainer.run():
        if isinstance(event, StepEvent):
            steps = event.step
    elapsed = time.perf_counter() - started
    val_ids = trainer.task.val_ids
    # What the run delivers: its last checkpoint's model (the averaged weights, as kept by default).
    model, vocab, _ = load_model(trainer.run_dir, "cpu")
    loss = evaluate_char_model(model, val_ids, streams=1)
    print_agreement(model, vocab, vocab.decode(val_ids[:AGREEMENT_CHARS]))
    return loss, steps, steps * config.batch * config.seq / elapsed, config


def notebook(minutes: float) -> tuple[float, int, float]:
    text = load_corpus(str(require_data())).text
    vocab = Vocab.from_text(text)
    train_ids, val_ids = split_ids(vocab.encode(text), 0.1)
    torch.manual_seed(1234)
    net = NotebookCharRNN(vocab.chars, n_hidden=512, n_layers=2, drop_prob=0.5)
    started = time.perf_counter()
    steps = notebook_train(net, train_ids.numpy().astype(np.int64), 10**9, deadline=started + minutes * 60)
    elapsed = time.perf_counter() - started
    return notebook_val_loss(net, val_ids.numpy().astype(np.int64)), steps, steps * 128 * 100 / elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time for each side")
    parser.add_argument("--skip-notebook", action="store_true", help="only train ours")
    parser.add_argument("--dropout", type=float, help="ours with this dropout instead of the default")
    parser.add_argument("--ema", type=float, help="ours with this weight-average decay instead of the default")
    parser.add_argument("--agreement-only", metavar="CHECKPOINT",
                        help="only compare the sampler's int8 and fp32 weights on this trained checkpoint")
    args = parser.parse_args(argv)
    if args.agreement_only:
        model, vocab, _ = load_model(args.agreement_only, "cpu")
        _, val_ids = split_ids(vocab.encode(load_corpus(str(require_data())).text), 0.1)
        print_agreement(model, vocab, vocab.decode(val_ids[:AGREEMENT_CHARS]))
        return
    overrides = {name: getattr(args, name) for name in ("dropout", "ema") if getattr(args, name) is not None}
    loss, steps, speed, config = ours(args.minutes, **overrides)
    rows = [[f"ours: {config.cell.upper()} {config.layers}x{config.hidden}, batch {config.batch}, seq {config.seq}, "
             f"lr {config.lr:g}, dropout {config.dropout:g}, ema {config.ema:g}, bf16 {'on' if config.amp else 'off'}",
             steps, round(speed), f"{loss:.4f}"]]
    if not args.skip_notebook:
        nb_loss, nb_steps, nb_speed = notebook(args.minutes)
        rows.insert(0, ["notebook: LSTM 2x512, batch 128, seq 100, Adam 0.001, fp32", nb_steps, round(nb_speed),
                        f"{nb_loss:.4f}"])
    title = f"validation loss after {args.minutes:g} minutes on tinyshakespeare ({torch.get_num_threads()} threads)"
    print_table(title, ["loop", "steps", "chars/s", "val loss (nats)"], rows)


if __name__ == "__main__":
    main()

"""--embed onehot against an embedding, and the Encoding page's key -> view time.

python -m benchmarks.bench_encoding: (1) a training step (forward, backward, Adam) of an LSTM 2x256,
batch 64 x seq 100, over tinyshakespeare's 65 characters, with embed 64 (the baseline) and with
one-hot input (65 wide); (2) the Encoding page answering a key and drawing itself at 120x34 for an
LSTM 2x512, embedded (the baseline) and one-hot, against the issue's 100 ms budget. Medians of
alternating rounds in one process.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.model import ONEHOT, CharRNN, ModelConfig
from rnn_playground.tui.viewmodel.lesson.encoding import EncodingPage
from rnn_playground.tui.viewmodel.lesson.page import Source

from .common import TINYSHAKESPEARE, print_table

ROUNDS = 3


def _text() -> str:
    if TINYSHAKESPEARE.exists():
        return TINYSHAKESPEARE.read_text(encoding="utf-8")[:200_000]
    return ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 3000)


def _model(vocab: Vocab, embed: int, hidden: int) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=len(vocab), hidden=hidden, layers=2, embed=embed, dropout=0.3))


def train_seconds(model: CharRNN, ids: torch.Tensor, steps: int = 4) -> float:
    """Median seconds per training step over `steps` (after one warm-up step)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch, seq = 64, 100
    inputs = ids[:batch * seq].view(batch, seq)
    targets = ids[1:batch * seq + 1].view(batch, seq)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        logits, _ = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def page_ms(page: EncodingPage, keys: int = 60) -> tuple[float, float]:
    """(median, p95) milliseconds of a key and the view that follows it."""
    times = []
    for n in range(keys):
        start = time.perf_counter()
        page.handle("right" if n % 10 else "page_down")
        page.view(120, 34)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    text = _text()
    vocab = Vocab(text)
    ids = vocab.encode(text)
    train = {"embed 64": [], "onehot": []}
    pages = {"embed 64": [], "onehot": []}
    for _ in range(ROUNDS):
        for name, embed in (("embed 64", 64), ("onehot", ONEHOT)):
            train[name].append(train_seconds(_model(vocab, embed, 256), ids))
            page = EncodingPage(Source(_model(vocab, embed, 512).eval(), vocab, None, text))
            pages[name].append(page_ms(page))
    base = statistics.median(train["embed 64"])
    rows = [[f"train step LSTM 2x256, {name}", f"{statistics.median(t) * 1000:,.0f} ms",
             f"{statistics.median(t) / base:.2f}x"] for name, t in train.items()]
    print_table(f"--embed onehot vs an embedding ({len(vocab)} characters), batch 64 x seq 100, 1 thread",
                ["task", "median", "vs embed 64"], rows)
    base_p95 = statistics.median(p for _, p in pages["embed 64"])
    rows = [[f"Encoding page key -> view, LSTM 2x512, {name}",
             f"{statistics.median(m for m, _ in runs):.1f} ms", f"{statistics.median(p for _, p in runs):.1f} ms",
             f"{statistics.median(p for _, p in runs) / base_p95:.2f}x",
             f"{statistics.median(p for _, p in runs) / 100:.2f}"] for name, runs in pages.items()]
    print_table("The Encoding page at 120x34", ["task", "median", "p95", "vs embed 64", "of 100 ms budget"], rows)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Scoring a text with a character model: the surprisal of every character given all before it (the text
read as one stream, the hidden state carried), bits per character, and a block-bootstrap interval.

Characters outside the model's vocabulary cannot be predicted: each is scored UNKNOWN_PENALTY =
log(V + 1) nats, the cost of a uniform guess over the vocabulary plus one "unknown" symbol, and the
model skips it as input (its state carries on from the last character it knows). A character whose
only context is unknown characters (the text's first known one, after unknown ones) is scored the same
uniform guess, as the model has nothing to predict it from.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import baselines
from .config import TrainConfig
from .corpus import Splits, Vocab, load_corpus, split_parts
from .device import choose_threads, step_work, torch_threads
from .errors import CorpusError
from .model import CharRNN

WARMUP = 256          # characters each batched chunk reads (unscored) before its own, to rebuild the state
MIN_CHUNK = 2048      # a chunk at least this long, so the warm-up costs at most 1/8 more
MAX_STREAMS = 64      # chunks run side by side
COLUMNS = 512         # steps per forward call: bounds the logits held at once
BLOCK = 1000          # characters per bootstrap block: longer than the model's memory of most contexts
RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def unknown_penalty(vocab_size: int) -> float:
    """Nats charged for a character the vocabulary lacks: a uniform guess over V + 1 symbols."""
    return math.log(vocab_size + 1)


@dataclass(frozen=True)
class Surprisals:
    """Nats for each character of text[1:] given those before it, and the characters scored as unknown."""
    nats: np.ndarray            # float64, len(text) - 1
    unknown: np.ndarray         # bool, len(text) - 1: scored with the penalty
    unknown_chars: tuple[str, ...]
    penalty: float


def char_surprisals(model: CharRNN, vocab: Vocab, text: str, *, exact: bool = False, warmup: int = WARMUP,
                    min_chunk: int = MIN_CHUNK, max_streams: int = MAX_STREAMS, threads: int | None = None
                    ) -> Surprisals:
    """Surprisal (nats) of each character of text[1:] given all before it, dropout off.

    exact=True reads the text as one stream. Otherwise the known characters are cut into up to
    `max_streams` contiguous chunks of at least `min_chunk`, run as a batch; each chunk after the
    first first reads the `warmup` characters before it (unscored), so its state is nearly the one
    stream's (tests/test_evaluate.py bounds the difference). `threads`: torch's CPU threads (None: the
    automatic choice, 1 on a busy machine, where more threads wait on each other at every step)."""
    penalty = unknown_penalty(len(vocab))
    scored = max(len(text) - 1, 0)
    nats = np.full(scored, penalty)
    known = np.array([c in vocab.index for c in text], dtype=bool)
    unknown = ~known[1:]
    positions = np.flatnonzero(known)  # where each known character sits in the text
    if len(positions) >= 2:
        ids = torch.tensor([vocab.index[text[i]] for i in positions], dtype=torch.long)
        device = next(model.parameters()).device
        streams = 1 if exact else _streams(len(ids) - 1, warmup, min_chunk, max_streams)
        with torch_threads(choose_threads(threads, step_work(streams, model.config.hidden), device.type)):
            known_nats = _stream_nats(model, ids.to(device), streams, warmup)
        # The first known character has no known context (it keeps the uniform guess unless it is text[0]).
        nats[positions[1:] - 1] = known_nats
    return Surprisals(nats, unknown, tuple(sorted(set(text) - vocab.index.keys())), penalty)


def _streams(targets: int, warmup: int, min_chunk: int, max_streams: int) -> int:
    return max(1, min(max_streams, targets // max(min_chunk, warmup + 1)))


def _stream_nats(model: CharRNN, ids: torch.Tensor, streams: int, warmup: int) -> np.ndarray:
    """-log p(ids[t] | ids[:t]) for t >= 1: `streams` contiguous chunks of the targets, each after the
    first preceded by `warmup` unscored inputs, run side by side; padding at a row's end changes nothing
    before it."""
    targets = len(ids) - 1
    length = -(-targets // streams)
    starts = [min(i * length, targets) for i in range(streams)]
    ends = [min(start + length, targets) for start in starts]
    leads = [min(warmup, start) for start in starts]  # the first chunk has nothing before it to warm up on
    width = max(lead + end - start for lead, start, end in zip(leads, starts, ends, strict=True))
    inputs = torch.zeros((streams, width), dtype=torch.long, device=ids.device)
    wanted = torch.zeros_like(inputs)
    for row, (lead, start, end) in enumerate(zip(leads, starts, ends, strict=True)):
        inputs[row, :lead + end - start] = ids[start - lead:end]
        wanted[row, :lead + end - start] = ids[start - lead + 1:end + 1]
    out = torch.empty((streams, width), dtype=torch.float64)
    was_training = model.training
    model.eval()
    state = None
    try:
        with torch.inference_mode():
            for column in range(0, width, COLUMNS):
                logits, state = model(inputs[:, column:column + COLUMNS], state)
                out[:, column:column + COLUMNS] = F.cross_entropy(
                    logits.float().transpose(1, 2), wanted[:, column:column + COLUMNS], reduction="none").double().cpu()
    finally:
        model.train(was_training)
    return np.concatenate([out[row, lead:lead + end - start].numpy()
                           for row, (lead, start, end) in enumerate(zip(leads, starts, ends, strict=True))])


def block_bootstrap(values: np.ndarray, *, block: int = BLOCK, resamples: int = RESAMPLES,
                    seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """A `level` interval for the mean of `values` (a series whose neighbours are correlated): whole
    blocks of `block` consecutive values are resampled with replacement (at least 10 blocks: shorter
    blocks for a short text), the mean taken over the characters drawn, the percentiles of those means."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    block = max(1, min(block, n // 10))
    edges = np.arange(0, n, block)
    sums, sizes = np.add.reduceat(values, edges), np.diff(np.append(edges, n))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for first in range(0, resamples, 100):  # bounds the drawn indices held at once for a long text
        count = min(100, resamples - first)
        picks = rng.integers(0, len(edges), size=(count, len(edges)))
        means[first:first + count] = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Evaluation:
    """One model's score on one text. Intervals are 95%, in bits per character."""
    run: str
    model: str
    chars: int                       # characters scored: len(text) - 1
    nats_per_char: float
    interval: tuple[float, float]
    unknown_count: int = 0
    unknown_chars: tuple[str, ...] = ()
    penalty_nats: float | None = None
    seconds: float = 0.0
    exact: bool = True
    text: str = ""                   # what was scored: a file, a split
    kind: str = "model"              # "model" (a run), or "baseline" (core.baselines, on a run's training text)
    surprisals: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    def to_json(self) -> dict:
        return {"run": self.run, "model": self.model, "text": self.text, "chars": self.chars,
                "bits_per_char": self.bits_per_char, "nats_per_char": self.nats_per_char,
                "interval_bits": list(self.interval), "unknown_count": self.unknown_count,
                "unknown_chars": list(self.unknown_chars), "unknown_penalty_nats": self.penalty_nats,
                "seconds": self.seconds, "exact": self.exact, "kind": self.kind}


def summarize(run: str, model: str, nats: np.ndarray, *, unknown_count: int = 0,
              unknown_chars: tuple[str, ...] = (), penalty: float | None = None, seconds: float = 0.0,
              exact: bool = True, text: str = "", kind: str = "model") -> Evaluation:
    """An Evaluation from per-character surprisals (nats): a model's, or a baseline's."""
    low, high = block_bootstrap(nats)
    return Evaluation(run, model, len(nats), float(nats.mean()) if len(nats) else math.nan,
                      (low / math.log(2), high / math.log(2)), unknown_count, unknown_chars, penalty, seconds,
                      exact, text, kind, nats)


def evaluate_text(model: CharRNN, vocab: Vocab, text: str, *, run: str, name: str, exact: bool = False,
                  text_name: str = "", threads: int | None = None) -> Evaluation:
    """Score `text` with a model (char_surprisals), timed, as an Evaluation."""
    started = time.perf_counter()
    scores = char_surprisals(model, vocab, text, exact=exact, threads=threads)
    seconds = time.perf_counter() - started
    return summarize(run, name, scores.nats, unknown_count=int(scores.unknown.sum()),
                     unknown_chars=scores.unknown_chars,
                     penalty=scores.penalty, seconds=seconds, exact=exact, text=text_name)


SPLITS = ("val", "test")


@dataclass(frozen=True)
class SplitText:
    text: str
    name: str             # "val split of tinyshakespeare (111,539 chars)"
    key: tuple            # equal for two runs exactly when they split the same text the same way


@dataclass(frozen=True)
class RunCorpus:
    """The corpus a run trained on, reloaded and split as its training split it."""
    spec: str
    label: str            # the file name, or the built-in corpus's name
    fingerprint: str
    config: TrainConfig
    parts: Splits


def run_corpus(meta: dict, run: str, why: str) -> RunCorpus:
    """The corpus of a run (checkpoint metadata `meta`), split as training split it. Refuses a corpus whose
    text changed since: its parts would not be the ones the run trained and held out on. `why` names what
    needs it, for the message."""
    config = TrainConfig.from_dict(meta.get("config") or {})  # a checkpoint from before --test-fraction: 0
    stored = meta.get("corpus") or {}
    spec = stored.get("spec") or config.corpus
    corpus = load_corpus(spec, glob=config.glob)
    if stored.get("fingerprint") and stored["fingerprint"] != corpus.fingerprint:
        raise CorpusError(f"{why}: the corpus of run {run} ({spec}) has changed since it trained, so its parts are no "
                          "longer the text it trained and held out on. Score a file with --file PATH.")
    label = Path(spec).name if not spec.startswith("builtin:") else spec
    return RunCorpus(spec, label, corpus.fingerprint, config,
                     split_parts(corpus.text, config.val_fraction, config.test_fraction))


def split_text(corpus: RunCorpus, which: str, run: str) -> SplitText:
    """The validation or test part of a run's corpus. Refuses a split the run does not have."""
    config = corpus.config
    fraction = config.test_fraction if which == "test" else config.val_fraction
    if fraction <= 0:
        flag = "--test-fraction" if which == "test" else "--val-fraction"
        raise CorpusError(f"--split {which}: run {run} has no {which} split (it trained with {flag} 0). "
                          + ("Train with --test-fraction (e.g. 0.1) to hold one out, " if which == "test" else "")
                          + "or score a file with --file PATH.")
    part = getattr(corpus.parts, which)
    if len(part) < 2:
        raise CorpusError(f"--split {which}: the {which} split of run {run} has {len(part)} character(s); at least 2 "
                          "are needed to predict one. Score a file with --file PATH.")
    return SplitText(part, f"{which} split of {corpus.label}",
                     (corpus.fingerprint, config.val_fraction, config.test_fraction, which))


def baseline_models(corpus: RunCorpus) -> tuple[baselines.CharBaseline, baselines.CharBaseline]:
    """The unigram and the interpolated n-gram of a run's training text, the n-gram's order chosen on its
    validation split (on the last tenth of the training text when it has none)."""
    train, val = corpus.parts.train, corpus.parts.val
    if len(val) < 2:  # no validation split: the order is chosen on the training text's last tenth
        cut = len(train) - max(2, len(train) // 10)
        train, val = train[:cut], train[cut:]
    return baselines.unigram(train), baselines.fit_ngram(train, val)


def baseline_rows(corpus: RunCorpus, text: str, *, text_name: str = "") -> list[Evaluation]:
    """The baselines of the run's training text (baseline_models) scoring `text`, as Evaluations whose `run`
    says whose corpus they learned."""
    rows = []
    for model in baseline_models(corpus):
        started = time.perf_counter()
        nats = model.surprisals(text)
        unknown = model.unknown_chars(text)
        rows.append(summarize(f"baseline: {corpus.label}", model.name, nats, unknown_count=sum(unknown.values()),
                              unknown_chars=tuple(unknown), penalty=None, seconds=time.perf_counter() - started,
                              text=text_name, kind="baseline"))
    return rows

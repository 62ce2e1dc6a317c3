"""Character-level language modelling as a Trainer task: the corpus split into training streams and
held-out text, the next-character loss, validation and the sample shown at each validation."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn import functional as F

from .config import TrainConfig
from .corpus import Corpus, Vocab, check_size, describe_chars, split_ids, validation_spans
from .errors import CorpusError
from .model import CharRNN, StreamBatches
from .sampling import Sampler, SampleSettings


class CharTask:
    """Character-level language modelling on a corpus."""

    kind = "char"

    def __init__(self, config: TrainConfig, corpus: Corpus, vocab: Vocab, device: torch.device):
        check_size(corpus, config.batch, config.seq, config.val_fraction)
        self.config, self.corpus, self.vocab, self.device = config, corpus, vocab, device
        lacking = vocab.missing(corpus.characters)
        if lacking:
            raise CorpusError(f"Corpus {corpus.source} has characters the checkpoint's vocabulary lacks: "
                              f"{describe_chars(lacking)}. Resume with the original corpus, or start a new run.")
        ids = corpus.ids(vocab)  # compact: 1 byte a character for up to 256 characters
        train_ids, self.val_ids = split_ids(ids, config.val_fraction)
        self.batches = StreamBatches(train_ids, config.batch, config.seq).to(device)
        self.val_ids = self.val_ids.to(device)
        self.train_chars, self.val_chars = len(train_ids), len(self.val_ids)
        config.check_memory(device, len(vocab))  # now that the vocabulary's size is known
        # A held-out split longer than --val-sample is validated on a fixed sample of it; a shorter
        # one whole, exactly as always.
        sampled = config.val_sample and len(self.val_ids) > config.val_sample
        self.val_sample = validation_spans(self.val_ids, config.val_sample, config.val_streams) if sampled else None
        self.val_sample_chars = self.val_sample[0].numel() if sampled else self.val_chars
        self.model = CharRNN(config.model_config(len(vocab))).to(device)

    @property
    def windows(self) -> int:
        return len(self.batches)

    def init_state(self):
        return self.model.init_state(self.config.batch, self.device)

    def loss(self, window: int, state):
        inputs, targets = self.batches.window(window)
        logits, state = self.model(inputs, state)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()), state

    def evaluate(self, autocast, whole: bool = False) -> float | None:
        if len(self.val_ids) < 2:
            return None
        if self.val_sample is not None and not whole:
            return evaluate_streams(self.model, *self.val_sample, autocast=autocast)
        return evaluate_char_model(self.model, self.val_ids, self.config.val_streams, autocast=autocast)

    def preview(self, step: int) -> str | None:
        if not self.config.sample_chars:
            return None
        settings = SampleSettings(temperature=0.8, length=self.config.sample_chars, seed=self.config.seed + step)
        return Sampler(self.model, self.vocab).generate(settings)

    def meta(self) -> dict:
        return {"kind": self.kind, "vocab": list(self.vocab.chars),
                "corpus": {"spec": self.corpus.spec, "source": self.corpus.source,
                           "fingerprint": self.corpus.fingerprint, "chars": self.corpus.length}}


def evaluate_char_model(model: CharRNN, ids: torch.Tensor, streams: int = 1, chunk: int = 1000,
                        autocast=None) -> float:
    """Mean cross-entropy (nats) over `ids`, dropout off, read as `streams` contiguous streams
    whose hidden state is carried from chunk to chunk (streams=1 reads it as one stream)."""
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    length = (len(ids) - 1) // streams
    inputs = ids[:streams * length].view(streams, length)
    targets = ids[1:streams * length + 1].view(streams, length)
    return evaluate_streams(model, inputs, targets, chunk, autocast)


def evaluate_streams(model: CharRNN, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 1000,
                     autocast=None) -> float:
    """Mean cross-entropy (nats) of `targets` given `inputs`, both (streams, length) of ids of any
    integer type, each row read as one stream whose hidden state is carried from chunk to chunk."""
    streams, length = inputs.shape
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    state = None
    try:
        with torch.inference_mode(), (autocast() if autocast else nullcontext()):
            for start in range(0, length, chunk):
                logits, state = model(inputs[:, start:start + chunk].long(), state)
                total += F.cross_entropy(logits.float().flatten(0, 1),
                                         targets[:, start:start + chunk].long().flatten(), reduction="sum").double()
    finally:
        model.train(was_training)
    return float(total) / (streams * length)

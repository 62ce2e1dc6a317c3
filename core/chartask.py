"""Character-level language modelling as a Trainer task: the corpus split into training streams and
held-out text, the next-character loss, validation and the sample shown at each validation."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn import functional as F

from .config import TrainConfig
from .corpus import Corpus, Vocab, check_size, describe_chars, split_ids, validation_spans
from .distributed import Solo, check_split, split_rows
from .errors import CorpusError
from .model import CharRNN, DropoutKey, StreamBatches
from .sampling import Sampler, SampleSettings


class CharTask:
    """Character-level language modelling on a corpus.

    In a run of several ranks (`group`), rank r carries streams r*B/W to (r+1)*B/W - 1 of the global
    batch of B streams and their hidden states, so W processes do the mathematics of one; validation
    is split across the ranks by rows and summed."""

    kind = "char"

    def __init__(self, config: TrainConfig, corpus: Corpus, vocab: Vocab, device: torch.device,
                 group: Solo | None = None):
        check_size(corpus, config.batch, config.seq, config.val_fraction, config.test_fraction)
        self.group = group or Solo()
        check_split(config.batch, self.group.world_size)
        self.config, self.corpus, self.vocab, self.device = config, corpus, vocab, device
        lacking = vocab.missing(corpus.characters)
        if lacking:
            raise CorpusError(f"Corpus {corpus.source} has characters the checkpoint's vocabulary lacks: "
                              f"{describe_chars(lacking)}. Resume with the original corpus, or start a new run.")
        ids = corpus.ids(vocab)  # compact: 1 byte a character for up to 256 characters
        train_ids, self.val_ids = split_ids(ids, config.val_fraction, config.test_fraction)  # the test part unseen
        self.batches = StreamBatches(train_ids, config.batch, config.seq)
        # This rank's streams: a contiguous block of rows, a view (nothing is copied on the CPU).
        self.streams = split_rows(config.batch, self.group.rank, self.group.world_size)
        self.batches.inputs = self.batches.inputs[self.streams]
        self.batches.targets = self.batches.targets[self.streams]
        self.batches.to(device)
        self.val_ids = self.val_ids.to(device)
        self.train_chars, self.val_chars = len(train_ids), len(self.val_ids)
        config.check_memory(device, len(vocab))  # now that the vocabulary's size is known
        # A held-out split longer than --val-sample is validated on a fixed sample of it; a shorter
        # one whole, exactly as always.
        sampled = config.val_sample and len(self.val_ids) > config.val_sample
        self.val_sample = validation_spans(self.val_ids, config.val_sample, config.val_streams) if sampled else None
        self.val_sample_chars = self.val_sample[0].numel() if sampled else self.val_chars
        self.model = CharRNN(config.model_config(len(vocab))).to(device)
        self.train_model: torch.nn.Module = self.model  # what training steps call: the DDP wrapper when distributed

    @property
    def windows(self) -> int:
        return len(self.batches)

    def init_state(self):
        return self.model.init_state(self.streams.stop - self.streams.start, self.device)

    def loss(self, window: int, state, step: int):
        inputs, targets = self.batches.window(window)
        # Dropout masks keyed by (seed, step, global stream): the same under any split of the streams.
        logits, state = self.train_model(inputs, state, dropout_key=DropoutKey(self.config.seed, step,
                                                                                self.streams.start))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()), state

    def evaluate(self, autocast, whole: bool = False) -> float | None:
        if len(self.val_ids) < 2:
            return None
        if self.val_sample is not None and not whole:
            inputs, targets = self.val_sample
        else:
            inputs, targets = char_streams(self.val_ids, self.config.val_streams)
        # Each rank reads its block of the rows; the sums over all ranks give the one-process figure.
        rows = split_rows(len(inputs), self.group.rank, self.group.world_size)
        total = stream_loss_sum(self.model, inputs[rows], targets[rows], autocast=autocast)
        total, count = self.group.sum([total, float(inputs[rows].numel())])
        return total / count

    def preview(self, step: int) -> str | None:
        if not self.config.sample_chars or not self.group.is_main:
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
    return evaluate_streams(model, *char_streams(ids, streams), chunk, autocast)


def char_streams(ids: torch.Tensor, streams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`ids` cut into `streams` contiguous rows of inputs and their next characters (at least 2 per row)."""
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    length = (len(ids) - 1) // streams
    return ids[:streams * length].view(streams, length), ids[1:streams * length + 1].view(streams, length)


def evaluate_streams(model: CharRNN, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 1000,
                     autocast=None) -> float:
    """Mean cross-entropy (nats) of `targets` given `inputs`, both (streams, length) of ids of any
    integer type, each row read as one stream whose hidden state is carried from chunk to chunk."""
    return stream_loss_sum(model, inputs, targets, chunk, autocast) / inputs.numel()


def stream_loss_sum(model: CharRNN, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 1000,
                    autocast=None) -> float:
    """The summed cross-entropy (nats, float64) behind evaluate_streams; 0 for no rows."""
    streams, length = inputs.shape
    if not inputs.numel():
        return 0.0
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
    return float(total)

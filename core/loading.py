"""A trained character model from its checkpoint: what the trainer (to resume), the sampler and the
gate tracer all load, so none of them reaches into another for it."""

from __future__ import annotations

from pathlib import Path

from . import runs
from .checkpoint import Checkpoint, load_checkpoint
from .corpus import Vocab
from .device import resolve_device
from .errors import CheckpointError, PlaygroundError
from .model import CharRNN, ModelConfig


def load_model(target: Path | str, device: str = "auto") -> tuple[CharRNN, Vocab, Checkpoint]:
    """A character model and its vocabulary from a run folder or checkpoint file, on any device."""
    checkpoint = load_checkpoint(runs.resolve_checkpoint(target))
    if checkpoint.meta.get("kind", "char") != "char":
        raise CheckpointError(f"{checkpoint.path} holds a {checkpoint.meta.get('kind')} model, not a character model.")
    vocab, config = checkpoint_model(checkpoint)
    model = CharRNN(config)
    checkpoint.load_into(model)
    return model.to(resolve_device(device)).eval(), vocab, checkpoint


def checkpoint_model(checkpoint: Checkpoint) -> tuple[Vocab, ModelConfig]:
    """The vocabulary and model description of a character checkpoint, checked against a strict schema
    and against the tensors the file really holds, before anything is allocated."""
    meta, path = checkpoint.meta, checkpoint.path
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, AttributeError, PlaygroundError) as exc:
        raise CheckpointError(f"{path} lacks a usable model description ({exc}).") from None
    chars = meta.get("vocab")
    if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise CheckpointError(f"{path}: its vocabulary must be a list of single characters; the file was changed "
                              "or written by other code.")
    if chars != sorted(set(chars)) or len(chars) != config.vocab_size:
        raise CheckpointError(f"{path}: its vocabulary ({len(chars):,} entries) is not the sorted, distinct set of "
                              f"{config.vocab_size:,} characters its model reads; the file was changed or written "
                              "by other code.")
    checkpoint.check_weights(config.parameter_count())
    return Vocab(chars), config

"""CharRNN: embedding -> LSTM/GRU/RNN -> dropout -> linear, and the course's sequence batching."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .errors import ConfigError

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

class RecurrentConfig:
    """Validation and (de)serialisation shared by the model configs (dataclasses with a `cell`,
    `hidden`, `layers` and `dropout`); `positive` names the fields that must be at least 1."""

    positive: tuple[str, ...] = ("hidden", "layers")

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"Unknown cell type '{self.cell}'. Use one of: {', '.join(CELLS)}.")
        for name in self.positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"Model setting {name} must be at least 1, got {getattr(self, name)}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"Dropout must be in [0, 1), got {self.dropout}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        return f"{self.cell.upper()} {self.layers}x{self.hidden}"


@dataclass(frozen=True)
class ModelConfig(RecurrentConfig):
    vocab_size: int
    cell: str = "lstm"
    hidden: int = 512
    layers: int = 2
    embed: int = 64
    dropout: float = 0.3

    positive = ("vocab_size", "hidden", "layers", "embed")


class CharRNN(nn.Module):
    """A character model. The embedding lookup is the course's one-hot input times a learned matrix."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed)
        self.rnn = CELLS[config.cell](config.embed, config.hidden, config.layers, batch_first=True,
                                      dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def init_state(self, batch: int, device: torch.device | str | None = None):
        """Zero state, shaped (layers, batch, hidden) even though inputs are batch-first."""
        device = device if device is not None else self.head.weight.device
        zeros = torch.zeros(self.config.layers, batch, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(self, ids: torch.Tensor, state=None):
        """ids (batch, time) -> logits (batch, time, vocab), new state."""
        out, state = self.rnn(self.embed(ids), state)
        return self.head(self.drop(out)), state


def detach_state(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def state_tensors(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def state_like(like, tensors: list[torch.Tensor]):
    """Rebuild a state of the same structure as `like` (a tensor or an LSTM (h, c) pair)."""
    return (tensors[0], tensors[1]) if isinstance(like, tuple) else tensors[0]


class StreamBatches:
    """The course's batching, with its wrap-around fixed.

    The ids are cut into `batch` contiguous streams; window w covers columns
    [w*seq, (w+1)*seq) of every stream, so the hidden state at the end of one
    window is the right start for the next. Targets are the true next characters,
    including those of the last window.
    """

    def __init__(self, ids: torch.Tensor, batch: int, seq: int):
        columns = (len(ids) - 1) // batch // seq * seq
        if columns == 0:
            raise ConfigError(f"{len(ids)} characters are too few for batch {batch} x sequence {seq}.")
        used = batch * columns
        self.inputs = ids[:used].view(batch, columns)
        self.targets = ids[1:used + 1].view(batch, columns)
        self.seq = seq
        self.windows = columns // seq

    def __len__(self) -> int:
        return self.windows

    def window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.seq
        return self.inputs[:, start:start + self.seq], self.targets[:, start:start + self.seq]

    def to(self, device: torch.device) -> "StreamBatches":
        self.inputs = self.inputs.to(device)
        self.targets = self.targets.to(device)
        return self

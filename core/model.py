"""CharRNN: embedding (or one-hot) -> LSTM/GRU/RNN -> dropout -> linear, and the course's sequence batching."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .errors import ConfigError

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# The functional forms of the modules above, one layer per call.
_LAYER_OPS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # weight blocks per layer of each cell
_DROPOUT_LEVELS = 32768  # int16's non-negative range: a mask's resolution
ONEHOT = 0  # ModelConfig.embed for the course's input: one-hot rows straight into the first layer
ONEHOT_NAME = "onehot"  # how the CLI, the form and every display name it


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout with its mask drawn as random int16s. On a CPU torch's dropout draws
    every element through bernoulli_ (about 10 ns each: a third of a 2x256 LSTM step at batch
    128 x seq 100); random_ fills the same mask 6x faster. p is rounded to a multiple of 2^-15."""
    keep = torch.empty(x.shape, dtype=torch.int16, device=x.device).random_() >= _threshold(p)
    return _apply_keep(x, keep, p)


def _threshold(p: float) -> int:
    """Levels below this are dropped: p rounded to a multiple of 2^-15."""
    return round(p * _DROPOUT_LEVELS)


def _apply_keep(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """x with the dropped elements zeroed and the kept ones scaled so that the mean is unchanged."""
    return x * keep.to(x.dtype).mul_(_DROPOUT_LEVELS / (_DROPOUT_LEVELS - _threshold(p)))


_MASK64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    """One step of splitmix64 (Steele et al.): a 64-bit mix where every input bit moves about half the output's."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


@dataclass(frozen=True)
class DropoutKey:
    """What a training step's dropout masks are a function of, so that they do not depend on the
    process drawing them: the run's seed, the step, and the global index of the batch's first row
    (a rank that carries streams 64..127 of the global batch passes first_stream=64). Local row i of
    the batch is global stream first_stream + i; its masks are the same whichever process, and
    whichever split of the batch, draws them."""

    seed: int
    step: int
    first_stream: int = 0

    def __post_init__(self):
        for name in ("seed", "step", "first_stream"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"DropoutKey.{name} must be an integer of at least 0, got {value!r}.")

    def site_prefix(self, site: int) -> int:
        """The mix of (seed, step, site) that each stream's 63-bit generator seed is mixed from."""
        return _splitmix64(_splitmix64(_splitmix64(self.seed) ^ self.step) ^ site)


_mask_generators = threading.local()  # one reseeded Generator per thread: trainers may run in several threads


def stream_dropout_mask(shape: tuple[int, ...] | torch.Size, p: float, key: DropoutKey, site: int) -> torch.Tensor:
    """The keep mask (bool, `shape` = (rows, ...)) of dropout site `site` for rows key.first_stream,
    key.first_stream + 1, ...: each row drawn from a CPU generator seeded with a mix of (seed, step,
    stream, site), then compared with fast_dropout's threshold. Rows [0, B) drawn at once equal, bit
    for bit, rows [0, k) and [k, B) drawn apart with first_stream 0 and k.

    A row's levels are the low 15 bits of each int16 lane of random int64s: torch's CPU generator
    spends a 32-bit draw on each int16 element but only one on two lanes of an int64, so this
    draws half as much as fast_dropout's int16 random_, which more than pays for keying: two
    Python calls per row, reseed and draw (benchmarks/bench_dropout.py)."""
    rows, per_row = shape[0], math.prod(shape[1:])
    words = torch.empty((rows, -(-per_row // 4)), dtype=torch.int64)  # 4 int16 lanes per word
    generator = getattr(_mask_generators, "generator", None)
    if generator is None:
        generator = _mask_generators.generator = torch.Generator()
    prefix = key.site_prefix(site)  # the per-row work left is one splitmix64 step
    for stream, row in enumerate(words.unbind(0), start=key.first_stream):
        generator.manual_seed(_splitmix64(prefix ^ stream) >> 1)
        row.random_(generator=generator)
    levels = words.view(torch.int16)[:, :per_row] & (_DROPOUT_LEVELS - 1)
    return (levels >= _threshold(p)).view(shape)


def stream_dropout(x: torch.Tensor, p: float, key: DropoutKey, site: int) -> torch.Tensor:
    """fast_dropout with stream_dropout_mask's masks: x is (rows, ...), on the CPU."""
    return _apply_keep(x, stream_dropout_mask(x.shape, p, key, site), p)


def recurrent_parameters(cell: str, inputs: int, hidden: int, layers: int) -> int:
    """Weights and biases of an nn.LSTM/GRU/RNN (computed, not allocated: sizes are checked with it)."""
    gates = GATES[cell] * hidden
    first = gates * (inputs + hidden) + 2 * gates
    return first + (layers - 1) * (gates * 2 * hidden + 2 * gates)


def describe_model(config) -> str:
    """A model as both faces and the engine's messages name it: "LSTM 2x512" (cell, layers x hidden).
    `config` has cell, layers and hidden attributes (a model config, a gate tracer) or is the "model"
    mapping of a checkpoint or run.json, where a missing value shows as '?'. A model reading one-hot
    rows (embed ONEHOT) says so: "LSTM 2x512 onehot"."""
    if isinstance(config, Mapping):
        cell, layers, hidden, embed = (config.get(key, "?") for key in ("cell", "layers", "hidden", "embed"))
    else:
        cell, layers, hidden, embed = config.cell, config.layers, config.hidden, getattr(config, "embed", None)
    onehot = f" {ONEHOT_NAME}" if embed == ONEHOT and not isinstance(embed, bool) else ""
    return f"{str(cell).upper()} {layers}x{hidden}{onehot}"


class RecurrentConfig:
    """Validation and (de)serialisation shared by the model configs (dataclasses with a `cell`,
    `hidden`, `layers` and `dropout`); `positive` names the fields that must be at least 1."""

    positive: tuple[str, ...] = ("hidden", "layers")

    def __post_init__(self):
        for f in fields(self):  # a checkpoint's metadata can hold anything
            value = getattr(self, f.name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if f.name == "cell" and not isinstance(value, str) or f.name == "dropout" and not number or (
                    f.name not in ("cell", "dropout") and not (number and isinstance(value, int))):
                raise ConfigError(f"Model setting {f.name} has the wrong type: {value!r}.")
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

    def parameter_count(self) -> int:
        """How many weights the model has, computed (nothing is allocated): checked against a file's tensors."""
        raise NotImplementedError


@dataclass(frozen=True)
class ModelConfig(RecurrentConfig):
    vocab_size: int
    cell: str = "lstm"
    hidden: int = 512
    layers: int = 2
    embed: int = 64
    dropout: float = 0.3

    positive = ("vocab_size", "hidden", "layers")

    def __post_init__(self):
        super().__post_init__()
        if self.embed < 0:
            raise ConfigError(f"Model setting embed must be at least 1, or {ONEHOT} for one-hot input, "
                              f"got {self.embed}.")

    @property
    def onehot(self) -> bool:
        return self.embed == ONEHOT

    @property
    def input_size(self) -> int:
        """What the first recurrent layer reads per character: the embedding, or the one-hot row."""
        return self.vocab_size if self.onehot else self.embed

    def parameter_count(self) -> int:
        table = 0 if self.onehot else self.vocab_size * self.embed
        return (table + recurrent_parameters(self.cell, self.input_size, self.hidden, self.layers)
                + self.hidden * self.vocab_size + self.vocab_size)


def embed_text(embed: int) -> str:
    """An embed setting as people read it: "64", or "onehot"."""
    return ONEHOT_NAME if embed == ONEHOT else str(embed)


class OneHot(nn.Module):
    """The course's input: each character id becomes a row of the identity matrix, nothing learned.
    Called like nn.Embedding (ids -> rows), with the same num_embeddings, embedding_dim and `weight`
    (the identity, a buffer that is not saved), so code reading an embedding's table reads this one."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.num_embeddings = self.embedding_dim = vocab_size
        self.register_buffer("weight", torch.eye(vocab_size), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}"


class CharRNN(nn.Module):
    """A character model. The embedding lookup is the course's one-hot input times a learned matrix;
    with embed ONEHOT the one-hot rows themselves go into the first layer."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = OneHot(config.vocab_size) if config.onehot else nn.Embedding(config.vocab_size, config.embed)
        self.rnn = CELLS[config.cell](config.input_size, config.hidden, config.layers, batch_first=True,
                                      dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def init_state(self, batch: int, device: torch.device | str | None = None):
        """Zero state, shaped (layers, batch, hidden) even though inputs are batch-first."""
        device = device if device is not None else self.head.weight.device
        zeros = torch.zeros(self.config.layers, batch, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(self, ids: torch.Tensor, state=None, dropout_key: DropoutKey | None = None):
        """ids (batch, time) -> logits (batch, time, vocab), new state.

        In training mode on a CPU the layers run one call each with dropout drawn by this module:
        with `dropout_key`, each row's masks come from stream_dropout_mask (a function of the seed,
        the step, the row's global stream and the site: the same under any split of the batch
        across processes); without one, from the global RNG (fast_dropout). On any other device the
        fused module runs with torch's own dropout, and the key is not used. Eval mode has no
        dropout, key or not."""
        if self.training and self.config.dropout > 0 and ids.device.type == "cpu":
            out, state = self._layers_with_fast_dropout(self.embed(ids), state, dropout_key)
            return self.head(self._dropout(out, self.config.layers - 1, dropout_key)), state
        out, state = self.rnn(self.embed(ids), state)
        return self.head(self.drop(out)), state

    def _dropout(self, x: torch.Tensor, site: int, key: DropoutKey | None) -> torch.Tensor:
        """Training-mode dropout of layer `site`'s output (the last layer's feeds the head)."""
        if key is None:
            return fast_dropout(x, self.config.dropout)
        return stream_dropout(x, self.config.dropout, key, site)

    def _layers_with_fast_dropout(self, x: torch.Tensor, state, key: DropoutKey | None = None):
        """self.rnn in training mode, one layer per call so that the dropout between layers is
        ours (fast_dropout, or stream-keyed masks with a key) rather than the module's own (a GPU
        keeps the fused module and its dropout)."""
        cell, layers = self.config.cell, self.config.layers
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        parts = state_tensors(state)
        finals: list[list[torch.Tensor]] = [[] for _ in parts]
        for layer in range(layers):
            if layer:
                x = self._dropout(x, layer - 1, key)
            params = [getattr(self.rnn, f"{name}_l{layer}")
                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            hx = tuple(part[layer:layer + 1] for part in parts)
            result = _LAYER_OPS[cell](x, hx if cell == "lstm" else hx[0], params, True, 1, 0.0, True, False, True)
            x = result[0]
            for final, tensor in zip(finals, result[1:], strict=True):
                final.append(tensor)
        return x, state_like(state, [torch.cat(final) for final in finals])


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
        """(inputs, targets) of window `index` as int64, whatever compact type the ids are held in."""
        start = index * self.seq
        return self.inputs[:, start:start + self.seq].long(), self.targets[:, start:start + self.seq].long()

    def to(self, device: torch.device) -> StreamBatches:
        self.inputs = self.inputs.to(device)
        self.targets = self.targets.to(device)
        return self

"""Why gates matter, measured: a synthetic recall task trained with a vanilla RNN, a GRU and an LSTM of the
same size, and how far back the gradient of a model's loss reaches through its hidden state.

The recall task ("remember the character seen d steps earlier"): each sequence is d + 1 random symbols
from a small alphabet; the target at step t is the input at step t - d, which is defined at the last step
only, so a model must carry the first symbol across d - 1 distractors and answer at step d. One model per
(cell, delay) trains for a fixed number of steps with a fixed seed on the CPU; its accuracy is measured on
held-out sequences (chance is 1 / alphabet). A vanilla RNN's gradient fades over the delay (each step
multiplies it by a tanh's slope and W_hh), so it stays near chance at long delays where the gated cells,
whose cell state (LSTM) or update gate (GRU) passes the signal on almost unchanged, learn it.

    settings = MemorySettings(delays=(1, 2, 4, 8, 16), hidden=32)
    result = cached_result(settings) or run_memory_experiment(settings, progress=..., cancel=...)
    store_result(result)
    result.accuracy("lstm", 16)

`gradient_reach(model, ids)` is the other half: for a core.model.CharRNN (any cell) and a window of ids,
the norm of d loss_t / d h_{t-k} against k, by autograd through a step-by-step unroll.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .checkpoint import atomic_writer
from .device import torch_threads
from .errors import ConfigError, PlaygroundError
from .model import CharRNN, ModelConfig

CELL_ORDER = ("rnn", "gru", "lstm")
TASKS = ("recall",)
ALPHABET = "abcdefgh"
MAX_DELAY = 64
CACHE_FORMAT = "rnn-playground/memory/1"
EVAL_SEQUENCES = 512
KEEP_BIAS = 3.0
# Measured on this project's 2-core machine (benchmarks/README.md, "Memory page"): the default experiment,
# all 15 models, takes this long on one torch thread.
DEFAULT_BUDGET_S = 25
MAX_SEED = 10**15   # each model's seed is derived as seed * 1000 + ...: it stays a valid torch seed


class MemoryCancelled(PlaygroundError):
    """The experiment was stopped by its cancel check before it finished."""


@dataclass(frozen=True)
class MemorySettings:
    """Everything a result depends on (with the torch version: the cache key)."""
    task: str = "recall"
    delays: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    hidden: int = 32
    steps: int = 200            # training steps per model (cell x delay)
    batch: int = 32
    alphabet: int = 8
    seed: int = 0
    lr: float = 1e-2
    cells: tuple[str, ...] = CELL_ORDER
    seconds: float | None = None   # a wall-clock cap on the whole experiment (None: train every step)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"Unknown memory task {self.task!r}. Use one of: {', '.join(TASKS)}.")
        delays = tuple(self.delays)
        if not delays or any(not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= MAX_DELAY
                             for d in delays):
            raise ConfigError(f"--delays must be whole numbers from 1 to {MAX_DELAY}, got {list(self.delays)}.")
        object.__setattr__(self, "delays", tuple(sorted(set(delays))))
        cells = tuple(self.cells)
        if not cells or any(c not in CELL_ORDER for c in cells):
            raise ConfigError(f"Memory task cells must be some of {', '.join(CELL_ORDER)}, got {list(cells)}.")
        object.__setattr__(self, "cells", tuple(c for c in CELL_ORDER if c in cells))
        for name, low, high in (("hidden", 1, 1024), ("steps", 1, 100_000), ("batch", 1, 4096),
                                ("alphabet", 2, len(ALPHABET)), ("seed", 0, MAX_SEED)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                # Named by the flag that sets it: the CLI is where a value can be out of range.
                raise ConfigError(f"--{name} must be a whole number from {low:,} to {high:,}, got {value!r}.")
        if self.seconds is not None and not (isinstance(self.seconds, (int, float)) and self.seconds > 0):
            raise ConfigError(f"--seconds (the time budget) must be a positive number, got {self.seconds!r}.")

    def key(self) -> str:
        """The cache key: a digest of the settings and the torch version (results differ between versions)."""
        text = json.dumps({**asdict(self), "torch": torch.__version__, "format": CACHE_FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def describe(self) -> str:
        return (f"{self.task}, delays {','.join(map(str, self.delays))}, hidden {self.hidden}, "
                f"{self.steps} steps x batch {self.batch} per model, seed {self.seed}")


@dataclass
class MemoryResult:
    settings: MemorySettings
    accuracy_table: dict[str, dict[int, float]]   # cell -> delay -> held-out accuracy (0..1)
    reach: dict[str, list[float]] = field(default_factory=dict)  # cell -> gradient reach at the longest delay
    seconds: float = 0.0          # how long training took
    cut_short: bool = False       # the time cap stopped some models early
    from_cache: bool = False

    @property
    def chance(self) -> float:
        return 1.0 / self.settings.alphabet

    def accuracy(self, cell: str, delay: int) -> float:
        return self.accuracy_table[cell][delay]

    def rows(self) -> list[tuple[int, dict[str, float]]]:
        """(delay, {cell: accuracy}) per delay, in the order rnn, gru, lstm."""
        return [(d, {c: self.accuracy_table[c][d] for c in CELL_ORDER if c in self.accuracy_table})
                for d in self.settings.delays]

    def to_dict(self) -> dict:
        settings = asdict(self.settings)
        settings["delays"], settings["cells"] = list(self.settings.delays), list(self.settings.cells)
        return {"format": CACHE_FORMAT, "torch": torch.__version__, "settings": settings,
                "accuracy": {c: {str(d): a for d, a in table.items()} for c, table in self.accuracy_table.items()},
                "reach": self.reach, "seconds": self.seconds, "cut_short": self.cut_short}

    @classmethod
    def from_dict(cls, data: dict) -> MemoryResult:
        raw = dict(data["settings"])
        raw["delays"], raw["cells"] = tuple(raw["delays"]), tuple(raw.get("cells", CELL_ORDER))
        settings = MemorySettings(**raw)
        table = {c: {int(d): float(a) for d, a in rows.items()} for c, rows in data["accuracy"].items()}
        reach = {c: [float(v) for v in values] for c, values in data.get("reach", {}).items()}
        return cls(settings, table, reach, float(data.get("seconds", 0.0)), bool(data.get("cut_short", False)))


def _work(settings: MemorySettings) -> float:
    """A model's time in units of the default: per step a fixed overhead plus batch x hidden^2 arithmetic."""
    per_step = 0.5 + 0.5 * settings.batch * settings.hidden ** 2 / (32 * 32 ** 2)
    return settings.steps * per_step * len(settings.cells) * sum(d + 1 for d in settings.delays)


def estimate_seconds(settings: MemorySettings) -> float:
    """About how long the experiment takes on this project's 2-core machine, scaled from the measured default."""
    estimate = DEFAULT_BUDGET_S * _work(settings) / _work(MemorySettings())
    return min(estimate, settings.seconds) if settings.seconds is not None else estimate


# --------------------------------------------------------------------------- the task

def recall_batch(generator: torch.Generator, batch: int, delay: int,
                 alphabet: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [batch, delay + 1], target column's answers [batch]): random symbols; the answer is the first."""
    ids = torch.randint(alphabet, (batch, delay + 1), generator=generator)
    return ids, ids[:, 0]


def task_model(cell: str, settings: MemorySettings) -> CharRNN:
    """A one-layer CharRNN over the task's alphabet (the same class as the user's model, so
    gradient_reach works on both)."""
    config = ModelConfig(vocab_size=settings.alphabet, cell=cell, hidden=settings.hidden, layers=1,
                         embed=settings.alphabet, dropout=0.0)
    model = CharRNN(config)
    # The gated cells start out keeping what they hold, as the usual recipe has it (the forget-gate bias of
    # Gers et al. 2000 and Jozefowicz et al. 2015, set as high as chrono initialisation, Tallec & Ollivier
    # 2018, sets it for delays of about 20): the LSTM's forget gate at sigmoid(3) = 0.95, and the GRU's
    # update gate, which keeps h_{t-1} where it is 1, the same. A vanilla RNN has no gate to set.
    hidden = settings.hidden
    block = {"lstm": slice(hidden, 2 * hidden), "gru": slice(hidden, 2 * hidden)}.get(cell)
    if block is not None:
        with torch.no_grad():
            model.rnn.bias_ih_l0[block].fill_(KEEP_BIAS)
            model.rnn.bias_hh_l0[block].zero_()
    return model


def _final_logits(model: CharRNN, ids: torch.Tensor) -> torch.Tensor:
    out, _ = model.rnn(model.embed(ids))
    return model.head(out[:, -1])


def train_recall(cell: str, delay: int, settings: MemorySettings, deadline: float | None = None,
                 cancel: Callable[[], bool] | None = None) -> tuple[CharRNN, float, bool]:
    """Train one model on the recall task at `delay`: (model in eval mode, held-out accuracy, cut short)."""
    seed = settings.seed * 1000 + delay * 10 + CELL_ORDER.index(cell)
    # the weights from the seed, and torch's global generator left as it was: a run training in another
    # thread of the app draws its dropout masks from it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task_model(cell, settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(seed)
    cut_short = False
    model.train()
    for step in range(settings.steps):
        if cancel is not None and step % 10 == 0 and cancel():
            raise MemoryCancelled("The memory experiment was cancelled.")
        if deadline is not None and time.monotonic() > deadline:
            cut_short = True
            break
        ids, answers = recall_batch(generator, settings.batch, delay, settings.alphabet)
        loss = F.cross_entropy(_final_logits(model, ids), answers)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    held_out = torch.Generator().manual_seed(10_000_019 + seed)  # never a training batch's stream
    ids, answers = recall_batch(held_out, EVAL_SEQUENCES, delay, settings.alphabet)
    with torch.no_grad():
        accuracy = (_final_logits(model, ids).argmax(-1) == answers).float().mean().item()
    return model, accuracy, cut_short


def run_memory_experiment(settings: MemorySettings, progress: Callable[[float, str], None] | None = None,
                          cancel: Callable[[], bool] | None = None, threads: int = 1) -> MemoryResult:
    """Train a vanilla RNN, a GRU and an LSTM at every delay; accuracy per (cell, delay), and the
    gradient reach of each cell's model at the longest delay. `progress(fraction, words)` is called
    before each model; `cancel()` is polled every few steps and raises MemoryCancelled when true."""
    started = time.monotonic()
    deadline = started + settings.seconds if settings.seconds is not None else None
    # the cost of a model grows with its sequence length: progress and the time cap are shared by it
    work = {(c, d): d + 1 for c in settings.cells for d in settings.delays}
    total = sum(work.values())
    done = 0
    table: dict[str, dict[int, float]] = {c: {} for c in settings.cells}
    reach: dict[str, list[float]] = {}
    cut_short = False
    longest = settings.delays[-1]
    with torch_threads(threads):
        for delay in settings.delays:
            for cell in settings.cells:
                if progress is not None:
                    progress(done / total, f"training {cell.upper()} at delay {delay}")
                share = None
                if deadline is not None:
                    share = time.monotonic() + max(0.0, deadline - time.monotonic()) * work[cell, delay] / (
                        total - done)
                model, accuracy, short = train_recall(cell, delay, settings, share, cancel)
                table[cell][delay] = accuracy
                cut_short |= short
                if delay == longest:
                    ids, _ = recall_batch(torch.Generator().manual_seed(settings.seed), 1, delay, settings.alphabet)
                    answers = ids[0, :1].expand(delay + 1)  # loss_t at t = delay only
                    reach[cell] = [float(v) for v in gradient_reach(model, ids[0], answers, positions=(delay,))]
                done += work[cell, delay]
    if progress is not None:
        progress(1.0, "done")
    return MemoryResult(settings, table, reach, time.monotonic() - started, cut_short)


# --------------------------------------------------------------------------- the cache

def cache_path(settings: MemorySettings, directory: Path | None = None) -> Path:
    from .download import cache_dir
    base = Path(directory) if directory is not None else cache_dir()
    return base / "memory" / f"{settings.key()}.json"


def cached_result(settings: MemorySettings, directory: Path | None = None) -> MemoryResult | None:
    """The stored result for exactly these settings (and this torch version), or None."""
    path = cache_path(settings, directory)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = MemoryResult.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, PlaygroundError):
        return None  # none yet, or unreadable: the experiment runs again and rewrites it
    if result.settings != settings or data.get("torch") != torch.__version__:
        return None
    result.from_cache = True
    return result


def store_result(result: MemoryResult, directory: Path | None = None) -> Path:
    path = cache_path(result.settings, directory)
    try:
        with atomic_writer(path, "w", encoding="utf-8") as handle:
            json.dump(result.to_dict(), handle, indent=1)
    except OSError as exc:
        raise PlaygroundError(f"Cannot write the memory experiment's cache {path}: {exc.strerror or exc}. "
                              f"Set RNN_PLAYGROUND_CACHE to a folder you can write.") from None
    return path


# --------------------------------------------------------------------------- gradient reach

def gradient_reach(model: CharRNN, ids: torch.Tensor | Sequence[int], targets: torch.Tensor | None = None,
                   positions: Sequence[int] | None = None, max_k: int | None = None) -> np.ndarray:
    """How far back the loss's gradient reaches: reach[k] = ||d loss_t / d h_{t-k}||, the mean over the
    steps t in `positions` (default: the last step), for k = 0 .. max_k (default: the earliest t).

    `ids` is a window [T] the model reads from a zero state, one step at a time so that every step's
    hidden state is a node of the graph; h_{t-k} is the hidden state of every layer after step t - k (an
    LSTM's cell state c is held fixed: it is a separate variable). loss_t is the cross-entropy of the
    output at step t against targets[t] (default: ids[t + 1], the next character; then t < T - 1).
    Runs in eval mode (no dropout) in the model's dtype; the model is left as it was."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if targets is None:
        targets, steps = ids[1:], len(ids) - 1
        ids = ids[:-1]
    else:
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        steps = len(ids)
    if steps < 1:
        raise ConfigError("The gradient reach needs a window of at least two characters.")
    positions = tuple(positions) if positions is not None else (steps - 1,)
    if any(not 0 <= t < steps for t in positions) or len(targets) < steps:
        raise ConfigError(f"Gradient reach positions must be steps 0..{steps - 1} with a target each.")
    max_k = min(positions) if max_k is None else min(max_k, min(positions))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            hidden_states, logits = _unroll(model, ids[:max(positions) + 1])
            reach = np.zeros(max_k + 1)
            for t in positions:
                loss = F.cross_entropy(logits[t], targets[t:t + 1])
                inputs = [h for step in hidden_states[t - max_k:t + 1] for h in step]
                grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
                layers = model.config.layers
                for k in range(max_k + 1):
                    step = grads[(max_k - k) * layers:(max_k - k + 1) * layers]
                    reach[k] += math.sqrt(sum(float(g.double().pow(2).sum()) for g in step if g is not None))
    finally:
        model.train(was_training)
    return reach / len(positions)


_CELL_OPS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


def _unroll(model: CharRNN, ids: torch.Tensor) -> tuple[list[tuple[torch.Tensor, ...]], list[torch.Tensor]]:
    """Run the window one step and one layer at a time with the module's own weights (torch's cell ops: a
    2x512 LSTM's backward is 5x faster than through one-step calls of nn.LSTM): (each step's h of every
    layer, [1, H] each; each step's logits [1, V])."""
    config = model.config
    op = _CELL_OPS[config.cell]
    if config.cell == "rnn" and getattr(model.rnn, "nonlinearity", "tanh") == "relu":
        op = torch.rnn_relu_cell
    weights = [[getattr(model.rnn, f"{name}_l{layer}", None) for name in ("weight_ih", "weight_hh", "bias_ih",
                                                                           "bias_hh")]
               for layer in range(config.layers)]
    embedded = model.embed(ids.reshape(1, -1))
    zeros = embedded.new_zeros(1, config.hidden)
    h = [zeros] * config.layers
    c = [zeros] * config.layers
    hidden_states, logits = [], []
    for step in range(ids.numel()):
        x = embedded[:, step]
        for layer in range(config.layers):
            if config.cell == "lstm":
                h[layer], c[layer] = op(x, (h[layer], c[layer]), *weights[layer])
            else:
                h[layer] = op(x, h[layer], *weights[layer])
            x = h[layer]
        # the state carried to the next step, a node of its own: its gradient is what flows back through
        # the state alone, not through the layer above at the same step
        h = [layer_h.clone() for layer_h in h]
        hidden_states.append(tuple(h))   # a copy: the next step replaces h's items
        logits.append(model.head(h[-1]))   # the top layer's h is the output: loss_t reaches h_t directly
    return hidden_states, logits


def reach_summary(reach: Sequence[float], floor: float = 1e-3) -> int:
    """The largest k at which the gradient is still at least `floor` of its k = 0 value (how far it reaches)."""
    if len(reach) == 0 or reach[0] <= 0 or not math.isfinite(reach[0]):
        return 0
    far = [k for k, value in enumerate(reach) if value >= floor * reach[0]]
    return max(far) if far else 0

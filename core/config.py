"""The settings of a run, each field documented once: its help is the CLI's --help and the app's.

`LoopConfig` holds what every training loop reads (model size, optimiser, budget, validation,
device); `TrainConfig`, a character run's settings, and core.series.SeriesConfig extend it, each
declaring only its own fields (or another default for a shared one). `TrainConfig` is what the
Trainer takes: a series run hands it its `train_config()`.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from .corpus import DEFAULT_CORPUS
from .device import check_threads, device_for_flag, free_memory
from .errors import ConfigError
from .model import CELLS, GATES, ONEHOT, ONEHOT_NAME, ModelConfig, recurrent_parameters

_Config = TypeVar("_Config", bound="LoopConfig")

DEFAULT_MINUTES = 10.0           # the budget of a run given none
AMP_DTYPES = ("auto", "bf16", "fp16")
MAX_SEED = 2**63 - 1             # torch, numpy and random all take seeds in this range
MAX_SAMPLE_CHARS = 100_000       # a preview at each validation; longer samples: `rnn-playground sample`
MAX_SYSTEM_EVERY = 86_400        # seconds between system readings, at most (a thread's wait overflows far beyond)
MAX_BUDGET = 1e9                 # epochs or minutes: beyond this a budget means "forever" and overflows the arithmetic


THREADS_HELP = ("CPU threads for torch, 1 to the CPU count (default: automatic: 1, or one per free core for a "
                "model large enough to gain from more; stays fast when other programs share the cores)")


def option(default, help: str, more: str = ""):
    """A config field with its help text, so the CLI documents every flag from one place. `help` is
    the CLI's help and the app's one-line description; `more`, the longer one the app's F1 adds."""
    return field(default=default, metadata={"help": help, "more": more})


def new_default(base: type, name: str, default: Any) -> Field:
    """The field `name` of the dataclass `base`, help included, with another default: for a subclass
    whose runs start elsewhere (a series model is far smaller than a character model)."""
    return field(default=default, metadata=base.__dataclass_fields__[name].metadata)


@dataclass
class LoopConfig:
    """What every training loop reads. The defaults are a character run's; SeriesConfig sets its own."""
    cell: str = option("lstm", "recurrent cell: lstm, gru or rnn",
                       "LSTM and GRU have gates that decide what to keep, forget and show, and learn long-range "
                       "patterns; RNN (tanh) is the plain recurrent cell, quicker per step but forgetful. The "
                       "Gates screen shows the gates at work.")
    hidden: int = option(512, "hidden units per layer",
                         "The size of the state each layer carries from one character to the next. More units "
                         "remember and predict more, but a step costs about the square of this.")
    layers: int = option(2, "recurrent layers",
                         "Recurrent layers stacked on each other, each reading the states of the one below. Two "
                         "is usual; more can learn more but train slower.")
    dropout: float = option(0.3, "dropout between layers and before the output layer",
                            "While training, this fraction of the values passed between layers (and to the "
                            "output layer) is zeroed at random, so the model cannot lean on any one unit: less "
                            "overfitting of small texts. Never during validation or sampling; 0 turns it off.")
    batch: int = option(128, "parallel streams per step",
                        "How many places in the text are read side by side in one step, each stream carrying "
                        "its own hidden state. Larger batches give smoother updates and more characters per "
                        "second (most on a GPU), but fewer steps per pass over the text.")
    seq: int = option(100, "characters per window (backprop through time)",
                      "How many characters each stream reads per step; the gradient flows back through this "
                      "many (truncated backpropagation through time). The hidden state carries on into the "
                      "next window, so the model can still use what came before.")
    lr: float = option(3e-3, "peak Adam learning rate",
                       "How far each update moves the weights at the top of the schedule: the rate warms up "
                       "over --warmup steps, then halves every --lr-half-life steps down to --min-lr. Too high "
                       "and the loss jumps or turns NaN; too low and it crawls.")
    warmup: int = option(50, "steps of linear learning-rate warm-up")
    lr_half_life: int = option(350, "steps for the learning rate to halve after warm-up (0 = constant)")
    min_lr: float = option(1e-4, "floor the learning rate decays to (at most --lr: a higher floor holds it at --lr)")
    clip: float = option(5.0, "gradient-norm clipping")
    steps: int | None = option(None, "stop at this total step count")
    epochs: float | None = option(None, "stop at this many passes over the training text")
    minutes: float | None = option(None, "stop after this many minutes (default when no budget is given: 10)")
    val_fraction: float = option(0.1, "fraction held out (from the end) for validation")
    val_every: int = option(200, "validate, sample and save every this many steps, and also by time "
                                 "(see --val-seconds)",
                            "A validation measures the loss on the held-out text, shows a sample and saves a "
                            "checkpoint (and the best so far). Besides every this many steps it comes by time: "
                            "the first within --val-seconds (30) of the start, then spaced so validation takes "
                            "at most about a tenth of the time. The live view says when the next one comes.")
    val_seconds: float = option(30.0, "validate by time as well: the first within this many seconds of the start, "
                                      "then whenever this long has passed and validation would take at most "
                                      "about a tenth of the time since the last one (0 = by steps only)")
    seed: int = option(1234, "seed for weights, dropout and samples",
                       "The same seed and settings on the same device give the same run, step for step.")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps",
                         "auto picks the CUDA GPU with the most free memory, else Apple's MPS, else the CPU.")
    threads: int | None = option(None, THREADS_HELP)
    amp: bool = option(True, "bf16 mixed precision where the device has fast bf16")
    amp_dtype: str = option("auto", "the type --amp computes in: auto, bf16 or fp16",
                            "auto: bf16 where the device has fast bf16 (recent GPUs, CPUs with bf16 units), fp16 "
                            "with a gradient scaler on a GPU without it (T4, V100), else full precision. fp16 "
                            "scales the loss so small gradients survive, and skips a step whose gradients "
                            "overflowed (the scale then halves).")
    log_every: int = option(0, "steps between step events (0 = about four a second)")
    system_every: float = option(5.0, "seconds between readings of CPU, memory and GPU figures, recorded with the "
                                      "run (0 = off)",
                                 "A thread beside training reads the process's CPU use and memory and, on a GPU, its "
                                 "utilisation, memory, power and temperature (NVML, where nvidia-ml-py is "
                                 "installed); they go into metrics.jsonl and show under the run's header.")
    run_name: str | None = option(None, "run folder name (default: generated)")
    runs_dir: str | None = option(None, "where runs live (default: $RNN_PLAYGROUND_RUNS or ./checkpoints)")

    def check_types(self) -> None:
        """Each setting has its declared type: a checkpoint's metadata or a form can hold anything."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if value is None and "None" in kind:
                continue
            if kind.startswith("bool"):
                ok, wanted = isinstance(value, bool), "true or false"
            elif kind.startswith("int"):
                ok, wanted = isinstance(value, int) and not isinstance(value, bool), "a whole number"
            elif kind.startswith("float"):
                ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
            else:
                ok, wanted = isinstance(value, str), "text"
            if not ok:
                raise ConfigError(f"{flag_of(f.name)} must be {wanted}, got {value!r}.")
        if self.amp_dtype not in AMP_DTYPES:
            raise ConfigError(f"--amp-dtype must be one of {', '.join(AMP_DTYPES)}, got {self.amp_dtype!r}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[_Config], data: dict) -> _Config:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainConfig(LoopConfig):
    """Everything that defines a run: a character run's own settings on top of the loop's."""
    corpus: str = option(DEFAULT_CORPUS, "corpus: builtin:python-stdlib, tinyshakespeare, anna, a file or a folder",
                         "The text the model learns to continue, character by character. builtin:python-stdlib "
                         "ships with the app; tinyshakespeare and anna download once and are verified; a folder "
                         "is read recursively (--glob picks the files). The last tenth is held out for validation "
                         "(--val-fraction).")
    glob: str = option("*", "file pattern when the corpus is a folder")
    embed: int = option(64, "embedding size (the one-hot input times a learned matrix), or onehot: the one-hot "
                            "rows themselves into the first layer, as in the course",
                        "Each character becomes a learned vector of this many numbers before the first layer. "
                        "A few dozen is plenty for a vocabulary of a few hundred characters. onehot feeds the "
                        "first layer the character's one-hot row (as wide as the vocabulary) with no embedding "
                        "layer: the course's exact input. The Lesson screen's Encoding page shows both.")
    ema: float = option(0.99, "keep an exponential moving average of the weights with this decay (about the "
                              "last 1/(1-ema) steps); validation, samples and saved models use it (0 = off)",
                       "The average of the recent weights predicts better than the latest step's. Checkpoints "
                       "hold the raw weights too, so resuming continues exactly.")
    val_streams: int = option(32, "validation reads the split as this many parallel streams (1 = one stream)")
    val_sample: int = option(500_000, "held-out characters each validation reads: a fixed sample spread over the "
                                      "split when it is longer; the whole split is read when a run finishes "
                                      "(0 = the whole split every time)")
    sample_chars: int = option(200, "length of the sample shown at each validation (0 = none)")
    test_fraction: float = option(0.0, "fraction held out at the very end, after the validation part, as a test "
                                       "split that training and validation never see (`eval --split test`)")

    def validate(self) -> None:
        """Refuse any unusable setting, naming its flag ("--hidden must ..."), before anything is loaded
        or allocated. The app's form shows these same messages beside its fields."""
        self.check_types()
        for name in ("hidden", "layers", "batch", "seq", "val_every", "val_streams"):
            _check_range(name, getattr(self, name), 1)
        if self.embed < 0:
            raise ConfigError(f"--embed must be an embedding size of at least 1, or {ONEHOT_NAME} (one-hot input, "
                              f"no embedding layer), got {self.embed}.")
        for name in ("warmup", "lr_half_life", "log_every"):
            _check_range(name, getattr(self, name), 0, note="0 = off")
        _check_range("sample_chars", self.sample_chars, 0, MAX_SAMPLE_CHARS, note="0 = none")
        _check_range("seed", self.seed, 0, MAX_SEED)
        if not 0 < self.lr < 10:  # also refuses NaN
            raise ConfigError(f"--lr must be positive (and sane), got {self.lr}.")
        if not 0 <= self.min_lr < 10:
            raise ConfigError(f"--min-lr (the floor the learning rate decays to) must be zero or positive (and "
                              f"sane), got {self.min_lr:g}. Set --min-lr between 0 and --lr ({self.lr:g}).")
        if self.val_sample < 0:
            raise ConfigError(f"--val-sample must be 0 (the whole held-out split) or a number of characters, "
                              f"got {self.val_sample}.")
        if not 0 <= self.val_fraction < 0.9:
            raise ConfigError(f"--val-fraction must be in [0, 0.9), got {self.val_fraction}.")
        if not (0 <= self.test_fraction and self.test_fraction + self.val_fraction < 0.9):  # also refuses NaN
            raise ConfigError(f"--test-fraction must be 0 or more, and with --val-fraction ({self.val_fraction:g}) "
                              f"below 0.9, got {self.test_fraction:g}.")
        if self.steps is not None:
            _check_range("steps", self.steps, 1)
        for name in ("epochs", "minutes"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_BUDGET:
                raise ConfigError(f"--{name} must be a positive number (at most {MAX_BUDGET:g}), got {value}.")
        if not 0 < self.clip < math.inf:
            raise ConfigError(f"--clip must be a positive number, got {self.clip}.")
        if not 0 <= self.val_seconds < math.inf:  # also refuses NaN
            raise ConfigError(f"--val-seconds must be zero (validate by steps only) or a positive number of "
                              f"seconds, got {self.val_seconds}.")
        if not 0 <= self.system_every <= MAX_SYSTEM_EVERY:  # also refuses NaN
            raise ConfigError(f"--system-every must be zero (no system figures) or a positive number of seconds, "
                              f"at most {MAX_SYSTEM_EVERY:,} (a day), got {self.system_every}.")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema must be in [0, 1) (0 = no weight averaging), got {self.ema}.")
        if self.cell not in CELLS:
            raise ConfigError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}.")
        check_corpus_flag(self.corpus)
        glob = Path(self.glob)
        if not self.glob.strip() or glob.is_absolute() or ".." in glob.parts:
            raise ConfigError(f"--glob must be a file pattern inside the corpus folder, such as '*.txt', "
                              f"got {self.glob!r}.")
        if self.threads is not None:
            check_threads(self.threads)
        ModelConfig(vocab_size=1, cell=self.cell, hidden=self.hidden, layers=self.layers, embed=self.embed,
                    dropout=self.dropout)
        self.check_memory(device_for_flag(self.device))

    def training_bytes(self, vocab_size: int = 1) -> tuple[int, int]:
        """About what training takes, in bytes: (the weights four or five times over: weights, gradients,
        Adam's two moments, the weight average; the activations backprop keeps for one window)."""
        c = self.model_config(vocab_size)
        embed_rows = vocab_size if self.embed > 1 else 0  # a series model (embed 1) reads its inputs directly
        weights = (embed_rows * c.embed + recurrent_parameters(c.cell, c.input_size, c.hidden, c.layers)
                   + c.hidden * vocab_size + vocab_size)
        activations = self.batch * self.seq * c.layers * c.hidden * (GATES[c.cell] + 2)
        return 4 * weights * (4 + (1 if self.ema else 0)), 4 * activations

    def check_memory(self, device: torch.device, vocab_size: int = 1) -> None:
        """Refuse, before allocating, a model whose training cannot fit in the memory free on `device`."""
        weights, activations = self.training_bytes(vocab_size)
        free = free_memory(device) if weights + activations > 64 * 2**20 else None  # small: no need to look
        if free is not None and weights + activations > free:
            embed = f", --embed {self.embed}" if self.embed > 1 else ""  # one-hot: the vocabulary sets the width
            raise ConfigError(f"--hidden {self.hidden}, --layers {self.layers}{embed}, --batch {self.batch} and --seq "
                              f"{self.seq} need about {weights + activations:,} bytes to train ({weights:,} for the "
                              f"weights and optimizer state, {activations:,} for the activations), more than the "
                              f"{free:,} bytes free on {device}. Lower the largest of them.")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, cell=self.cell, hidden=self.hidden, layers=self.layers,
                           embed=self.embed, dropout=self.dropout)


def embed_from_text(text: str) -> int:
    """The --embed option's text: an embedding size, or "onehot" (also 0) for one-hot input."""
    text = str(text).strip()
    if text.lower() in (ONEHOT_NAME, "one-hot"):
        return ONEHOT
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"--embed must be an embedding size (a whole number, such as 64) or {ONEHOT_NAME} "
                          f"(one-hot input, no embedding layer), got '{text}'.") from None


def flag_of(name: str) -> str:
    """The command-line flag of a setting: val_every -> --val-every (messages name settings so)."""
    return "--" + name.replace("_", "-")


def _check_range(name: str, value: int, low: int, high: int | None = None, note: str = "") -> None:
    if value < low or (high is not None and value > high):
        bound = f"from {low:,} to {high:,}" if high is not None else f"at least {low}"
        raise ConfigError(f"{flag_of(name)} must be {bound}{f' ({note})' if note else ''}, got {value}.")


def check_corpus_flag(spec: str) -> None:
    """--corpus names something (what it names is checked when it is read)."""
    if not spec.strip():
        raise ConfigError("--corpus must name a corpus: builtin:python-stdlib, a named corpus, a file or a folder.")

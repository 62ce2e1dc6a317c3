"""Time-series RNN: a model, a Trainer task, one-step and free-running predictions, metrics.

`SeriesTask` plugs into core.trainer.Trainer, so a series run has the same events, run
folder, safetensors checkpoints, pause/stop and resume as a character run. The data side
(signals, CSV, split, standardization) lives in core.series_data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import runs
from .checkpoint import Checkpoint, load_checkpoint
from .config import MAX_SEED, LoopConfig, TrainConfig, flag_of, new_default, option
from .device import resolve_device
from .errors import CheckpointError, ConfigError, PlaygroundError
from .model import CELLS, RecurrentConfig, recurrent_parameters
from .series_data import (
    SIGNALS,
    TRAIN_FLAGS,
    Normalizer,
    SeriesData,
    SeriesError,
    check_freqs,
    load_csv,
    load_signal,
    parse_freqs,
    split_point,
)
from .trainer import TrainControl, Trainer

__all__ = ["SeriesConfig", "SeriesModelConfig", "SeriesRNN", "SeriesTask", "Predictions", "Metric", "PRESETS",
           "make_config", "load_data", "new_series_trainer", "predict", "resume_series", "load_series", "LoadedSeries",
           "SeriesError", "SeriesData", "Normalizer"]

KIND = "series"
MAX_SIGNAL_POINTS = 100_000_000  # a built-in signal's --length (800 MB of float64)
EVAL_CHUNK = 4096  # teacher-forced evaluation runs the series in chunks of this many points, carrying the state


# --------------------------------------------------------------------------- settings

@dataclass
class SeriesConfig(LoopConfig):
    """Everything that defines a series run: its data and preset on top of the loop's settings.
    Each field's help is the CLI's help text."""
    # data
    signal: str | None = option(None, f"built-in signal: {', '.join(SIGNALS)} (default: sine, unless --csv)")
    csv: str | None = option(None, "read the series from this CSV file instead of a built-in signal")
    column: str | None = option(None, "CSV target column: a header name or 0-based index "
                                      "(default: the only numeric column)")
    inputs: str | None = option(None, "CSV extra input columns, comma-separated names or indices")
    header: str = option("auto", "CSV header row: yes, no, or auto (a first row of names, none of them a number "
                                 "or n/a, over columns of numbers)")
    drop_bad_rows: bool = option(False, "skip CSV rows with missing or non-numeric values instead of stopping")
    length: int = option(2000, "points of a built-in signal (time advances pi/20 per point, as in the course)")
    noise: float | None = option(None, "std of Gaussian noise added to a built-in signal (random-walk: of each "
                                       "step); default 0.1 for noisy-sine and random-walk, 0 otherwise")
    freqs: str | None = option(None, "angular frequencies of a built-in signal, comma-separated: sin(f*t) repeats "
                                     "every 40/f points (default 1; sines: 1,1.7,3.1)")
    data_seed: int = option(0, "seed for a built-in signal's noise and phases")
    period: int = option(0, "seasonal period in points for the seasonal-naive baseline "
                            "(0: the built-in signal's own period; none for CSV)")
    preset: str | None = option(None, "course: the lesson's settings (RNN, hidden 32, 1 layer, Adam lr 0.01 "
                                      "constant, one sequence of 20 points at a time, 75 steps)")
    # The loop's settings where a series run has its own default or words (the rest are LoopConfig's).
    hidden: int = new_default(LoopConfig, "hidden", 32)
    layers: int = new_default(LoopConfig, "layers", 1)
    dropout: float = new_default(LoopConfig, "dropout", 0.0)
    batch: int = option(8, "parallel streams per step, each a contiguous stretch of the training part "
                           "(1 = the course's one sequence at a time)")
    seq: int = option(20, "points per window (backprop through time; the course uses 20)")
    lr: float = new_default(LoopConfig, "lr", 1e-2)
    warmup: int = new_default(LoopConfig, "warmup", 20)
    lr_half_life: int = new_default(LoopConfig, "lr_half_life", 500)
    steps: int | None = option(None, "stop at this total step count (default when no budget is given: 2000)")
    epochs: float | None = option(None, "stop at this many passes over the training part")
    minutes: float | None = option(None, "stop after this many minutes")
    val_fraction: float = option(0.2, "fraction at the end held out for validation (split by time, no shuffling)")
    val_every: int = option(100, "validate and save every this many steps, and also by time (see --val-seconds)")
    seed: int = option(1234, "seed for weights and dropout")
    amp: bool = option(False, "bf16 mixed precision (off by default: regression needs the precision, and these "
                              "models are small)")

    DEFAULT_STEPS = 2000
    CSV_ONLY = ("column", "inputs", "header", "drop_bad_rows")     # settings that only a CSV file uses
    SIGNAL_ONLY = ("length", "noise", "freqs", "data_seed")        # settings that only a built-in signal uses

    @property
    def source(self) -> str:
        return f"csv:{self.csv}" if self.csv else f"signal:{self.signal or 'sine'}"

    def validate(self, given: Iterable[str] | None = None) -> None:
        """Refuse unusable settings. `given`: the names of the settings the user set (a CSV-only setting
        given for a built-in signal, or the reverse, is refused rather than ignored); by default, the
        settings that differ from their defaults."""
        self.check_types()
        if self.csv and self.signal:
            raise ConfigError("Give either --signal or --csv, not both.")
        if not self.csv and (self.signal or "sine") not in SIGNALS:
            raise ConfigError(f"--signal must be a built-in signal ({', '.join(SIGNALS)}), got {self.signal!r}; "
                              "or read a file with --csv FILE.")
        if given is None:
            given = {f.name for f in fields(self) if getattr(self, f.name) != f.default}
        self._check_source_settings(set(given))
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"--preset must be one of: {', '.join(PRESETS)}; got {self.preset!r}.")
        if self.period < 0:
            raise ConfigError(f"--period must be 0 (none/automatic) or a positive number of points, got {self.period}.")
        if not 2 <= self.length <= MAX_SIGNAL_POINTS:
            raise ConfigError(f"--length must be from 2 to {MAX_SIGNAL_POINTS:,} points, got {self.length}.")
        if self.noise is not None and not 0 <= self.noise < math.inf:
            raise ConfigError(f"--noise must be zero or a positive number, got {self.noise}.")
        if not 0 <= self.data_seed <= MAX_SEED:
            raise ConfigError(f"--data-seed must be from 0 to {MAX_SEED:,}, got {self.data_seed}.")
        if not self.csv:
            check_freqs(self.signal or "sine", parse_freqs(self.freqs))
        if self.header not in ("auto", "yes", "no"):
            raise ConfigError(f"--header must be auto, yes or no, got {self.header!r}.")
        self.train_config().validate()
        self.model_config(1)

    def _check_source_settings(self, given: set[str]) -> None:
        other = self.SIGNAL_ONLY if self.csv else self.CSV_ONLY
        wrong = [name for name in other if name in given]
        if not wrong:
            return
        flags = " and ".join(", ".join(flag_of(name) for name in wrong).rsplit(", ", 1))
        one = len(wrong) == 1
        if self.csv:
            raise ConfigError(f"{flags} {'sets' if one else 'set'} up a built-in signal, but the data here is the "
                              f"CSV file {self.csv}, so {'it' if one else 'they'} would be ignored. Leave "
                              f"{'it' if one else 'them'} out, or use --signal NAME instead of --csv.")
        raise ConfigError(f"{flags} {'applies' if one else 'apply'} to a CSV file, but the data here is the "
                          f"built-in signal '{self.signal or 'sine'}', so {'it' if one else 'they'} would be "
                          f"ignored. Leave {'it' if one else 'them'} out, or read a file with --csv FILE.")

    def with_source(self, csv: str | None = None, signal: str | None = None) -> SeriesConfig:
        """These settings on another data source: a new CSV file drops the signal and its settings, a
        new signal drops the CSV file and its settings."""
        if csv:
            return replace(self, csv=csv, signal=None, **_defaults(self.SIGNAL_ONLY))
        if signal:
            return replace(self, signal=signal, csv=None, **_defaults(self.CSV_ONLY))
        return self

    def train_config(self) -> TrainConfig:
        """The Trainer's view: loop settings; series-only settings live in the checkpoint's 'series' metadata."""
        budget = {"steps": self.steps, "epochs": self.epochs, "minutes": self.minutes}
        if all(v is None for v in budget.values()):
            budget["steps"] = self.DEFAULT_STEPS
        settings = {f.name: getattr(self, f.name) for f in fields(LoopConfig)}
        # No weight averaging: the lesson's small series models train to convergence, and the
        # course preset's 75 steps would mostly average the start.
        # embed 1: a series model has no embedding (its memory estimate reads the inputs directly).
        settings.update(budget, corpus=self.source, sample_chars=0, val_streams=1, ema=0.0, embed=1)
        return TrainConfig(**settings)

    def model_config(self, features: int) -> SeriesModelConfig:
        return SeriesModelConfig(inputs=features, cell=self.cell, hidden=self.hidden, layers=self.layers,
                                 dropout=self.dropout)


def _defaults(names) -> dict:
    return {f.name: f.default for f in fields(SeriesConfig) if f.name in names}


# The course's Simple_RNN notebook: nn.RNN(1, 32, 1 layer) -> Linear(32, 1), MSE, Adam lr 0.01, a batch of
# one sequence of 20 points with the hidden state carried from step to step, 75 steps.
PRESETS: dict[str, dict] = {
    "course": dict(cell="rnn", hidden=32, layers=1, dropout=0.0, lr=0.01, warmup=0, lr_half_life=0,
                   batch=1, seq=20, steps=75),
}
_BUDGET = ("steps", "epochs", "minutes")


def make_config(preset: str | None = None, **given) -> SeriesConfig:
    """A SeriesConfig from the settings given (None = not given), a preset filling in the rest.
    A preset's step budget applies only when no budget is given."""
    given = {k: v for k, v in given.items() if v is not None}
    settings: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"--preset must be one of: {', '.join(PRESETS)}; got {preset!r}.")
        settings.update(PRESETS[preset])
        if any(k in given for k in _BUDGET):
            for k in _BUDGET:
                settings.pop(k, None)
    settings.update(given)
    config = SeriesConfig(preset=preset, **settings)
    config.validate(given)
    return config


def load_data(config: SeriesConfig, flags: tuple[str, ...] = TRAIN_FLAGS) -> SeriesData:
    """The run's data; `flags`: the CSV flags a message may suggest (a command without them passes ())."""
    if config.csv:
        return load_csv(config.csv, config.column, config.inputs, header=config.header,
                        drop_bad_rows=config.drop_bad_rows, flags=flags)
    return load_signal(config.signal or "sine", config.length, noise=config.noise, freqs=parse_freqs(config.freqs),
                       seed=config.data_seed)


def resolve_period(config_period: int, data: SeriesData) -> int | None:
    return config_period if config_period > 0 else data.period


def new_series_trainer(config: SeriesConfig, control: TrainControl | None = None,
                       data: SeriesData | None = None) -> Trainer:
    """A Trainer for a new series run: loads the data, fits the standardization on the training part."""
    config.validate()
    if config.csv and Path(config.csv).expanduser().exists():  # stored absolute: --resume works from any folder
        config = replace(config, csv=os.path.abspath(Path(config.csv).expanduser()))
    lock = runs.claim_new_run(config.runs_dir, config.run_name)  # before the data loads: refusals come first
    try:
        data = data if data is not None else load_data(config)
        task = SeriesTask(config, data, resolve_device(config.device))
        return Trainer(config.train_config(), control, task=task, lock=lock)
    except BaseException:
        lock.release()
        raise


# --------------------------------------------------------------------------- model

@dataclass(frozen=True)
class SeriesModelConfig(RecurrentConfig):
    inputs: int = 1
    cell: str = "lstm"
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    outputs: int = 1

    positive = ("inputs", "hidden", "layers", "outputs")

    def parameter_count(self) -> int:
        return (recurrent_parameters(self.cell, self.inputs, self.hidden, self.layers)
                + self.hidden * self.outputs + self.outputs)


class SeriesRNN(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU over (batch, time, features) -> linear -> next value of the target."""

    def __init__(self, config: SeriesModelConfig):
        super().__init__()
        self.config = config
        self.rnn = CELLS[config.cell](config.inputs, config.hidden, config.layers, batch_first=True,
                                      dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.outputs)

    def init_state(self, batch: int, device: torch.device | str | None = None):
        """Zero state, shaped (layers, batch, hidden)."""
        device = device if device is not None else self.head.weight.device
        zeros = torch.zeros(self.config.layers, batch, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(self, x: torch.Tensor, state=None):
        """x (batch, time, inputs) -> predictions (batch, time, outputs), new state."""
        out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state


# --------------------------------------------------------------------------- the Trainer task

class SeriesTask:
    """Next-value regression on a series, in the Trainer's Task protocol.

    The training part is cut into `batch` contiguous streams; window w covers points
    [w*seq, (w+1)*seq) of every stream and the hidden state is carried (detached) from one
    window to the next, reset each epoch: with batch 1 this is exactly the course's loop.
    Loss and validation loss are MSE in standardized units; validation is the teacher-forced
    one-step prediction of every validation point, after reading the series from its start.
    """

    kind = KIND

    def __init__(self, config: SeriesConfig, data: SeriesData, device: torch.device | str,
                 normalizer: Normalizer | None = None):
        self.config, self.data, self.device = config, data, torch.device(device)
        self.split = split_point(data.points, config.val_fraction)
        train = data.values[:self.split]
        if normalizer is None:
            hint = ("Rescale the column (divide it by a power of ten) and start again." if config.csv
                    else "Lower --noise.")
            normalizer = Normalizer.fit(train, data.names, data.source, hint)
        elif normalizer.features != data.features:
            raise SeriesError(f"The checkpoint was trained on {normalizer.features} feature(s) but {data.source} "
                              f"gives {data.features} ({', '.join(data.names)}). Use the same --column/--inputs.")
        self.normalizer = normalizer
        self.notes: list[str] = []  # things the user should know about the run, shown with its summary
        self.period = resolve_period(config.period, data)
        if self.period is not None and self.period > self.split:
            if config.period > 0:
                raise SeriesError(f"--period {self.period} is longer than the training part of {data.source} "
                                  f"({self.split} points), so the seasonal-naive baseline has nothing to look "
                                  "back at. Use a shorter period.")
            self.notes.append(f"no seasonal-naive baseline: {data.source} repeats every {self.period} points, more "
                              f"than its {self.split}-point training part; for one, use a longer --length or a "
                              "lower --val-fraction")
            self.period = None
        self.values = torch.from_numpy(normalizer.standardize(data)).to(self.device)
        usable = self.split - 1  # input/target pairs inside the training part
        columns = usable // config.batch // config.seq * config.seq
        if columns == 0:
            most_batch = usable // config.seq
            hint = (f"lower --batch to at most {most_batch}" if most_batch >= 1
                    else f"lower --seq to at most {max(1, usable)} (and --batch to 1)")
            raise SeriesError(f"{data.source}: {self.split} training points are too few for --batch "
                              f"{config.batch} x --seq {config.seq} (each step needs batch*seq+1 points). "
                              f"Use a longer series, {hint}, or lower --val-fraction.")
        used = config.batch * columns
        features = data.features
        self.inputs = self.values[:used].reshape(config.batch, columns, features)
        self.targets = self.values[1:used + 1, :1].reshape(config.batch, columns, 1)
        self._windows = columns // config.seq
        self.tokens_per_step = config.batch * config.seq
        self.train_chars, self.val_chars = self.split, data.points - self.split
        self.unit = "points"
        torch.manual_seed(config.seed)  # the Trainer seeds only after a given task is built
        self.model = SeriesRNN(config.model_config(features)).to(self.device)

    @property
    def windows(self) -> int:
        return self._windows

    def init_state(self):
        return self.model.init_state(self.config.batch, self.device)

    def loss(self, window: int, state, step: int):
        start = window * self.config.seq
        inputs = self.inputs[:, start:start + self.config.seq]
        targets = self.targets[:, start:start + self.config.seq]
        predictions, state = self.model(inputs, state)
        return F.mse_loss(predictions.float(), targets), state

    def evaluate(self, autocast=None, whole: bool = False) -> float | None:  # always whole: a series is small
        if self.split >= self.data.points:
            return None
        predictions, _ = teacher_forced(self.model, self.values, autocast=autocast)
        # predictions[i] is the prediction for point i + 1
        val = predictions[self.split - 1:-1]
        return float(F.mse_loss(val, self.values[self.split:, 0]))

    def preview(self, step: int) -> str | None:
        if self.split >= self.data.points:
            return None
        result = predict(self.model, self.data, self.normalizer, self.config.val_fraction, period=self.period)
        return result.summary()

    def meta(self) -> dict:
        return {"kind": self.kind, "series": self.config.to_dict(), "normalizer": self.normalizer.to_dict(),
                "data": {"source": self.data.source, "names": list(self.data.names), "points": self.data.points,
                         "split": self.split, "period": self.period, "fingerprint": self.data.fingerprint,
                         "dropped_lines": list(self.data.dropped_lines), "header_line": self.data.header_line}}


# --------------------------------------------------------------------------- prediction

def teacher_forced(model: SeriesRNN, values: torch.Tensor, state=None, autocast=None,
                   chunk: int = EVAL_CHUNK) -> tuple[torch.Tensor, object]:
    """Read standardized `values` (points, features) from `state` (None = zero), dropout off.
    Returns the target predictions (points,), where entry i predicts point i + 1, and the final state."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode(), (autocast() if autocast else nullcontext()):
            for start in range(0, len(values), chunk):
                predictions, state = model(values[None, start:start + chunk], state)
                outputs.append(predictions[0, :, 0].float())
    finally:
        model.train(was_training)
    if not outputs:
        return torch.zeros(0, device=values.device), state
    return torch.cat(outputs), state


def free_running(model: SeriesRNN, first: torch.Tensor, state, steps: int,
                 extra: torch.Tensor | None = None) -> torch.Tensor:
    """Feed predictions back: `first` is the prediction for the next point and `state` the state that
    made it; each prediction becomes the next input (with extra inputs taken from `extra`, one row per
    fed step). Returns `steps` standardized predictions."""
    was_training = model.training
    model.eval()
    out = [first.reshape(())]
    try:
        with torch.inference_mode():
            for j in range(steps - 1):
                x = out[-1].reshape(1, 1, 1)
                if extra is not None and extra.shape[-1]:
                    x = torch.cat([x, extra[j].reshape(1, 1, -1)], dim=-1)
                prediction, state = model(x, state)
                out.append(prediction[0, 0, 0].float())
    finally:
        model.train(was_training)
    return torch.stack(out[:steps]) if steps > 0 else first.new_zeros(0)


@dataclass
class Metric:
    name: str
    mse: float
    mae: float


def _metric(name: str, predictions: np.ndarray, target: np.ndarray) -> Metric:
    error = predictions - target
    return Metric(name, float(np.mean(error ** 2)), float(np.mean(np.abs(error))))


@dataclass
class Predictions:
    """Everything a plot needs, in original units. Indices are positions in the series."""
    series: np.ndarray            # the whole target series
    split: int                    # index of the first validation point
    val_index: np.ndarray         # split .. points-1
    target: np.ndarray            # true values over the validation range
    one_step: np.ndarray          # model, teacher forcing: each point predicted from the true past
    free_run: np.ndarray          # model fed its own predictions from the split on (true extra inputs)
    last_value: np.ndarray        # baseline: the previous true value
    seasonal: np.ndarray | None   # baseline: the true value one period earlier (when a period is known)
    period: int | None
    forecast_index: np.ndarray    # points .. points+steps-1
    forecast: np.ndarray          # free-running forecast past the end of the data
    metrics: list[Metric]         # MSE and MAE over the validation range

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def summary(self) -> str:
        if not self.metrics:
            return "no validation range"
        return "validation MSE: " + ", ".join(f"{m.name} {m.mse:.3g}" for m in self.metrics)


MODEL, FREE_RUN, LAST_VALUE, SEASONAL = "model (one step)", "model (free-running)", "last value", "seasonal naive"


def predict(model: SeriesRNN, data: SeriesData, normalizer: Normalizer, val_fraction: float, *, steps: int = 0,
            period: int | None = None) -> Predictions:
    """One-step predictions over the validation range, a free run from the split across it, baselines,
    metrics, and a free-running forecast `steps` points past the end."""
    if data.features != model.config.inputs:
        extra = model.config.inputs - 1
        reads = "the target alone" if not extra else f"the target and {extra} extra input column(s)"
        pick = "" if data.source.startswith("signal ") else " Pick as many columns with --column and --inputs."
        raise SeriesError(f"The model reads {model.config.inputs} feature(s) ({reads}) but {data.source} gives "
                          f"{data.features} ({', '.join(data.names)}).{pick}")
    if steps < 0:
        raise SeriesError(f"--steps must be zero or positive, got {steps}.")
    if steps > 0 and data.features > 1:
        raise SeriesError(f"A free-running forecast past the end of {data.source} would need future values of the "
                          f"extra input columns ({', '.join(data.names[1:])}), which the data does not have. Use "
                          "--steps 0 for the validation metrics, or train on the target column alone to forecast.")
    if period is not None and period < 0:
        raise SeriesError(f"--period must be 0 (no seasonal-naive baseline) or a positive number of points, "
                          f"got {period}.")
    period = period or None
    device = next(model.parameters()).device
    points = data.points
    split = split_point(points, val_fraction)
    if split < 1:
        raise SeriesError(f"{data.source} is too short to predict from ({points} points).")
    if period is not None and period > split:
        raise SeriesError(f"--period {period} is longer than the training part ({split} points), so the "
                          "seasonal-naive baseline has nothing to look back at. Use a shorter period.")
    values = torch.from_numpy(normalizer.standardize(data)).to(device)
    head, state_at_split = teacher_forced(model, values[:split])
    tail, state_at_end = teacher_forced(model, values[split:], state_at_split)
    target = data.target
    val = points - split
    one_step = torch.cat([head[-1:], tail[:-1]]) if val else head[:0]
    free = free_running(model, head[-1], state_at_split, val, values[split:-1, 1:]) if val else head[:0]
    last_prediction = tail[-1] if val else head[-1]
    forecast = free_running(model, last_prediction, state_at_end, steps)

    def to_units(t: torch.Tensor) -> np.ndarray:
        return normalizer.inverse_target(t.detach().cpu().double().numpy())

    truth = target[split:]
    last_value = target[split - 1:points - 1]
    seasonal = target[split - period:points - period] if period else None
    one_step_units, free_units = to_units(one_step), to_units(free)
    metrics = []
    if val:
        metrics = [_metric(MODEL, one_step_units, truth), _metric(LAST_VALUE, last_value, truth)]
        if seasonal is not None:
            metrics.append(_metric(SEASONAL, seasonal, truth))
        metrics.append(_metric(FREE_RUN, free_units, truth))
    return Predictions(series=target.copy(), split=split, val_index=np.arange(split, points), target=truth.copy(),
                       one_step=one_step_units, free_run=free_units, last_value=last_value.copy(),
                       seasonal=None if seasonal is None else seasonal.copy(), period=period,
                       forecast_index=np.arange(points, points + steps), forecast=to_units(forecast),
                       metrics=metrics)


# --------------------------------------------------------------------------- checkpoints: resume and load

def _series_checkpoint(target: Path | str, prefer: str = runs.LAST) -> Checkpoint:
    checkpoint = load_checkpoint(runs.resolve_checkpoint(target, prefer))
    kind = checkpoint.meta.get("kind", "char")
    if kind != KIND:
        raise CheckpointError(f"{checkpoint.path} is a {kind} checkpoint, not a time-series model. "
                              "Use `rnn-playground sample` or `train --resume` for character models.")
    return checkpoint


def _stored(checkpoint: Checkpoint) -> tuple[SeriesConfig, Normalizer]:
    try:
        config = SeriesConfig.from_dict(checkpoint.meta["series"])
        config.validate(given=())
        normalizer = Normalizer.from_dict(checkpoint.meta["normalizer"])
        data = checkpoint.meta.get("data", {})
        period = data.get("period") if isinstance(data, dict) else "not a table"
        if period is not None and (not isinstance(period, int) or isinstance(period, bool) or period < 0):
            raise SeriesError(f"its stored data description is unreadable (period {period!r})")
    except (KeyError, TypeError, AttributeError, PlaygroundError) as exc:
        raise CheckpointError(f"{checkpoint.path} lacks usable series settings ({exc}).") from None
    return config, normalizer


def _stored_model(checkpoint: Checkpoint) -> SeriesModelConfig:
    """The model description, checked against the tensors the file holds before anything is allocated."""
    try:
        model_config = SeriesModelConfig.from_dict(checkpoint.meta["model"])
    except (KeyError, TypeError, AttributeError, PlaygroundError) as exc:
        raise CheckpointError(f"{checkpoint.path} lacks a usable model description ({exc}).") from None
    checkpoint.check_weights(model_config.parameter_count())
    return model_config


def resume_series(target: Path | str, control: TrainControl | None = None, **overrides) -> Trainer:
    """Continue a series run from its last checkpoint (or a given file). Overrides (None = keep) may change
    the budget, the device, or the data (which keeps the checkpoint's standardization)."""
    lock = runs.RunLock.acquire(runs.resolve_checkpoint(target).parent)  # a live run is refused first
    try:
        checkpoint = _series_checkpoint(target)
        config, normalizer = _stored(checkpoint)
        _stored_model(checkpoint)
        config = _overridden(config, checkpoint, overrides)
        data = load_data(config)
        task = SeriesTask(config, data, resolve_device(config.device), normalizer)
        return Trainer(config.train_config(), control, task=task, resume_from=checkpoint, lock=lock)
    except BaseException:
        lock.release()
        raise


def _overridden(config: SeriesConfig, checkpoint: Checkpoint, overrides: dict) -> SeriesConfig:
    """A checkpoint's settings with the ones given (None = keep); a given budget replaces the stored one,
    a given --csv or --signal the stored data source. Only the settings given count as set."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if any(k in overrides for k in _BUDGET):
        config = replace(config, steps=None, epochs=None, minutes=None)
    config = config.with_source(overrides.get("csv"), overrides.get("signal"))
    config = replace(config, **overrides)
    config.validate(overrides)
    if config.csv and "csv" not in overrides and not Path(config.csv).exists():
        relative = "" if Path(config.csv).is_absolute() else ", relative to the folder training was started in"
        raise SeriesError(f"The run's data file {config.csv} (the path stored with {checkpoint.path}{relative}) "
                          "is not there any more. If it has moved, give its new path with --csv NEWPATH.")
    return config


@dataclass
class LoadedSeries:
    """A trained series model with what it was trained on."""
    model: SeriesRNN
    config: SeriesConfig
    normalizer: Normalizer
    checkpoint: Checkpoint

    def data(self, csv: str | None = None, column: str | None = None, inputs: str | None = None,
             signal: str | None = None) -> SeriesData:
        """The training data again (a built-in signal is regenerated; a CSV re-read), or another CSV or
        built-in signal; column and inputs pick other columns (None = the ones trained on). Reading data for
        a trained model takes no --drop-bad-rows or --header, so its errors do not suggest them."""
        overridden = _overridden(self.config, self.checkpoint,
                                 dict(csv=csv, signal=signal, column=column, inputs=inputs))
        return load_data(overridden, flags=())

    def period(self, data: SeriesData, override: int | None = None) -> int | None:
        if override is not None:
            if override < 0:
                raise SeriesError(f"--period must be 0 (no seasonal-naive baseline) or a positive number of "
                                  f"points, got {override}.")
            return override or None
        stored = self.checkpoint.meta.get("data", {})
        return stored["period"] if "period" in stored else resolve_period(self.config.period, data)

    def predict(self, steps: int = 0, *, csv: str | None = None, period: int | None = None) -> Predictions:
        data = self.data(csv)
        return predict(self.model, data, self.normalizer, self.config.val_fraction, steps=steps,
                       period=self.period(data, period))


def load_series(target: Path | str, device: str = "auto", prefer: str = runs.LAST) -> LoadedSeries:
    """A series model, its settings and standardization from a run folder or checkpoint file, on any device."""
    checkpoint = _series_checkpoint(target, prefer)
    config, normalizer = _stored(checkpoint)
    model = SeriesRNN(_stored_model(checkpoint))
    checkpoint.load_into(model)
    model = model.to(resolve_device(device)).eval()
    return LoadedSeries(model, config, normalizer, checkpoint)

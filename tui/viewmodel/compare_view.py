"""Runs compared: several runs' loss curves on shared axes and their best values side by side, as plain data
for the Runs screen's overlay and `rnn-playground runs --compare`.

A run's curves come from the one fold of its metrics.jsonl (monitor.RunMonitor), read incrementally from where
the last read ended, so a live run's curves grow at the cost of its new lines. Three x axes:
- steps;
- characters seen (points, for a series run): steps x batch x seq. `--batch` is the global batch, split across
  the ranks of a distributed run (core.distributed.check_split), so the world size is already in it. A resumed run
  that changed batch or seq counts each stretch with its own settings (each RunStarted starts one);
- time: the run's own elapsed training time (StepEvent.elapsed_s), which leaves out pauses and carries over
  resumes; a validation's time is interpolated between the step events around it."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.runs import METRICS, read_metrics, read_status, run_info

from .format import fmt_loss, format_duration
from .monitor import RunMonitor
from .series_view import PlotLine

AXES = ("steps", "characters", "time")
# A run's marker in the legend, the table and (under NO_COLOR) the plot: distinct without colour. Beyond eight
# runs they repeat; the legend still names each run.
RUN_MARKS = ("•", "x", "+", "o", "*", "#", "%", "@")
# Bookkeeping that does not change what a run learns: never listed among the settings compared.
NOT_SETTINGS = frozenset({"run_name", "runs_dir", "log_every", "system_every", "sample_chars", "threads", "model",
                          "resume"})


def run_mark(index: int) -> str:
    return RUN_MARKS[index % len(RUN_MARKS)]


def role_of(index: int) -> str:
    """The plot role (style) of the index-th run's line: run-0 .. run-7."""
    return f"run-{index % len(RUN_MARKS)}"


@dataclass(frozen=True)
class Curve:
    """One loss curve against the three axes, point by point."""
    steps: tuple[int, ...] = ()
    chars: tuple[int, ...] = ()
    seconds: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()

    def x(self, axis: str) -> tuple[float, ...]:
        return {"steps": self.steps, "characters": self.chars, "time": self.seconds}[axis]

    def __len__(self) -> int:
        return len(self.losses)


@dataclass(frozen=True)
class BestPoint:
    loss: float
    step: int
    chars: int
    seconds: float

    def at(self, axis: str) -> float:
        return {"steps": self.step, "characters": self.chars, "time": self.seconds}[axis]


@dataclass(frozen=True)
class RunCurves:
    """A run's curves and what the comparison table says of it, at one moment. Immutable: safe across threads."""
    name: str
    path: Path
    status: str                 # the fold's: training, paused, finished, stopped, error, idle (no metrics yet)
    unit: str                   # what the characters axis counts: characters, points
    settings: dict = field(default_factory=dict)
    train: Curve = Curve()
    val: Curve = Curve()
    last_train_loss: float | None = None

    @property
    def best_val(self) -> BestPoint | None:
        if not self.val.losses:
            return None
        i = min(range(len(self.val.losses)), key=self.val.losses.__getitem__)
        return BestPoint(self.val.losses[i], self.val.steps[i], self.val.chars[i], self.val.seconds[i])

    @property
    def active(self) -> bool:
        return self.status in ("starting", "training", "paused")


class CurveReader:
    """Reads one run's metrics.jsonl from where it last stopped and folds it (RunMonitor) into RunCurves.
    Not thread-safe: one thread reads at a time (a face's worker); the RunCurves it returns travel."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.monitor = RunMonitor()
        self._offset = 0
        # (first step, characters seen at it, characters per step) of each stretch a RunStarted begins
        self._stretches: list[tuple[int, int, int]] = []
        # (step, elapsed seconds) of each step event, in arrays that double as they fill: a live run's curves
        # are rebuilt at every read that adds to them, and converting lists each time was most of that read
        self._elapsed = np.empty((2, 1024))
        self._elapsed_count = 0
        self._curves: RunCurves | None = None

    def read(self) -> RunCurves:
        """The curves with whatever the file gained since the last read (the same object when nothing)."""
        records, self._offset = read_metrics(self.run_dir, self._offset)
        for record in records:
            if self.monitor.add_record(record):
                self._note(record)
        if records or self._curves is None:
            self._curves = self._build()
        return self._curves

    def _note(self, record: dict) -> None:
        kind = record.get("event")
        if kind == "started":
            config = record.get("config") or {}
            per_step = _int(config.get("batch")) * _int(config.get("seq"))
            start = _int(record.get("start_step"))
            self._stretches.append((start, self.chars_at(start, per_step), per_step))
        elif kind == "step" and isinstance(record.get("elapsed_s"), (int, float)):
            step, n = _int(record.get("step")), self._elapsed_count
            if n and step <= self._elapsed[0, n - 1]:  # a resume from an earlier checkpoint: its steps again
                n = int(np.searchsorted(self._elapsed[0, :n], step))
            if n == self._elapsed.shape[1]:
                self._elapsed = np.concatenate([self._elapsed, np.empty_like(self._elapsed)], axis=1)
            self._elapsed[:, n] = step, float(record["elapsed_s"])
            self._elapsed_count = n + 1

    def chars_at(self, step: int, per_step: int | None = None) -> int:
        """Characters seen by `step`: summed over the stretches before it, each at its own batch x seq."""
        i = bisect.bisect_right([s[0] for s in self._stretches], step) - 1
        if i < 0:  # before any stretch (or the first RunStarted resumed a run): at the rate given, or the first
            rate = per_step if per_step is not None else (self._stretches[0][2] if self._stretches else 0)
            return step * rate
        start, chars, rate = self._stretches[i]
        return chars + (step - start) * rate

    def _chars(self, steps: np.ndarray) -> np.ndarray:
        """chars_at for many steps at once (a live run's curves are rebuilt at every read that adds to them)."""
        if not self._stretches:
            return np.zeros_like(steps)
        starts, chars, rates = (np.asarray(column, dtype=np.int64) for column in zip(*self._stretches, strict=True))
        index = np.searchsorted(starts, steps, side="right") - 1
        before = index < 0  # before the first stretch: at its rate, from 0
        index = np.maximum(index, 0)
        return np.where(before, steps * rates[0], chars[index] + (steps - starts[index]) * rates[index])

    def _curve(self, steps: Sequence[int], losses: Sequence[float]) -> Curve:
        x = np.asarray(steps, dtype=np.int64)
        n = self._elapsed_count
        seconds = (np.interp(x, self._elapsed[0, :n], self._elapsed[1, :n]).tolist()
                   if n and len(x) else [0.0] * len(x))
        return Curve(tuple(steps), tuple(self._chars(x).tolist()), tuple(seconds), tuple(losses))

    def _build(self) -> RunCurves:
        snap = self.monitor.snapshot()
        config = snap.config or read_status(self.run_dir).get("config") or {}
        settings = {key: value for key, value in config.items()
                    if key not in NOT_SETTINGS and not isinstance(value, (dict, list))}
        return RunCurves(self.run_dir.name, self.run_dir, snap.status, snap.unit, settings,
                         self._curve(snap.train_steps, snap.train_losses), self._curve(snap.val_steps, snap.val_losses),
                         snap.loss)


def _int(value) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def check_compared(run_dirs: Iterable[Path | str], flag: str = "--compare") -> list[Path]:
    """The run folders to compare, or a PlaygroundError naming `flag`: fewer than two, one named twice, or a
    folder that is not a run."""
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise PlaygroundError(f"{flag} needs at least two run folders to compare, got {len(paths)}. "
                              f"Name two or more: {flag} checkpoints/RUN checkpoints/OTHER.")
    seen: set[Path] = set()
    for path in paths:
        if not path.is_dir() or (run_info(path) is None and not (path / METRICS).is_file()):
            raise PlaygroundError(f"{flag}: {path} is not a run folder (no run.json, checkpoint or {METRICS}). "
                                  "List the runs with: rnn-playground runs")
        if path.resolve() in seen:
            raise PlaygroundError(f"{flag}: {path} is named twice; name each run once.")
        seen.add(path.resolve())
    return paths


class Comparison:
    """Several runs read together (in the order given: that order gives each its marker)."""

    def __init__(self, run_dirs: Iterable[Path | str]):
        self.readers = [CurveReader(path) for path in run_dirs]

    def read(self) -> list[RunCurves]:
        return [reader.read() for reader in self.readers]


# --------------------------------------------------------------------------- the plot


def plot_lines(runs: Sequence[RunCurves], axis: str = "steps", which: str = "val") -> list[PlotLine]:
    """A line per run (validation or training loss against `axis`), named by its run; its role gives its style
    and mark (role_of, run_mark: the index-th run's)."""
    lines = []
    for index, run in enumerate(runs):
        curve = run.val if which == "val" else run.train
        lines.append(PlotLine(run.name, role_of(index),
                              np.asarray(curve.x(axis), dtype=np.float64), np.asarray(curve.losses, dtype=np.float64)))
    return lines


def plot_title(axis: str, which: str, unit: str = "characters") -> str:
    """ "val loss vs characters seen" ."""
    loss = "val loss" if which == "val" else "train loss"
    against = {"steps": "steps", "characters": f"{unit} seen", "time": "training time (pauses left out)"}[axis]
    return f"{loss} vs {against}"


def next_axis(axis: str) -> str:
    return AXES[(AXES.index(axis) + 1) % len(AXES)]


def fmt_count(value: float) -> str:
    """A count of characters for an axis or a table: 950, 12.3k, 4.5M, 1.2G."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def fmt_axis(axis: str, value: float) -> str:
    """A value on `axis` as people read it: a step number, a count of characters, a duration."""
    if axis == "characters":
        return fmt_count(value)
    if axis == "time":
        return format_duration(value)
    return f"{value:,.0f}"


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class CompareRow:
    mark: str
    name: str
    status: str
    best_val: BestPoint | None
    last_train_loss: float | None
    settings: dict

    def cells(self, axis: str) -> list[str]:
        """mark, run, best val, at (on `axis`), last train: the table's fixed cells."""
        best = self.best_val
        return [self.mark, self.name, fmt_loss(best.loss if best else None),
                fmt_axis(axis, best.at(axis)) if best else "-", fmt_loss(self.last_train_loss)]


@dataclass(frozen=True)
class CompareTable:
    rows: tuple[CompareRow, ...]
    differing: frozenset[str]   # settings whose values are not the same in every run
    keys: tuple[str, ...]       # every setting, in the runs' config order

    @property
    def differing_keys(self) -> list[str]:
        return [key for key in self.keys if key in self.differing]

    @property
    def shared(self) -> dict:
        """The settings every run has the same, with their value."""
        return {key: self.rows[0].settings.get(key) for key in self.keys if key not in self.differing} \
            if self.rows else {}


FIXED_COLUMNS = ("", "run", "best val", "at", "last train")


def compare_table(runs: Sequence[RunCurves]) -> CompareTable:
    keys: list[str] = []
    for run in runs:
        keys += [key for key in run.settings if key not in keys]
    missing = object()
    differing = frozenset(key for key in keys
                          if len({repr(run.settings.get(key, missing)) for run in runs}) > 1)
    rows = tuple(CompareRow(run_mark(i), run.name, run.status, run.best_val, run.last_train_loss, dict(run.settings))
                 for i, run in enumerate(runs))
    return CompareTable(rows, differing, tuple(keys))


def fmt_setting(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shared_phrases(table: CompareTable) -> list[str]:
    """ "cell lstm", "hidden 32", ... for the settings every run shares (the unset ones left out)."""
    return [f"{key} {fmt_setting(value)}" for key, value in table.shared.items() if value is not None]


def comparison_json(runs: Sequence[RunCurves]) -> dict:
    """What `runs --compare --json` prints: per run its best and last values and settings; the differing keys."""
    table = compare_table(runs)
    out = []
    for run, row in zip(runs, table.rows, strict=True):
        best = row.best_val
        out.append({"name": run.name, "path": str(run.path.resolve()), "mark": row.mark, "status": run.status,
                    "unit": run.unit,
                    "best_val_loss": best.loss if best else None, "best_val_step": best.step if best else None,
                    "best_val_chars": best.chars if best else None,
                    "best_val_seconds": best.seconds if best else None,
                    "last_train_loss": run.last_train_loss,
                    "steps": run.train.steps[-1] if run.train.steps else None,
                    "settings": run.settings})
    return {"runs": out, "differing": table.differing_keys}

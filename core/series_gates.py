"""Gate tracer for time-series models: what happens inside a SeriesRNN at every point of a series.

The same recurrence as core.gates (Recurrence.run_layer: one way to run it), with a value (or a
vector of features: the target first, then any extra input columns) as the input in place of a
character's embedding, and the model's prediction of the next value in place of the next-character
distribution. Per step and layer every quantity of the cell, as for a character model, plus:

- the input read (standardized, as the model reads it, and in the data's units),
- the prediction of the next value and the target (the true next value), standardized and in the
  data's units (denormalised with the run's Normalizer); the last step has no target (NaN).

SeriesTrace is a core.gates.Trace, so every per-unit reading of a character trace (values, at,
cell_update, most_active, state, saturation) works on it unchanged; what needs characters (text
features, unit search, next-character predictions, interventions and continuations) raises a TraceError
saying so.

    tracer = SeriesTracer.from_checkpoint("runs/mellow-newt")   # or SeriesTracer(model, normalizer)
    trace = tracer.trace(data)                                  # a core.series_data.SeriesData
    trace.values("c")                                           # [steps, layers, units]
    trace.prediction, trace.target                              # [steps], the data's units
    trace.step_info(3, layer=0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import runs
from .checkpoint import atomic_writer
from .device import torch_threads
from .errors import TraceError
from .gates import Recurrence, RecurrentState, RecurrentTracer, Trace, _Buffers, _finite_list
from .model import describe_model
from .series_data import Normalizer, SeriesData

JSON_FORMAT = "rnn-playground/series-gate-trace/1"
_NOT_TEXT = ("A time-series trace reads values, not characters: {what} applies to character models only. "
             "Use values(), step_info() and the prediction and target arrays.")


@dataclass(frozen=True)
class SeriesStepInfo:
    """Everything about one step of a series at one layer: what a stepping screen shows."""
    index: int
    layer: int
    inputs: np.ndarray             # [features] the data's units (target first)
    inputs_normalised: np.ndarray  # [features] standardized, as the model read them
    values: dict[str, np.ndarray]  # quantity key -> [units] at this layer
    prediction: float              # of the next value, data's units
    prediction_normalised: float
    target: float | None           # the true next value (None at the last step)
    target_normalised: float | None

    @property
    def error(self) -> float | None:
        """prediction - target, data's units."""
        return None if self.target is None else self.prediction - self.target


class SeriesTracer(RecurrentTracer):
    """Traces a series model (inputs -> LSTM/GRU/RNN -> linear -> next value) over a series.

    Keeps its own CPU copy of the weights. `normalizer`: the run's standardization (the model
    reads standardized values; the trace reports both scales)."""

    def __init__(self, model: nn.Module, normalizer: Normalizer, loop_threads: int | None = 1):
        self._set_loop_threads(loop_threads)
        where = f"this {type(model).__name__}"
        rnn, head = getattr(model, "rnn", None), getattr(model, "head", None)
        if not isinstance(rnn, nn.Module) or not isinstance(head, nn.Linear):
            raise TraceError(f"Cannot trace {where}: the series tracer needs a recurrent layer (rnn) and a linear "
                             "output layer (head). Use a checkpoint of a time-series model.")
        self.recurrence = rec = Recurrence(rnn, where=where)
        if head.in_features != rec.hidden:
            raise TraceError(f"Cannot trace {where}: its output layer reads {head.in_features} values but the "
                             f"recurrent layer has {rec.hidden} units.")
        if normalizer.features != rec.input_size:
            raise TraceError(f"Cannot trace {where}: it reads {rec.input_size} feature(s) but its standardization "
                             f"has {normalizer.features}. Use the statistics saved with the checkpoint.")
        self.normalizer = normalizer
        self.features = rec.input_size
        self.outputs = head.out_features
        self._copy_head(head)

    @classmethod
    def from_checkpoint(cls, target: Path | str, loop_threads: int | None = 1, prefer: str = runs.LAST):
        """The tracer of a series run folder (its last checkpoint) or checkpoint file, and the LoadedSeries
        it came from (its settings and data)."""
        from .series import load_series  # series imports the trainer: only when a checkpoint is read
        loaded = load_series(target, "cpu", prefer)
        return cls(loaded.model, loaded.normalizer, loop_threads), loaded

    # --- facts about the model (the rest come from RecurrentTracer) --------------------------
    def describe(self) -> str:
        return f"{describe_model(self)}, {self.features} input feature{'s' if self.features != 1 else ''}"

    # --- tracing -------------------------------------------------------------------------
    def standardize(self, data: SeriesData) -> np.ndarray:
        """The data as the model reads it: standardized with the run's statistics, float32 (as in
        training and series.predict). A column count that differs from the model's is refused."""
        if data.features != self.features:
            extra = self.features - 1
            reads = "the target alone" if not extra else f"the target and {extra} extra input column(s)"
            raise TraceError(f"The model reads {self.features} feature(s) ({reads}) but {data.source} gives "
                             f"{data.features} ({', '.join(data.names)}). Pick as many columns with --column and "
                             "--inputs, or trace the run's own data.")
        return self.normalizer.standardize(data)

    def trace(self, data: SeriesData | np.ndarray, state: RecurrentState | None = None,
              names: tuple[str, ...] | None = None) -> SeriesTrace:
        """Trace every point of `data`: a SeriesData (standardized here), or already standardized values
        [points, features] (or [points] for one feature), from `state` (zeros by default)."""
        if isinstance(data, SeriesData):
            standardized, names, source = self.standardize(data), data.names, data.source
        else:
            standardized, source = np.asarray(data), "the values"
            if standardized.ndim == 1:
                standardized = standardized[:, None]
            if standardized.ndim != 2 or standardized.shape[1] != self.features:
                raise TraceError(f"The model reads {self.features} feature(s) a step; the values given are shaped "
                                 f"{standardized.shape}. Give [points, {self.features}].")
        if not len(standardized):
            raise TraceError(f"Nothing to trace: {source} has no points.")
        if not np.isfinite(standardized).all():
            raise TraceError(f"{source} holds NaN or infinite values; the model cannot read them.")
        state = self.zero_state() if state is None else state
        rec = self.recurrence
        if state.h.shape != (rec.layers, rec.hidden) or (rec.cell == "lstm") != (state.c is not None):
            raise TraceError(f"The starting state does not fit this {self.describe()} model.")
        h0 = torch.as_tensor(np.array(state.h), dtype=rec.dtype).clone()
        c0 = torch.as_tensor(np.array(state.c), dtype=rec.dtype).clone() if state.c is not None else None
        x = torch.as_tensor(np.ascontiguousarray(standardized)).to(rec.dtype)
        buffers = _Buffers(rec, self.outputs, len(x))  # its log_probs slot holds the head's raw outputs
        with torch.inference_mode(), torch_threads(self.loop_threads):
            below = x
            for layer in range(rec.layers):
                hiddens = buffers.hiddens[:len(x), layer]
                rec.run_layer(layer, rec.input_projection(layer, below), h0[layer],
                              c0[layer] if c0 is not None else None, buffers.gates[:len(x), layer],
                              buffers.cells[:len(x), layer] if c0 is not None else None, hiddens)
                below = hiddens
            torch.addmm(self._head_b, below, self._head_w, out=buffers.log_probs[:len(x)])
        names = tuple(names) if names else tuple(f"feature {i}" for i in range(self.features))
        return SeriesTrace(self, x, buffers, h0, c0, names, source)


class SeriesTrace(Trace):
    """The traced points of one series. Arrays are numpy views [steps, ...]: read them, do not write them."""

    def __init__(self, tracer: SeriesTracer, inputs: torch.Tensor, buffers: _Buffers, h0: torch.Tensor,
                 c0: torch.Tensor | None, names: tuple[str, ...], source: str):
        self.tracer = tracer
        self.prefix = ""
        self._chars: list[str] = []
        self._h0, self._c0 = h0, c0
        self._buffers = buffers
        self._length = len(inputs)
        self.names, self.source = names, source
        self.inputs_normalised = inputs.numpy()                     # [steps, features]
        self.inputs = tracer.normalizer.inverse(self.inputs_normalised)
        self.prediction_normalised = buffers.log_probs[:self._length, 0].numpy()
        self.prediction = tracer.normalizer.inverse_target(self.prediction_normalised)
        # The target of step t is the value read at step t + 1; the last step's is unknown.
        self.target_normalised = np.full(self._length, np.nan, dtype=self.prediction_normalised.dtype)
        self.target_normalised[:-1] = self.inputs_normalised[1:, 0]
        self.target = np.full(self._length, np.nan)
        self.target[:-1] = self.inputs[1:, 0]

    @property
    def signal(self) -> np.ndarray:
        """The target column read at each step, in the data's units: [steps]."""
        return self.inputs[:, 0]

    @property
    def error(self) -> np.ndarray:
        """prediction - target at each step, data's units; NaN at the last step."""
        return self.prediction - self.target

    def step_info(self, step: int, layer: int | None = None, k: int = 0) -> SeriesStepInfo:
        step, layer = self.step_index(step), self.layer_index(layer)
        last = step == self._length - 1
        return SeriesStepInfo(
            step, layer, self.inputs[step].copy(), self.inputs_normalised[step].astype(np.float64),
            {q.key: self.at(step, layer, q.key).copy() for q in self.quantities},
            float(self.prediction[step]), float(self.prediction_normalised[step]),
            None if last else float(self.target[step]), None if last else float(self.target_normalised[step]))

    # --- what needs characters --------------------------------------------------------------
    def extend(self, text):
        raise TraceError(_NOT_TEXT.format(what="extend()") + " Trace the longer series again instead.")

    def step(self, char, layer=None, k=5):
        raise TraceError(_NOT_TEXT.format(what="step()"))

    @property
    def log_probs(self):
        raise TraceError(_NOT_TEXT.format(what="next-character probabilities"))

    def top_k(self, step, k=5):
        raise TraceError(_NOT_TEXT.format(what="top-k next characters"))

    def feature(self, name=None, regex=None):
        raise TraceError(_NOT_TEXT.format(what="a text feature"))

    def find_units(self, name=None, regex=None, key=None, layer=None, top=10):
        raise TraceError(_NOT_TEXT.format(what="the unit search by text feature"))

    def intervened(self, interventions, end=None):
        raise TraceError(_NOT_TEXT.format(what="intervening (core.intervene)"))

    def continuation_from(self, at):  # continuation() too
        raise TraceError(_NOT_TEXT.format(what="continuing the text"))

    # --- export --------------------------------------------------------------------------
    def to_dict(self, layers=None, k: int = 0) -> dict:
        """The whole trace as JSON-ready data: per step the inputs, prediction and target (both scales), and
        every quantity as values[key][step][layer][unit] for the chosen layers (all by default)."""
        layers = self._layers_arg(layers)
        rec = self.tracer.recurrence
        normalizer = self.tracer.normalizer
        initial = self.initial_state
        last = self._length - 1
        return {
            "format": JSON_FORMAT,
            "model": {"cell": self.cell, "layers": self.layers, "hidden": self.hidden, "inputs": self.tracer.features,
                      "nonlinearity": "relu" if rec.relu else "tanh"},
            "dtype": str(rec.dtype).replace("torch.", ""),
            "source": self.source,
            "names": list(self.names),
            "normalizer": normalizer.to_dict(),
            "layers": layers,
            "layer_indices": "0-based: 0 is the layer nearest the input (shown as 'layer 1 of N')",
            "target_of_step": "the value read at the next step; null at the last step",
            "quantities": {q.key: {"symbol": q.symbol, "standard": q.standard, "lesson": q.lesson,
                                   "formula": q.formula, "kind": q.kind} for q in self.quantities},
            "initial_state": {"h": _finite_list(initial.h[layers]),
                              "c": _finite_list(initial.c[layers]) if initial.c is not None else None},
            "steps": [{"input": _finite_list(self.inputs[t]),
                       "input_normalised": _finite_list(self.inputs_normalised[t].astype(np.float64)),
                       "prediction": float(self.prediction[t]),
                       "prediction_normalised": float(self.prediction_normalised[t]),
                       "target": None if t == last else float(self.target[t]),
                       "target_normalised": None if t == last else float(self.target_normalised[t])}
                      for t in range(self._length)],
            "values": {q.key: _finite_list(self.values(q.key)[:, layers]) for q in self.quantities},
        }

    def write_json(self, path: Path | str, layers=None, k: int = 0) -> Path:
        """Write to_dict() as JSON, atomically: the file appears complete or not at all."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_writer(path, "w", encoding="utf-8") as out:
                json.dump(self.to_dict(layers), out, ensure_ascii=False)
        except OSError as exc:
            raise TraceError(f"Cannot write the trace to {path}: {exc.strerror or exc}. "
                             "Pick a folder you can write to, with enough free space.") from None
        return path


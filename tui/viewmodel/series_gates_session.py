"""The Gates screen for a time-series run, in plain Python: a cursor over the series, the layer, unit and
quantity selected, play speed, and what the screen draws at the cursor.

A small session beside gates_session.GatesSession rather than a mode of it: a series is traced whole
when it opens (core.series_gates.SeriesTracer, in a worker: 2,000 points take a fraction of a second,
100,000 some seconds; benchmarks/README.md), so
there are no extension jobs, no text, no next-character distribution and no unit search by text
feature, and the character path stays as it was. The heatmaps and the unit strip share gates_view's
scales and rows with the character screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_playground.core.series_gates import SeriesStepInfo, SeriesTrace, SeriesTracer

from .gates_session import ACTIVE_UNITS, GatesCursor
from .gates_view import HeatRow, QuantityLabel, diverging, quantity_labels, unit_values
from .series_view import PlotLine

CHAR_ONLY = {
    "word": "word jumps need a text; a series has points (page keys move a screenful)",
    "search": "unit search correlates units with a feature of a text; a series has no characters",
    "compare": "compare scores characters with two models; a series model predicts values",
    "open_text": "a series run traces its own data; trace another with: rnn-playground gates RUN --csv FILE",
}


@dataclass(frozen=True)
class OpenedSeries:
    tracer: SeriesTracer
    trace: SeriesTrace
    source: str          # where the data came from, for the header


def open_series(run: Path) -> OpenedSeries:
    """The run's model traced over its own data (slow: for a worker). Raises PlaygroundError or OSError."""
    tracer, loaded = SeriesTracer.from_checkpoint(run)
    data = loaded.data()
    source = Path(data.source).name if loaded.config.csv else data.source  # a CSV by its name: paths are long
    return OpenedSeries(tracer, tracer.trace(data), f"{source}, {data.points:,} points")


@dataclass
class SeriesGatesSession(GatesCursor):
    """Everything the series Gates screen knows, changed by its keys."""
    run: Path | None = None
    tracer: SeriesTracer | None = None
    trace: SeriesTrace | None = None
    source: str = ""
    pos: int = 0
    layer: int = 0
    unit: int = 0
    colour_key: str = "h"
    playing: bool = False
    speed: int = 10
    is_loading: bool = False
    error: str | None = None
    labels: tuple[QuantityLabel, ...] = field(default_factory=tuple)

    @property
    def cell(self) -> str:
        return self.tracer.cell if self.tracer is not None else "lstm"

    @property
    def points(self) -> int:
        return len(self.trace) if self.trace is not None else 0

    def label(self, key: str) -> QuantityLabel:
        return next(q for q in self.labels if q.key == key)

    def loaded(self, opened: OpenedSeries | None, error: str | None = None) -> None:
        self.is_loading = False
        if opened is None:
            self.error = error
            return
        self.error = None
        self.tracer, self.trace, self.source = opened.tracer, opened.trace, opened.source
        self.labels = quantity_labels(self.cell)
        self.layer, self.unit, self.pos = opened.tracer.layers - 1, 0, 0
        self.colour_key = "c" if self.cell == "lstm" else "h"

    # -- the cursor

    def move_to(self, pos: int) -> None:
        if self.trace is not None:
            self.pos = max(0, min(self.points - 1, pos))

    def step(self, delta: int) -> None:
        self.playing = False
        self.move_to(self.pos + delta)

    def edge(self, direction: int) -> None:
        self.playing = False
        self.move_to(self.points - 1 if direction > 0 else 0)

    def toggle_play(self) -> None:
        if self.playing:
            self.playing = False
            return
        if self.pos >= self.points - 1:
            self.move_to(0)
        self.playing = True

    def tick(self) -> None:
        if not self.playing:
            return
        if self.pos >= self.points - 1:
            self.playing = False
            return
        self.move_to(self.pos + self.steps_per_tick)

    # -- what is shown (speed, layer, unit and colour: GatesCursor)

    def colour_keys(self) -> list[str]:
        return [q.key for q in self.labels]    # none until the series is loaded


# --------------------------------------------------------------------------- what the screen draws

def plot_span(points: int, pos: int, span: int) -> tuple[int, int]:
    """The window [start, end) of `span` points holding the cursor, about a third from its left edge
    (what comes next matters more while stepping), inside the series."""
    span = max(1, min(points, max(2, span)))
    start = max(0, min(points - span, pos - span // 3))
    return start, start + span


@dataclass(frozen=True)
class SeriesGatesFrame:
    """What the screen draws at the cursor: the step's numbers, the heatmap rows over the units, the plot's
    lines over the window (the signal and the prediction of each point, made one step before it), and the
    selected unit's colour quantity along the window on the diverging scale."""
    info: SeriesStepInfo
    rows: tuple[HeatRow, ...]
    window: tuple[int, int]
    lines: tuple[PlotLine, ...]
    strip: np.ndarray
    active: tuple


def series_gates_frame(session: SeriesGatesSession, span: int) -> SeriesGatesFrame | None:
    trace = session.trace
    if trace is None:
        return None
    pos, layer, unit = session.pos, session.layer, session.unit
    info = trace.step_info(pos, layer)
    kinds = {q.key: q.kind for q in trace.quantities}
    rows = tuple(HeatRow(q.text, q.short, q.standard, diverging(info.values[q.key], kinds[q.key]),
                         float(info.values[q.key][unit]), q.key) for q in session.labels)
    start, end = plot_span(len(trace), pos, span)
    x = np.arange(start, end, dtype=np.float64)
    name = trace.names[0]
    # the prediction made at step t is of point t + 1: drawn there, under the true value it predicts
    predicted_x = np.arange(max(start, 1), end, dtype=np.float64)
    lines = (PlotLine(name, "target", x, np.asarray(trace.signal[start:end], dtype=np.float64)),
             PlotLine("prediction", "one-step", predicted_x,
                      np.asarray(trace.prediction[max(start, 1) - 1:end - 1], dtype=np.float64)))
    strip = diverging(unit_values(trace, session.colour_key, layer, unit, start, end), kinds[session.colour_key])
    active = tuple(trace.most_active(pos, layer, "h", n=ACTIVE_UNITS))
    return SeriesGatesFrame(info, rows, (start, end), lines, strip, active)

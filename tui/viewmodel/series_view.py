"""What the Series screen shows: the lines of the prediction plot and the metrics table against the naive
baselines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- series

@dataclass(frozen=True)
class PlotLine:
    name: str
    role: str            # "target", "one-step", "forecast", "free-run"
    x: np.ndarray
    y: np.ndarray


def series_plot(pred, context: int | None = None, free_run: bool = False) -> list[PlotLine]:
    """Lines of the prediction plot from `core.series.Predictions`: the targets over the validation
    range (with `context` training points before it, default a quarter of the range), the one-step
    predictions over it, the free-running forecast past the end and, optionally, the free run from
    the split across the validation range."""
    val = len(pred.val_index)
    context = max(1, val // 4) if context is None else max(0, context)
    begin = max(0, pred.split - context)
    lines = [PlotLine("target", "target", np.arange(begin, len(pred.series)),
                      np.asarray(pred.series[begin:], dtype=np.float64))]
    if val:
        lines.append(PlotLine("one-step", "one-step", np.asarray(pred.val_index),
                              np.asarray(pred.one_step, dtype=np.float64)))
        if free_run:
            lines.append(PlotLine("free run", "free-run", np.asarray(pred.val_index),
                                  np.asarray(pred.free_run, dtype=np.float64)))
    if len(pred.forecast):
        # joined to the last true point, so the forecast reads as a continuation
        x = np.concatenate([[len(pred.series) - 1], pred.forecast_index])
        y = np.concatenate([[pred.series[-1]], pred.forecast]).astype(np.float64)
        lines.append(PlotLine("forecast", "forecast", x, y))
    return lines


def plot_bounds(lines: Iterable[PlotLine]) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) over the finite points of all lines, with a little room."""
    xs = [line.x[np.isfinite(line.y)] for line in lines]
    ys = [line.y[np.isfinite(line.y)] for line in lines]
    xs = [x for x in xs if len(x)]
    ys = [y for y in ys if len(y)]
    if not xs:
        return 0.0, 1.0, 0.0, 1.0
    x0, x1 = float(min(x.min() for x in xs)), float(max(x.max() for x in xs))
    y0, y1 = float(min(y.min() for y in ys)), float(max(y.max() for y in ys))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    return x0, x1, y0 - pad, y1 + pad


POINTS_PER_COLUMN = 4  # the plot's default window: about two points per braille dot, a readable line


def plot_window(x_min: float, x_max: float, columns: int, span: float | None = None,
                end: float | None = None) -> tuple[float, float]:
    """The x range a plot `columns` wide shows: `span` points (default POINTS_PER_COLUMN a column,
    all of them when they fit) ending at `end` (default the last point), kept inside the data."""
    whole = x_max - x_min
    if span is None:
        span = columns * POINTS_PER_COLUMN
    span = min(max(span, 4.0), whole)
    end = x_max if end is None else min(max(end, x_min + span), x_max)
    return end - span, end


def window_lines(lines: Iterable[PlotLine], lo: float, hi: float) -> list[PlotLine]:
    """The lines cut to [lo, hi], each keeping one point beyond either edge so it runs to the border."""
    shown = []
    for line in lines:
        inside = np.flatnonzero((line.x >= lo) & (line.x <= hi))
        if not len(inside):
            continue
        first, last = max(0, inside[0] - 1), min(len(line.x), inside[-1] + 2)
        shown.append(PlotLine(line.name, line.role, line.x[first:last], line.y[first:last]))
    return shown


@dataclass(frozen=True)
class MetricRow:
    name: str
    mse: float
    mae: float
    vs_last: float | None   # MSE relative to the last-value baseline (below 1: better than it)


def metric_rows(pred) -> list[MetricRow]:
    """The metrics of `core.series.Predictions` with each MSE relative to the last-value baseline."""
    from rnn_playground.core.series import LAST_VALUE
    base = next((m.mse for m in pred.metrics if m.name == LAST_VALUE), None)
    rows = []
    for m in pred.metrics:
        ratio = m.mse / base if base not in (None, 0.0) else None
        rows.append(MetricRow(m.name, m.mse, m.mae, ratio))
    return rows

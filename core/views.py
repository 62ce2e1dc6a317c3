"""What the Sample, Gates and Series screens show, computed here so a front end only lays it out.

- Sampling: a character stream cut into timed chunks (a few a second, or paced to a typewriter
  speed), with the characters/s of the result; the steps of the sampling settings.
- Gates: short labels with the lesson's names, every quantity mapped onto one diverging scale
  [-1, 1], the next-character distribution with the true character marked, unit pages, word
  jumps in a text, slices of a run's corpus and text files to trace.
- Series: the lines of the prediction plot and the metrics table against the naive baselines.

Plain Python and numpy; no front end is imported here.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import CorpusError

# --------------------------------------------------------------------------- sampling

TEMPERATURE_STEP = 0.1
TEMPERATURE_MAX = 3.0
TOP_K_CHOICES = (0, 1, 2, 3, 5, 10, 20, 40, 80)
LENGTH_CHOICES = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
PACE_CHOICES: tuple[float | None, ...] = (None, 1000.0, 300.0, 100.0, 30.0, 10.0)  # chars/s; None = as fast as it goes
FLUSH_INTERVAL_S = 0.2          # unpaced streams are cut into about five chunks a second
MIN_FLUSH_INTERVAL_S = 1 / 30   # paced streams flush at most thirty times a second


def step_choice(choices: Sequence, current, delta: int):
    """The choice `delta` places from `current` (or from the nearest choice below it), clamped."""
    if current in choices:
        index = list(choices).index(current)
    else:
        below = [i for i, c in enumerate(choices) if c is not None and current is not None and c <= current]
        index = below[-1] if below else 0
    return choices[max(0, min(len(choices) - 1, index + delta))]


def step_temperature(current: float, delta: int) -> float:
    """Temperature up or down by 0.1 within [0, 3]; 0 means argmax. Rounded so 0.1 steps stay exact."""
    value = round(current + delta * TEMPERATURE_STEP, 2)
    return min(TEMPERATURE_MAX, max(0.0, value))


def flush_interval(pace: float | None) -> float:
    """How often a stream paced at `pace` chars/s hands text to the screen."""
    if pace is None:
        return FLUSH_INTERVAL_S
    return max(MIN_FLUSH_INTERVAL_S, min(FLUSH_INTERVAL_S, 1.0 / pace))


@dataclass(frozen=True)
class StreamChunk:
    """New text since the previous chunk, and the totals so far."""
    text: str
    chars: int          # characters streamed so far, this chunk included
    elapsed_s: float    # since the stream began
    done: bool = False
    stopped: bool = False  # the stream ended because it was asked to stop

    @property
    def chars_per_s(self) -> float | None:
        return self.chars / self.elapsed_s if self.elapsed_s > 0 and self.chars else None


def chunked_stream(chars: Iterable[str], *, interval: float | None = None, pace: float | None = None,
                   stop: threading.Event | None = None, clock: Callable[[], float] = time.perf_counter,
                   ) -> Iterator[StreamChunk]:
    """Cut a character stream into chunks handed out every `interval` seconds (never one per
    character), optionally paced to `pace` characters a second. Ends early once `stop` is set,
    checked before every character. The last chunk has done=True (and stopped=True after a stop)."""
    interval = flush_interval(pace) if interval is None else interval
    start = clock()
    last = start
    buffer: list[str] = []
    count = 0
    stopped = False
    iterator = iter(chars)
    while True:
        if stop is not None and stop.is_set():
            stopped = True
            break
        try:
            ch = next(iterator)
        except StopIteration:
            break
        count += 1
        buffer.append(ch)
        if pace is not None:
            delay = start + count / pace - clock()
            if delay > 0:
                if stop is not None:
                    if stop.wait(delay):
                        stopped = True
                        break
                else:
                    time.sleep(delay)
        now = clock()
        if now - last >= interval:
            yield StreamChunk("".join(buffer), count, now - start)
            buffer.clear()
            last = now
    yield StreamChunk("".join(buffer), count, clock() - start, done=True, stopped=stopped)


# --------------------------------------------------------------------------- gates: labels and scale

@dataclass(frozen=True)
class QuantityLabel:
    key: str
    lesson: str      # the lesson's name ("Learn gate"), '' where it has none
    symbol: str      # as the lesson and PyTorch write it ("N_t = g_t")
    standard: str    # PyTorch's name ("candidate")
    short: str       # both in a few characters, for narrow screens ("Learn N_t=g_t")

    @property
    def text(self) -> str:
        return f"{self.lesson} {self.symbol}".strip() if self.lesson else f"{self.standard} {self.symbol}"


_LABELS = {
    "lstm": (
        QuantityLabel("g", "Learn gate", "N_t = g_t", "candidate", "Learn N_t=g_t"),
        QuantityLabel("i", "Learn gate", "i_t", "input gate", "Learn i_t"),
        QuantityLabel("f", "Forget gate", "f_t", "forget gate", "Forget f_t"),
        QuantityLabel("c", "Remember gate", "LTM_t = c_t", "cell state", "Remember c_t"),
        QuantityLabel("o", "Use gate", "o_t", "output gate", "Use o_t"),
        QuantityLabel("h", "Use gate", "STM_t = h_t", "hidden state", "Use STM=h_t"),
        QuantityLabel("kept", "Forget gate out", "f_t*c_{t-1}", "kept from the cell", "kept f*c_{t-1}"),
        QuantityLabel("written", "Learn gate out", "i_t*g_t", "written to the cell", "written i*g"),
    ),
    "gru": (
        QuantityLabel("r", "", "r_t", "reset gate", "reset r_t"),
        QuantityLabel("z", "", "z_t", "update gate", "update z_t"),
        QuantityLabel("n", "", "n_t", "candidate", "candidate n_t"),
        QuantityLabel("h", "", "STM_t = h_t", "hidden state", "hidden h_t"),
    ),
    "rnn": (QuantityLabel("h", "", "STM_t = h_t", "hidden state", "hidden h_t"),),
}
CELL_UPDATE = ("kept", "written")


def quantity_labels(cell: str) -> tuple[QuantityLabel, ...]:
    """Every quantity of a cell in the lesson's order (Learn, Forget, Remember, Use; then the
    split of the cell update into kept and written)."""
    return _LABELS["rnn" if cell.startswith("rnn") else cell]


def heatmap_keys(cell: str) -> tuple[str, ...]:
    """The quantities drawn as heatmaps (all but the cell-update split)."""
    return tuple(q.key for q in quantity_labels(cell) if q.key not in CELL_UPDATE)


def diverging(values: np.ndarray, kind: str) -> np.ndarray:
    """Values on the one diverging scale [-1, 1] every heatmap shares: a gate (0..1) as 2v-1, so a
    closed gate is -1 and an open one +1; tanh quantities as they are; unbounded ones (the cell
    state, kept and written) through tanh, which keeps the sign and squeezes large values."""
    values = np.asarray(values, dtype=np.float64)
    if kind == "gate":
        out = 2.0 * values - 1.0
    elif kind == "tanh":
        out = values
    else:
        out = np.tanh(values)
    return np.clip(np.nan_to_num(out, nan=0.0), -1.0, 1.0)


SCALE_NOTE = ("scale: gates 0 blue, 0.5 neutral, 1 red; tanh values -1 blue, +1 red; "
              "c, kept and written as tanh(value)")
# Without colour (NO_COLOR) each unit is a bar whose height is its value: say that, not colours.
SCALE_NOTE_MONO = ("scale: bar height, gates 0 ▁ to 1 █; tanh values -1 ▁ to +1 █; "
                   "c, kept and written as tanh(value)")


def unit_page(units: int, per_page: int, unit: int) -> tuple[int, int, int, int]:
    """(page, pages, first, last+1) of the page holding `unit` when `per_page` units fit."""
    per_page = max(1, per_page)
    pages = max(1, math.ceil(units / per_page))
    page = min(max(unit, 0) // per_page, pages - 1)
    first = page * per_page
    return page, pages, first, min(units, first + per_page)


@dataclass(frozen=True)
class NextCharRow:
    char: str
    prob: float
    rank: int
    is_true: bool


@dataclass(frozen=True)
class NextCharView:
    rows: tuple[NextCharRow, ...]   # the top k, best first, then the true character if it is not among them
    true_char: str | None
    true_prob: float | None
    true_rank: int | None
    surprisal_bits: float | None


def next_char_view(info, k: int | None = None) -> NextCharView:
    """The next-character distribution of a `core.gates.StepInfo`: its top predictions with the true
    next character marked (appended with its rank when it is not among them)."""
    top = info.top if k is None else info.top[:k]
    rows = [NextCharRow(p.char, p.prob, n + 1, p.char == info.next_char) for n, p in enumerate(top)]
    if info.next_char is not None and not any(r.is_true for r in rows):
        rows.append(NextCharRow(info.next_char, info.next_prob, info.next_rank, True))
    return NextCharView(tuple(rows), info.next_char, info.next_prob, info.next_rank, info.surprisal_bits)


# --------------------------------------------------------------------------- gates: moving through a text

def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def next_word(text: str, pos: int) -> int:
    """The start of the next word after `pos` (or the last character)."""
    n = len(text)
    if n == 0:
        return 0
    i = pos
    while i < n and _is_word(text[i]):
        i += 1
    while i < n and not _is_word(text[i]):
        i += 1
    return min(i, n - 1)


def previous_word(text: str, pos: int) -> int:
    """The start of the word before `pos` (or 0)."""
    i = max(0, min(pos, len(text)))
    while i > 0 and not _is_word(text[i - 1]):
        i -= 1
    while i > 0 and _is_word(text[i - 1]):
        i -= 1
    return i


# --------------------------------------------------------------------------- gates: texts to trace

DEFAULT_SLICE = 2000


@dataclass(frozen=True)
class TextSource:
    text: str
    description: str   # for the screen: "corpus slice 5,400-7,400 of tinyshakespeare"


def read_text_file(path: Path | str, limit: int | None = None) -> TextSource:
    """A UTF-8 text file to trace (its first `limit` characters when given)."""
    from .corpus import decode_utf8
    path = Path(path).expanduser()
    if not str(path).strip() or str(path) == ".":
        raise CorpusError("Give the path of a UTF-8 text file to trace.")
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder; give a text file.") from None
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}. Check the path.") from None
    text = decode_utf8(data, f"File {path}")
    if not text:
        raise CorpusError(f"{path} is empty. Pick a file with some text in it.")
    total = len(text)
    if limit is not None and total > limit:
        text = text[:limit]
    shown = f"{path.name} ({total:,} chars" + (f", first {limit:,})" if limit is not None and total > limit else ")")
    return TextSource(text, shown)


def corpus_slice(spec: str, start: int | None = None, length: int = DEFAULT_SLICE, *, glob: str = "*",
                 val_fraction: float = 0.1) -> TextSource:
    """`length` characters of a corpus from `start` (default: where its validation part begins, text
    the model did not train on). Loads the corpus as training did."""
    from .corpus import load_corpus
    if length < 1:
        raise CorpusError(f"The slice must have at least 1 character, got {length}.")
    corpus = load_corpus(spec, glob=glob)
    text = corpus.text
    if start is None:
        start = len(text) - int(len(text) * val_fraction)
        if start + length > len(text):
            start = max(0, len(text) - length)
    if not 0 <= start < len(text):
        raise CorpusError(f"The corpus has {len(text):,} characters; a slice must start between 0 and "
                          f"{len(text) - 1:,}, not {start:,}.")
    end = min(len(text), start + length)
    name = Path(spec).name if not spec.startswith("builtin:") else spec
    return TextSource(text[start:end], f"corpus {name} chars {start:,}-{end:,}")


def run_corpus(meta: dict) -> tuple[str, str, float]:
    """(corpus spec, glob, validation fraction) of the run a checkpoint's metadata describes."""
    config = meta.get("config") or {}
    corpus = meta.get("corpus") or {}
    spec = corpus.get("spec") or config.get("corpus")
    if not spec:
        raise CorpusError("The checkpoint does not say which corpus it was trained on; type a text or load a file.")
    return spec, config.get("glob", "*"), float(config.get("val_fraction", 0.1))


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
    from .series import LAST_VALUE
    base = next((m.mse for m in pred.metrics if m.name == LAST_VALUE), None)
    rows = []
    for m in pred.metrics:
        ratio = m.mse / base if base not in (None, 0.0) else None
        rows.append(MetricRow(m.name, m.mse, m.mae, ratio))
    return rows


def unit_values(trace, key: str, layer: int, unit: int, start: int = 0, end: int | None = None) -> np.ndarray:
    """Quantity `key` of one unit over steps start..end-1 of a `core.gates.Trace` (the text view's
    colours). The cell-update split is computed for those steps only, not the whole trace."""
    n = len(trace)
    end = n if end is None else max(0, min(end, n))
    start = max(0, min(start, end))
    layer = trace.layer_index(layer)
    if key == "written":
        i, g = trace.values("i"), trace.values("g")
        return (i[start:end, layer, unit] * g[start:end, layer, unit]).astype(np.float64)
    if key == "kept":
        f, c = trace.values("f"), trace.values("c")
        previous = np.empty(end - start, dtype=np.float64)
        if end > start:
            if start == 0:
                previous[0] = trace.initial_state.c[layer, unit]
                previous[1:] = c[0:end - 1, layer, unit]
            else:
                previous[:] = c[start - 1:end - 1, layer, unit]
        return f[start:end, layer, unit] * previous
    return np.asarray(trace.values(key)[start:end, layer, unit], dtype=np.float64)

"""The Memory page (lesson chapters 1-2 and 10): why gates matter, measured live.

Top: the recall experiment (core.memory_task): a vanilla RNN, a GRU and an LSTM of one size trained to
recall the symbol seen d steps earlier, their held-out accuracy against d as a character plot (each cell
its own letter, R G L, in its own sub-column, so it reads without colour) and as a table. Bottom: how far
back the loss's gradient reaches through the hidden state of the source model, ||d loss_t / d h_{t-k}||
against k on a log scale, and the same for the experiment's three models at its longest delay.

Both measurements take a while (the experiment tens of seconds; the gradient reach of a 2x512 LSTM about
0.3 s of CPU, more on a busy machine), so they leave the page as jobs a worker thread runs. The Lesson screen's
side of it, after set_source, after any key the page handles and after each finished/failed:

    while (job := page.job()) is not None:   # a MemoryJob or a ReachJob; each is handed out once
        # in a worker thread, one job of the page at a time:
        try:
            result = job.run(progress, stop)  # progress(fraction 0..1, words) is called from the worker and
        except Exception as exc:              #   reaches page.progress(fraction, words) on the UI thread;
            page.failed(job, error_text(exc))     # stop() (MemoryJob's only) is true once the screen closes
        else:
            page.finished(job, result)        # on the UI thread: the page shows it (a MemoryResult is cached)

The c key cancels by itself (it sets the MemoryJob's event, which `run` polls; `run` then raises
MemoryCancelled, a PlaygroundError), so the screen only delivers the outcome. A job the page no longer
waits for (cancelled, or its source replaced) is ignored by `finished` and `failed`. When the settings have a
cached result the page shows it at once and no experiment job is needed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from rnn_playground.core.device import torch_threads
from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.memory_task import (
    CELL_ORDER,
    MemoryResult,
    MemorySettings,
    cached_result,
    estimate_seconds,
    gradient_reach,
    reach_summary,
    run_memory_experiment,
    store_result,
)
from rnn_playground.core.model import describe_model

from ..format import SPARK_BARS
from .page import Line, PageKey, PageView, Source, Span, fit_line, line

MARKERS = {"rnn": "R", "gru": "G", "lstm": "L"}
NAMES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
DELAY_RANGES = ((1, 2, 4, 8, 16, 32), (1, 2, 4, 8, 16), (1, 4, 16, 32, 48))
HIDDEN_SIZES = (32, 16, 64)
REACH_WINDOW = 64          # characters of the source's text the gradient reach reads
WHY = ("A vanilla RNN multiplies the gradient by W_hh and tanh' at every step back, so it fades",
       "geometrically; the LSTM's cell state passes it on through the forget gate f_t (near 1), the",
       "GRU's h through its update gate z_t. What the gradient cannot reach, the model cannot learn.")
REACH_DECADES = 8          # the reach plot spans 1 .. 1e-8 of the k = 0 gradient


@dataclass
class MemoryJob:
    """The experiment for `settings`, run by a worker thread; `cancel` is set by the page's c key. The result
    is stored in the page's `cache` folder (None: core.download.cache_dir())."""
    settings: MemorySettings
    cancel: threading.Event = field(default_factory=threading.Event)
    cache: object = None
    store_error: str = ""     # why the result could not be cached (it is shown all the same)

    def run(self, progress: Callable[[float, str], None] | None = None,
            stop: Callable[[], bool] | None = None) -> MemoryResult:
        """Train, store the result in the cache (or say why not in `store_error`), return it. Raises
        MemoryCancelled (on c, or once `stop()`, the screen's, is true: it closed) or PlaygroundError."""
        result = run_memory_experiment(self.settings, progress,
                                       lambda: self.cancel.is_set() or (stop is not None and stop()))
        try:
            store_result(result, self.cache)
        except PlaygroundError as exc:  # tens of seconds of training stand: shown, only not cached
            self.store_error = str(exc)
        return result


@dataclass
class ReachJob:
    """The gradient reach of `source`'s model over the first REACH_WINDOW characters of its text."""
    source: Source

    def run(self, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
        if progress is not None:
            progress(0.0, "computing the gradient reach")
        ids = self.source.vocab.encode(self.source.text[:REACH_WINDOW + 1])
        if len(ids) < 2:
            raise PlaygroundError("The source's text is too short for the gradient reach: it needs 2 characters.")
        with torch_threads(1):   # beside a run training on the other cores
            return gradient_reach(self.source.model, ids)   # loss at the window's last step


def reach_bars(reach, width: int) -> str:
    """reach[k] relative to reach[0] as one bar a k, log scale: a full bar is 1, an empty one 1e-8 or less."""
    values = np.asarray(reach, dtype=np.float64)[:width]
    if values.size == 0 or not values[0] > 0:
        return ""
    top = len(SPARK_BARS) - 1
    cells = []
    for value in values:
        level = (math.log10(value / values[0]) + REACH_DECADES) / REACH_DECADES if value > 0 else 0.0
        cells.append(" " if level <= 0 else SPARK_BARS[min(top, max(0, round(level * top)))])
    return "".join(cells)


class MemoryPage:
    name = "memory"
    title = "Memory"
    keys = (
        PageKey("r", "run", "run the experiment"),
        PageKey("c", "cancel", "cancel it"),
        PageKey("d", "delays", "next delay range"),
        PageKey("h", "hidden", "next hidden size"),
    )

    def __init__(self, settings: MemorySettings | None = None, cache: object = None) -> None:
        self.settings = settings or MemorySettings()
        self.cache = cache                  # the cache folder (None: core.download.cache_dir())
        self.result: MemoryResult | None = cached_result(self.settings, cache)
        self.source: Source | None = None
        self.source_reach: np.ndarray | None = None
        self.source_error = ""
        self.error = ""
        self.busy = ""
        self._pending: MemoryJob | None = None
        self._running: MemoryJob | None = None
        self._reach_job: ReachJob | None = None       # to hand out, then the one whose result the page waits for
        self._reach_handed = False

    # ------------------------------------------------------------------ the screen's side

    def set_source(self, source: Source) -> None:
        self.source, self.source_reach, self.source_error = source, None, ""
        self._reach_job, self._reach_handed = ReachJob(source), False

    def handle(self, action: str, argument: str = "") -> None:
        if action == "run":
            if self._running is None and self._pending is None:
                self._pending = MemoryJob(self.settings, cache=self.cache)
                self.busy, self.error = f"starting: about {estimate_seconds(self.settings):.0f} s", ""
        elif action == "cancel":
            for job in (self._pending, self._running):
                if job is not None:
                    job.cancel.set()
            if self._pending is not None:
                self._pending, self.busy = None, ""
            elif self._running is not None:
                self.busy = "cancelling..."
        elif action in ("delays", "hidden"):
            self._change(action)

    def job(self) -> MemoryJob | ReachJob | None:
        if self._reach_job is not None and not self._reach_handed:
            self._reach_handed = True
            return self._reach_job
        job, self._pending = self._pending, None
        if job is not None:
            self._running = job
        return job

    def progress(self, fraction: float, words: str) -> None:
        if self._running is not None and not self._running.cancel.is_set():
            self.busy = f"{words} {fraction:.0%}"

    def finished(self, job: MemoryJob | ReachJob, result) -> None:
        if isinstance(job, ReachJob):
            if job is self._reach_job:
                self.source_reach, self._reach_job, self._reach_handed = result, None, False
            return
        if job is not self._running:
            return
        self._running, self.busy, self.error = None, "", job.store_error
        if result.settings == self.settings:
            self.result = result

    def failed(self, job: MemoryJob | ReachJob, message: str) -> None:
        if isinstance(job, ReachJob):
            if job is self._reach_job:
                self.source_error, self._reach_job, self._reach_handed = message, None, False
            return
        if job is not self._running:
            return
        self._running, self.busy = None, ""
        self.error = "Cancelled: the last result stays." if job.cancel.is_set() else message

    # ------------------------------------------------------------------ settings

    def _change(self, what: str) -> None:
        if self._running is not None or self._pending is not None:
            self.error = "The experiment is running: press c to cancel it before changing its settings."
            return
        if what == "delays":
            ranges = DELAY_RANGES
            index = ranges.index(self.settings.delays) + 1 if self.settings.delays in ranges else 0
            self.settings = replace(self.settings, delays=ranges[index % len(ranges)])
        else:
            sizes = HIDDEN_SIZES
            index = sizes.index(self.settings.hidden) + 1 if self.settings.hidden in sizes else 0
            self.settings = replace(self.settings, hidden=sizes[index % len(sizes)])
        self.error = ""
        self.result = cached_result(self.settings, self.cache)

    # ------------------------------------------------------------------ drawing

    def view(self, width: int, height: int) -> PageView:
        reach = self._reach_lines(width)
        # the plot takes the rows the rest leaves: plot_rows + 1 lines, an even number of steps of accuracy
        others = len(self._experiment_lines(width, 2)) - (3 if self.result is not None else 0)
        spare = height - 1 - others - 1 - len(reach)
        why = spare >= 11 + len(WHY) + 1         # room for a full plot and the explanation
        plot_rows = max(2, min(10, (spare - 1 - (len(WHY) + 1 if why else 0)) // 2 * 2))
        lines: list[Line] = [self._heading(width), *self._experiment_lines(width, plot_rows), line(""), *reach]
        if why:
            lines += [line(""), *(line(Span(text, "dim")) for text in WHY)]
        lines = [fit_line(row, width) for row in lines[:height]]
        caption = ("Each cell recalls the symbol seen d steps back; the plain RNN forgets first.",
                   "r runs it, d/h change delays/size. Bars: how far back each gradient reaches.")
        cell = NAMES.get(self._cell())
        return PageView("Memory: why gates remember longer" + (f" (your model: {cell})" if cell else ""),
                        (caption[0][:width], caption[1][:width]), tuple(lines), deeper="gates",
                        deeper_text="Gates screen: the forget and update gates at every character",
                        busy=self.busy, error=self.error)

    def _cell(self) -> str:
        config = getattr(getattr(self.source, "model", None), "config", None)
        return getattr(config, "cell", "")

    def _heading(self, width: int) -> Line:
        s = self.settings
        if self.result is None:
            state = "not run yet"
        else:
            state = "cached" if self.result.from_cache else f"measured in {self.result.seconds:.0f} s"
        return line(Span("Recall d steps back ", "bold"),
                    Span(f"hidden {s.hidden}, {s.steps} steps/model, ~{estimate_seconds(s):.0f} s on 2 cores; ", "dim"),
                    Span(state, "accent" if self.result is None else "dim"))

    def _experiment_lines(self, width: int, plot_rows: int) -> list[Line]:
        delays = self.settings.delays
        models = len(self.settings.cells) * len(delays)
        if self.result is None and (self._running or self._pending):
            return [line(Span(f"Training {models} small models; c cancels.", "dim"))]
        if self.result is None:
            return [line(Span(f"No result for these settings yet: press r to train {models} small models.", "dim"))]
        result = self.result
        out: list[Line] = []
        # the plot: accuracy rows from 100% down to 0%, one column a delay, R G L side by side in it
        for row in range(plot_rows, -1, -1):
            level = row / plot_rows
            marked = row in (plot_rows, plot_rows // 2, 0)
            spans = [Span(f"{level:5.0%}" if marked else " " * 5, "dim"), Span("┤" if marked else "│", "dim")]
            for delay in delays:
                cell_text = ""
                for cell in CELL_ORDER:
                    if cell not in result.accuracy_table:
                        cell_text += " "
                        continue
                    hit = round(result.accuracy(cell, delay) * plot_rows) == row
                    cell_text += MARKERS[cell] if hit else " "
                text = f" {cell_text}  "
                if round(result.chance * plot_rows) == row:   # the chance level, dotted where no marker is
                    text = text.replace(" ", "·")
                spans.append(Span(text, "accent" if cell_text.strip() else "dim"))
            out.append(tuple(spans))
        out.append(line(Span(" delay" + "".join(f"{d:^5} " for d in delays), "dim"),
                        Span(f" ···· chance {result.chance:.0%}", "dim")))
        # the table, in the plot's columns: a row a cell, its held-out accuracy at each delay
        best = {d: max(row.values()) for d, row in result.rows()}
        for cell, table in result.accuracy_table.items():
            spans = [Span(f"{MARKERS[cell]} {NAMES[cell]:<4}", "bold")]
            for delay in delays:
                accuracy = table[delay]
                style = "bad" if accuracy < 2 * result.chance else ("good" if accuracy == best[delay] else "")
                spans.append(Span(f"{accuracy:>5.0%}", style))
                spans.append(Span(" "))
            out.append(tuple(spans))
        if result.cut_short:
            out.append(line(Span("  (the time cap stopped some models early)", "dim")))
        return out

    def _reach_lines(self, width: int) -> list[Line]:
        bars = max(8, min(REACH_WINDOW, width - 24))
        out: list[Line] = [line(Span("Gradient reach ", "bold"),
                                Span("||d loss_t / d h_{t-k}|| for k = 0, 1, ..."
                                     + (" (log scale, 1 to 1e-8)" if width >= 83 else " (log scale)"), "dim"))]
        if self.source is None:
            out.append(line(Span("  no model yet: the page waits for a source", "dim")))
        elif self.source_error:
            out.append(line(Span(f"  {self.source_error}", "bad")))
        elif self.source_reach is None:
            out += [line(Span(f"  {describe_model(self.source.model.config)}: computing...", "dim")), line("")]
        else:
            name = describe_model(self.source.model.config)
            out.append(line(Span(f"{name[:16]:<17}"), Span(reach_bars(self.source_reach, bars), "accent")))
            out.append(line(Span(f"  {self.source.origin}: reaches k = {reach_summary(self.source_reach)} "
                                 f"at 1/1000 of k = 0", "dim")))
        if self.result is not None and self.result.reach:
            longest = self.result.settings.delays[-1]
            for cell, values in self.result.reach.items():
                label = f"{NAMES[cell]}, task d={longest}"
                out.append(line(Span(f"{label:<17}", "dim"), Span(reach_bars(values, bars))))
        return out

"""Runs compared: the marked runs' loss curves overlaid (validation by default, training on `l`) against steps,
characters seen or training time (`a` cycles), and their best values side by side with the settings that differ
between them highlighted. Opened from the Runs screen (`v`); it takes any list of run folders. A live run's
curves grow: its metrics.jsonl is read on, from where the last read ended, in a worker."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from rnn_playground.tui.viewmodel.compare_view import (
    AXES,
    FIXED_COLUMNS,
    Comparison,
    RunCurves,
    compare_table,
    fmt_setting,
    next_axis,
    plot_lines,
    plot_title,
    shared_phrases,
)

from ..messages import CurvesRead
from ..widgets.fitting import append_fitting
from ..widgets.keybar import KeyBar
from ..widgets.modebar import ModeBar
from ..widgets.plot import OverlayPlot
from .base import PlaygroundScreen

# A live run's curves are read again this often at most (the app's watch interval, if longer).
READ_INTERVAL = 0.5


class CompareScreen(PlaygroundScreen):
    COMPONENT_CLASSES = {"compare--differs", "compare--muted"}
    BINDINGS = [
        Binding("a", "axis", "Axis", id="compare.axis",
                tooltip="plot against the next axis: steps, characters seen (the fair axis across batch sizes and "
                        "ranks), training time (pauses left out)"),
        Binding("l", "loss", "Train loss", id="compare.loss",
                tooltip="show the training loss curves instead of the validation ones, or back"),
        Binding("escape,v", "close", "Back", id="compare.close", tooltip="back to the runs (also v)"),
    ]

    def __init__(self, run_dirs: list[Path], **kwargs) -> None:
        super().__init__(**kwargs)
        self.comparison = Comparison(run_dirs)
        self.runs: list[RunCurves] = []
        self.axis = AXES[0]
        self.which = "val"

    def compose(self) -> ComposeResult:
        yield ModeBar("runs")
        with Vertical(id="compare-body"):
            yield OverlayPlot(id="compare-plot")
            yield Static("", id="compare-table")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#compare-plot", OverlayPlot).clear("reading the runs…")
        self._show_title()
        self._read()
        if self.app.watch_interval:
            self.set_interval(max(READ_INTERVAL, self.app.watch_interval), self._tick)

    def _tick(self) -> None:
        # Every run, ended ones too (one may be trained more meanwhile): a read that finds nothing new costs a
        # stat and a seek (benchmarks/bench_compare.py).
        self._read()

    @work(thread=True, exclusive=True, group="compare-read", exit_on_error=False)
    def _read(self) -> None:
        runs = self.comparison.read()
        if runs != self.runs:  # the same objects when nothing was added: no message, no redraw
            self.post_message(CurvesRead(runs))

    def on_curves_read(self, message: CurvesRead) -> None:
        self.runs = message.runs
        self._show()

    def on_resize(self) -> None:
        self._show_table()

    # -- drawing

    def _show_title(self) -> None:
        unit = self.runs[0].unit if self.runs else "characters"
        count = f"{len(self.comparison.readers)} runs"
        self.query_one("#compare-plot").border_title = f"{plot_title(self.axis, self.which, unit)} · {count}"

    def _show(self) -> None:
        self._show_title()
        plot = self.query_one("#compare-plot", OverlayPlot)
        plot.axis = self.axis
        lines = [line for line in plot_lines(self.runs, self.axis, self.which) if len(line.x)]
        if lines:
            plot.show(lines)
        else:
            plot.clear(f"no {'validation' if self.which == 'val' else 'training'} losses recorded yet")
        self._show_table()

    def _show_table(self) -> None:
        if not self.runs:
            return
        widget = self.query_one("#compare-table", Static)
        width = widget.content_size.width or self.app.size.width
        compared = compare_table(self.runs)
        differs = self.get_component_rich_style("compare--differs")
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="bold")
        for column in FIXED_COLUMNS:
            label = f"at {'chars' if self.axis == 'characters' else self.axis}" if column == "at" else column
            table.add_column(label, justify="right" if column in ("best val", "at", "last train") else "left",
                             no_wrap=True, overflow="ellipsis", max_width=24 if column == "run" else None)
        for key in compared.differing_keys:
            table.add_column(Text(key, differs), no_wrap=True, overflow="ellipsis")
        for row in compared.rows:
            table.add_row(*row.cells(self.axis),
                          *(Text(fmt_setting(row.settings.get(key)), differs) for key in compared.differing_keys))
        # The settings every run shares, on one line, as many as fit whole.
        same = Text(no_wrap=True, overflow="ellipsis")
        phrases = shared_phrases(compared)
        if phrases:
            same.append("same:", self.get_component_rich_style("compare--muted"))
            append_fitting(same, [f" {phrases[0]}", *(f" · {phrase}" for phrase in phrases[1:])], width)
        widget.update(Group(table, same))  # its height follows the rows: a layout pass, at most twice a second

    # -- actions

    def action_axis(self) -> None:
        self.axis = next_axis(self.axis)
        self._show()

    def action_loss(self) -> None:
        self.which = "train" if self.which == "val" else "val"
        self._show()

    def action_close(self) -> None:
        self.dismiss()

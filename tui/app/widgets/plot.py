"""A line plot in braille dots (2x4 per cell), several lines with a legend: the Series screen's predictions
(LinePlot), and the Runs screen's runs compared (OverlayPlot: a line per run, all of each shown).

The lines come from the middle floor (series_view.series_plot, compare_view.plot_lines); this widget only maps
points to dots.
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from rnn_playground.tui.viewmodel.compare_view import RUN_MARKS, fmt_axis, role_of, run_mark

# braille dot bits by (column, row) inside a cell
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
ROLES = ("target", "free-run", "one-step", "forecast")   # drawing order: later ones on top
AXIS_WIDTH = 9


def fmt_tick(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.2g}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class BrailleCanvas:
    """Dots on a grid of cells; each cell remembers the role drawn last into it."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = max(1, cols), max(1, rows)
        self.bits = [[0] * self.cols for _ in range(self.rows)]
        self.role: list[list[str | None]] = [[None] * self.cols for _ in range(self.rows)]

    @property
    def width(self) -> int:
        return self.cols * 2

    @property
    def height(self) -> int:
        return self.rows * 4

    def dot(self, x: int, y: int, role: str) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            col, row = x // 2, y // 4
            self.bits[row][col] |= _DOTS[x % 2][y % 4]
            self.role[row][col] = role

    def line(self, x0: int, y0: int, x1: int, y1: int, role: str) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        for _ in range(dx - dy + 1):
            self.dot(x0, y0, role)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def char(self, row: int, col: int) -> str:
        bits = self.bits[row][col]
        return chr(0x2800 + bits) if bits else " "


# Under NO_COLOR the predicted lines are drawn in marks of their own, not braille in near-equal greys.
NO_COLOR_MARKS = {"one-step": "•", "forecast": "×", "free-run": "∘"}
ZOOM_STEP = 2.0


def fmt_x(value: float) -> str:
    return f"{value:.0f}" if abs(value) < 1e6 else f"{value:.2g}"


class LinePlot(Widget):
    """Lines (core.views.PlotLine) over a shared x range, y ticks on the left, x ticks below,
    dotted markers at given x positions (the validation split, the end of the data), a legend.

    It shows a window of the x range (core.views.plot_window): by default the last few points a
    column can show readably; zoom() and scroll() move it, show_all() shows everything."""

    DEFAULT_CSS = """
    LinePlot { height: 1fr; min-height: 6; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPONENT_CLASSES = {"plot--target", "plot--one-step", "plot--forecast", "plot--free-run", "plot--axis",
                         "plot--marker", "plot--muted"}

    ROLES = ROLES                    # the line roles drawn, in drawing order (later on top)
    NO_COLOR_MARKS = NO_COLOR_MARKS  # role -> the mark its dots are drawn as under NO_COLOR

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: list = []
        self.markers: list[tuple[float, str]] = []
        self.empty_text = "no predictions yet"
        self.span: float | None = None   # points shown; None: the default for the width
        self.end: float | None = None    # the window's right edge; None: the last point
        self.window: tuple[float, float] | None = None  # as last drawn

    def show(self, lines: list, markers: list[tuple[float, str]] | None = None) -> None:
        self.lines, self.markers = list(lines), list(markers or [])
        self.refresh()

    def clear(self, text: str) -> None:
        self.lines, self.markers, self.empty_text, self.window = [], [], text, None
        self.refresh()

    # -- the window

    def _extent(self) -> tuple[float, float] | None:
        xs = [line.x for line in self.lines if len(line.x)]
        if not xs:
            return None
        lo, hi = float(min(x.min() for x in xs)), float(max(x.max() for x in xs))
        return (lo, hi) if hi > lo else (lo, lo + 1.0)  # a single point still has a width to be drawn in

    def zoom(self, factor: float) -> None:
        """factor > 1 shows fewer points (closer), < 1 more; the right edge stays."""
        if self.window is None:
            return
        lo, hi = self.window
        self.span, self.end = (hi - lo) / factor, hi
        self.refresh()

    def scroll(self, direction: int) -> None:
        """Half a window earlier (-1) or later (+1)."""
        if self.window is None:
            return
        lo, hi = self.window
        self.span, self.end = hi - lo, hi + direction * (hi - lo) / 2
        self.refresh()

    def show_all(self) -> None:
        extent = self._extent()
        if extent is not None:
            self.span, self.end = extent[1] - extent[0], extent[1]
            self.refresh()

    def _style(self, role: str) -> Style:
        return self.get_component_rich_style(f"plot--{role}")

    def legend_glyph(self, role: str, marks: dict[str, str]) -> str:
        """What stands for a role's line in the legend, before its name."""
        return marks[role] * 2 + " " if role in marks else "━━ " if role != "target" else "── "

    def fmt_x(self, value: float) -> str:
        """A value on the x axis, as its tick says it."""
        return fmt_x(value)

    def render(self) -> Text:
        from rnn_playground.tui.viewmodel.series_view import plot_bounds, plot_window, window_lines
        width, height = self.size.width or 60, self.size.height or 10
        muted = self._style("muted")
        extent = self._extent()
        if not self.lines or extent is None:
            return Text(self.empty_text, muted)
        marks = self.NO_COLOR_MARKS if self.app.no_color else {}
        axis = self._style("axis")
        cols = max(4, width - AXIS_WIDTH)
        x0, x1 = self.window = plot_window(*extent, cols, self.span, self.end)
        lines = window_lines(self.lines, x0, x1)
        _, _, y0, y1 = plot_bounds(lines)
        entries = [Text.assemble((self.legend_glyph(role, marks), self._style(role)), line.name)
                   for role in self.ROLES for line in self.lines if line.role == role]
        entries += [Text.assemble(("┊ ", self._style("marker")), (name, muted)) for _, name in self.markers]
        # The legend takes as many lines as it needs at this width (a narrow plot wraps it
        # between entries, never inside one); the plot gets the rest.
        legend_lines = [Text(no_wrap=True, overflow="ellipsis")]
        for entry in entries:
            line = legend_lines[-1]
            if line.cell_len and line.cell_len + 2 + entry.cell_len > width:
                legend_lines.append(line := Text(no_wrap=True, overflow="ellipsis"))
            if line.cell_len:
                line.append("  ")
            line.append_text(entry)
        legend = Text("\n", no_wrap=True, overflow="ellipsis").join(legend_lines)
        plot_rows = max(1, height - 1 - len(legend_lines))
        canvas = BrailleCanvas(cols, plot_rows)

        def px(x: float) -> int:
            return int(round((x - x0) / (x1 - x0) * (canvas.width - 1)))

        def py(y: float) -> int:
            return int(round((y1 - y) / (y1 - y0) * (canvas.height - 1)))

        for role in self.ROLES:
            for line in lines:
                if line.role != role:
                    continue
                prev = None
                for x, y in zip(line.x.tolist(), line.y.tolist(), strict=False):
                    if not (math.isfinite(x) and math.isfinite(y)):
                        prev = None
                        continue
                    point = (px(x), py(y))
                    if prev is None:
                        canvas.dot(*point, role)
                    else:
                        canvas.line(*prev, *point, role)
                    prev = point
        marker_cols = {px(x) // 2 for x, _ in self.markers if x0 <= x <= x1}
        # Values down the axis: top and bottom, and every few rows between (never on neighbouring rows).
        step = max(2, plot_rows // 4)
        rows = list(range(0, plot_rows, step))
        if plot_rows - 1 - rows[-1] < 2 and len(rows) > 1:
            rows[-1] = plot_rows - 1
        elif rows[-1] != plot_rows - 1:
            rows.append(plot_rows - 1)
        ticks = {row: fmt_tick(y1 - row / max(1, plot_rows - 1) * (y1 - y0)) for row in rows}
        text = legend
        for row in range(plot_rows):
            text.append("\n")
            label = ticks.get(row, "")
            text.append(label[:AXIS_WIDTH - 2].rjust(AXIS_WIDTH - 2) + " ┤" if label else " " * (AXIS_WIDTH - 1) + "│",
                        axis)
            run_role, run = None, []
            for col in range(cols):
                bits = canvas.bits[row][col]
                if bits:
                    role = canvas.role[row][col]
                    ch = marks.get(role) or canvas.char(row, col)
                elif col in marker_cols:
                    role, ch = "marker", "┊"
                else:
                    role, ch = None, " "
                if role != run_role and run:
                    text.append("".join(run), self._style(run_role) if run_role else "")
                    run = []
                run_role = role
                run.append(ch)
            if run:
                text.append("".join(run), self._style(run_role) if run_role else "")
        text.append("\n")
        text.append(" " * (AXIS_WIDTH - 1) + "└", axis)
        text.append(self._x_axis(x0, x1, cols), axis)
        return text

    def _x_axis(self, x0: float, x1: float, cols: int) -> str:
        """Point numbers under the plot, each starting at the column it names, with room between them."""
        fmt_x = self.fmt_x
        axis = [" "] * cols
        left, right = fmt_x(x0), fmt_x(x1)
        placed = [(0, left), (max(len(left) + 1, cols - len(right)), right)]
        for col in range(12, cols, 12):
            label = fmt_x(x0 + col / max(1, cols - 1) * (x1 - x0))
            if all(col + len(label) < at if at > col else col > at + len(other) for at, other in placed):
                placed.append((col, label))
        for col, label in placed:
            axis[col:col + len(label)] = label
        return "".join(axis)[:cols]


class OverlayPlot(LinePlot):
    """Several runs' loss curves on one axis (compare_view.plot_lines): a role, a colour and a mark per run,
    each run's curve shown whole, the x ticks in the axis's own units (steps, characters, a duration)."""

    DEFAULT_CSS = """
    OverlayPlot { height: 1fr; min-height: 6; text-wrap: nowrap; text-overflow: clip; }
    OverlayPlot > .plot--run-0 { color: $primary; }
    OverlayPlot > .plot--run-1 { color: $warning; }
    OverlayPlot > .plot--run-2 { color: $success; }
    OverlayPlot > .plot--run-3 { color: $error; }
    OverlayPlot > .plot--run-4 { color: $accent; }
    OverlayPlot > .plot--run-5 { color: $secondary; }
    OverlayPlot > .plot--run-6 { color: $foreground; }
    OverlayPlot > .plot--run-7 { color: $text-muted; }
    OverlayPlot > .plot--axis { color: $foreground-muted; }
    OverlayPlot > .plot--muted { color: $foreground-muted; }
    """
    ROLES = tuple(role_of(i) for i in range(len(RUN_MARKS)))
    NO_COLOR_MARKS = {role_of(i): run_mark(i) for i in range(len(RUN_MARKS))}
    COMPONENT_CLASSES = LinePlot.COMPONENT_CLASSES | {f"plot--{role_of(i)}" for i in range(len(RUN_MARKS))}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.axis = "steps"
        self.span = math.inf  # every point of every run, however far the runs went
        self.empty_text = "no points yet"

    def legend_glyph(self, role: str, marks: dict[str, str]) -> str:
        return self.NO_COLOR_MARKS[role] + " "  # the run's mark, in colour or not: the table shows it too

    def fmt_x(self, value: float) -> str:
        return fmt_axis(self.axis, value)

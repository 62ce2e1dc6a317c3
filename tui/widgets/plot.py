"""A line plot in braille dots (2x4 per cell), several lines with a legend, for the Series screen.

The lines come from core.views.series_plot; this widget only maps points to dots.
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

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


class LinePlot(Widget):
    """Lines (core.views.PlotLine) over a shared x range, y ticks on the left, x ticks below,
    dotted markers at given x positions (the validation split, the end of the data), a legend."""

    DEFAULT_CSS = """
    LinePlot { height: 1fr; min-height: 6; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPONENT_CLASSES = {"plot--target", "plot--one-step", "plot--forecast", "plot--free-run", "plot--axis",
                         "plot--marker", "plot--muted"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: list = []
        self.bounds: tuple[float, float, float, float] | None = None
        self.markers: list[tuple[float, str]] = []
        self.empty_text = "no predictions yet"

    def show(self, lines: list, bounds: tuple[float, float, float, float] | None,
             markers: list[tuple[float, str]] | None = None) -> None:
        self.lines, self.bounds, self.markers = list(lines), bounds, list(markers or [])
        self.refresh()

    def clear(self, text: str) -> None:
        self.lines, self.bounds, self.markers, self.empty_text = [], None, [], text
        self.refresh()

    def _style(self, role: str) -> Style:
        return self.get_component_rich_style(f"plot--{role}")

    def render(self) -> Text:
        width, height = self.size.width or 60, self.size.height or 10
        muted = self._style("muted")
        if not self.lines or self.bounds is None:
            return Text(self.empty_text, muted)
        axis = self._style("axis")
        x0, x1, y0, y1 = self.bounds
        entries = [Text.assemble(("━━ " if role != "target" else "── ", self._style(role)), line.name)
                   for role in ROLES for line in self.lines if line.role == role]
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
        cols = max(4, width - AXIS_WIDTH)
        canvas = BrailleCanvas(cols, plot_rows)

        def px(x: float) -> int:
            return int(round((x - x0) / (x1 - x0) * (canvas.width - 1)))

        def py(y: float) -> int:
            return int(round((y1 - y) / (y1 - y0) * (canvas.height - 1)))

        for role in ROLES:
            for line in self.lines:
                if line.role != role:
                    continue
                prev = None
                for x, y in zip(line.x.tolist(), line.y.tolist()):
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
        ticks = {0: fmt_tick(y1), plot_rows - 1: fmt_tick(y0)}
        if plot_rows >= 5:
            ticks[(plot_rows - 1) // 2] = fmt_tick((y0 + y1) / 2)
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
                    role, ch = canvas.role[row][col], canvas.char(row, col)
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
        left, right = fmt_tick(x0), fmt_tick(x1)
        text.append(" " * (AXIS_WIDTH - 1) + "└", axis)
        gap = max(1, cols - len(left) - len(right))
        text.append(left + " " * gap + right, axis)
        return text

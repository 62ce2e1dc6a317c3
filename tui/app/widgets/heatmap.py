"""Heatmaps over units, drawn with half-block cells on one diverging colour scale.

Values arrive already on the scale [-1, 1] (viewmodel.gates_view.diverging). Each character cell holds two
units side by side: '▌' with the left unit as foreground and the right unit as background, so a
row of W cells shows 2W units in order. Without colour (NO_COLOR) each cell holds one unit drawn
as a bar whose height is its value on the scale (▁ = -1 ... █ = +1).
"""

from __future__ import annotations

import re

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from rnn_playground.tui.viewmodel.gates_view import HeatRow, unit_page

# Diverging ramp: blue (-1) through a neutral middle to red (+1). The middle follows the theme,
# so small values recede into the background on dark and light themes alike.
NEGATIVE = (67, 147, 195)
POSITIVE = (214, 96, 77)
MIDDLE_DARK = (48, 48, 52)
MIDDLE_LIGHT = (236, 236, 236)
LEVELS = 33  # colours per ramp; values are quantised so styles are cached
BARS = "▁▂▃▄▅▆▇█"


class Ramp:
    """value in [-1, 1] -> a rich Color on the diverging scale."""

    def __init__(self, dark: bool = True) -> None:
        middle = MIDDLE_DARK if dark else MIDDLE_LIGHT
        self.colors: list[Color] = []
        for n in range(LEVELS):
            v = -1.0 + 2.0 * n / (LEVELS - 1)
            end = POSITIVE if v >= 0 else NEGATIVE
            a = abs(v)
            rgb = tuple(int(round(m + (e - m) * a)) for m, e in zip(middle, end, strict=True))
            self.colors.append(Color.from_rgb(*rgb))
        self._pairs: dict[tuple[int, int], Style] = {}

    def level(self, value: float) -> int:
        if not np.isfinite(value):
            return LEVELS // 2
        return int(round((min(1.0, max(-1.0, float(value))) + 1.0) / 2.0 * (LEVELS - 1)))

    def color(self, value: float) -> Color:
        return self.colors[self.level(value)]

    def pair(self, left: float, right: float | None) -> Style:
        a = self.level(left)
        b = self.level(right) if right is not None else -1
        style = self._pairs.get((a, b))
        if style is None:
            style = Style(color=self.colors[a], bgcolor=self.colors[b] if b >= 0 else None)
            self._pairs[(a, b)] = style
        return style


def units_per_cell(mono: bool) -> int:
    return 1 if mono else 2


def heat_segments(values: np.ndarray, ramp: Ramp, mono: bool = False, cells: int | None = None) -> list[Segment]:
    """One row of a heatmap: `values` (on [-1, 1]) packed two per cell ('▌'), or one bar per cell
    without colour. Padded with blanks to `cells`."""
    segments: list[Segment] = []
    if mono:
        for v in values:
            v = 0.0 if not np.isfinite(v) else min(1.0, max(-1.0, float(v)))
            segments.append(Segment(BARS[min(len(BARS) - 1, int((v + 1.0) / 2.0 * len(BARS)))]))
    else:
        n = len(values)
        for i in range(0, n, 2):
            right = values[i + 1] if i + 1 < n else None
            segments.append(Segment("▌", ramp.pair(values[i], right)))
    used = len(segments)
    if cells is not None and used < cells:
        segments.append(Segment(" " * (cells - used)))
    return segments


def heat_text(values: np.ndarray, ramp: Ramp, mono: bool = False) -> Text:
    text = Text(no_wrap=True)
    for segment in heat_segments(values, ramp, mono):
        text.append(segment.text, segment.style)
    return text


def legend_text(ramp: Ramp, mono: bool = False, width: int = 9, fraction: bool = False) -> Text:
    """'-1 ▌▌▌▌ +1': the scale itself. For fractions (saturation) '0 ... 1': bars from none to
    all without colour; with colour a blue ramp (below) and a red one (above), both from 0 to 1."""
    if not fraction:
        values = np.linspace(-1.0, 1.0, width * units_per_cell(mono))
        text = Text("-1 ", no_wrap=True)
        text.append_text(heat_text(values, ramp, mono))
        text.append(" +1")
        return text
    text = Text(no_wrap=True)
    if mono:
        text.append("0 ")
        text.append_text(heat_text(np.linspace(-1.0, 1.0, width), ramp, mono))
        text.append(" 1 of the steps")
        return text
    half = max(2, width // 2) * units_per_cell(mono)
    for sign, side in ((-1.0, "below"), (1.0, "above")):
        text.append("0 " if sign < 0 else "  0 ")
        text.append_text(heat_text(sign * np.linspace(0.0, 1.0, half), ramp, mono))
        text.append(f" 1 {side}")
    return text


class HeatmapPanel(Widget):
    """Heatmaps of one step and layer: one line per quantity, labelled on the left, the selected
    unit's value on the right, a marker over the selected unit. Shows the page of units holding
    the selected unit; `units_per_page` says how many fit."""

    DEFAULT_CSS = """
    HeatmapPanel { height: auto; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPONENT_CLASSES = {"heatmap--label", "heatmap--muted", "heatmap--marker", "heatmap--value"}
    VALUE_WIDTH = 9

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[HeatRow] = []
        self.unit = 0
        self.units = 0
        self._ramp: Ramp | None = None
        self._ramp_dark: bool | None = None
        self.row_lines = 1   # lines per quantity: taller cells when the terminal has room
        self.fraction = False   # rows are fractions of steps (0..1), not values on [-1, 1]

    @property
    def mono(self) -> bool:
        return bool(getattr(self.app, "no_color", False))

    def ramp(self) -> Ramp:
        dark = bool(getattr(self.app.current_theme, "dark", True))
        if self._ramp is None or self._ramp_dark != dark:
            self._ramp, self._ramp_dark = Ramp(dark), dark
        return self._ramp

    def label_width(self, width: int | None = None) -> int:
        """As wide as the longest label (the short ones when the long ones take over a third)."""
        width = self.size.width if width is None else width
        longest = max((len(row.label) for row in self.rows), default=14)
        if longest <= width // 3:
            return max(10, longest)
        return max(10, min(max((len(row.short) for row in self.rows), default=14), width // 3))

    def use_long_labels(self, width: int | None = None) -> bool:
        width = self.size.width if width is None else width
        return max((len(row.label) for row in self.rows), default=0) <= width // 3

    def strip_cells(self, width: int | None = None) -> int:
        width = self.size.width if width is None else width
        return max(4, width - self.label_width(width) - self.VALUE_WIDTH - 2)

    @property
    def units_per_page(self) -> int:
        return self.strip_cells() * units_per_cell(self.mono)

    def show(self, rows: list[HeatRow], unit: int, units: int, fraction: bool = False) -> None:
        resize = len(rows) != len(self.rows)
        self.rows, self.unit, self.units, self.fraction = rows, unit, units, fraction
        self.refresh(layout=resize)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.rows) * self.row_lines + 2 if self.rows else 1

    def page(self) -> tuple[int, int, int, int]:
        return unit_page(self.units, self.units_per_page, self.unit)

    def unit_numbers(self) -> dict[str, str]:
        """The selected unit's numbers as rendered, by quantity key (for tests of the Gates screens)."""
        number = r"[+-]?\d+\.\d{4}"  # saturation fractions have no sign
        lines = [line for line in self.render().plain.splitlines()[1:] if re.search(number, line)]
        return {row.key: re.findall(number, line)[-1] for row, line in zip(self.rows, lines, strict=False)}

    def render(self) -> Text:
        if not self.rows:
            return Text("")
        width = self.size.width or 80
        label_w = self.label_width(width)
        upc = units_per_cell(self.mono)
        page, pages, first, last = self.page()
        ramp = self.ramp()
        muted = self.get_component_rich_style("heatmap--muted")
        label_style = self.get_component_rich_style("heatmap--label")
        value_style = self.get_component_rich_style("heatmap--value")
        marker = self.get_component_rich_style("heatmap--marker")
        text = Text(no_wrap=True, overflow="crop")
        paging = f" p{page + 1}/{pages}" if pages > 1 else ""
        head = next((h for h in (f"units {first}-{last - 1}{paging}", f"{first}-{last - 1}{paging}")
                     if len(h) <= label_w), f"{first}-{last - 1}")
        long_labels = self.use_long_labels(width)
        shown_cells = (last - first + upc - 1) // upc
        text.append(head[:label_w].ljust(label_w) + " ", muted)
        column = (self.unit - first) // upc
        text.append(" " * column)
        text.append("▼", marker)
        text.append(" " * (shown_cells - column - 1))
        text.append(f" {'unit ' + str(self.unit):>{self.VALUE_WIDTH}}", marker)
        for row in self.rows:
            text.append("\n")
            label = row.label if long_labels else row.short
            text.append(label[:label_w].ljust(label_w) + " ", label_style)
            strip = heat_text(row.values[first:last], ramp, self.mono)
            text.append_text(strip)
            sign = "" if self.fraction else "+"
            text.append(f" {row.raw:>{sign}{self.VALUE_WIDTH}.4f}", value_style)
            if width - label_w - shown_cells - self.VALUE_WIDTH - 2 > len(row.standard) + 2 and row.standard:
                text.append(f"  {row.standard}", muted)
            for _ in range(self.row_lines - 1):
                text.append("\n" + " " * (label_w + 1))
                text.append_text(strip)
        text.append("\n")
        text.append(" " * (label_w + 1))
        text.append_text(legend_text(ramp, self.mono, width=min(12, max(4, shown_cells - 6)),
                                     fraction=self.fraction))
        if not self.mono and not self.fraction:
            text.append("  2 units a cell", muted)
        return text

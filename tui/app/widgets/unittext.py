"""A text coloured by one unit's value at every character (Karpathy's interpretable-cell view),
with a cursor. Only a window around the cursor is laid out, so long texts cost nothing extra."""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from rnn_playground.tui.viewmodel.format import show_text_char

from .heatmap import Ramp


def layout_window(text: str, pos: int, width: int, lines: int) -> list[tuple[int, int]]:
    """(start, end) character ranges of the visual lines around `pos`: lines break after a newline,
    and where a line would pass `width`, after its last space (a word longer than the line is cut
    at the width); the cursor's line sits a third of the way down. The layout starts where the
    logical line does, or, deep inside a very long line, at a block boundary, so the lines stay put
    as the cursor moves."""
    n = len(text)
    if n == 0 or width < 1:
        return []
    pos = max(0, min(pos, n - 1))
    span = width * lines
    anchor = max(0, pos - span)
    start = text.rfind("\n", 0, anchor) + 1
    block = 8 * span
    if anchor - start > block:  # a very long line: lay out from a fixed block boundary, not its start
        start += (anchor - start) // block * block
    ranges: list[tuple[int, int]] = []
    i = start
    limit = min(n, pos + 2 * span)
    while i < limit:
        end = min(n, i + width)
        newline = text.find("\n", i, end)
        if newline >= 0:
            j = newline + 1
        elif end < n and text[end] != " " and text[end] != "\n":
            space = text.rfind(" ", i, end)
            j = space + 1 if space >= i else end  # after the last space: words stay whole
        else:
            j = end
        ranges.append((i, j))
        i = j
    cursor_line = next((k for k, (a, b) in enumerate(ranges) if a <= pos < b), len(ranges) - 1)
    first = max(0, min(cursor_line - lines // 3, len(ranges) - lines))
    return ranges[first:first + lines]


class UnitText(Widget):
    """The text with each traced character's background on the diverging scale of the selected
    unit's value; untraced characters plain; the cursor reversed."""

    DEFAULT_CSS = """
    UnitText { height: 3; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPONENT_CLASSES = {"unittext--cursor", "unittext--untraced", "unittext--selection"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = ""
        self.pos = 0
        self.values: np.ndarray = np.zeros(0)   # on [-1, 1], for characters offset.. (traced ones only)
        self.value_offset = 0
        self.selection: tuple[int, int] | None = None   # a span of the text, start to one past its end
        self._ramp: Ramp | None = None
        self._dark: bool | None = None

    def show(self, text: str, pos: int, values: np.ndarray, offset: int = 0,
             selection: tuple[int, int] | None = None) -> None:
        self.text, self.pos, self.values, self.value_offset = text, pos, values, offset
        self.selection = selection
        self.refresh()

    def ramp(self) -> Ramp:
        dark = bool(getattr(self.app.current_theme, "dark", True))
        if self._ramp is None or self._dark != dark:
            self._ramp, self._dark = Ramp(dark), dark
        return self._ramp

    def render(self) -> Text:
        width, height = max(1, self.size.width), max(1, self.size.height)
        out = Text(no_wrap=True, overflow="crop")
        if not self.text:
            return out
        ramp = self.ramp()
        mono = bool(getattr(self.app, "no_color", False))
        cursor = self.get_component_rich_style("unittext--cursor")
        untraced = self.get_component_rich_style("unittext--untraced")
        first, last = self.value_offset, self.value_offset + len(self.values)
        selected_from, selected_to = self.selection or (0, 0)
        selected = self.get_component_rich_style("unittext--selection")
        for n, (a, b) in enumerate(layout_window(self.text, self.pos, width, height)):
            if n:
                out.append("\n")
            for i in range(a, b):
                ch = self.text[i]
                shown = show_text_char(ch)
                if i == self.pos:
                    style = cursor
                elif first <= i < last:
                    value = float(self.values[i - first])
                    style = Style(bgcolor=ramp.color(value)) if not mono else (
                        Style(underline=True) if value > 0.5 else Style(dim=True) if value < -0.5 else Style())
                else:
                    style = untraced
                if selected_from <= i < selected_to and i != self.pos:
                    style = style + selected
                out.append(shown, style)
        return out

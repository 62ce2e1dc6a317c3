"""Text that grows at its end, wrapped and scrolled without re-laying out what is already there.

A stream of generated text can reach tens of thousands of characters, arriving in chunks several
times a second. A Static would re-wrap all of it for every chunk; this widget keeps the wrapped
lines as offsets into the text and wraps only the last, unfinished line together with the new
characters, and draws only the lines on screen (a ScrollView's line API).

The text has three parts, styled apart: the prime, the body, and a dimmed tail (the
complete-as-you-type continuation).
"""

from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

VISIBLE = {"\t": "    ", "\r": ""}


def wrap_from(text: str, start: int, width: int) -> list[tuple[int, int]]:
    """Visual lines (start, end) of text[start:], breaking after a newline, and at the last space
    that fits within `width` characters (or at `width` when a word is longer than a line). The
    newline itself is not shown; a trailing space stays on its line."""
    lines: list[tuple[int, int]] = []
    n = len(text)
    i = start
    width = max(1, width)
    while i < n:
        newline = text.find("\n", i, i + width + 1)
        if newline != -1:
            lines.append((i, newline))
            i = newline + 1
            if i == n:
                lines.append((i, i))  # the cursor sits on the empty line after it
            continue
        if n - i <= width:
            lines.append((i, n))
            break
        space = text.rfind(" ", i, i + width)
        end = space + 1 if space > i else i + width
        lines.append((i, end))
        i = end
    if not lines:
        lines.append((start, start))
    return lines


class StreamText(ScrollView, can_focus=True):
    """Prime + body + dimmed tail; `append()` adds to the body in O(chunk), and the view follows
    the end unless scrolled up."""

    DEFAULT_CSS = """
    StreamText { height: 1fr; overflow-x: hidden; overflow-y: scroll; }
    """
    COMPONENT_CLASSES = {"streamtext--prime", "streamtext--tail", "streamtext--cursor"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = ""
        self.prime_len = 0
        self.tail_start = 0        # where the dimmed tail begins (len(text) when there is none)
        self.cursor = False        # a block after the text while it streams
        self._lines: list[tuple[int, int]] = [(0, 0)]
        self._width = 0

    # -- content

    def set_text(self, prime: str, body: str = "", tail: str = "", cursor: bool = False) -> None:
        self.text = prime + body + tail
        self.prime_len = len(prime)
        self.tail_start = len(prime) + len(body)
        self.cursor = cursor
        self._rewrap()

    def append(self, body: str) -> None:
        """Add to the body (any tail is dropped)."""
        if self.tail_start < len(self.text):
            self.text = self.text[:self.tail_start]
            self._rewrap()
        if not body:
            self.refresh()
            return
        follow = self.is_vertical_scroll_end or self.max_scroll_y == 0
        start = self._lines[-1][0] if self._lines else 0
        self.text += body
        self.tail_start = len(self.text)
        self._lines[-1:] = wrap_from(self.text, start, self._wrap_width())
        self._update_size(follow)

    @property
    def body(self) -> str:
        return self.text[self.prime_len:self.tail_start]

    # -- layout

    def _wrap_width(self) -> int:
        return max(1, self.scrollable_content_region.width - 1) if self.is_mounted else 80  # room for the cursor

    def _rewrap(self) -> None:
        self._width = self._wrap_width()
        self._lines = wrap_from(self.text, 0, self._width)
        self._update_size(True)

    def _update_size(self, follow: bool) -> None:
        # Growing by a few lines must not re-lay out the screen (a reactive virtual_size would, for
        # every chunk): set it quietly and update this widget's scrollbar and scroll position. The
        # vertical scrollbar is always there (overflow-y: scroll), so the wrap width never changes.
        size = Size(self._width, len(self._lines))
        self.set_reactive(ScrollView.virtual_size, size)
        if self.is_mounted:
            self._scroll_update(size)
            if follow:
                self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.refresh()

    def on_resize(self) -> None:
        if self._wrap_width() != self._width:
            self._rewrap()

    def on_mount(self) -> None:
        self._rewrap()

    # -- drawing

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        base = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, base)
        start, end = self._lines[index]
        text = self.text
        segments: list[Segment] = []
        prime = base + self.get_component_rich_style("streamtext--prime", partial=True)
        tail = base + self.get_component_rich_style("streamtext--tail", partial=True)
        cuts = sorted({start, end, min(max(self.prime_len, start), end), min(max(self.tail_start, start), end)})
        for a, b in zip(cuts, cuts[1:], strict=False):
            if a >= b:
                continue
            piece = text[a:b]
            for ch, shown in VISIBLE.items():
                piece = piece.replace(ch, shown)
            style = prime if a < self.prime_len else tail if a >= self.tail_start else base
            segments.append(Segment(piece, style))
        if self.cursor and index == len(self._lines) - 1:
            segments.append(Segment("▌", base + self.get_component_rich_style("streamtext--cursor", partial=True)))
        return Strip(segments).adjust_cell_length(width, base)

    # -- for tests

    def visible_lines(self) -> list[str]:
        return [self.text[a:b] for a, b in self._lines]

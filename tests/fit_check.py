"""Find text a screen cuts: for each widget on screen, the text it means to show (its full render,
a table's labels and cells) against what its region of the screen really shows.

Two kinds of cut are reported:
- a token (a run of non-space characters: a word, a number, a key like `[t/T]`) of the intended
  text that is not shown whole: cropped at the edge (`rank 1` for `rank 19`), ended by an
  ellipsis, broken across two lines, or below the last line of a fixed-height widget;
- a field of a list-like line (fields separated by two spaces or ` · `, as in
  `temperature 0.80 [t/T]  top-k off [k/K]`) that fits on one line of the widget but is shown
  split over two (`seed new each time` / `[s]`). Prose (no such separators) may wrap between words.

Widgets that scroll their text on purpose (logs, the sample output, the help list, a text field
longer than its box, a list), the Train screen's fixed sample preview, and pictures (sparklines,
plots) are not checked: what is out of view there is a scroll away, not cut. The Gates text view
lays out its own lines: its intended text is the slice of the text those lines cover.
"""

from __future__ import annotations

import re
from collections import Counter

from rich.cells import cell_len
from rich.text import Text
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Input

FIELD_SEPARATOR = re.compile(r"\s{2,}| · ")
# Widgets whose content scrolls or is drawn rather than written.
SKIPPED = {"Log", "RichLog", "TextArea", "StreamText", "OptionList", "Sparkline", "PlotextPlot", "ScrollBar",
           "ScrollBarCorner", "Toast", "ToastRack", "Tooltip", "ProgressBar", "Bar", "PercentageStatus",
           "ETAStatus", "LoadingIndicator", "SelectOverlay"}

# A fixed box previewing the start of a longer text: the Train screen's latest sample.
PREVIEW_IDS = {"sample"}


def screen_cells(app) -> list[list[str]]:
    """The screen as rows of cells (a wide character fills its first cell, '' the second)."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    rows = []
    for line in update.strips:
        cells: list[str] = []
        for segment in (segment for strip in line for segment in strip):
            if segment.control:
                continue
            for char in segment.text:
                width = cell_len(char)
                if width == 0:
                    if cells:
                        cells[-1] += char
                    continue
                cells.append(char)
                cells.extend([""] * (width - 1))
        rows.append(cells)
    return rows


def _plain(renderable) -> str | None:
    if isinstance(renderable, str):
        return renderable
    if isinstance(renderable, (Text, Content)):
        return renderable.plain
    return None


def intended_text(widget: Widget) -> str | None:
    """What the widget would show with room enough, or None when it is not checked."""
    if type(widget).__name__ in SKIPPED or any(type(a).__name__ in SKIPPED for a in widget.ancestors):
        return None
    if widget.id in PREVIEW_IDS:
        return None
    if type(widget).__name__ == "UnitText":  # lays out its own lines: the text of the lines it shows
        from rnn_playground.tui.app.widgets.unittext import layout_window
        from rnn_playground.tui.viewmodel.format import show_text_char
        ranges = layout_window(widget.text, widget.pos, widget.size.width, widget.size.height)
        if not ranges:
            return None
        shown = widget.text[ranges[0][0]:ranges[-1][1]]
        return "".join(show_text_char(ch) + ("\n" if ch == "\n" else "")
                       for ch in shown)
    if isinstance(widget, DataTable):
        labels = [column.label.plain for column in widget.ordered_columns]
        rows = []
        first = int(widget.scroll_y)
        visible = max(0, widget.scrollable_content_region.height - (1 if widget.show_header else 0))
        for row in widget.ordered_rows[first:first + visible]:
            rows.append("  ".join(_plain(cell) or str(cell) for cell in widget.get_row(row.key)))
        return "  ".join(labels) + "\n" + "\n".join(rows)
    if isinstance(widget, Input):
        if widget.value:
            return None  # a value longer than the field scrolls
        return widget.placeholder
    if widget.children:  # containers: their children are checked
        return None
    try:
        return _plain(widget.render())
    except Exception:  # noqa: BLE001 - a widget that cannot render outside its own refresh
        return None


def _scrolls(widget: Widget) -> bool:
    """Whether an ancestor of the widget can scroll it into view."""
    return any(getattr(a, "max_scroll_y", 0) > 0 or getattr(a, "max_scroll_x", 0) > 0 for a in widget.ancestors)


def _region_lines(cells: list[list[str]], region) -> list[str]:
    lines = []
    for y in range(region.y, region.bottom):
        row = cells[y] if 0 <= y < len(cells) else []
        lines.append("".join(row[region.x:region.right]))
    return lines


def _squash(text: str) -> str:
    return " ".join(text.split())


def cuts(app) -> list[str]:
    """Every cut on the app's current screen, one readable line each (empty: nothing is cut)."""
    cells = screen_cells(app)
    problems = []
    screen = app.screen
    for widget, geometry in list(screen._compositor.full_map.items()):
        if not widget.is_mounted or widget is screen:
            continue
        visible = geometry.region.intersection(geometry.clip)
        if not visible.area:
            continue
        name = f"{type(widget).__name__}#{widget.id}" if widget.id else type(widget).__name__
        if visible != geometry.region and _scrolls(widget):
            continue  # partly scrolled out of view: a scroll away
        title = widget.border_title
        if title:
            title_text = _plain(title) or str(title)
            top = _squash("".join(_region_lines(cells, visible)[0:1]))
            for token in title_text.split():
                if token not in top.replace("─", " ").split():
                    problems.append(f"{name}: border title {title_text!r} shown as {top!r}")
                    break
        intended = intended_text(widget)
        if not intended or not intended.strip():
            continue
        content = widget.content_region.intersection(geometry.clip)
        if isinstance(widget, DataTable):
            content = widget.scrollable_content_region.intersection(geometry.clip)
        if not content.area:
            problems.append(f"{name}: {intended.strip()[:40]!r} has no room at all")
            continue
        shown_lines = _region_lines(cells, content)
        shown = Counter(" ".join(shown_lines).split())
        missing = Counter(intended.split()) - shown
        if missing:
            problems.append(f"{name}: not shown whole: {' '.join(missing.elements())!r}; "
                            f"shows {' | '.join(line.rstrip() for line in shown_lines)!r}")
            continue
        if isinstance(widget, DataTable):
            continue
        squashed_lines = [f" {_squash(line)} " for line in shown_lines]
        for line in intended.splitlines():
            fields = [f for f in FIELD_SEPARATOR.split(line.strip()) if f]
            if len(fields) < 2:
                continue
            for field in fields:
                field = _squash(field)
                if " " in field and cell_len(field) <= content.width and \
                        not any(f" {field} " in shown for shown in squashed_lines):
                    problems.append(f"{name}: {field!r} split over two lines; "
                                    f"shows {' | '.join(line.rstrip() for line in shown_lines)!r}")
    return problems

"""Bar chart of the next-character distribution, the true next character marked."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from rnn_playground.tui.viewmodel.format import bar, show_char

from .fitting import pack_phrases


class NextCharBars(Widget):
    """Top-k next characters as bars with their probabilities; the true next character is marked
    with ◀ (and listed with its rank when outside the top k); its probability, rank and surprisal
    in the title line."""

    DEFAULT_CSS = """
    NextCharBars { height: auto; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPONENT_CLASSES = {"bars--bar", "bars--true", "bars--muted", "bars--title"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = None

    def show(self, view) -> None:
        """`view`: a viewmodel.gates_view.NextCharView (None clears)."""
        width = self.size.width
        before = self.get_content_height(None, None, width) if self.view is not None else None
        self.view = view
        after = self.get_content_height(None, None, width) if view is not None else None
        self.refresh(layout=before != after)

    def get_content_height(self, container, viewport, width: int) -> int:
        if self.view is None:
            return 1
        return self._header(width).plain.count("\n") + 1 + len(self.view.rows)

    def _header(self, width: int) -> Text:
        """The true next character, its probability, rank and surprisal, on as many lines as the
        width needs (two on the Gates screen's side panel; `rank 19` never cut to `rank 1`)."""
        view = self.view
        title = self.get_component_rich_style("bars--title")
        muted = self.get_component_rich_style("bars--muted")
        if view.true_char is None:
            return Text.assemble(("next: end of text", title), "\n", ("no true next character", muted))
        return pack_phrases([Text(f"next {show_char(view.true_char)!s}", title), f"p {view.true_prob:.3f}",
                             f"rank {view.true_rank}", Text(f"surprisal {view.surprisal_bits:.2f} bits", muted)],
                            width)

    def render(self) -> Text:
        view = self.view
        title = self.get_component_rich_style("bars--title")
        text = Text(no_wrap=True, overflow="ellipsis")
        if view is None:
            text.append("next character", title)
            return text
        text.append_text(self._header(self.size.width))
        width = max(10, (self.size.width or 30))
        cells = max(3, width - 15)
        top = max((row.prob for row in view.rows), default=1.0) or 1.0
        for row in view.rows:
            style = self.get_component_rich_style("bars--true" if row.is_true else "bars--bar")
            text.append("\n")
            rank = f"{row.rank:>2}" if row.rank is not None else " ?"
            text.append(f"{rank} {show_char(row.char)} ", style if row.is_true else "")
            text.append(bar(row.prob / top, cells), style)
            text.append(f" {row.prob:5.3f}")
            text.append(" ◀" if row.is_true else "  ", style)
        return text

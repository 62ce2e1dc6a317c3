"""The top line of every screen: the modes with their keys, and what training is doing."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ..modes import MODES


class ModeBar(Widget):
    """`1 Train  2 Sample  3 Gates  4 Series  5 Runs  6 Lesson` with the current one marked, and the
    training status (from the app) on the right."""

    DEFAULT_CSS = """
    ModeBar { height: 1; dock: top; }
    """
    COMPONENT_CLASSES = {"modebar--title", "modebar--mode", "modebar--active", "modebar--key", "modebar--status"}

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def on_mount(self) -> None:
        self.watch(self.app, "status_line", lambda _: self.refresh(), init=False)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        wide = self.size.width >= 100
        text.append(" rnn-playground " if wide else " ", self.get_component_rich_style("modebar--title"))
        for mode in MODES:
            active = mode.name == self.mode
            style = self.get_component_rich_style("modebar--active" if active else "modebar--mode")
            text.append(" ")
            text.append(mode.key, style + self.get_component_rich_style("modebar--key") if not active else style)
            text.append(f" {mode.label}", style)
            text.append(" ", style)
        status = getattr(self.app, "status_line", "")
        if status:
            room = self.size.width - text.cell_len - 1
            if room > 4:
                shown = status if len(status) <= room else status[: room - 1] + "…"
                text.append(" " * (room - len(shown)))
                text.append(shown, self.get_component_rich_style("modebar--status"))
        return text

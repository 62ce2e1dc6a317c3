"""Help: every key, from the bindings themselves (see keys.py)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", id="help.close",
                tooltip="close this help (also q, ? or F1)"),
    ]

    def compose(self) -> ComposeResult:
        from ..keys import key_display, key_table
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, min_width=14)
        table.add_column()
        scope = None
        for row_scope, keys, description in key_table(self.app):
            if row_scope != scope:
                table.add_row(Text(row_scope, style="bold underline"), "")
                scope = row_scope
            table.add_row(Text(key_display(keys), style="bold"), description)
        with VerticalScroll(id="help-body"):
            yield Static("", id="help-topic")  # F1 in a form field: what that setting means
            yield Static("Keys", id="help-title")
            yield Static(table, id="help-table")
            yield Static("Everything works from the keyboard alone; the mouse is optional. "
                         "ctrl+q quits from anywhere, also inside a form field.", id="help-note")

    def on_mount(self) -> None:
        self.query_one("#help-body").border_title = "help  (Escape, q, ? or F1 closes)"

    def show_topic(self, topic: Text | None) -> None:
        """Open with `topic` above the keys (None: the keys alone)."""
        self.topic = topic
        if self.is_mounted:
            self._render_topic()

    def on_screen_resume(self) -> None:
        self._render_topic()

    def _render_topic(self) -> None:
        widget = self.query_one("#help-topic", Static)
        topic = getattr(self, "topic", None)
        widget.update(topic if topic is not None else "")
        widget.set_class(topic is not None, "-shown")
        self.query_one("#help-body").scroll_home(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)

"""Help: every key, from the bindings themselves (see tui.keys)."""

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
        Binding("escape,q,question_mark,f1", "close", "Close", id="help.close"),
    ]
    HELP = {"help.close": "close this help (also q, ? or F1)"}

    def compose(self) -> ComposeResult:
        from ..keys import key_display, key_table
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, min_width=14)
        table.add_column()
        scope = None
        for row_scope, keys, description in key_table():
            if row_scope != scope:
                table.add_row(Text(row_scope, style="bold underline"), "")
                scope = row_scope
            table.add_row(Text(key_display(keys), style="bold"), description)
        with VerticalScroll(id="help-body"):
            yield Static("Keys", id="help-title")
            yield Static(table, id="help-table")
            yield Static("Everything works from the keyboard alone; the mouse is optional. "
                         "ctrl+q quits from anywhere, also inside a form field.", id="help-note")

    def on_mount(self) -> None:
        self.query_one("#help-body").border_title = "help  (Escape, q, ? or F1 closes)"

    def action_close(self) -> None:
        self.dismiss(None)

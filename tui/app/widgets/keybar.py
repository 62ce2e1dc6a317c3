"""A one-line footer of the keys that apply now, drawn as text.

Textual's Footer mounts a widget per key and rebuilds them all whenever bindings are refreshed,
which on a mode switch or a pause costs the UI thread tens of milliseconds, time the training
thread then waits for the GIL. This draws the same information (the screen's active bindings,
one entry per action, greyed when disabled) in a single render; as the Footer does, the mouse
over an entry shows its binding's tooltip.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text
from textual import events
from textual.widget import Widget

from ..keys import what_it_does


class Entry(NamedTuple):
    key: str
    description: str
    enabled: bool
    app_wide: bool
    tooltip: str


class KeyBar(Widget):
    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--disabled", "keybar--palette"}
    # (first cell, end cell, tooltip) of each entry as last drawn
    _spans: tuple[tuple[int, int, str], ...] = ()

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen) -> None:
        if screen is self.screen:
            self.refresh()

    def entries(self) -> list[Entry]:
        """An entry per action, in the order the footer shows them."""
        seen, shown = set(), []
        palette = self.app.COMMAND_PALETTE_BINDING
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or binding.action in seen or key == palette:
                continue
            seen.add(binding.action)
            shown.append(Entry(self.app.get_key_display(binding), binding.description, active.enabled,
                               (binding.id or "").startswith("app."), what_it_does(binding)))
        return shown

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        disabled = self.get_component_rich_style("keybar--disabled")

        def entry(key: str, description: str, enabled: bool) -> Text:
            return Text.assemble((f" {key} ", key_style if enabled else disabled),
                                 (f"{description} ", description_style if enabled else disabled))

        entries = self.entries()
        # The app's keys (screens, help, quit) always show; the screen's own keys fill the room
        # left, in order, and help lists any that do not fit.
        app_parts = [(e, entry(*e[:3])) for e in entries if e.app_wide]
        room = self.size.width - sum(part.cell_len for _, part in app_parts)
        text = Text(no_wrap=True, overflow="ellipsis")
        spans = []
        for e in entries:
            if not e.app_wide:
                part = entry(*e[:3])
                if part.cell_len > room:
                    break
                spans.append((text.cell_len, text.cell_len + part.cell_len, e.tooltip))
                text.append_text(part)
                room -= part.cell_len
        for e, part in app_parts:
            spans.append((text.cell_len, text.cell_len + part.cell_len, e.tooltip))
            text.append_text(part)
        self._spans = tuple(spans)
        palette = " ^p palette "
        room = self.size.width - text.cell_len
        if self.app.ENABLE_COMMAND_PALETTE and room >= len(palette) + 1:
            text.append(" " * (room - len(palette)))
            text.append(palette, self.get_component_rich_style("keybar--palette"))
        return text

    def on_mouse_move(self, event: events.MouseMove) -> None:
        tooltip = next((tooltip for start, end, tooltip in self._spans if start <= event.x < end), None)
        if tooltip != self.tooltip:
            self.tooltip = tooltip

    def on_leave(self) -> None:
        self.tooltip = None

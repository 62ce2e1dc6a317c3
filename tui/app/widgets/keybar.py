"""A one-line footer of the keys that apply now, drawn as text.

Textual's Footer mounts a widget per key and rebuilds them all whenever bindings are refreshed,
which on a mode switch or a pause costs the UI thread tens of milliseconds, time the training
thread then waits for the GIL. This draws the same information (the screen's active bindings,
one entry per action, greyed when disabled) in a single render.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class KeyBar(Widget):
    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--disabled", "keybar--palette"}

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen) -> None:
        if screen is self.screen:
            self.refresh()

    def entries(self) -> list[tuple[str, str, bool, bool]]:
        """(key, description, enabled, app-wide) per action, in the order the footer shows them."""
        seen, shown = set(), []
        palette = self.app.COMMAND_PALETTE_BINDING
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or binding.action in seen or key == palette:
                continue
            seen.add(binding.action)
            shown.append((self.app.get_key_display(binding), binding.description, active.enabled,
                          (binding.id or "").startswith("app.")))
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
        app_part = Text().join(entry(*e[:3]) for e in entries if e[3])
        room = self.size.width - app_part.cell_len
        text = Text(no_wrap=True, overflow="ellipsis")
        for e in entries:
            if not e[3]:
                part = entry(*e[:3])
                if part.cell_len > room:
                    break
                text.append_text(part)
                room -= part.cell_len
        text.append_text(app_part)
        palette = " ^p palette "
        room = self.size.width - text.cell_len
        if self.app.ENABLE_COMMAND_PALETTE and room >= len(palette) + 1:
            text.append(" " * (room - len(palette)))
            text.append(palette, self.get_component_rich_style("keybar--palette"))
        return text

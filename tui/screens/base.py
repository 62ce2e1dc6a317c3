"""Helpers shared by the screens."""

from __future__ import annotations

from dataclasses import replace

from textual.screen import Screen
from textual.widgets import Input

# Bindings on printable keys: inside a text field those keys type, so the footer leaves them out.
TYPED_BINDING_IDS = {"app.quit", "app.help", "app.mode.train", "app.mode.sample", "app.mode.gates",
                     "app.mode.series", "app.mode.runs", "train.start", "train.pause", "train.resume",
                     "train.stop", "train.save", "train.restart", "runs.sample", "runs.gates", "runs.resume",
                     "runs.delete", "runs.refresh"}
# ... and shows these instead, which work inside a field too.
FIELD_BINDING_IDS = {"app.quit_anywhere", "app.help_f1"}


class PlaygroundScreen(Screen):
    """A screen whose footer shows only the keys that apply now: outside a text field the
    single-letter keys; inside one, the keys that still work there (F1, ctrl+q, Enter, Escape)."""

    @property
    def active_bindings(self):
        bindings = super().active_bindings
        if not isinstance(self.focused, Input):
            return bindings
        shown = {}
        for key, active in bindings.items():
            binding = active.binding
            if binding.id in TYPED_BINDING_IDS:
                continue
            if binding.id in FIELD_BINDING_IDS:
                active = active._replace(binding=replace(binding, show=True))
            elif key == "enter" and binding.action == "submit" and self.SUBMIT_DESCRIPTION:
                active = active._replace(binding=replace(binding, show=True, description=self.SUBMIT_DESCRIPTION))
            shown[key] = active
        return shown

    SUBMIT_DESCRIPTION = ""

    def on_descendant_focus(self) -> None:
        refresh_bindings_if_changed(self)

    def on_descendant_blur(self) -> None:
        refresh_bindings_if_changed(self)


def refresh_bindings_if_changed(screen: Screen) -> None:
    """Ask the footer to redraw only when the applicable keys really changed: the footer
    recomposes on every refresh, and training updates arrive several times a second."""
    try:
        active = screen.active_bindings
    except Exception:  # noqa: BLE001 - a screen being torn down
        return
    key = tuple((k, b.binding.action, b.enabled, b.binding.description, b.binding.show) for k, b in active.items())
    if getattr(screen, "_shown_bindings", None) != key:
        screen._shown_bindings = key
        screen.refresh_bindings()

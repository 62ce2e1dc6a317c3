"""The six modes of the app, in one table: the keys 1-6, the mode bar, the help and the palette read it."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Mode:
    name: str         # the app's mode, as switch_mode takes it
    key: str
    label: str
    description: str  # what the key does, for the help and the key's tooltip


MODES = (
    Mode("train", "1", "Train", "Train screen: settings, device, live loss curves"),
    Mode("sample", "2", "Sample", "Sample screen"),
    Mode("gates", "3", "Gates", "Gates screen"),
    Mode("series", "4", "Series", "Series screen"),
    Mode("runs", "5", "Runs", "Runs screen: saved and live runs"),
    Mode("lesson", "6", "Lesson", "Lesson screen: the lesson's chapters, live on your model"),
)


def mode_bindings() -> list[Binding]:
    """A key per mode; the footer shows the first for them all (`1-6 Screens`)."""
    first, *rest = MODES
    keys = f"{first.key}-{rest[-1].key}"
    return [Binding(first.key, f"mode('{first.name}')", "Screens", key_display=keys, id=f"app.mode.{first.name}",
                    tooltip=first.description)] + [
        Binding(mode.key, f"mode('{mode.name}')", mode.label, show=False, id=f"app.mode.{mode.name}",
                tooltip=mode.description) for mode in rest]

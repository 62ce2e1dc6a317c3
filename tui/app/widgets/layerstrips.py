"""Every layer at once: for each layer a strip of the selected quantity, a page of units (lines) over the
characters around the cursor (columns), stacked from the input's side up, under the characters themselves.

With colour each line holds two units: '▀' with the upper unit as foreground and the lower as background, on
the heatmap's diverging ramp. Without colour (NO_COLOR) each line holds one unit, drawn as bars whose height
is its value (▁ = -1 ... █ = +1). The data is viewmodel.gates_view.LayersView.
"""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from rnn_playground.tui.viewmodel.format import show_text_char
from rnn_playground.tui.viewmodel.gates_view import LayersView

from .heatmap import BARS, Ramp, legend_text, units_per_cell

LABEL = 4   # "L1 ▶": the layer, and a marker at the selected unit's line


class LayerStrips(Widget):
    DEFAULT_CSS = """
    LayerStrips { height: 1fr; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPONENT_CLASSES = {"layerstrips--label", "layerstrips--muted", "layerstrips--marker", "layerstrips--cursor"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: LayersView | None = None
        self.stacked = 1
        self._ramp: Ramp | None = None
        self._dark: bool | None = None

    @property
    def mono(self) -> bool:
        return bool(getattr(self.app, "no_color", False))

    def ramp(self) -> Ramp:
        dark = bool(getattr(self.app.current_theme, "dark", True))
        if self._ramp is None or self._dark != dark:
            self._ramp, self._dark = Ramp(dark), dark
        return self._ramp

    @property
    def columns(self) -> int:
        """Characters shown."""
        return max(1, self.size.width - LABEL)

    def lines_per_strip(self, layers: int | None = None) -> int:
        """Lines each layer's strip gets: the height less the characters' line and the legend's, shared."""
        layers = max(1, layers or self.stacked)
        return max(1, (self.size.height - 2) // layers)

    def units_per_page(self, layers: int | None = None) -> int:
        return self.lines_per_strip(layers) * units_per_cell(self.mono)

    def show(self, view: LayersView | None) -> None:
        self.view = view
        if view is not None:
            self.stacked = len(view.strips)
        self.refresh()

    def render(self) -> Text:
        view = self.view
        out = Text(no_wrap=True, overflow="crop")
        if view is None:
            return out
        muted = self.get_component_rich_style("layerstrips--muted")
        label_style = self.get_component_rich_style("layerstrips--label")
        marker = self.get_component_rich_style("layerstrips--marker")
        cursor = self.get_component_rich_style("layerstrips--cursor")
        ramp, mono = self.ramp(), self.mono
        upc = units_per_cell(mono)
        out.append(" " * LABEL)
        for column, ch in enumerate(view.chars):
            out.append(show_text_char(ch), cursor if column == view.cursor else muted)
        lines = (view.last_unit - view.first_unit + upc - 1) // upc
        selected_line = (view.unit - view.first_unit) // upc
        for strip in reversed(view.strips):   # the top layer on top, as the layers stack
            for line in range(lines):
                out.append("\n")
                out.append(f"{strip.label:<3}" if line == 0 else "   ", label_style)
                out.append("▶" if line == selected_line else " ", marker)
                rows = strip.values[line * upc:(line + 1) * upc]
                traced = ~np.isnan(strip.raw[line * upc:(line + 1) * upc])
                for column in range(rows.shape[1]):
                    if not traced[0, column]:
                        out.append(" ")
                    elif mono:
                        v = float(rows[0, column])
                        out.append(BARS[min(len(BARS) - 1, int((v + 1.0) / 2.0 * len(BARS)))])
                    else:
                        lower = ramp.color(float(rows[1, column])) if rows.shape[0] > 1 else None
                        out.append("▀", Style(color=ramp.color(float(rows[0, column])), bgcolor=lower))
        out.append("\n" + " " * LABEL)
        out.append_text(legend_text(ramp, mono, width=6))
        last = view.last_unit - 1
        out.append(f" units {view.first_unit}-{last}" + ("" if mono else ", 2 a line"), muted)
        return out

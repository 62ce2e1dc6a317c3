"""Sample, Gates and Series: their place in the app now; their content comes in the next issue."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ..widgets.keybar import KeyBar
from ..widgets.modebar import ModeBar
from .base import PlaygroundScreen


class PlaceholderScreen(PlaygroundScreen):
    MODE = ""
    TITLE_TEXT = ""
    COMING = ""
    USES_RUN = True

    def compose(self) -> ComposeResult:
        yield ModeBar(self.MODE)
        with Vertical(classes="placeholder"):
            yield Static(self.TITLE_TEXT, classes="placeholder-title")
            yield Static(self.COMING, classes="placeholder-coming")
            yield Static("", classes="placeholder-run")
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.app, "selected_run", self._show_run)

    def _show_run(self, run) -> None:
        target = self.query_one(".placeholder-run", Static)
        if not self.USES_RUN:
            target.update("")
            return
        text = Text()
        if run is None:
            text.append("No run selected. Pick one on the Runs screen (5) and press ")
            text.append("s" if self.MODE == "sample" else "g", "bold")
            text.append(" to open it here.")
        else:
            text.append("Selected run: ")
            text.append(run.name, "bold")
            text.append(f"\n{run}")
        target.update(text)


class SampleScreen(PlaceholderScreen):
    MODE = "sample"
    TITLE_TEXT = "Sample: coming in the next part"
    COMING = ("Stream text from a checkpoint one character at a time: prime text, temperature, top-k, "
              "length and seed, with the probabilities of the next character as you go.")


class GatesScreen(PlaceholderScreen):
    MODE = "gates"
    TITLE_TEXT = "Gates: coming in the next part"
    COMING = ("Look inside the recurrent cell while it reads text: the input, forget and output gates "
              "and the cell state of an LSTM (the update and reset gates of a GRU), character by character.")


class SeriesScreen(PlaceholderScreen):
    MODE = "series"
    TITLE_TEXT = "Series: coming in the next part"
    COMING = ("Train RNNs on time series (sine waves, noisy signals, your own CSV) and watch their "
              "forecasts against the truth.")
    USES_RUN = False

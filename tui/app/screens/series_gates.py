"""Gates of a time-series run: step along the series and look inside the recurrent cell at every point.

Opened from the Runs screen with g on a series run (pushed over it; Esc goes back). The signal is drawn
with the cursor on it and the model's prediction of each point beside the true value; under it, the
selected unit's quantity along the same stretch (one strip, on the heatmaps' diverging scale); then the
step's numbers (the value read, the prediction of the next one, the target, the error) and heatmaps of
every quantity over the units of the layer, as on the character Gates screen. Keys as there; the ones that
need a text (word jumps, unit search, compare, choosing a text) are greyed, their tooltips say why.

The state is viewmodel.series_gates_session.SeriesGatesSession; this screen turns keys into its methods
and draws the frame it builds.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.model import describe_model
from rnn_playground.tui.viewmodel.format import layer_number
from rnn_playground.tui.viewmodel.gates_view import SCALE_NOTE, SCALE_NOTE_MONO
from rnn_playground.tui.viewmodel.series_gates_session import (
    CHAR_ONLY,
    SeriesGatesFrame,
    SeriesGatesSession,
    open_series,
    series_gates_frame,
)

from ..messages import SeriesGatesLoaded
from ..widgets.fitting import pack_phrases
from ..widgets.heatmap import HeatmapPanel, heat_segments
from ..widgets.keybar import KeyBar
from ..widgets.modebar import ModeBar
from ..widgets.plot import AXIS_WIDTH, LinePlot
from .base import PlaygroundScreen, refresh_bindings_if_changed
from .gates import PlayTimer, cursor_bindings, step_bindings

MOVES = ("move", "page", "edge", "play", "speed", "layer", "unit", "unit_page", "colour")


class SeriesGatesScreen(PlayTimer, PlaygroundScreen):
    AUTO_FOCUS = ""
    COMPONENT_CLASSES = {"sgates--strong", "sgates--muted", "sgates--key"}
    BINDINGS = [
        *step_bindings("series_gates", "point"),
        Binding("pagedown,ctrl+f", "page(1)", "Page", show=False, id="series_gates.page_down",
                tooltip="the plot's width of points forward"),
        Binding("pageup,ctrl+b", "page(-1)", "Page back", show=False, id="series_gates.page_up",
                tooltip="the plot's width of points back"),
        Binding("end,G", "edge(1)", "End", show=False, id="series_gates.end", tooltip="the last point"),
        Binding("home,g", "edge(-1)", "Start", show=False, id="series_gates.home", tooltip="the first point"),
        *cursor_bindings("series_gates", "point"),
        Binding("v", "colour(1)", "Quantity", show=False, id="series_gates.colour",
                tooltip="next quantity the unit's strip along the signal shows"),
        Binding("V", "colour(-1)", "Quantity back", show=False, id="series_gates.colour_back",
                tooltip="previous quantity for the unit's strip"),
        # Greyed on a series (check_action): the tooltip says why.
        Binding("w,b", "word(1)", "Word", show=False, id="series_gates.word", tooltip=CHAR_ONLY["word"]),
        Binding("f", "search", "Find", id="series_gates.search", tooltip=CHAR_ONLY["search"]),
        Binding("d", "compare", "Compare", id="series_gates.compare", tooltip=CHAR_ONLY["compare"]),
        Binding("o", "open_text", "Text", show=False, id="series_gates.open", tooltip=CHAR_ONLY["open_text"]),
        Binding("escape", "back", "Back", key_display="esc", id="series_gates.back",
                tooltip="back to the Runs screen"),
    ]

    def __init__(self, run: Path, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._ready = False
        self.gates = SeriesGatesSession(run=Path(run), is_loading=True)

    def compose(self) -> ComposeResult:
        yield ModeBar("gates")
        yield Static("", id="sgates-header")
        yield Static("", id="sgates-error")
        yield LinePlot(id="sgates-plot")
        yield Static("", id="sgates-strip")
        yield Static("", id="sgates-step")
        with Horizontal(id="sgates-body"):
            yield HeatmapPanel(id="sgates-heatmap")
            yield Static("", id="sgates-unit")
        yield KeyBar()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one(LinePlot).empty_text = "tracing…"
        self._load(self.gates.run)
        self.render_all()

    def on_resize(self) -> None:
        # the plot takes what the heatmaps (a line a quantity, up to 8, and two more) leave
        self.query_one(LinePlot).styles.height = max(5, min(14, self.size.height - 17))
        self.render_all()

    @work(thread=True, exclusive=True, group="series-gates-load", exit_on_error=False)
    def _load(self, run: Path) -> None:
        try:
            self.post_message(SeriesGatesLoaded(open_series(run)))
        except (PlaygroundError, OSError) as exc:
            self.post_message(SeriesGatesLoaded(None, f"Cannot trace {run.name}: {exc}"))

    def on_series_gates_loaded(self, message: SeriesGatesLoaded) -> None:
        self.gates.loaded(message.opened, message.error)
        self.render_all()

    # -- keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CHAR_ONLY or action in ("search", "compare"):
            return None  # greyed: a series has no text (the binding's tooltip says so)
        if action in MOVES:
            return True if self.gates.trace is not None else None
        return True

    def action_word(self, direction: int) -> None:
        pass  # greyed (check_action): never runs

    def action_search(self) -> None:
        pass

    def action_compare(self) -> None:
        pass

    def action_open_text(self) -> None:
        pass

    def action_back(self) -> None:
        if self._play_timer is not None:
            self._play_timer.stop()
        self.app.pop_screen()

    def action_move(self, delta: int) -> None:
        self.gates.step(delta)
        self._moved()

    def action_page(self, direction: int) -> None:
        start, end = self._window()
        self.gates.step(direction * max(1, end - start))
        self._moved()

    def action_edge(self, direction: int) -> None:
        self.gates.edge(direction)
        self._moved()

    def action_play(self) -> None:
        self.gates.toggle_play()
        self._moved()

    def action_speed(self, delta: int) -> None:
        self.gates.change_speed(delta)
        self._moved()

    def action_layer(self, delta: int) -> None:
        self.gates.change_layer(delta)
        self.render_all()

    def action_unit(self, delta: int) -> None:
        self.gates.change_unit(delta)
        self.render_all()

    def action_unit_page(self, delta: int) -> None:
        self.gates.change_unit_page(delta, self.query_one(HeatmapPanel).units_per_page)
        self.render_all()

    def action_colour(self, delta: int) -> None:
        self.gates.change_colour(delta)
        self.render_all()

    def _moved(self) -> None:
        self._sync_timer()
        self.render_all()

    def _tick(self) -> None:
        self.gates.tick()
        self._moved()

    # -- drawing

    def _plot_columns(self) -> int:
        return max(4, (self.query_one(LinePlot).size.width or 60) - AXIS_WIDTH)

    def _window(self) -> tuple[int, int]:
        frame = self._frame()
        return frame.window if frame is not None else (0, 1)

    def _frame(self) -> SeriesGatesFrame | None:
        # one point per braille dot column: two a character cell, as the strip below packs two a cell
        return series_gates_frame(self.gates, 2 * self._plot_columns())

    def _style(self, name: str):
        return self.get_component_rich_style(f"sgates--{name}")

    def render_all(self) -> None:
        if not self._ready:
            return
        gates = self.gates
        error = self.query_one("#sgates-error", Static)
        error.update(Text(gates.error or ""))
        error.display = bool(gates.error)
        self._render_header()
        frame = self._frame()
        plot = self.query_one(LinePlot)
        heatmap = self.query_one(HeatmapPanel)
        if frame is None:
            if gates.error:
                plot.clear("nothing traced")
            return
        start, end = frame.window
        plot.span, plot.end = max(1, end - 1 - start), end - 1
        plot.show(list(frame.lines), [(gates.pos, f"cursor at {gates.pos:,}")])
        self._render_strip(frame)
        self._render_step(frame)
        heatmap.show(list(frame.rows), gates.unit, gates.tracer.hidden)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("most active h_t", self._style("muted"))
        for unit in frame.active:
            text.append(f"\nunit {unit.unit:>4} ")
            text.append(f"{unit.value:+.3f}", self._style("strong") if unit.unit == gates.unit else "")
        side = self.query_one("#sgates-unit", Static)
        if side.size.height >= 12:  # the scale's words, where they fit whole
            text.append(f"\n\n{SCALE_NOTE_MONO if heatmap.mono else SCALE_NOTE}", self._style("muted"))
        side.update(text)
        refresh_bindings_if_changed(self)

    def _render_header(self) -> None:
        gates = self.gates
        strong, muted, key = self._style("strong"), self._style("muted"), self._style("key")
        header = self.query_one("#sgates-header", Static)
        if gates.tracer is None:
            header.update(Text(f"tracing {gates.run.name}…" if gates.is_loading else "", muted))
            return
        phrases = [
            Text.assemble((gates.run.name, strong), f" {describe_model(gates.tracer)}"),
            Text.assemble(("layer ", muted), (layer_number(gates.layer, gates.tracer.layers), strong), ("[l]", key)),
            Text.assemble(("unit ", muted), (f"{gates.unit}", strong), ("[,.]", key)),
            Text.assemble(("strip ", muted), (gates.label(gates.colour_key).quantity.symbol, strong), ("[v]", key)),
            Text(gates.source, muted),
        ]
        text = pack_phrases(phrases, header.content_size.width or 78)
        text.no_wrap, text.overflow = True, "ellipsis"
        header.update(text)

    def _render_strip(self, frame: SeriesGatesFrame) -> None:
        """The selected unit's quantity along the plotted stretch, aligned with the plot's columns."""
        heatmap = self.query_one(HeatmapPanel)
        mono = heatmap.mono
        values = frame.strip[::2] if mono else frame.strip  # mono: one point a cell, colour: two
        label = f"unit {self.gates.unit}"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label[:AXIS_WIDTH - 1].rjust(AXIS_WIDTH - 1) + " ", self._style("muted"))
        for segment in heat_segments(values, heatmap.ramp(), mono):
            text.append(segment.text, segment.style)
        self.query_one("#sgates-strip", Static).update(text)

    def _render_step(self, frame: SeriesGatesFrame) -> None:
        gates, info = self.gates, frame.info
        strong, muted = self._style("strong"), self._style("muted")
        trace = gates.trace
        name = trace.names[0]
        phrases = [
            Text.assemble(("step ", muted), (f"{info.index:,}", strong), (f"/{len(trace) - 1:,}", muted)),
            Text.assemble((f"read {name} ", muted), (f"{info.inputs[0]:.4g}", strong)),
            *(Text.assemble((f"{extra} ", muted), f"{value:.4g}") for extra, value in
              zip(trace.names[1:], info.inputs[1:], strict=True)),
            Text.assemble(("predicts next ", muted), (f"{info.prediction:.4g}", strong)),
            Text.assemble(("true ", muted), "-" if info.target is None else f"{info.target:.4g}"),
            Text.assemble(("error ", muted), "-" if info.error is None else f"{info.error:+.3g}"),
            Text.assemble(("▶ playing" if gates.playing else "‖ paused", strong),
                          (f" {gates.speed}/s [space +-]", muted)),
        ]
        widget = self.query_one("#sgates-step", Static)
        text = pack_phrases(phrases, widget.content_size.width or 78)
        text.no_wrap, text.overflow = True, "ellipsis"
        widget.update(text)

    # -- for tests

    def unit_numbers(self) -> dict[str, str]:
        """The selected unit's numbers as the heatmap panel renders them, by quantity key."""
        return self.query_one(HeatmapPanel).unit_numbers()

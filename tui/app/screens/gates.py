"""Gates: step through a text with a checkpoint and look inside the recurrent cell at every character.

For the current character and the selected layer: heatmaps over units of every quantity (LSTM
i, f, g, o, c, h and the cell update split into kept and written; GRU r, z, n, h; RNN h) on one
diverging scale, the selected unit's numbers, the next-character distribution, and the text
coloured by the selected unit (Karpathy's interpretable-cell view). Saturation and unit search
come from core.gates_analysis.

The trace grows as the cursor moves forward (Trace.extend, never recomputed). Short steps extend
it at once; long jumps, and the whole text for saturation and unit search, extend it in a worker
thread, a chunk at a time under a lock the screen also takes to read it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.gates import GateTracer, Trace
from rnn_playground.core.gates_analysis import FEATURES, Saturation, UnitMatch
from rnn_playground.core.model import describe_model
from rnn_playground.tui.viewmodel.format import error_text, fmt_layer, layer_number
from rnn_playground.tui.viewmodel.gates_view import (
    DEFAULT_SLICE,
    SCALE_NOTE,
    SCALE_NOTE_MONO,
    TextSource,
    corpus_slice,
    diverging,
    next_char_view,
    next_word,
    previous_word,
    quantity_labels,
    read_text_file,
    run_corpus,
    unit_page,
    unit_values,
)

from ..widgets.bars import NextCharBars, show_char
from ..widgets.fitting import pack_phrases
from ..widgets.heatmap import HeatmapPanel, HeatRow
from ..widgets.keybar import KeyBar
from ..widgets.modebar import ModeBar
from ..widgets.unittext import UnitText
from .base import PlaygroundScreen, refresh_bindings_if_changed

INLINE_STEPS = 64          # a move needing at most this many new steps extends the trace at once
CHUNK_S = 0.02             # the worker holds the trace's lock about this long per chunk of steps
PROGRESS_S = 0.2           # and reports how far it has traced this often
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200)   # auto-step speeds, characters a second
MAX_TICKS = 30             # timer ticks a second at most; faster speeds step several characters a tick
TOP_K = 5
ACTIVE_UNITS = 4
SOURCES = (("corpus slice", "corpus"), ("typed text", "text"), ("text file", "file"))


@dataclass(frozen=True)
class TextRequest:
    kind: str           # "corpus", "text" or "file"
    value: str = ""     # the text, the path, or "start length" for a corpus slice


def load_source(request: TextRequest, meta: dict) -> TextSource:
    """The text a request asks for (raises PlaygroundError with the engine's message)."""
    from rnn_playground.core.errors import CorpusError
    if request.kind == "text":
        if not request.value:
            raise CorpusError("The text is empty: type at least one character.")
        return TextSource(request.value, f"typed text ({len(request.value):,} chars)")
    if request.kind == "file":
        return read_text_file(request.value.strip(), limit=200_000)
    spec, glob, val_fraction = run_corpus(meta)
    parts = request.value.replace(",", " ").split()
    try:
        numbers = [int(p.replace("_", "")) for p in parts]
    except ValueError:
        raise CorpusError(f"A corpus slice is 'start length' in characters (both optional), "
                          f"not {request.value!r}.") from None
    if len(numbers) > 2:
        raise CorpusError("A corpus slice is 'start length': at most two numbers.")
    start = numbers[0] if numbers else None
    length = numbers[1] if len(numbers) > 1 else DEFAULT_SLICE
    return corpus_slice(spec, start, length, glob=glob, val_fraction=val_fraction)


class GatesLoaded(Message):
    bubble = False

    def __init__(self, generation: int, tracer: GateTracer | None, meta: dict | None, trace: Trace | None,
                 source: TextSource | None, error: str | None) -> None:
        super().__init__()
        self.generation, self.tracer, self.meta, self.trace = generation, tracer, meta, trace
        self.source, self.error = source, error


class TraceExtended(Message):
    bubble = False

    def __init__(self, generation: int, length: int, done: bool, error: str | None = None) -> None:
        super().__init__()
        self.generation, self.length, self.done, self.error = generation, length, done, error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TraceExtended) and not self.done and message.generation == self.generation


class AnalysisReady(Message):
    bubble = False

    def __init__(self, generation: int, kind: str, result, error: str | None, query: str = "") -> None:
        super().__init__()
        self.generation, self.kind, self.result, self.error, self.query = generation, kind, result, error, query


class GatesScreen(PlaygroundScreen):
    AUTO_FOCUS = ""
    COMPONENT_CLASSES = {"gates--strong", "gates--muted", "gates--key", "gates--error"}
    # The footer leaves out l, ,. v and o: the header shows each beside what it changes.
    BINDINGS = [
        Binding("right", "move(1)", "Step", key_display="←→", id="gates.right",
                tooltip="one character forward (extends the trace by one step)"),
        Binding("left", "move(-1)", "Back", show=False, id="gates.left", tooltip="one character back"),
        Binding("ctrl+right,w", "word(1)", "Word", show=False, id="gates.word_right", tooltip="the next word"),
        Binding("ctrl+left,b", "word(-1)", "Word back", show=False, id="gates.word_left", tooltip="the previous word"),
        Binding("pagedown,ctrl+f", "page(1)", "Page", show=False, id="gates.page_down",
                tooltip="a page of text forward"),
        Binding("pageup,ctrl+b", "page(-1)", "Page back", show=False, id="gates.page_up",
                tooltip="a page of text back"),
        Binding("end,G", "edge(1)", "End", show=False, id="gates.end",
                tooltip="the end of the text (a long text is traced in the background)"),
        Binding("home,g", "edge(-1)", "Start", show=False, id="gates.home", tooltip="the start of the text"),
        Binding("space", "play", "Play", key_display="space", id="gates.play",
                tooltip="play / pause: step forward on its own"),
        Binding("plus,equals_sign", "speed(1)", "Faster", show=False, id="gates.faster",
                tooltip="auto-step faster (up to 200 characters a second)"),
        Binding("minus", "speed(-1)", "Slower", show=False, id="gates.slower",
                tooltip="auto-step slower (down to 1 a second)"),
        Binding("l", "layer(1)", "Layer", show=False, id="gates.layer", tooltip="next layer"),
        Binding("L", "layer(-1)", "Layer back", show=False, id="gates.layer_back", tooltip="previous layer"),
        Binding("full_stop", "unit(1)", "Unit", key_display=",.", show=False, id="gates.unit_next",
                tooltip="next unit"),
        Binding("comma", "unit(-1)", "Unit back", show=False, id="gates.unit_previous", tooltip="previous unit"),
        Binding("right_square_bracket", "unit_page(1)", "Units page", show=False, id="gates.unit_page_next",
                tooltip="next page of units, when there are more units than columns"),
        Binding("left_square_bracket", "unit_page(-1)", "Units page back", show=False, id="gates.unit_page_previous",
                tooltip="previous page of units"),
        Binding("v", "colour(1)", "Quantity", show=False, id="gates.colour",
                tooltip="next quantity the text is coloured by (g, i, f, c, o, h, kept, written for an LSTM)"),
        Binding("V", "colour(-1)", "Quantity back", show=False, id="gates.colour_back",
                tooltip="previous quantity for the text colours"),
        Binding("c", "view('cell')", "Cell", id="gates.cell", tooltip="heatmaps of every quantity at this character"),
        Binding("s", "view('saturation')", "Saturation", id="gates.saturation",
                tooltip="gate saturation per layer and unit over the whole text"),
        Binding("f", "view('search')", "Find", id="gates.search",
                tooltip="find units that track a feature of the text (built-in or regex)"),
        Binding("o", "open_text", "Text", show=False, id="gates.open",
                tooltip="choose the text: a slice of the run's corpus, typed text, or a file"),
        Binding("escape", "leave_field", "Leave field", key_display="esc", id="gates.leave_field",
                tooltip="leave a field"),
    ]

    BUSY = {"gates-saturation": "computing saturation…", "gates-search": "searching…"}

    def busy_changed(self) -> None:
        if self._ready:
            self.render_panels()

    def __init__(self, run: Path | None = None, *, text: str | None = None, name: str | None = None,
                 id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._ready = False  # composed and mounted: safe to query widgets
        self.run = Path(run) if run is not None else None
        self._initial = TextRequest("text", text) if text is not None else TextRequest("corpus")
        self.tracer: GateTracer | None = None
        self.meta: dict = {}
        self.trace: Trace | None = None
        self.source: TextSource | None = None
        self.text = ""
        self.generation = 0
        self.lock = threading.Lock()
        self.pos = 0
        self.pending: int | None = None     # where the cursor goes once the trace reaches it
        self.target = 0                     # the worker extends the trace up to here
        self.extending = False
        self.current_layer = 0
        self.unit = 0
        self.colour_key = "h"
        self.view = "cell"
        self.playing = False
        self.speed = 10
        self._header_lines = 1
        self._play_timer: Timer | None = None
        self.is_loading = False
        self.error: str | None = None
        self.saturation: Saturation | None = None
        self.matches: list[UnitMatch] = []
        self.analysis_note = ""
        self._after_full: list[str] = []
        self._loaded_run: Path | None = None

    # -- layout

    def compose(self) -> ComposeResult:
        yield ModeBar("gates")
        yield Static("", id="gates-header")
        with Horizontal(id="gates-source"):
            yield Select(SOURCES, value="corpus", allow_blank=False, id="gates-source-kind", compact=True,
                         type_to_search=False)
            yield Input("", id="gates-source-value", compact=True, placeholder="start length (blank: validation part)")
        yield Static("", id="gates-error")
        yield UnitText(id="gates-text")
        yield Static("", id="gates-step")
        with Horizontal(id="gates-body"):
            with Vertical(id="gates-main"):
                yield HeatmapPanel(id="gates-heatmap")
                yield Static("", id="gates-update")
                with Vertical(id="gates-search"):
                    with Horizontal(id="gates-search-row"):
                        yield Select([(name, name) for name in FEATURES] + [("regex", "regex")],
                                     value="inside-quotes", allow_blank=False, id="gates-feature", compact=True,
                                     type_to_search=False)
                        yield Input("", id="gates-regex", compact=True, placeholder="regex, Enter searches")
                    yield Static("", id="gates-search-note")
                    yield OptionList(id="gates-matches", compact=True)
            with Vertical(id="gates-side"):
                yield NextCharBars(id="gates-bars")
                yield Static("", id="gates-unit")
        yield KeyBar()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#gates-source").display = False
        self.query_one("#gates-search").display = False
        if self.run is None and hasattr(self.app, "selected_run"):
            self.watch(self.app, "selected_run", self._run_selected)
        else:
            self._run_selected(self.run)
        self.render_all()

    def on_resize(self) -> None:
        height = self.size.height
        self.query_one(UnitText).styles.height = max(3, min(10, height - 28))
        panel = self.query_one(HeatmapPanel)
        lines = 2 if height >= 38 else 1
        if panel.row_lines != lines:
            panel.row_lines = lines
            panel.refresh(layout=True)
        self.render_all()

    def on_screen_resume(self) -> None:
        self.render_all()

    # -- loading a checkpoint and a text

    def _run_selected(self, run: Path | None) -> None:
        if run is None:
            self.render_all()
            return
        run = Path(run)
        if run == self._loaded_run and self.tracer is not None:
            return
        self.run = run
        self._loaded_run = run
        # Forget the previous run's model and everything traced with it before loading the new one:
        # nothing may draw the old trace with a model that is gone (issue 10: the app closed).
        self.tracer = None
        self._forget_trace()
        self.load(self._initial)

    def _forget_trace(self) -> None:
        self.trace, self.source, self.text = None, None, ""
        self.pos, self.pending, self.target = 0, None, 0
        self.saturation, self.matches, self.analysis_note = None, [], ""
        self._after_full = []
        self.query_one("#gates-matches", OptionList).clear_options()

    def load(self, request: TextRequest) -> None:
        self.generation += 1
        self.extending = False  # a worker of the previous generation stops at its next chunk
        self.is_loading = True
        self.stop_playing()
        self._show_error(None)
        self.render_all()
        self._load(self.generation, self.run, self.tracer, self.meta, request)

    @work(thread=True, exclusive=True, group="gates-load", exit_on_error=False)
    def _load(self, generation: int, run: Path | None, tracer: GateTracer | None, meta: dict,
              request: TextRequest) -> None:
        from rnn_playground.core.checkpoint import read_metadata
        from rnn_playground.core.runs import resolve_checkpoint
        try:
            if tracer is None:
                if run is None:
                    raise PlaygroundError("No run opened: pick one on the Runs screen (5) and press g.")
                path = resolve_checkpoint(run)
                meta = read_metadata(path)
                tracer = GateTracer.from_checkpoint(path)
            source = load_source(request, meta)
            tracer.encode(source.text, "The text")  # characters outside the vocabulary: the engine's message
            trace = tracer.start()
            trace.extend(source.text[:2])  # the first character and the one after it
            self.post_message(GatesLoaded(generation, tracer, meta, trace, source, None))
        except (PlaygroundError, OSError) as exc:
            self.post_message(GatesLoaded(generation, tracer, meta, None, None, str(exc)))

    def on_gates_loaded(self, message: GatesLoaded) -> None:
        if message.generation != self.generation:
            return
        self.is_loading = False
        if message.tracer is not None and self.tracer is not message.tracer:
            self.tracer = message.tracer
            self.current_layer = message.tracer.layers - 1
            self.unit = 0
            self.colour_key = "c" if message.tracer.cell == "lstm" else "h"
        self.meta = message.meta or self.meta
        if message.error is not None:
            self._show_error(message.error)
            if self.trace is None:
                self.render_all()
            return
        self._show_error(None)
        self.trace, self.source, self.text = message.trace, message.source, message.source.text
        self.pos, self.pending, self.target = 0, None, 0
        self.saturation, self.matches, self.analysis_note = None, [], ""
        self._after_full = []
        self.query_one("#gates-matches", OptionList).clear_options()
        self.render_all()
        if self.view in ("saturation", "search"):
            self._need_full(self.view)

    # -- the trace

    def traced(self) -> int:
        with self.lock:
            return len(self.trace) if self.trace is not None else 0

    def move_to(self, pos: int) -> None:
        """Put the cursor on character `pos`. The trace reaches one character past the cursor, so
        the true next character is known; moving forward extends it, never recomputes it."""
        if self.trace is None or not self.text:
            return
        pos = max(0, min(len(self.text) - 1, pos))
        need = min(len(self.text), pos + 2)    # steps the trace must have
        length = self.traced()
        if need <= length:
            self.pos, self.pending = pos, None
            self.render_step()
            return
        if need - length <= INLINE_STEPS and not self.extending:
            with self.lock:
                self.trace.extend(self.text[length:need])
            self.pos, self.pending = pos, None
            self.render_step()
            return
        self.pending = pos
        self._extend_to(need - 1)
        self.render_step_line()

    def _extend_to(self, target: int) -> None:
        self.target = max(self.target, target)
        if not self.extending:
            self.extending = True
            self._extend(self.generation, self.trace, self.text)

    @work(thread=True, group="gates-extend", exit_on_error=False)
    def _extend(self, generation: int, trace: Trace, text: str) -> None:
        from textual.worker import get_current_worker
        worker = get_current_worker()
        length, chunk, error, posted = 0, 16, None, 0.0
        try:
            while not worker.is_cancelled and generation == self.generation:
                with self.lock:
                    length = len(trace)
                    target = min(self.target, len(text) - 1)
                    if length > target:
                        break
                    started = time.perf_counter()
                    trace.extend(text[length:min(target + 1, length + chunk)])
                    elapsed = time.perf_counter() - started
                    length = len(trace)
                # Size chunks by time, so the screen never waits long for the lock whatever the model's
                # size; the short sleep lets a waiting UI thread take the lock before the next chunk.
                chunk = max(1, min(4096, int(chunk * CHUNK_S / max(elapsed, 1e-5))))
                if time.monotonic() - posted >= PROGRESS_S:  # progress a few times a second, not per chunk
                    self.post_message(TraceExtended(generation, length, False))
                    posted = time.monotonic()
                time.sleep(0.001)
        except Exception as exc:  # noqa: BLE001 - shown on the screen, which stays usable
            error = error_text(exc, "Tracing failed")
        self.post_message(TraceExtended(generation, length, True, error))

    def on_trace_extended(self, message: TraceExtended) -> None:
        if message.generation != self.generation:
            return
        if message.done:
            self.extending = False
            if message.error is not None:
                self.pending, self._after_full, self.analysis_note = None, [], ""
                self._show_error(message.error)
                self.render_all()
                return
            if self.traced() <= min(self.target, len(self.text) - 1):
                self._extend_to(self.target)  # asked for more while finishing
                return
            if self.pending is not None and min(len(self.text), self.pending + 2) <= self.traced():
                self.pos, self.pending = self.pending, None
            for kind in self._after_full:
                self._analyse(kind)
            self._after_full = []
            self.render_all()
        else:
            self.render_step_line()

    def _need_full(self, kind: str) -> None:
        """Saturation and unit search look at the whole text: trace it all first."""
        if self.trace is None:
            return
        if self.traced() >= len(self.text) and not self.extending:
            self._analyse(kind)
            return
        if kind not in self._after_full:
            self._after_full.append(kind)
        self.analysis_note = "tracing the whole text…"
        self._extend_to(len(self.text) - 1)
        self.render_panels()

    def _analyse(self, kind: str) -> None:
        self.analysis_note = ""  # the text is traced: the worker's busy text says what happens now
        if kind == "saturation":
            if self.saturation is None:
                self._saturation_worker(self.generation, self.trace)
        elif kind == "search":
            self.run_search()

    @work(thread=True, exclusive=True, group="gates-saturation", exit_on_error=False)
    def _saturation_worker(self, generation: int, trace: Trace) -> None:
        try:
            with self.lock:
                if trace.cell == "rnn":
                    result = trace.saturation(low=-0.9, high=0.9, keys=("h",))
                else:
                    result = trace.saturation()
            self.post_message(AnalysisReady(generation, "saturation", result, None))
        except PlaygroundError as exc:
            self.post_message(AnalysisReady(generation, "saturation", None, str(exc)))

    def run_search(self) -> None:
        if self.trace is None:
            return
        feature = str(self.query_one("#gates-feature", Select).value)
        regex = self.query_one("#gates-regex", Input).value
        if feature == "regex" and not regex:
            self.analysis_note = "type a regular expression, then Enter"
            self.render_panels()
            return
        if self.traced() < len(self.text) or self.extending:
            self._need_full("search")
            return
        key = self.colour_key if self.colour_key in ("c", "h") else ("c" if self.trace.cell == "lstm" else "h")
        self.analysis_note = ""
        self.render_panels()
        self._search_worker(self.generation, self.trace, None if feature == "regex" else feature,
                            regex if feature == "regex" else None, key)

    @work(thread=True, exclusive=True, group="gates-search", exit_on_error=False)
    def _search_worker(self, generation: int, trace: Trace, name: str | None, regex: str | None, key: str) -> None:
        query = f"/{regex}/" if regex is not None else name
        try:
            with self.lock:
                result = trace.find_units(name=name, regex=regex, key=key, top=10)
            self.post_message(AnalysisReady(generation, "search", result, None, query))
        except PlaygroundError as exc:
            self.post_message(AnalysisReady(generation, "search", None, str(exc), query))

    def on_analysis_ready(self, message: AnalysisReady) -> None:
        if message.generation != self.generation:
            return
        if message.kind == "saturation":
            self.saturation = message.result
            self.analysis_note = message.error or ""
        else:
            self.matches = list(message.result or [])
            self.analysis_note = message.error or (
                f"units whose {self._search_key_label()} tracks {message.query} best (Pearson r over "
                f"{len(self.text):,} chars); Enter selects")
            options = self.query_one("#gates-matches", OptionList)
            options.clear_options()
            for match in self.matches:
                options.add_option(Option(f"{fmt_layer(match.layer, self.tracer.layers)}  unit {match.unit:>4}  "
                                          f"r {match.correlation:+.3f}"))
            if self.matches:
                options.highlighted = 0
        self.render_panels()

    def _search_key_label(self) -> str:
        key = self.colour_key if self.colour_key in ("c", "h") else ("c" if self.cell == "lstm" else "h")
        return self._label(key).symbol

    # -- keys

    @property
    def cell(self) -> str:
        return self.tracer.cell if self.tracer is not None else "lstm"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.typed_in_field(action):
            return False
        if action == "leave_field":
            return isinstance(self.focused, (Input, Select, OptionList))
        if action in ("move", "word", "page", "edge", "play", "speed", "layer", "unit", "unit_page", "colour",
                      "view"):
            return True if self.trace is not None else None
        if action == "open_text":
            return True if self.tracer is not None else None
        return True

    def action_move(self, delta: int) -> None:
        self.stop_playing()
        self.move_to(self._cursor() + delta)

    def _cursor(self) -> int:
        return self.pending if self.pending is not None else self.pos

    def action_word(self, direction: int) -> None:
        self.stop_playing()
        pos = self._cursor()
        self.move_to(next_word(self.text, pos) if direction > 0 else previous_word(self.text, pos))

    def action_page(self, direction: int) -> None:
        self.stop_playing()
        view = self.query_one(UnitText)
        page = max(1, view.size.width * max(1, view.size.height - 1))
        self.move_to(self._cursor() + direction * page)

    def action_edge(self, direction: int) -> None:
        self.stop_playing()
        self.move_to(len(self.text) - 1 if direction > 0 else 0)

    def action_play(self) -> None:
        if self.playing:
            self.stop_playing()
        else:
            if self.pos >= len(self.text) - 1:
                self.move_to(0)
            self.playing = True
            self._start_timer()
        self.render_step_line()
        refresh_bindings_if_changed(self)

    def _start_timer(self) -> None:
        if self._play_timer is not None:
            self._play_timer.stop()
        ticks = min(self.speed, MAX_TICKS)
        self._play_timer = self.set_interval(1.0 / ticks, self._tick)

    def _tick(self) -> None:
        if not self.playing or self.pending is not None:
            return
        step = max(1, round(self.speed / min(self.speed, MAX_TICKS)))
        if self.pos >= len(self.text) - 1:
            self.stop_playing()
            self.render_step_line()
            return
        self.move_to(self.pos + step)

    def stop_playing(self) -> None:
        if self.playing:
            self.playing = False
            if self._play_timer is not None:
                self._play_timer.stop()
                self._play_timer = None

    def action_speed(self, delta: int) -> None:
        index = SPEEDS.index(self.speed) if self.speed in SPEEDS else 3
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, index + delta))]
        if self.playing:
            self._start_timer()
        self.render_step_line()

    def action_layer(self, delta: int) -> None:
        if self.tracer is None:
            return
        self.current_layer = (self.current_layer + delta) % self.tracer.layers
        self.render_all()

    def action_unit(self, delta: int) -> None:
        if self.tracer is None:
            return
        self.unit = (self.unit + delta) % self.tracer.hidden
        self.render_all()

    def action_unit_page(self, delta: int) -> None:
        if self.tracer is None:
            return
        per_page = self.query_one(HeatmapPanel).units_per_page
        page, pages, first, _ = unit_page(self.tracer.hidden, per_page, self.unit)
        page = (page + delta) % pages
        self.unit = min(self.tracer.hidden - 1, page * per_page + (self.unit - first))
        self.render_all()

    def action_colour(self, delta: int) -> None:
        keys = [q.key for q in quantity_labels(self.cell)]
        index = keys.index(self.colour_key) if self.colour_key in keys else 0
        self.colour_key = keys[(index + delta) % len(keys)]
        self.render_all()

    def submit_description(self) -> str:
        field = self.focused.id if self.focused is not None else None
        return {"gates-source-value": "Load", "gates-regex": "Search"}.get(field, "")

    def action_view(self, view: str) -> None:
        self.view = view
        search = self.query_one("#gates-search")
        search.display = view == "search"
        if view == "search":
            # the list the hint names ("Enter selects"); the feature and regex are a Shift+Tab away
            self.set_focus(self.query_one("#gates-matches"))
            if not self.matches:
                self._need_full("search")
        elif view == "saturation":
            self._need_full("saturation")
        self.render_all()

    def action_open_text(self) -> None:
        row = self.query_one("#gates-source")
        row.display = not row.display
        if row.display:
            self.set_focus(self.query_one("#gates-source-value"))

    def action_leave_field(self) -> None:
        if isinstance(self.focused, Input) and self.focused.id == "gates-source-value":
            self.query_one("#gates-source").display = False
        self.set_focus(None)

    @on(Select.Changed, "#gates-source-kind")
    def _source_kind(self, event: Select.Changed) -> None:
        placeholder = {"corpus": "start length (blank: validation part)", "text": "the text to trace",
                       "file": "path of a UTF-8 text file"}[str(event.value)]
        self.query_one("#gates-source-value", Input).placeholder = placeholder

    @on(Input.Submitted, "#gates-source-value")
    def _source_submitted(self, event: Input.Submitted) -> None:
        kind = str(self.query_one("#gates-source-kind", Select).value)
        self.load(TextRequest(kind, event.value))
        self.query_one("#gates-source").display = False
        self.set_focus(None)

    @on(Select.Changed, "#gates-feature")
    def _feature_changed(self, event: Select.Changed) -> None:
        if str(event.value) == "regex":
            self.set_focus(self.query_one("#gates-regex"))
        elif self.view == "search":
            self.run_search()

    @on(Input.Submitted, "#gates-regex")
    def _regex_submitted(self) -> None:
        self.query_one("#gates-feature", Select).value = "regex"
        self.run_search()

    @on(OptionList.OptionSelected, "#gates-matches")
    def _match_selected(self, event: OptionList.OptionSelected) -> None:
        if 0 <= event.option_index < len(self.matches):
            self.select_match(self.matches[event.option_index])

    def select_match(self, match: UnitMatch) -> None:
        self.current_layer, self.unit, self.colour_key = match.layer, match.unit, match.key
        self.render_all()

    # -- rendering

    def _show_error(self, error: str | None) -> None:
        self.error = error
        widget = self.query_one("#gates-error", Static)
        widget.update(Text(error or ""))
        widget.set_class(bool(error), "-shown")

    def _label(self, key: str):
        return next(q for q in quantity_labels(self.cell) if q.key == key)

    def render_all(self) -> None:
        if not self._ready:
            return
        self.render_header()
        self.render_step()
        refresh_bindings_if_changed(self)

    def render_header(self) -> None:
        strong = self.get_component_rich_style("gates--strong")
        muted = self.get_component_rich_style("gates--muted")
        key = self.get_component_rich_style("gates--key")
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.tracer is None:
            if self.is_loading:
                text.append(f"loading {self.run.name if self.run else ''}…", muted)
            elif self.run is None:
                text.append("No run opened: pick one on the Runs screen (5) and press g.", muted)
            self.query_one("#gates-header", Static).update(text, layout=False)
            return
        # Phrases packed to the width: a line breaks between them (at 80 columns the colour and the
        # text source take the second line), never inside "layer 2 of 2" or a number.
        phrases = [
            Text.assemble((self.run.name if self.run else "model", strong),
                          f" {describe_model(self.tracer)}"),
            Text.assemble(("layer ", muted), (layer_number(self.current_layer, self.tracer.layers),
                                             strong), ("[l]", key)),
            Text.assemble(("unit ", muted), (f"{self.unit}", strong), ("[,.]", key)),
            Text.assemble(("colour ", muted), (self._label(self.colour_key).symbol, strong), ("[v]", key)),
        ]
        if self.source is not None:
            phrases.append(Text.assemble((self.source.description, muted), ("[o]", key)))
        header = self.query_one("#gates-header", Static)
        text = pack_phrases(phrases, header.content_size.width)
        text.no_wrap, text.overflow = True, "ellipsis"
        lines = text.plain.count("\n") + 1
        header.update(text, layout=lines != self._header_lines)
        self._header_lines = lines

    def render_step_line(self) -> None:
        strong = self.get_component_rich_style("gates--strong")
        muted = self.get_component_rich_style("gates--muted")
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.trace is None:
            text.append("loading…" if self.is_loading else "", muted)
            self.query_one("#gates-step", Static).update(text, layout=False)
            return
        traced = self.traced()
        text.append("step ", muted)
        text.append(f"{self.pos:,}", strong)
        text.append(f"/{len(self.text) - 1:,}  read ", muted)
        text.append(show_char(self.text[self.pos]), strong)
        text.append("  ")
        text.append("▶ playing" if self.playing else "‖ paused", strong)
        text.append(f" {self.speed}/s [space +-]", muted)
        text.append(f"  traced {traced:,}", muted)
        if self.pending is not None or self.extending:
            goal = self.pending if self.pending is not None else self.target
            text.append(f"  tracing to {goal + 1:,}…", strong)
        self.query_one("#gates-step", Static).update(text, layout=False)

    def render_step(self) -> None:
        self.render_step_line()
        if self.trace is None:
            self.query_one(HeatmapPanel).show([], 0, 0)
            self.query_one(NextCharBars).show(None)
            self.query_one("#gates-update", Static).update("")
            self.query_one("#gates-unit", Static).update("")
            self.query_one(UnitText).show("", 0, np.zeros(0), 0)
            return
        trace = self.trace
        labels = quantity_labels(self.cell)
        view = self.query_one(UnitText)
        span = max(1, view.size.width) * max(1, view.size.height)
        with self.lock:
            info = trace.step_info(self.pos, self.current_layer, k=TOP_K)
            start = max(0, self.pos - 2 * span)
            end = min(len(trace), self.pos + 3 * span)
            colours = unit_values(trace, self.colour_key, self.current_layer, self.unit, start, end)
            colours = diverging(colours, trace.quantity(self.colour_key).kind)
            kinds = {q.key: q.kind for q in trace.quantities}
            active = trace.most_active(self.pos, self.current_layer, "h", n=ACTIVE_UNITS)
        view.show(self.text, self.pos, colours, start)
        self.query_one(NextCharBars).show(next_char_view(info))
        self.render_panels(info, labels, kinds, active)

    def render_panels(self, info=None, labels=None, kinds=None, active=None) -> None:
        heatmap = self.query_one(HeatmapPanel)
        update = self.query_one("#gates-update", Static)
        unit_box = self.query_one("#gates-unit", Static)
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        if self.trace is None:
            return
        if info is None:
            with self.lock:
                info = self.trace.step_info(self.pos, self.current_layer, k=TOP_K)
                kinds = {q.key: q.kind for q in self.trace.quantities}
                active = self.trace.most_active(self.pos, self.current_layer, "h", n=ACTIVE_UNITS)
            labels = quantity_labels(self.cell)
        heatmap.display = self.view in ("cell", "saturation")
        if self.view == "cell":
            rows = [HeatRow(q.text, q.short, q.standard, diverging(info.values[q.key], kinds[q.key]),
                            float(info.values[q.key][self.unit]), q.key) for q in labels]
            heatmap.show(rows, self.unit, self.tracer.hidden)
            update.update(self._update_text(info), layout=self._shape_changed("update", "cell"))
        elif self.view == "saturation":
            sat = self.saturation
            self._forget_shape("update")
            if sat is None:
                heatmap.show([], self.unit, self.tracer.hidden)
                update.update(Text(self.busy_text("gates-saturation") or self.analysis_note, muted))
            else:
                rows = []
                for key in sat.keys:
                    label = self._label(key)
                    left, right = sat.left[key][self.current_layer], sat.right[key][self.current_layer]
                    symbol = label.symbol.split("=")[-1].strip()
                    # fractions: without colour a bar as tall as the fraction; with colour below
                    # in blue and above in red, as deep as the fraction
                    shown_left, shown_right = (2 * left - 1, 2 * right - 1) if heatmap.mono else (-left, right)
                    rows.append(HeatRow(f"{label.text} <{sat.low:g}", f"{symbol} <{sat.low:g}", label.standard,
                                        shown_left, float(left[self.unit]), key))
                    rows.append(HeatRow(f"{label.text} >{sat.high:g}", f"{symbol} >{sat.high:g}", label.standard,
                                        shown_right, float(right[self.unit]), key))
                heatmap.show(rows, self.unit, self.tracer.hidden, fraction=True)
                update.update(self._saturation_text(sat))
        else:
            self._forget_shape("update")
            update.update("")
            note = self.busy_text("gates-search") or self.analysis_note
            self.query_one("#gates-search-note", Static).update(Text(note, muted))
        # the most active units here: a quick way to find one worth following
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("most active h_t", muted)
        for unit in active or []:
            text.append(f"\nunit {unit.unit:>4} ")
            text.append(f"{unit.value:+.3f}", strong if unit.unit == self.unit else "")
        unit_box.update(text, layout=self._shape_changed("unit", len(active or [])))

    def _forget_shape(self, what: str) -> None:
        self.__dict__.setdefault("_shapes", {}).pop(what, None)

    def _shape_changed(self, what: str, shape) -> bool:
        """Whether a panel's shape (and so the layout) may change: stepping through the text keeps
        it, so a step repaints the panels without re-laying out the screen."""
        key = (shape, self.view, self.cell, self.size)
        shapes = self.__dict__.setdefault("_shapes", {})
        if shapes.get(what) == key:
            return False
        shapes[what] = key
        return True

    def _update_text(self, info) -> Text:
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        text = Text(no_wrap=False)
        if self.cell == "lstm":
            kept = float(info.values["kept"][self.unit])
            written = float(info.values["written"][self.unit])
            c = float(info.values["c"][self.unit])
            # Three phrases, packed to the width, so no formula is broken across lines.
            update = Text.assemble(("c_t", strong), (" = kept + written = ", muted),
                                   f"{kept:+.4f} + {written:+.4f} = {c:+.4f}")
            text.append_text(pack_phrases([update, Text("kept = f_t*c_{t-1}, written = i_t*g_t", muted),
                                           Text("(LTM_t = LTM_{t-1} f_t + N_t i_t)", muted)],
                                          self.query_one("#gates-update").content_size.width))
        elif self.cell == "gru":
            text.append("h_t = (1 - z_t) * n_t + z_t * h_{t-1}", muted)
        else:
            text.append("h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)", muted)
        text.append(f"\n{SCALE_NOTE_MONO if self.query_one(HeatmapPanel).mono else SCALE_NOTE}", muted)
        return text

    def _saturation_text(self, sat: Saturation) -> Text:
        muted = self.get_component_rich_style("gates--muted")
        text = Text()
        where = ("left, bar height", "right, bar height") if self.query_one(HeatmapPanel).mono else \
            ("left, blue", "right, red")
        text.append(f"fraction of {sat.steps:,} steps below {sat.low:g} ({where[0]}) and above {sat.high:g} "
                    f"({where[1]}), per unit of {fmt_layer(self.current_layer, self.tracer.layers)}: mean "
                    f"left/right, units mostly left/right, units never either", muted)
        rows = [row for row in sat.rows() if row.layer == self.current_layer]
        name_width = max((len(self._label(row.key).text.replace(" gate", "")) for row in rows), default=0)
        width = self.query_one("#gates-update").content_size.width
        for row in rows:  # one line a gate where the width allows: every gate's summary shows at 80x24
            name = self._label(row.key).text.replace(" gate", "")
            text.append("\n")
            text.append_text(pack_phrases([f"{name:<{name_width}}", f"mean {row.mean_left:.2f}/{row.mean_right:.2f}",
                                           f"mostly {row.mostly_left}/{row.mostly_right}", f"never {row.never}"],
                                          width))
        return text

    # -- for tests

    def unit_numbers(self) -> dict[str, str]:
        """The selected unit's numbers as the heatmap panel renders them, by quantity key."""
        import re
        panel = self.query_one(HeatmapPanel)
        number = r"[+-]?\d+\.\d{4}"  # saturation fractions have no sign
        lines = [line for line in panel.render().plain.splitlines()[1:] if re.search(number, line)]
        return {row.key: re.findall(number, line)[-1] for row, line in zip(panel.rows, lines)}

"""Gates: step through a text with a checkpoint and look inside the recurrent cell at every character.

For the current character and the selected layer: heatmaps over units of every quantity (LSTM
i, f, g, o, c, h and the cell update split into kept and written; GRU r, z, n, h; RNN h) on one
diverging scale, the selected unit's numbers, the next-character distribution, and the text
coloured by the selected unit (Karpathy's interpretable-cell view). Saturation and unit search
come from core.gates_analysis. The compare view colours the text by which of two models predicts
each character better: the open run (A) or B, another run or the n-gram of A's training text. The
intervene view (what if?) clamps, silences or forces units from the cursor on (core.intervene, the CLI's
syntax), draws the trace recomputed under them, and shows what they change at the cursor.

The state (cursor, selection, when to extend the trace) is viewmodel.gates_session.GatesSession;
this screen turns keys into its methods, starts the workers its jobs ask for, hands their results
back, and draws the frame it builds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import FEATURES, Saturation
from rnn_playground.core.model import describe_model
from rnn_playground.core.runs import runs_for_display
from rnn_playground.tui.viewmodel.eval_view import compare_lines
from rnn_playground.tui.viewmodel.format import bar, error_text, fmt_layer, layer_number, show_char
from rnn_playground.tui.viewmodel.gates_session import (
    MATCH_AS_TRAINED,
    NO_RUN,
    SELECT_SPAN,
    AnalysisJob,
    CompareJob,
    CompareResult,
    ContinueJob,
    ExtendJob,
    GatesFrame,
    GatesSession,
    InterveneJob,
    Job,
    MatchJob,
    RankingJob,
    TextRequest,
    extend_trace,
    gates_frame,
    load_tracer,
    open_text,
    run_analysis,
    run_comparison,
    run_continuation,
    run_intervention,
    run_ranking,
    run_span_match,
    step_line,
)
from rnn_playground.tui.viewmodel.gates_view import SCALE_NOTE, SCALE_NOTE_MONO, InterventionEffect, span_text
from rnn_playground.tui.viewmodel.intervene import SYNTAX

from ..messages import (
    AnalysisReady,
    CompareReady,
    CompareRunsListed,
    ContinuationReady,
    GatesLoaded,
    InterventionReady,
    RankingReady,
    SpanMatchReady,
    TraceExtended,
)
from ..widgets.bars import NextCharBars
from ..widgets.fitting import pack_phrases
from ..widgets.heatmap import HeatmapPanel
from ..widgets.keybar import KeyBar
from ..widgets.layerstrips import LayerStrips
from ..widgets.modebar import ModeBar
from ..widgets.unittext import UnitText
from .base import PlaygroundScreen, refresh_bindings_if_changed

SOURCES = (("corpus slice", "corpus"), ("typed text", "text"), ("text file", "file"))


def step_bindings(prefix: str, thing: str, forward_note: str = "") -> list[Binding]:
    """The step keys of a Gates screen (GatesScreen, SeriesGatesScreen): ids `prefix`.right/left,
    `thing` what one step moves ("character", "point")."""
    return [
        Binding("right", "move(1)", "Step", key_display="←→", id=f"{prefix}.right",
                tooltip=f"one {thing} forward{forward_note}"),
        Binding("left", "move(-1)", "Back", show=False, id=f"{prefix}.left", tooltip=f"one {thing} back"),
    ]


class PlayTimer:
    """Play on a Gates screen (GatesScreen, SeriesGatesScreen): a timer calling the screen's `_tick` at the
    session's pace (`self.gates`, a GatesCursor) while it plays, none otherwise."""

    _play_timer: Timer | None = None
    _timer_tick_s = 0.0

    def _sync_timer(self) -> None:
        playing, tick_s = self.gates.playing, self.gates.tick_s
        if self._play_timer is not None and (not playing or tick_s != self._timer_tick_s):
            self._play_timer.stop()
            self._play_timer = None
        if playing and self._play_timer is None:
            self._play_timer, self._timer_tick_s = self.set_interval(tick_s, self._tick), tick_s


def cursor_bindings(prefix: str, thing: str) -> list[Binding]:
    """Play, speed, layer, unit and unit-page keys, the same on both Gates screens; ids under `prefix`."""
    return [
        Binding("space", "play", "Play", key_display="space", id=f"{prefix}.play",
                tooltip="play / pause: step forward on its own"),
        Binding("plus,equals_sign", "speed(1)", "Faster", show=False, id=f"{prefix}.faster",
                tooltip=f"auto-step faster (up to 200 {thing}s a second)"),
        Binding("minus", "speed(-1)", "Slower", show=False, id=f"{prefix}.slower",
                tooltip="auto-step slower (down to 1 a second)"),
        Binding("l", "layer(1)", "Layer", show=False, id=f"{prefix}.layer", tooltip="next layer"),
        Binding("L", "layer(-1)", "Layer back", show=False, id=f"{prefix}.layer_back", tooltip="previous layer"),
        Binding("full_stop", "unit(1)", "Unit", key_display=",.", show=False, id=f"{prefix}.unit_next",
                tooltip="next unit"),
        Binding("comma", "unit(-1)", "Unit back", show=False, id=f"{prefix}.unit_previous", tooltip="previous unit"),
        Binding("right_square_bracket", "unit_page(1)", "Units page", show=False, id=f"{prefix}.unit_page_next",
                tooltip="next page of units, when there are more units than columns"),
        Binding("left_square_bracket", "unit_page(-1)", "Units page back", show=False,
                id=f"{prefix}.unit_page_previous", tooltip="previous page of units"),
    ]


class GatesScreen(PlayTimer, PlaygroundScreen):
    AUTO_FOCUS = ""
    COMPONENT_CLASSES = {"gates--strong", "gates--muted", "gates--key", "gates--error"}
    # The footer leaves out l, ,. v, o and e: the header shows each beside what it changes; i, t, u and U
    # are in the help and the palette (the footer has no room for them at 80 columns).
    BINDINGS = [
        *step_bindings("gates", "character", " (extends the trace by one step)"),
        Binding("ctrl+right,w", "word(1)", "Word", show=False, id="gates.word_right", tooltip="the next word"),
        Binding("ctrl+left,b", "word(-1)", "Word back", show=False, id="gates.word_left", tooltip="the previous word"),
        Binding("pagedown,ctrl+f", "page(1)", "Page", show=False, id="gates.page_down",
                tooltip="a page of text forward"),
        Binding("pageup,ctrl+b", "page(-1)", "Page back", show=False, id="gates.page_up",
                tooltip="a page of text back"),
        Binding("end,G", "edge(1)", "End", show=False, id="gates.end",
                tooltip="the end of the text (a long text is traced in the background)"),
        Binding("home,g", "edge(-1)", "Start", show=False, id="gates.home", tooltip="the start of the text"),
        *cursor_bindings("gates", "character"),
        Binding("v", "colour(1)", "Quantity", show=False, id="gates.colour",
                tooltip="next quantity the text is coloured by (g, i, f, c, o, h, kept, written for an LSTM)"),
        Binding("V", "colour(-1)", "Quantity back", show=False, id="gates.colour_back",
                tooltip="previous quantity for the text colours"),
        Binding("c", "view('cell')", "Cell", id="gates.cell", tooltip="heatmaps of every quantity at this character"),
        Binding("s", "view('saturation')", "Saturation", id="gates.saturation",
                tooltip="gate saturation per layer and unit over the whole text"),
        Binding("f", "view('search')", "Find", id="gates.search",
                tooltip="find units that track a feature of the text (built-in or regex)"),
        Binding("d", "view('compare')", "Compare", id="gates.compare",
                tooltip="compare the run (A) with B, the n-gram of its training text or another run: the text "
                        "coloured by which predicts each character better, bits/char of each, the spans each "
                        "wins most (Tab reaches the choice of B)"),
        Binding("n", "jump(1)", "Next span", show=False, id="gates.jump_next",
                tooltip="compare view: the cursor to the next span where A or B wins most"),
        Binding("N", "jump(-1)", "Previous span", show=False, id="gates.jump_previous",
                tooltip="compare view: the cursor to the previous span where A or B wins most"),
        Binding("a", "view('layers')", "All layers", show=False, id="gates.layers",
                tooltip="every layer at once: the colour quantity of a page of units over the text around the "
                        "cursor, one strip a layer (lower layers follow characters, upper ones structure)"),
        Binding("m", "view('match')", "Match span", show=False, id="gates.match",
                tooltip="span match (LSTMVis): the units on over the selected span (above a percentile of the "
                        "colour quantity at this layer), and the spans elsewhere where the same units are on; "
                        "Enter jumps to one"),
        Binding("x", "mark", "Mark span", show=False, id="gates.mark",
                tooltip="mark the cursor: the span runs from the mark to where the cursor moves (x again drops "
                        "it); m matches it"),
        Binding("shift+right", "select(1)", "Select right", show=False, id="gates.select_right",
                tooltip="select a span: a mark where it begins, the cursor one character forward"),
        Binding("shift+left", "select(-1)", "Select left", show=False, id="gates.select_left",
                tooltip="select a span: a mark where it begins, the cursor one character back"),
        Binding("greater_than_sign", "percentile(1)", "Threshold up", key_display="<>", show=False,
                id="gates.threshold_up", tooltip="span match: a unit is on above a higher percentile of its values"),
        Binding("less_than_sign", "percentile(-1)", "Threshold down", show=False, id="gates.threshold_down",
                tooltip="span match: a unit is on above a lower percentile of its values"),
        Binding("i", "intervene", "What if", show=False, id="gates.intervene",
                tooltip="intervene on the selected unit from the cursor on: clamp h or c, silence (0) or force a "
                        "gate (f=1, f=0, i=0, o=0); the field takes the CLI's syntax, prefilled (L2:U5:c=0@30), "
                        "Enter adds it and the trace is recomputed under every intervention"),
        Binding("e", "view('intervene')", "Effect", show=False, id="gates.effect",
                tooltip="what the interventions change at the cursor: the next character before and after, its "
                        "surprisal, the change of every unit's c and h, and the list of interventions"),
        Binding("t", "continue_text", "Continue", show=False, id="gates.continue",
                tooltip="intervene view: continue the text from the cursor with and without the interventions "
                        "(the same seed)"),
        Binding("u", "remove_intervention", "Remove", show=False, id="gates.remove_intervention",
                tooltip="remove the intervention selected in the list"),
        Binding("U", "clear_interventions", "Remove all", show=False, id="gates.clear_interventions",
                tooltip="remove every intervention: the original trace again"),
        Binding("r", "view('rank')", "Rank units", show=False, id="gates.rank",
                tooltip="units ranked by how much silencing each raises the loss over the text (and over the "
                        "characters the unit search's feature marks), beside the units the correlation search "
                        "found: those that matter, and those that matter that correlation missed"),
        Binding("R", "rank_again", "Rank again", show=False, id="gates.rank_again",
                tooltip="rank view: cancel the ranking under way, or rank again (with the search's current feature)"),
        Binding("o", "open_text", "Text", show=False, id="gates.open",
                tooltip="choose the text: a slice of the run's corpus, typed text, or a file"),
        Binding("escape", "leave_field", "Leave field", key_display="esc", id="gates.leave_field",
                tooltip="leave a field"),
    ]

    BUSY = {"gates-saturation": "computing saturation…", "gates-search": "searching…",
            "gates-compare": "comparing…", "gates-match": "matching spans…"}

    def busy_changed(self) -> None:
        if self._ready:
            self.render_panels()

    def __init__(self, run: Path | None = None, *, text: str | None = None, name: str | None = None,
                 id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._ready = False  # composed and mounted: safe to query widgets
        self.gates = GatesSession(run=Path(run) if run is not None else None)
        self._initial = TextRequest("text", text) if text is not None else TextRequest("corpus")
        self._header_lines = 1
        self._listed: list | None = None   # the matches the option list shows
        self._choices_listed: list | None = None   # the choices of B the compare view's select shows
        self._span_listed = None   # the span match the match view's list shows
        self._goto: tuple[int, int] | None = None  # (load generation, character) the Lesson asked for
        self._interventions_listed: tuple | None = None   # the interventions the list shows

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
                with Vertical(id="gates-compare"):
                    with Horizontal(id="gates-compare-row"):
                        yield Static("B:", id="gates-compare-label")
                        yield Select([], prompt="compare with…", id="gates-compare-b", compact=True,
                                     type_to_search=False)
                    yield Static("", id="gates-compare-panel")
                yield LayerStrips(id="gates-layers")
                with Vertical(id="gates-match"):
                    yield Static("", id="gates-match-note")
                    yield OptionList(id="gates-span-matches", compact=True)
                yield Static("", id="gates-rank")
                with Vertical(id="gates-intervene"):
                    yield Input("", id="gates-intervene-spec", compact=True, placeholder=SYNTAX)
                    yield OptionList(id="gates-interventions", compact=True)
                    yield Static("", id="gates-effect")
            with Vertical(id="gates-side"):
                yield NextCharBars(id="gates-bars")
                yield Static("", id="gates-unit")
        yield KeyBar()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#gates-source").display = False
        self.query_one("#gates-search").display = False
        self.query_one("#gates-compare").display = False
        self.query_one("#gates-layers").display = False
        self.query_one("#gates-match").display = False
        self.query_one("#gates-intervene").display = False
        self.query_one("#gates-rank").display = False
        if self.gates.run is None and hasattr(self.app, "selected_run"):
            self.watch(self.app, "selected_run", self._run_selected)
        else:
            self._run_selected(self.gates.run)
        if hasattr(self.app, "gates_request"):
            self.watch(self.app, "gates_request", self._gates_requested)
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
        if self.gates.select_run(run):
            self.load(self._initial)

    def _gates_requested(self, request: tuple[Path, str, int] | None) -> None:
        """The Lesson's link: this run, this text, the cursor on this character once it is traced."""
        if request is not None:
            run, text, pos = request
            self.gates.select_run(run)
            self.load(TextRequest("text", text))
            self._goto = (self.gates.generation, pos)

    def load(self, request: TextRequest) -> None:
        gates = self.gates
        generation = gates.start_load()
        self._sync_timer()
        self.render_all()
        self._load(generation, gates.run, gates.tracer, gates.meta, request)

    @work(thread=True, exclusive=True, group="gates-load", exit_on_error=False)
    def _load(self, generation: int, run: Path | None, tracer: GateTracer | None, meta: dict,
              request: TextRequest) -> None:
        try:
            if tracer is None:
                tracer, meta = load_tracer(run)
            self.post_message(GatesLoaded(generation, open_text(tracer, meta, request)))
        except (PlaygroundError, OSError) as exc:
            self.post_message(GatesLoaded(generation, None, str(exc), tracer, meta))

    def on_gates_loaded(self, message: GatesLoaded) -> None:
        self._start(self.gates.loaded(message.generation, message.opened, message.error, message.tracer,
                                      message.meta))
        if self._goto is not None and self._goto[0] == message.generation:
            self._start(self.gates.move_to(self._goto[1]))
            self._goto = None
        self.render_all()

    # -- workers: each gets its inputs as a job and posts its result back

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            if isinstance(job, ExtendJob):
                self._extend(job)
            elif isinstance(job, CompareJob):
                self._compare_worker(job)
            elif isinstance(job, MatchJob):
                self._match_worker(job)
            elif isinstance(job, InterveneJob):
                self._intervene_worker(job)
            elif isinstance(job, RankingJob):
                self._rank_worker(job)
            elif isinstance(job, ContinueJob):
                self._continue_worker(job)
            elif job.kind == "saturation":
                self._saturation_worker(job)
            else:
                self._search_worker(job)

    @work(thread=True, group="gates-extend", exit_on_error=False)
    def _extend(self, job: ExtendJob) -> None:
        from textual.worker import get_current_worker
        worker = get_current_worker()
        error = None
        try:
            extend_trace(job, lambda _: self.post_message(TraceExtended(job.generation, False)),
                         stop=lambda: worker.is_cancelled)
        except Exception as exc:  # noqa: BLE001 - shown on the screen, which stays usable
            error = error_text(exc, "Tracing failed")
        self.post_message(TraceExtended(job.generation, True, error))

    def on_trace_extended(self, message: TraceExtended) -> None:
        if not message.done:
            self.render_step_line()
            return
        self._start(self.gates.extended(message.generation, message.done, message.error))
        self.render_all()

    @work(thread=True, exclusive=True, group="gates-saturation", exit_on_error=False)
    def _saturation_worker(self, job: AnalysisJob) -> None:
        self._analyse(job)

    @work(thread=True, exclusive=True, group="gates-search", exit_on_error=False)
    def _search_worker(self, job: AnalysisJob) -> None:
        self._analyse(job)

    def _analyse(self, job: AnalysisJob) -> None:
        try:
            self.post_message(AnalysisReady(job, run_analysis(job)))
        except PlaygroundError as exc:  # anything else is a bug: the app's worker guard reports it
            self.post_message(AnalysisReady(job, None, str(exc)))

    def on_analysis_ready(self, message: AnalysisReady) -> None:
        self.gates.analysed(message.job, message.result, message.error)
        self.render_panels()

    @work(thread=True, exclusive=True, group="gates-match", exit_on_error=False)
    def _match_worker(self, job: MatchJob) -> None:
        try:
            self.post_message(SpanMatchReady(job, run_span_match(job)))
        except PlaygroundError as exc:  # anything else is a bug: the app's worker guard reports it
            self.post_message(SpanMatchReady(job, None, str(exc)))

    def on_span_match_ready(self, message: SpanMatchReady) -> None:
        self.gates.matched(message.job, message.result, message.error)
        self.render_panels()

    @work(thread=True, group="gates-compare", exit_on_error=False)
    def _compare_worker(self, job: CompareJob) -> None:
        try:
            result = run_comparison(job)
        except Exception as exc:  # noqa: BLE001 - shown in the view, which stays usable
            result = CompareResult(job, None, {}, error_text(exc, "Comparing failed"))
        self.post_message(CompareReady(result))

    def on_compare_ready(self, message: CompareReady) -> None:
        self._start(self.gates.compared(message.result))
        self._show_compare_choices()
        self.render_step()
        refresh_bindings_if_changed(self)

    @work(thread=True, exclusive=True, group="gates-intervene", exit_on_error=False)
    def _intervene_worker(self, job: InterveneJob) -> None:
        try:
            changed = run_intervention(job, lambda done, total: self.post_message(
                InterventionReady(job, False, progress=(done, total))))
            self.post_message(InterventionReady(job, True, changed))
        except Exception as exc:  # noqa: BLE001 - shown in the view, which stays usable
            self.post_message(InterventionReady(job, True, error=error_text(exc, "Intervening failed")))

    @work(thread=True, exclusive=True, group="gates-rank", exit_on_error=False)
    def _rank_worker(self, job: RankingJob) -> None:
        try:
            result = run_ranking(job, lambda fraction: self.post_message(RankingReady(job, False, fraction=fraction)))
            self.post_message(RankingReady(job, True, result))
        except Exception as exc:  # noqa: BLE001 - shown in the view, which stays usable
            self.post_message(RankingReady(job, True, error=error_text(exc, "Ranking failed")))

    def on_ranking_ready(self, message: RankingReady) -> None:
        if message.done:
            self.gates.ranked(message.job, message.result, message.error)
        else:
            self.gates.ranking_progressed(message.job, message.fraction)
        if self.gates.view == "rank":
            self.render_panels()

    def action_rank_again(self) -> None:
        if self.gates.ranking_running:
            self.gates.cancel_ranking()
        else:
            self._start(self.gates.rank_units())
        self.render_panels()

    @work(thread=True, exclusive=True, group="gates-continue", exit_on_error=False)
    def _continue_worker(self, job: ContinueJob) -> None:
        try:
            self.post_message(ContinuationReady(job, run_continuation(job)))
        except Exception as exc:  # noqa: BLE001 - shown in the view, which stays usable
            self.post_message(ContinuationReady(job, None, error_text(exc, "Continuing the text failed")))

    def on_continuation_ready(self, message: ContinuationReady) -> None:
        self.gates.continued_text(message.job, message.texts, message.error)
        self.render_panels()

    def on_intervention_ready(self, message: InterventionReady) -> None:
        if not message.done:
            self.gates.intervention_progressed(message.job, *message.progress)
            self.render_panels()
            return
        self._start(self.gates.intervention_done(message.job, message.changed, message.error))
        self.render_all()

    @work(thread=True, exclusive=True, group="gates-compare-runs", exit_on_error=False)
    def _list_runs(self, runs_dir: Path | None) -> None:
        self.post_message(CompareRunsListed(runs_for_display(runs_dir)))

    def on_compare_runs_listed(self, message: CompareRunsListed) -> None:
        self.gates.runs_listed(message.runs)
        self._show_compare_choices()

    @on(Select.Changed, "#gates-compare-b")
    def _b_chosen(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        self._start(self.gates.choose(str(event.value)))
        self.render_step()

    # -- keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.typed_in_field(action):
            return False
        if action == "leave_field":
            return isinstance(self.focused, (Input, Select, OptionList))
        if action in ("move", "word", "page", "edge", "play", "speed", "layer", "unit", "unit_page", "colour",
                      "view", "mark", "select", "percentile"):
            return True if self.gates.trace is not None else None
        if action == "jump":
            return True if self.gates.view == "compare" and self.gates.comparison is not None else None
        if action == "open_text":
            return True if self.gates.tracer is not None else None
        if action == "rank_again":
            return True if self.gates.view == "rank" and self.gates.trace is not None else None
        if action in ("intervene", "continue_text"):
            return True if self.gates.trace is not None else None
        if action in ("remove_intervention", "clear_interventions"):
            return True if self.gates.interventions else None
        return True

    def _moved(self, jobs: list[Job]) -> None:
        self._start(jobs)
        self._sync_timer()
        if self.gates.pending is None:
            self.render_step()
        else:
            self.render_step_line()

    def action_move(self, delta: int) -> None:
        self._moved(self.gates.step(delta))

    def action_word(self, direction: int) -> None:
        self._moved(self.gates.word(direction))

    def action_page(self, direction: int) -> None:
        view = self.query_one(UnitText)
        self._moved(self.gates.page(direction, view.size.width * max(1, view.size.height - 1)))

    def action_edge(self, direction: int) -> None:
        self._moved(self.gates.edge(direction))

    def action_play(self) -> None:
        before = self.gates.pos
        self._start(self.gates.toggle_play())
        self._sync_timer()
        if self.gates.pos != before:  # from the end, play starts again at the start
            self.render_step()
        else:
            self.render_step_line()
        refresh_bindings_if_changed(self)

    def _tick(self) -> None:
        gates = self.gates
        if not gates.playing or gates.pending is not None:
            return
        jobs = gates.tick()
        if not gates.playing:
            self._sync_timer()
            self.render_step_line()
            return
        self._moved(jobs)

    def action_speed(self, delta: int) -> None:
        self.gates.change_speed(delta)
        self._sync_timer()
        self.render_step_line()

    def action_layer(self, delta: int) -> None:
        self.gates.change_layer(delta)
        self._rematch()
        self.render_all()

    def _rematch(self) -> None:
        """The match view follows the layer and quantity: match the span again with them."""
        if self.gates.view == "match":
            self._start(self.gates.match())

    def action_mark(self) -> None:
        self.gates.toggle_mark()
        self.render_step()

    def action_select(self, delta: int) -> None:
        self._moved(self.gates.extend_selection(delta))

    def action_percentile(self, delta: int) -> None:
        self._start(self.gates.change_percentile(delta))
        self.render_panels()

    def action_unit(self, delta: int) -> None:
        self.gates.change_unit(delta)
        self.render_all()

    def action_unit_page(self, delta: int) -> None:
        per_page = self.query_one(HeatmapPanel).units_per_page
        if self.gates.view == "layers":
            per_page = self.query_one(LayerStrips).units_per_page(self.gates.tracer.layers)
        self.gates.change_unit_page(delta, per_page)
        self.render_all()

    def action_jump(self, direction: int) -> None:
        self._moved(self.gates.jump(direction))

    def action_colour(self, delta: int) -> None:
        self.gates.change_colour(delta)
        self._rematch()
        self.render_all()

    def submit_description(self) -> str:
        field = self.focused.id if self.focused is not None else None
        return {"gates-source-value": "Load", "gates-regex": "Search", "gates-intervene-spec": "Intervene"}.get(
            field, "")

    def action_view(self, view: str) -> None:
        jobs = self.gates.set_view(view)
        search = self.query_one("#gates-search")
        search.display = view == "search"
        self.query_one("#gates-compare").display = view == "compare"
        self.query_one("#gates-layers").display = view == "layers"
        self.query_one("#gates-match").display = view == "match"
        self.query_one("#gates-intervene").display = view == "intervene"
        self.query_one("#gates-rank").display = view == "rank"
        if view == "match":
            self.set_focus(self.query_one("#gates-span-matches"))
        if view == "layers":  # the strips fit the characters and units to their size, known once laid out
            self.call_after_refresh(self.render_step)
        if view == "rank" and self.gates.ranking is None and not self.gates.ranking_running:
            jobs = [*jobs, *self.gates.rank_units()]
        if view == "compare":
            self._list_runs(getattr(self.app, "runs_dir", None))
        if view == "search":
            # the list the hint names ("Enter selects"); the feature and regex are a Shift+Tab away
            self.set_focus(self.query_one("#gates-matches"))
        self._start(jobs)
        self.render_all()

    def action_intervene(self) -> None:
        """The intervene view, its field holding the CLI's syntax for the selected unit at the cursor."""
        if self.gates.view != "intervene":
            self.action_view("intervene")
        field = self.query_one("#gates-intervene-spec", Input)
        field.value = self.gates.intervention_prefill()
        field.cursor_position = len(field.value)
        self.set_focus(field)

    @on(Input.Submitted, "#gates-intervene-spec")
    def _intervention_submitted(self, event: Input.Submitted) -> None:
        listed = len(self.gates.interventions)
        self._start(self.gates.add_intervention(event.value))
        if len(self.gates.interventions) > listed:
            event.input.value = ""  # added: listed below; the keys step through the text again
            self.set_focus(None)
        self.render_all()

    @on(OptionList.OptionHighlighted, "#gates-interventions")
    def _intervention_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.gates.select_intervention(event.option_index)

    def action_remove_intervention(self) -> None:
        self._start(self.gates.remove_intervention())
        self.render_all()

    def action_clear_interventions(self) -> None:
        self._start(self.gates.clear_interventions())
        self.render_all()

    def action_continue_text(self) -> None:
        if self.gates.view != "intervene":
            self.action_view("intervene")
        self._start(self.gates.continue_text())
        self.render_panels()

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
        self.gates.feature = str(event.value)
        if self.gates.feature == "regex":
            self.set_focus(self.query_one("#gates-regex"))
        elif self.gates.view == "search":
            self.run_search()

    @on(Input.Changed, "#gates-regex")
    def _regex_changed(self, event: Input.Changed) -> None:
        self.gates.regex = event.value

    @on(Input.Submitted, "#gates-regex")
    def _regex_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#gates-feature", Select).value = "regex"
        self.gates.feature, self.gates.regex = "regex", event.value
        self.run_search()

    def run_search(self) -> None:
        self._start(self.gates.search())
        self.render_panels()

    @on(OptionList.OptionSelected, "#gates-span-matches")
    def _span_match_selected(self, event: OptionList.OptionSelected) -> None:
        self._moved(self.gates.jump_to_match(event.option_index))

    @on(OptionList.OptionSelected, "#gates-matches")
    def _match_selected(self, event: OptionList.OptionSelected) -> None:
        matches = self.gates.matches
        if 0 <= event.option_index < len(matches):
            self.gates.select_match(matches[event.option_index])
            self.render_all()

    # -- rendering

    def _show_error(self) -> None:
        error = self.gates.error
        widget = self.query_one("#gates-error", Static)
        widget.update(Text(error or ""))
        widget.set_class(bool(error), "-shown")

    def _show_matches(self) -> None:
        """The option list holds the session's matches (rebuilt when they are new)."""
        gates = self.gates
        if self._listed is gates.matches:
            return
        self._listed = gates.matches
        options = self.query_one("#gates-matches", OptionList)
        options.clear_options()
        for match in gates.matches:
            options.add_option(Option(f"{fmt_layer(match.layer, gates.tracer.layers)}  unit {match.unit:>4}  "
                                      f"r {match.correlation:+.3f}"))
        if gates.matches:
            options.highlighted = 0

    def _show_span_matches(self) -> None:
        """The match view: the span, its threshold and units, then its matches (rebuilt when they are new)."""
        gates = self.gates
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        key = self.get_component_rich_style("gates--key")
        note = self.query_one("#gates-match-note", Static)
        result = gates.span_matches
        phrases = []
        selection = gates.selection()
        if gates.mark is not None and selection is not None:
            phrases.append(Text.assemble(("selecting ", muted), (span_text(gates.text, *selection), strong),
                                         (" m matches it", muted)))
        if result is not None:
            label = gates.label(result.key).symbol
            phrases += [
                Text.assemble(("span ", muted), (span_text(gates.text, result.start, result.end), strong)),
                Text.assemble((f"{label} of {fmt_layer(result.layer, gates.tracer.layers)}", muted)),
                Text.assemble(("on above ", muted), (f"p{result.percentile:g} = {result.threshold:+.4f}", strong),
                              ("[<>]", key)),
            ]
            if result.units:
                phrases.append(Text.assemble(
                    (f"{len(result.units)} units on over it", strong),
                    (f": {', '.join(map(str, result.units[:8]))}" + ("…" if len(result.units) > 8 else ""), muted)))
            if result.percentile != gates.percentile:
                phrases.append(Text(f"p{gates.percentile:g} asked", muted))
            if gates.interventions:
                phrases.append(Text(MATCH_AS_TRAINED, muted))
        busy = self.busy_text("gates-match") or gates.match_note
        if not busy and result is None and selection is None:  # a new text took the span: say how to pick one
            busy = SELECT_SPAN
        if busy:
            phrases.append(Text(busy, muted))
        elif result is not None and not result.units:
            phrases.append(Text("no unit stays on over the whole span: lower the threshold (<) or pick a shorter "
                                "span", strong))
        elif result is not None and not result.matches:
            phrases.append(Text("no other span has any of these units on throughout", muted))
        elif result is not None:
            phrases.append(Text("score: Jaccard of the units on; Enter jumps", muted))
        note.update(pack_phrases(phrases, note.content_size.width or 60) if phrases else "")
        if self._span_listed is result:
            return
        self._span_listed = result
        options = self.query_one("#gates-span-matches", OptionList)
        options.clear_options()
        for match in result.matches if result is not None else ():
            options.add_option(Option(f"{match.score:.2f}  {match.shared}/{len(result.units)} of {match.active} on  "
                                      f"{span_text(gates.text, match.start, match.end)}"))
        if options.option_count:
            options.highlighted = 0

    def _show_compare_choices(self) -> None:
        """The select holds the session's choices of B, with its choice selected."""
        gates = self.gates
        select = self.query_one("#gates-compare-b", Select)
        if self._choices_listed is not gates.compare_choices:
            self._choices_listed = gates.compare_choices
            with select.prevent(Select.Changed):
                select.set_options([(choice.label, choice.key) for choice in gates.compare_choices])
        wanted = gates.compare_choice.key if gates.compare_choice is not None else Select.NULL
        if select.value != wanted:
            with select.prevent(Select.Changed):
                select.value = wanted

    def render_all(self) -> None:
        if not self._ready:
            return
        self._show_error()
        self.render_header()
        self.render_step()
        refresh_bindings_if_changed(self)

    def render_header(self) -> None:
        gates = self.gates
        strong = self.get_component_rich_style("gates--strong")
        muted = self.get_component_rich_style("gates--muted")
        key = self.get_component_rich_style("gates--key")
        text = Text(no_wrap=True, overflow="ellipsis")
        if gates.tracer is None:
            if gates.is_loading:
                text.append(f"loading {gates.run.name if gates.run else ''}…", muted)
            elif gates.run is None:
                text.append(NO_RUN, muted)
            self.query_one("#gates-header", Static).update(text, layout=False)
            return
        # Phrases packed to the width: a line breaks between them (at 80 columns the colour and the
        # text source take the second line), never inside "layer 2 of 2" or a number.
        phrases = [
            Text.assemble((gates.run.name if gates.run else "model", strong),
                          f" {describe_model(gates.tracer)}"),
            Text.assemble(("layer ", muted), (layer_number(gates.layer, gates.tracer.layers),
                                             strong), ("[l]", key)),
            Text.assemble(("unit ", muted), (f"{gates.unit}", strong), ("[,.]", key)),
            Text.assemble(("colour ", muted), (gates.label(gates.colour_key).symbol, strong), ("[v]", key))
            if gates.view != "compare" else Text.assemble(("colour ", muted), ("A vs B", strong), ("[d]", key)),
        ]
        if gates.interventions:
            phrases.append(Text.assemble(("what if: ", muted), (f"{len(gates.interventions)} intervention"
                                                                 f"{'s' if len(gates.interventions) > 1 else ''}",
                                                                 strong), ("[e]", key)))
        if gates.source is not None:
            phrases.append(Text.assemble((gates.source.description, muted), ("[o]", key)))
        header = self.query_one("#gates-header", Static)
        text = pack_phrases(phrases, header.content_size.width)
        text.no_wrap, text.overflow = True, "ellipsis"
        lines = text.plain.count("\n") + 1
        header.update(text, layout=lines != self._header_lines)
        self._header_lines = lines

    def render_step_line(self) -> None:
        gates = self.gates
        strong = self.get_component_rich_style("gates--strong")
        muted = self.get_component_rich_style("gates--muted")
        text = Text(no_wrap=True, overflow="ellipsis")
        line = step_line(gates)
        if line is None:
            text.append("loading…" if gates.is_loading else "", muted)
            self.query_one("#gates-step", Static).update(text, layout=False)
            return
        text.append("step ", muted)
        text.append(f"{line.pos:,}", strong)
        text.append(f"/{line.last:,}  read ", muted)
        text.append(line.char, strong)
        text.append("  ")
        text.append("▶ playing" if gates.playing else "‖ paused", strong)
        text.append(f" {gates.speed}/s [space +-]", muted)
        text.append(f"  traced {line.traced:,}", muted)
        if line.goal is not None:
            text.append(f"  tracing to {line.goal + 1:,}…", strong)
        if gates.mark is not None:   # a span being selected: where it runs, and the key that matches it
            first, end = gates.selection()
            text.append(f"  span {first:,}-{end - 1:,}", strong)
            text.append(" [m]", self.get_component_rich_style("gates--key"))
        self.query_one("#gates-step", Static).update(text, layout=False)

    def _frame(self) -> GatesFrame | None:
        view = self.query_one(UnitText)
        span = max(1, view.size.width) * max(1, view.size.height)
        strips = None
        if self.gates.view == "layers" and self.gates.tracer is not None:
            widget = self.query_one(LayerStrips)
            strips = (widget.columns, widget.units_per_page(self.gates.tracer.layers))
        return gates_frame(self.gates, span, mono=self.query_one(HeatmapPanel).mono, strips=strips)

    def render_step(self) -> None:
        self.render_step_line()
        frame = self._frame()
        if frame is None:
            self.query_one(HeatmapPanel).show([], 0, 0)
            self.query_one(NextCharBars).show(None)
            self.query_one("#gates-update", Static).update("")
            self.query_one("#gates-unit", Static).update("")
            self.query_one(UnitText).show("", 0, np.zeros(0), 0)
            return
        self.query_one(UnitText).show(self.gates.text, self.gates.pos, frame.colours, frame.colours_start,
                                      self.gates.selection())
        self.query_one(NextCharBars).show(frame.next_chars)
        self.render_panels(frame)

    def render_panels(self, frame: GatesFrame | None = None) -> None:
        gates = self.gates
        heatmap = self.query_one(HeatmapPanel)
        update = self.query_one("#gates-update", Static)
        unit_box = self.query_one("#gates-unit", Static)
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        self._show_matches()
        if frame is None:
            frame = self._frame()
        if frame is None:
            return
        heatmap.display = gates.view in ("cell", "saturation", "intervene")
        update.display = gates.view not in ("compare", "layers", "match", "intervene", "rank")
        if gates.view == "layers":
            self.query_one(LayerStrips).show(frame.layers)
        elif gates.view == "match":
            self._show_span_matches()
        elif gates.view == "rank":
            self._forget_shape("update")
            self.query_one("#gates-rank", Static).update(self._rank_text())
        elif gates.view == "intervene":
            self._forget_shape("update")
            heatmap.show(list(frame.rows), gates.unit, gates.tracer.hidden)
            self._show_interventions()
            self.query_one("#gates-effect", Static).update(self._effect_text(frame.effect))
        elif gates.view == "compare":
            self._forget_shape("update")
            self._show_compare_choices()
            self.query_one("#gates-compare-panel", Static).update(self._compare_text())
        elif gates.view == "cell":
            heatmap.show(list(frame.rows), gates.unit, gates.tracer.hidden)
            update.update(self._update_text(frame), layout=self._shape_changed("update", "cell"))
        elif gates.view == "saturation":
            self._forget_shape("update")
            if gates.saturation is None:
                heatmap.show([], gates.unit, gates.tracer.hidden)
                update.update(Text(self.busy_text("gates-saturation") or gates.analysis_note, muted))
            else:
                heatmap.show(list(frame.rows), gates.unit, gates.tracer.hidden, fraction=True)
                update.update(self._saturation_text(gates.saturation))
        else:
            self._forget_shape("update")
            update.update("")
            note = self.busy_text("gates-search") or gates.analysis_note
            self.query_one("#gates-search-note", Static).update(Text(note, muted))
        # the most active units here: a quick way to find one worth following
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("most active h_t", muted)
        for unit in frame.active:
            text.append(f"\nunit {unit.unit:>4} ")
            text.append(f"{unit.value:+.3f}", strong if unit.unit == gates.unit else "")
        unit_box.update(text, layout=self._shape_changed("unit", len(frame.active)))

    def _forget_shape(self, what: str) -> None:
        self.__dict__.setdefault("_shapes", {}).pop(what, None)

    def _shape_changed(self, what: str, shape) -> bool:
        """Whether a panel's shape (and so the layout) may change: stepping through the text keeps
        it, so a step repaints the panels without re-laying out the screen."""
        key = (shape, self.gates.view, self.gates.cell, self.size)
        shapes = self.__dict__.setdefault("_shapes", {})
        if shapes.get(what) == key:
            return False
        shapes[what] = key
        return True

    def _compare_text(self) -> Text:
        gates = self.gates
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        key = self.get_component_rich_style("gates--key")
        panel = self.query_one("#gates-compare-panel", Static)
        width, height = panel.content_size.width, panel.content_size.height
        comparison = gates.comparison
        if comparison is None:
            return Text(gates.compare_note, strong if gates.baseline_error else muted)
        lines = compare_lines(comparison, gates.pos, mono=bool(getattr(self.app, "no_color", False)),
                              width=width or 60)
        text = Text()
        for label, name, rate in (lines.a_total, lines.b_total):
            text.append_text(pack_phrases([Text.assemble((label, strong), " ", name), rate], width))
            text.append("\n")
        text.append_text(pack_phrases(lines.difference, width))
        text.append("\n")
        text.append_text(pack_phrases([Text(part, strong) for part in lines.cursor], width))
        text.append("\n")
        text.append_text(pack_phrases([Text(part, muted) for part in lines.legend], width, separator=", "))
        # the spans each side wins most, as many as the panel has lines for (the n/N keys reach them all)
        used = text.plain.count("\n") + 1
        per_side = max(1, (height - used - 2) // 2) if height else len(lines.a_spans)
        for side, spans in (("A", lines.a_spans), ("B", lines.b_spans)):
            text.append(f"\n{side} wins most ", muted)
            text.append("[n N]", key)
            if not spans:
                text.append(": nowhere", muted)
            for line in spans[:per_side]:
                text.append(f"\n{line}")
        return text

    def _rank_text(self) -> Text:
        """The ranking (or its progress), then the correlation search's units beside it."""
        gates = self.gates
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        key = self.get_component_rich_style("gates--key")
        layers = gates.tracer.layers
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(gates.ranking_note, strong if gates.ranking_running else muted)
        if gates.ranking_running:
            text.append_text(Text.assemble(("  ", ""), ("R", key), (" cancels", muted)))
        ranking = gates.ranking
        if ranking is None:
            return text
        by = "feature" if ranking.feature_loss is not None else "text"
        height = self.query_one("#gates-rank").content_size.height or 12
        comparison = gates.effect_comparison()
        shown = max(3, height - (6 if comparison is not None else 3))
        width = len(f"{fmt_layer(0, layers)} u{0:<5}")
        text.append(f"\n{'unit':<{width}}{'Δloss text':>11}" + (f"{'Δloss feature':>16}" if by == "feature" else ""),
                    muted)
        for effect in ranking.ranked(by=by, top=shown):
            text.append(f"\n{fmt_layer(effect.layer, layers)} u{effect.unit:<5}{effect.change:>+11.4f}")
            if effect.feature_change is not None:
                text.append(f"{effect.feature_change:>+16.4f}")
        if comparison is None:
            text.append_text(Text.assemble(("\n", ""), ("f", key), (" finds units by correlation; they show "
                                                                   "here beside the ranking", muted)))
            return text

        def units(rows) -> str:
            return ", ".join(f"L{row.layer + 1}:u{row.unit} {row.change:+.3f}" for row in rows) or "none"

        for n, (label, rows) in enumerate(comparison.groups()):
            text.append(f"\n{label}: ", muted)
            text.append(units(rows), "" if n == 1 else strong)  # the units that change little: not stressed
        return text

    def _show_interventions(self) -> None:
        """The list holds the session's interventions in the CLI's syntax, the selected one highlighted."""
        gates = self.gates
        specs = tuple(iv.describe() for iv in gates.interventions)
        options = self.query_one("#gates-interventions", OptionList)
        if self._interventions_listed != specs:
            self._interventions_listed = specs
            with options.prevent(OptionList.OptionHighlighted):
                options.clear_options()
                options.add_options([Option(spec) for spec in specs])
            options.styles.height = max(1, min(3, len(specs)))
        if specs and options.highlighted != gates.intervention_index:
            with options.prevent(OptionList.OptionHighlighted):
                options.highlighted = gates.intervention_index
        options.display = bool(specs)

    def _effect_text(self, effect: InterventionEffect | None) -> Text:
        gates = self.gates
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        key = self.get_component_rich_style("gates--key")
        error = self.get_component_rich_style("gates--error")
        text = Text(no_wrap=True, overflow="ellipsis")
        if gates.intervene_note:
            text.append(gates.intervene_note + "\n", error)
        if gates.intervening:
            done, total = gates.recompute_progress
            text.append(gates.recompute_note, muted)
            if total:
                text.append(f" {done:,}/{total:,}", strong)
            return text
        if effect is None:
            text.append_text(Text.assemble(("No intervention: ", muted), ("i", key),
                                           (" adds one on the selected unit from the cursor on", muted)))
            return text
        line = Text.assemble(("surprisal ", muted))
        if effect.before_bits is not None:
            change = effect.after_bits - effect.before_bits
            line.append(f"{effect.before_bits:.2f} → {effect.after_bits:.2f} bits ({change:+.2f})", strong)
        line.append(f"  max|Δ| {effect.largest:.4f}", muted)
        text.append_text(line)
        if gates.continuing:
            text.append("\ncontinuing the text with and without them…", muted)
        elif effect.continued is None:
            text.append_text(Text.assemble(("\n", ""), ("t", key),
                                           (" continues the text from here with and without them", muted)))
        else:
            without, with_ = effect.continued
            text.append("\nwithout ", muted)
            text.append(without.replace("\n", "⏎"))
            text.append("\nwith    ", muted)
            text.append(with_.replace("\n", "⏎"), strong)
        height = self.query_one("#gates-effect").content_size.height or 8
        text.append("\nnext   before     after", muted)
        for row in effect.rows[:max(1, min(6, height - text.plain.count("\n") - 1))]:
            text.append(f"\n{show_char(row.char):<5}{row.before:>7.3f} {bar(row.before, 8)} {row.after:>7.3f} "
                        f"{bar(row.after, 8)}", strong if row.is_true else "")
            if row.is_true:
                text.append(" ◀ true", strong)
        return text

    def _update_text(self, frame: GatesFrame) -> Text:
        muted = self.get_component_rich_style("gates--muted")
        strong = self.get_component_rich_style("gates--strong")
        text = Text(no_wrap=False)
        if frame.update is not None:
            kept, written, c = frame.update
            # Three phrases, packed to the width, so no formula is broken across lines.
            update = Text.assemble(("c_t", strong), (" = kept + written = ", muted),
                                   f"{kept:+.4f} + {written:+.4f} = {c:+.4f}")
            text.append_text(pack_phrases([update, Text("kept = f_t*c_{t-1}, written = i_t*g_t", muted),
                                           Text("(LTM_t = LTM_{t-1} f_t + N_t i_t)", muted)],
                                          self.query_one("#gates-update").content_size.width))
        elif self.gates.cell == "gru":
            text.append("h_t = (1 - z_t) * n_t + z_t * h_{t-1}", muted)
        else:
            text.append("h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)", muted)
        text.append(f"\n{SCALE_NOTE_MONO if self.query_one(HeatmapPanel).mono else SCALE_NOTE}", muted)
        return text

    def _saturation_text(self, sat: Saturation) -> Text:
        gates = self.gates
        muted = self.get_component_rich_style("gates--muted")
        text = Text()
        where = ("left, bar height", "right, bar height") if self.query_one(HeatmapPanel).mono else \
            ("left, blue", "right, red")
        text.append(f"fraction of {sat.steps:,} steps below {sat.low:g} ({where[0]}) and above {sat.high:g} "
                    f"({where[1]}), per unit of {fmt_layer(gates.layer, gates.tracer.layers)}: mean "
                    f"left/right, units mostly left/right, units never either", muted)
        rows = [row for row in sat.rows() if row.layer == gates.layer]
        name_width = max((len(gates.label(row.key).text.replace(" gate", "")) for row in rows), default=0)
        width = self.query_one("#gates-update").content_size.width
        for row in rows:  # one line a gate where the width allows: every gate's summary shows at 80x24
            name = gates.label(row.key).text.replace(" gate", "")
            text.append("\n")
            text.append_text(pack_phrases([f"{name:<{name_width}}", f"mean {row.mean_left:.2f}/{row.mean_right:.2f}",
                                           f"mostly {row.mostly_left}/{row.mostly_right}", f"never {row.never}"],
                                          width))
        return text

    # -- for tests

    def unit_numbers(self) -> dict[str, str]:
        """The selected unit's numbers as the heatmap panel renders them, by quantity key."""
        return self.query_one(HeatmapPanel).unit_numbers()


"""Sample: stream text from a checkpoint, or from the model being trained right now, one character
at a time; settings by key (temperature, top-k, top-p, repetition penalty, a stop text); stop,
regenerate, copy; complete-as-you-type; several samples drawn together, side by side, each with its
log-probability; a beam search whose beams grow live.

The state (settings, the stream, complete-as-you-type) is viewmodel.sample_session's; the sampler
runs in a worker thread, its characters cut into a few chunks a second (or paced to a typewriter
speed), and each chunk travels to the screen as one message, so the screen never redraws per
character.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.timer import Timer
from textual.widgets import Input, Label, Static

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.sampling import Sampler, SampleSettings, resolve_weights
from rnn_playground.tui.viewmodel.format import error_text
from rnn_playground.tui.viewmodel.sample_session import (
    GHOST_PAUSE_S,
    GhostCompletion,
    SourceInfo,
    StreamJob,
    StreamSession,
    beam_progress,
    beam_rows,
    complete,
    output_parts,
    pane_parts,
    stream_chunks,
)
from rnn_playground.tui.viewmodel.sample_view import (
    SAMPLES_CHOICES,
    describe_checkpoint,
    pace_label,
    pane_grid,
    show_stop,
    stop_field,
)

from ..messages import BeamProgressed, GhostReady, SampleChunkMessage, SampleFailed, SamplerLoaded
from ..widgets.fitting import pack_phrases
from ..widgets.keybar import KeyBar
from ..widgets.modebar import ModeBar
from ..widgets.streamtext import StreamText
from .base import PlaygroundScreen, refresh_bindings_if_changed


class SampleScreen(PlaygroundScreen):
    """Generate text. Keys change the settings; the line under the prime shows them all with their keys."""

    AUTO_FOCUS = ""
    SUBMIT_DESCRIPTION = "Generate"
    COMPONENT_CLASSES = {"sample--key", "sample--strong", "sample--muted"}
    BINDINGS = [
        Binding("g", "generate", "Generate", id="sample.generate",
                tooltip="generate with the settings shown (also Enter in the prime field)"),
        Binding("x,escape", "stop", "Stop", id="sample.stop",
                tooltip="stop the text being generated (x, or Escape outside the prime field)"),
        Binding("r", "regenerate", "New seed", id="sample.regenerate", tooltip="generate again with a new random seed"),
        Binding("c", "copy", "Copy", id="sample.copy",
                tooltip="copy the prime and the text to the clipboard (terminal escape OSC 52; works over SSH)"),
        Binding("p", "prime", "Prime", id="sample.prime",
                tooltip="edit the prime text (Enter generates, Escape leaves the field)"),
        Binding("t", "temperature(1)", "Temp+", show=False, id="sample.temperature_up",
                tooltip="temperature up by 0.1 (at most 3)"),
        Binding("T", "temperature(-1)", "Temp-", show=False, id="sample.temperature_down",
                tooltip="temperature down by 0.1 (0 = argmax: always the likeliest character)"),
        Binding("k", "top_k(1)", "Top-k+", show=False, id="sample.top_k_up",
                tooltip="top-k up: sample among the k likeliest characters"),
        Binding("K", "top_k(-1)", "Top-k-", show=False, id="sample.top_k_down",
                tooltip="top-k down (0 = off: sample from every character)"),
        Binding("l", "length(1)", "Longer", show=False, id="sample.length_up",
                tooltip="more characters (up to 20,000)"),
        Binding("L", "length(-1)", "Shorter", show=False, id="sample.length_down", tooltip="fewer characters"),
        Binding("s", "seed_mode", "Seed", show=False, id="sample.seed",
                tooltip="seed: a new one each time, or fixed at the last one used"),
        Binding("w", "pace(1)", "Slower", show=False, id="sample.pace_slower",
                tooltip="typewriter speed: slower (down to 10 characters a second)"),
        Binding("W", "pace(-1)", "Faster", show=False, id="sample.pace_faster",
                tooltip="typewriter speed: faster (max = as fast as the model goes)"),
        Binding("a", "complete", "Complete-as-you-type", show=False, id="sample.complete",
                tooltip="complete-as-you-type: a dimmed continuation follows the prime as you type"),
        Binding("m", "source", "Source", show=False, id="sample.source",
                tooltip="sample from the checkpoint, or from the model being trained right now"),
        Binding("u", "top_p(1)", "Top-p-", show=False, id="sample.top_p_down",
                tooltip="top-p (nucleus) narrower: sample among the likeliest characters holding this much "
                        "probability (1.0 0.95 0.9 0.8 0.5 0.3 0.1)"),
        Binding("U", "top_p(-1)", "Top-p+", show=False, id="sample.top_p_up", tooltip="top-p wider (1 = off)"),
        Binding("e", "penalty(1)", "Penalty+", show=False, id="sample.penalty_up",
                tooltip="repetition penalty up (1.0 1.1 1.2 1.5 2.0): characters of the last 32 made less likely"),
        Binding("E", "penalty(-1)", "Penalty-", show=False, id="sample.penalty_down",
                tooltip="repetition penalty down (1 = off)"),
        Binding("n", "samples(1)", "More samples", show=False, id="sample.samples_up",
                tooltip="more samples drawn together, shown side by side (1 2 4 8)"),
        Binding("N", "samples(-1)", "Fewer samples", show=False, id="sample.samples_down", tooltip="fewer samples"),
        Binding("o", "stop_field", "Stop text", show=False, id="sample.stop_field",
                tooltip="edit the stop text: a sample ends where it appears (/regex/ for a regular expression, "
                        "/\\n/ a newline; Enter generates)"),
        Binding("i", "include_stop", "Include stop", show=False, id="sample.include_stop",
                tooltip="keep the stop text at the end of a sample, or cut it off"),
        Binding("j", "min_length(1)", "Min length+", show=False, id="sample.min_length_up",
                tooltip="characters before a stop text counts: more (0 10 20 50 100 200 500)"),
        Binding("J", "min_length(-1)", "Min length-", show=False, id="sample.min_length_down",
                tooltip="characters before a stop text counts: fewer"),
        Binding("b", "beam", "Beam search", show=False, id="sample.beam",
                tooltip="beam search: the likeliest continuation of the length (or up to the stop text), "
                        "its beams shown growing live"),
        Binding("left_square_bracket", "beam_width(-1)", "Fewer beams", show=False, id="sample.beam_narrower",
                tooltip="beam search: fewer beams (1 2 4 8 16; 1 = greedy)"),
        Binding("right_square_bracket", "beam_width(1)", "More beams", show=False, id="sample.beam_wider",
                tooltip="beam search: more beams (a search under way starts again with them)"),
        Binding("escape", "leave_field", "Leave field", key_display="esc", id="sample.leave_field",
                tooltip="leave the prime or stop field"),
    ]

    # Injectable for deterministic screenshots and tests: the clock the stream is timed by.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, run: Path | None = None, *, settings: SampleSettings | None = None,
                 name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._ready = False  # composed and mounted: safe to query widgets
        self.run = Path(run) if run is not None else None
        base = settings or SampleSettings(prime="", temperature=0.8, top_k=0, length=500, seed=None)
        self.stream = StreamSession.from_settings(base)
        self.ghost = GhostCompletion(self.stream)
        self._initial_prime = base.prime
        self.use_live = False
        self.checkpoint: SourceInfo | None = None
        self.load_error: str | None = None
        self.is_loading = False
        self._ghost_timer: Timer | None = None
        self._loaded_run: Path | None = None
        self._lines_shown: dict[str, int] = {}  # lines of the source and settings lines, by widget id

    # -- layout

    def compose(self) -> ComposeResult:
        yield ModeBar("sample")
        yield Static("", id="sample-source")
        with Horizontal(id="sample-prime-row"):
            yield Label("prime", id="sample-prime-label")
            # select_on_focus off: `p` or `a` puts the cursor in the prime; the next key must not replace it
            yield Input(self._initial_prime, id="prime", compact=True, select_on_focus=False,
                        placeholder="text the model continues (Enter generates)")
            yield Label("stop", id="sample-stop-label")
            yield Input(self.stream.stop_text, id="stop", compact=True, select_on_focus=False,
                        placeholder="text or /regex/")
        yield Static("", id="sample-settings")
        yield Static("", id="sample-error")
        yield StreamText(id="sample-output")
        with Grid(id="sample-panes"):
            for _ in range(max(SAMPLES_CHOICES)):
                yield StreamText(classes="sample-pane")
        yield Static("", id="sample-beams")
        yield Static("", id="sample-result")
        yield KeyBar()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#sample-output").border_title = "sample"
        if self.run is None and hasattr(self.app, "selected_run"):
            self.watch(self.app, "selected_run", self._run_selected)
        else:
            self._run_selected(self.run)
        self.render_all()

    def on_screen_resume(self) -> None:
        self.render_all()

    def on_resize(self) -> None:
        self.render_all()  # the header lines packed to the new width

    @property
    def prime_input(self) -> Input:
        return self.query_one("#prime", Input)

    @property
    def stop_input(self) -> Input:
        return self.query_one("#stop", Input)

    # -- the source

    def _run_selected(self, run: Path | None) -> None:
        if run is None:
            self.render_all()
            return
        run = Path(run)
        if run == self._loaded_run and self.checkpoint is not None:
            # Back to the run already open: a load still in flight for another run must not replace it
            # (on_sampler_loaded drops a result whose run is not self.run).
            if self.run != run:
                self.run, self.is_loading = run, False
                self.render_all()
            return
        self.run = run
        self.is_loading = True
        self.load_error = None
        self.render_all()
        self._load(run)

    @work(thread=True, exclusive=True, group="sample-load", exit_on_error=False)
    def _load(self, run: Path) -> None:
        from rnn_playground.core.loading import load_model
        try:
            model, vocab, checkpoint = load_model(run, "cpu")
            sampler = Sampler(model, vocab)
            detail = describe_checkpoint(checkpoint.meta, model.config)
            if sampler.weights != "fp32":
                detail += f", {sampler.weights} weights"  # not the model's own: say so beside every result
            source = SourceInfo("checkpoint", run.name, detail, sampler)
            self.post_message(SamplerLoaded(run, source, None))
        except (PlaygroundError, OSError) as exc:
            self.post_message(SamplerLoaded(run, None, str(exc)))

    def on_sampler_loaded(self, message: SamplerLoaded) -> None:
        if message.run != self.run:
            return
        self.is_loading = False
        if message.source is None and self.checkpoint is not None:
            # A run it cannot read (a series run, a damaged file) leaves the open checkpoint open.
            self.run = self._loaded_run
            self._show_error(f"{message.error} Still sampling from {self.checkpoint.name}.")
            self.render_source()
            return
        self._loaded_run = message.run
        self.checkpoint = message.source
        self.load_error = message.error
        if message.source is not None:
            self.use_live = False
        self.render_all()
        self._schedule_ghost()

    def live_model(self):
        """The model the app's Train run is training, if any (sampling takes a copy of its weights)."""
        controller = getattr(self.app, "train_controller", None)
        return controller.live_model() if controller is not None else None

    def live_available(self) -> bool:
        return self.live_model() is not None

    def source_ready(self) -> bool:
        return (self.use_live and self.live_available()) or (not self.use_live and self.checkpoint is not None)

    @property
    def vocab(self):
        if self.use_live:
            live = self.live_model()
            return live.vocab if live is not None else None
        return self.checkpoint.sampler.vocab if self.checkpoint is not None else None

    # -- settings

    def settings(self, seed: int | None) -> SampleSettings:
        return self.stream.settings(self.prime_input.value, seed)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.typed_in_field(action):
            return False
        if action == "leave_field":
            return isinstance(self.focused, Input)
        if action in ("generate", "regenerate"):
            return True if self.source_ready() else None
        if action == "stop":
            return self.stream.streaming
        if action == "copy":
            return bool(self.stream.generated or self.prime_input.value)
        if action == "source":
            return True if (self.live_available() or self.use_live) else None
        if action in ("temperature", "top_k", "top_p", "penalty", "samples"):
            return None if self.stream.beam_on else True  # beam search does not sample: greyed out
        if action == "beam_width":
            return True if self.stream.beam_on else None
        if action in ("include_stop", "min_length"):
            return True if self.stream.stop_text else None  # they apply to a stop text
        return True

    def action_temperature(self, delta: int) -> None:
        self.stream.change_temperature(delta)
        self._settings_changed()

    def action_top_k(self, delta: int) -> None:
        self.stream.change_top_k(delta)
        self._settings_changed()

    def action_length(self, delta: int) -> None:
        self.stream.change_length(delta)
        self._settings_changed()

    def action_seed_mode(self) -> None:
        self.stream.toggle_seed_mode()
        self._settings_changed()

    def action_pace(self, delta: int) -> None:
        self.stream.change_pace(delta)
        self._settings_changed()

    def action_top_p(self, delta: int) -> None:
        self.stream.change_top_p(delta)
        self._settings_changed()

    def action_penalty(self, delta: int) -> None:
        self.stream.change_penalty(delta)
        self._settings_changed()

    def action_samples(self, delta: int) -> None:
        self.stream.change_samples(delta)
        self._settings_changed()

    def action_min_length(self, delta: int) -> None:
        self.stream.change_min_length(delta)
        self._settings_changed()

    def action_include_stop(self) -> None:
        self.stream.toggle_include_stop()
        self._settings_changed()

    def action_stop_field(self) -> None:
        self.set_focus(self.stop_input)

    def action_beam(self) -> None:
        self.stream.toggle_beam()
        self._settings_changed()

    def action_beam_width(self, delta: int) -> None:
        width = self.stream.beam_width
        self.stream.change_beam_width(delta)
        self._settings_changed()
        if self.stream.streaming and self.stream.result_beam and self.stream.beam_width != width:
            self.generate(self.stream.seed if self.stream.seed is not None else self.stream.next_seed())

    def action_complete(self) -> None:
        self.ghost.toggle()
        self._settings_changed()
        if self.ghost.enabled:
            self.app.notify("Complete-as-you-type: type a prime; a dimmed continuation follows each pause.")
            self.set_focus(self.prime_input)

    def action_source(self) -> None:
        if not self.use_live and not self.live_available():
            self.app.notify("No run is training in the app right now.", severity="warning")
            return
        self.use_live = not self.use_live
        if not self.use_live and self.checkpoint is None:
            self.app.notify("No checkpoint opened: pick a run on the Runs screen (5) and press s.")
        self._settings_changed()

    def action_prime(self) -> None:
        self.set_focus(self.prime_input)

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def _settings_changed(self) -> None:
        if self.stream.streaming and self._ready:
            # The text is the stream's until it ends: a key changes only the lines that show settings,
            # so a key press never redraws every pane of several samples.
            self.render_source()
            self.render_settings()
            self.render_result()
            refresh_bindings_if_changed(self)
        else:
            self.render_all()
        self._schedule_ghost(0.0)

    # -- generating

    def action_generate(self) -> None:
        self.generate(self.stream.next_seed())

    def action_regenerate(self) -> None:
        seed = self.stream.next_seed(new=True)
        if self.stream.seed_fixed:
            self.stream.seed = seed
        self.generate(seed)

    def generate(self, seed: int) -> bool:
        if not self.source_ready():
            self.app.notify("Nothing to sample from yet: open a run from the Runs screen (5).", severity="warning")
            return False
        settings = self.settings(seed)
        vocab = self.vocab
        try:
            self.stream.check(settings, vocab)
        except PlaygroundError as exc:
            self._show_error(str(exc))
            return False
        self._show_error(None)
        self._cancel_ghost_timer()
        self.ghost.clear()
        if self.use_live:
            live = self.live_model()
            snapshot = self.app.train_run.snapshot
            step = getattr(snapshot, "step", None)
            detail = f"live {snapshot.run_name if snapshot is not None else ''} at step {step:,}" if step is not None \
                else "live model"
            weights = resolve_weights("auto", live.cell, live.hidden, live.device)
            if weights != "fp32":
                detail += f", {weights} weights"

            def get_sampler() -> Sampler:
                return live.take_sampler()
        else:
            sampler = self.checkpoint.sampler
            detail = f"{self.checkpoint.name} ({self.checkpoint.detail})"

            def get_sampler() -> Sampler:
                return sampler
        job = self.stream.start(settings, detail)
        if job.beam:
            self._beam(job, get_sampler)
        else:
            self._stream(job, get_sampler)
        self.render_all()
        return True

    @work(thread=True, group="sample-stream", exit_on_error=False)
    def _stream(self, job: StreamJob, get_sampler: Callable[[], Sampler]) -> None:
        from textual.worker import get_current_worker
        worker = get_current_worker()
        try:
            for chunk in stream_chunks(get_sampler(), job.settings, job.stop, pace=job.pace, clock=self.clock,
                                       cancelled=lambda: worker.is_cancelled):
                self.post_message(SampleChunkMessage(job.generation, chunk))
        except Exception as exc:  # noqa: BLE001 - shown inline; the screen stays usable
            self.post_message(SampleFailed(job.generation, error_text(exc)))

    @work(thread=True, group="sample-stream", exit_on_error=False)
    def _beam(self, job: StreamJob, get_sampler: Callable[[], Sampler]) -> None:
        from textual.worker import get_current_worker
        worker = get_current_worker()
        try:
            for progress in beam_progress(get_sampler(), job.settings, job.beam, job.stop, clock=self.clock,
                                          cancelled=lambda: worker.is_cancelled):
                self.post_message(BeamProgressed(job.generation, progress))
        except Exception as exc:  # noqa: BLE001 - shown inline; the screen stays usable
            self.post_message(SampleFailed(job.generation, error_text(exc)))

    def on_sample_chunk_message(self, message: SampleChunkMessage) -> None:
        if not self.stream.add(message.generation, message.chunk):
            return
        chunk = message.chunk
        outputs = [self.query_one("#sample-output", StreamText)] if len(chunk.texts) == 1 else \
            list(self.query(".sample-pane").results(StreamText))
        for output, text in zip(outputs, chunk.texts, strict=False):
            output.append(text)
        if chunk.done:
            if len(chunk.texts) > 1:
                self.render_output()  # each pane's title gets its log-probability
            else:
                outputs[0].cursor = False
                outputs[0].refresh()
            refresh_bindings_if_changed(self)
        self.render_result()

    def on_beam_progressed(self, message: BeamProgressed) -> None:
        if not self.stream.beam_added(message.generation, message.progress):
            return
        self.render_output()
        self.render_result()
        if message.progress.done:
            refresh_bindings_if_changed(self)

    def on_sample_failed(self, message: SampleFailed) -> None:
        if not self.stream.failed(message.generation):
            return
        self._show_error(message.error)
        self.render_all()

    def action_stop(self) -> None:
        if self.stream.streaming:
            self.stream.stop()

    def action_copy(self) -> None:
        stream = self.stream
        prime = stream.result_settings.prime if stream.result_settings is not None and stream.generated else \
            self.prime_input.value
        # several samples: each after its prime, a blank line between
        text = "\n\n".join(prime + generated for generated in (stream.texts if stream.shown_samples > 1
                                                                 else [stream.generated]))
        if not text:
            return
        self.app.copy_to_clipboard(text)
        self.app.notify(f"Copied {len(text):,} characters to the clipboard.")

    def on_unmount(self) -> None:
        self.stream.stop()

    # -- prime field and complete-as-you-type

    @on(Input.Submitted, "#prime")
    @on(Input.Submitted, "#stop")
    def _prime_submitted(self) -> None:
        self.action_generate()

    @on(Input.Changed, "#stop")
    def _stop_changed(self, event: Input.Changed) -> None:
        self.stream.stop_text = event.value
        try:  # a regex that does not compile is said at once, under the field
            self.stream.settings("", None).stop_pattern()
            self._show_error(None)
        except PlaygroundError as exc:
            self._show_error(str(exc))
        self.render_settings()
        refresh_bindings_if_changed(self)  # i and j/J apply once there is a stop text
        self._schedule_ghost()

    @on(Input.Changed, "#prime")
    def _prime_changed(self) -> None:
        self._show_error(None)
        if not self.stream.streaming and not self.ghost.enabled:
            self.render_output()
        self._schedule_ghost()

    def _cancel_ghost_timer(self) -> None:
        if self._ghost_timer is not None:
            self._ghost_timer.stop()
            self._ghost_timer = None

    def _schedule_ghost(self, delay: float = GHOST_PAUSE_S) -> None:
        self._cancel_ghost_timer()
        if not self.ghost.wanted or not self._ready:
            return
        self._ghost_timer = self.set_timer(max(delay, 0.01), self._start_ghost)

    def _start_ghost(self) -> None:
        self._ghost_timer = None
        job = self.ghost.job(self.prime_input.value) if self.source_ready() else None
        if job is None:
            return
        if self.use_live:
            get_sampler = self.live_model().take_sampler
        else:
            sampler = self.checkpoint.sampler

            def get_sampler() -> Sampler:
                return sampler
        self._ghost(*job, get_sampler)

    @work(thread=True, exclusive=True, group="sample-ghost", exit_on_error=False)
    def _ghost(self, generation: int, settings: SampleSettings, get_sampler: Callable[[], Sampler]) -> None:
        from textual.worker import get_current_worker
        worker = get_current_worker()
        try:
            # a newer one replaces it: cancelled, it posts nothing
            chunk = complete(get_sampler(), settings, clock=self.clock, cancelled=lambda: worker.is_cancelled)
            if chunk is not None:
                self.post_message(GhostReady(generation, settings, chunk))
        except Exception as exc:  # noqa: BLE001 - shown inline; the screen stays usable
            self.post_message(GhostReady(generation, settings, None, error_text(exc)))

    def on_ghost_ready(self, message: GhostReady) -> None:
        if not self.ghost.ready(message.generation, message.settings, message.chunk, message.error,
                                self.prime_input.value):
            return  # typed on since (a newer one is coming), or a result came meanwhile (it stays)
        self._show_error(self.ghost.error)
        self.render_output()
        self.render_result()

    # -- rendering

    def _show_error(self, error: str | None) -> None:
        widget = self.query_one("#sample-error", Static)
        widget.update(Text(error or "", no_wrap=False))
        widget.set_class(bool(error), "-shown")

    def render_all(self) -> None:
        if not self._ready:
            return
        self.render_source()
        self.render_settings()
        self.render_output()
        self.render_result()
        refresh_bindings_if_changed(self)

    def _update_lines(self, widget: Static, text: Text) -> None:
        """Update a Static of packed phrases, laying the screen out again only when its number of lines
        changes: a layout costs tens of ms with several sample panes, and a key press must not wait for one."""
        lines = text.plain.count("\n") + 1
        widget.update(text, layout=lines != self._lines_shown.get(widget.id))
        self._lines_shown[widget.id] = lines

    def _key(self, text: Text, key: str) -> None:
        text.append(f"[{key}]", self.get_component_rich_style("sample--key"))

    def render_source(self) -> None:
        strong = self.get_component_rich_style("sample--strong")
        muted = self.get_component_rich_style("sample--muted")
        # Phrases packed to the width: the key hint goes to a second line rather than being cut.
        text = Text.assemble(("source ", muted))
        phrases = [text]
        if self.use_live:
            snapshot = getattr(getattr(self.app, "train_run", None), "snapshot", None)
            text.append("model being trained", strong)
            if snapshot is not None and snapshot.run_name:
                phrases.append(f"{snapshot.run_name} at step {snapshot.step:,} (a snapshot per sample)")
        elif self.is_loading:
            text.append(f"loading {self.run.name if self.run else ''}…")
        elif self.checkpoint is not None:
            text.append(self.checkpoint.name, strong)
            parts = self.checkpoint.detail.split(", ")  # "LSTM 2x512, step 1,200, ...": breaks at its commas
            phrases += [("  " if n == 0 else " ", part + ("," if n < len(parts) - 1 else ""))
                        for n, part in enumerate(parts)]
        elif self.load_error:
            text.append("none", strong)
        else:
            text.append("none", strong)
            phrases.append(Text("pick a run on the Runs screen (5) and press s", muted))
        if self.live_available() or self.use_live:
            hint = Text()
            self._key(hint, "m")
            hint.append(" checkpoint/live" if self.use_live else " sample the model being trained", muted)
            phrases.append(hint)
        source = self.query_one("#sample-source", Static)
        self._update_lines(source, pack_phrases(phrases, source.content_size.width))
        if self.load_error and not self.use_live:
            self._show_error(self.load_error)

    def render_settings(self) -> None:
        muted = self.get_component_rich_style("sample--muted")
        strong = self.get_component_rich_style("sample--strong")
        stream = self.stream
        stop, regex = stop_field(stream.stop_text)
        if stream.beam_on:
            items = [("beam search", "on", "b"), ("beams", str(stream.beam_width), "[ ]")]
        else:
            items = [
                ("temperature", "argmax" if stream.temperature == 0 else f"{stream.temperature:.2f}", "t/T"),
                ("top-k", "off" if stream.top_k == 0 else str(stream.top_k), "k/K"),
                ("top-p", "off" if stream.top_p == 1 else f"{stream.top_p:.2f}", "u/U"),
                ("penalty", "off" if stream.repetition_penalty == 1 else f"{stream.repetition_penalty:.1f}", "e/E"),
                ("samples", str(stream.samples), "n/N"),
            ]
        items += [("length", f"{stream.length:,}", "l/L")]
        if stop:
            items += [("stop", show_stop(stop, regex) + (" kept" if stream.include_stop else " cut"), "o i"),
                      ("min-length", f"{stream.min_length:,}", "j/J")]
        if not stream.beam_on:
            items += [("seed", f"{stream.seed} fixed" if stream.seed_fixed and stream.seed is not None
                       else "new each time", "s"),
                      ("speed", pace_label(stream.pace), "w/W")]
        items += [("complete-as-you-type", "on" if self.ghost.enabled else "off", "a")]
        if not stream.beam_on:
            items += [("beam search", "off", "b")]
        phrases = []
        for name, value, key in items:
            phrase = Text.assemble((f"{name} ", muted), (value, strong), " ")
            self._key(phrase, key)
            phrases.append(phrase)
        if stream.beam_on:
            phrases.append(Text("(temperature, top-k, top-p, penalty and samples are not used by beam search)",
                                muted))
        settings = self.query_one("#sample-settings", Static)
        self._update_lines(settings, pack_phrases(phrases, settings.content_size.width))  # a setting never split

    def render_output(self) -> None:
        output = self.query_one("#sample-output", StreamText)
        prime, body, tail, cursor = output_parts(self.stream, self.ghost, self.prime_input.value)
        output.set_text(prime, body, tail, cursor)
        panes = pane_parts(self.stream, self.ghost, self.prime_input.value)
        grid = self.query_one("#sample-panes", Grid)
        # Styles are touched only when they change: each change re-applies CSS and lays the screen out
        # again, too slow for every key press while several samples stream.
        _set_display(output, not panes)
        _set_display(grid, bool(panes))
        if panes:
            columns, rows = pane_grid(len(panes), self.size.width)
            if (grid.styles.grid_size_columns, grid.styles.grid_size_rows) != (columns, rows):
                grid.styles.grid_size_columns, grid.styles.grid_size_rows = columns, rows
            for pane, parts in zip(grid.query(".sample-pane").results(StreamText), [*panes, *[None] * 8],
                                   strict=False):
                _set_display(pane, parts is not None)
                if parts is not None:
                    *text, title = parts
                    pane.set_text(*text)
                    if pane.border_title != title:
                        pane.border_title = title
        self.render_beams()

    def render_beams(self) -> None:
        beams = self.query_one("#sample-beams", Static)
        rows = beam_rows(self.stream.beam_step) if self.stream.result_beam else []
        _set_display(beams, bool(rows))
        if not rows:
            return
        muted = self.get_component_rich_style("sample--muted")
        strong = self.get_component_rich_style("sample--strong")
        width = max(10, beams.content_size.width or self.size.width - 2)
        text = Text(no_wrap=True, overflow="ellipsis")
        # at most a quarter of the screen's height: the best beam's text above keeps its room
        rows = rows[:min(self.stream.result_beam, max(2, self.size.height // 4))]
        for rank, finished, logprob, bits, beam_text in rows:
            head = f"{rank:>2} {'■' if finished else '·'} {logprob:>8,.1f} nats {bits:4.2f} b/c  "
            shown = beam_text.replace("\n", "⏎")
            room = max(1, width - len(head))
            if len(shown) > room:  # the end of a beam is where it grows: show that
                shown = "…" + shown[-(room - 1):]
            if rank > 1:
                text.append("\n")
            text.append(head, strong if rank == 1 else muted)
            text.append(shown)
        height = len(rows)
        if beams.styles.height is None or beams.styles.height.value != height:
            beams.styles.height = height
        beams.update(text)

    def render_result(self) -> None:
        muted = self.get_component_rich_style("sample--muted")
        strong = self.get_component_rich_style("sample--strong")
        text = Text(no_wrap=False)
        line = self.stream.result_line()
        if line is None:
            caption = self.ghost.caption()
            if caption is not None:
                # Its settings and speed, as under every result: the seed is 0 unless one is fixed.
                what, rate, made_with = caption
                text.append("dimmed: ", muted)
                text.append(what)
                if rate:
                    text.append(" · ")
                    text.append(rate, strong)
                text.append("; Enter generates\n", muted)
                text.append(made_with, muted)
            elif self.stream.streaming:
                text.append("starting…", muted)
            else:
                text.append("press g to generate (Enter in the prime field)", muted)
        else:
            text.append(f"{line.state} ", strong)
            text.append(line.count)
            if line.rate:
                text.append(" · ")
                text.append(line.rate, strong)
            if line.pace:
                text.append(f" ({line.pace})", muted)
            result = self.query_one("#sample-result", Static)
            made_with = [Text(part, muted) for part in line.made_with]
            if line.score:
                # On the first line if it fits there, named or (narrower) bare; else it leads the second.
                compact = line.score.removeprefix("log-prob ")
                fitting = [score for score in (line.score, compact)
                           if text.cell_len + 3 + len(score) <= result.content_size.width]
                if fitting:
                    text.append(" · ")
                    text.append(fitting[0], strong)
                else:
                    made_with.insert(0, Text(compact, strong))
            text.append("\n")
            text.append_text(pack_phrases(made_with, result.content_size.width, separator=" · "))
        self.query_one("#sample-result", Static).update(text, layout=False)  # fixed height: no relayout per chunk


def _set_display(widget, shown: bool) -> None:
    if widget.display != shown:
        widget.display = shown


"""The Sample screen's state machines in plain Python.

`StreamSession`: the sampling settings, the seed mode, and one result at a time: one stream, or
several drawn together (side by side), or a beam search (a generation counter, so chunks of a
replaced result are dropped; the text so far; stop; the result line with its chars/s and, once done,
its log-probability). `GhostCompletion`: complete-as-you-type, where a changed prime is followed,
after a pause, by a continuation (or several) made for it, shown only if the prime is still the
same and no result came in between. Worker threads run `stream_chunks`, `complete` and
`beam_progress` with the inputs a job holds and hand the results back on the UI thread.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from rnn_playground.core.beam import BeamStep, check_beam, iter_beams
from rnn_playground.core.sampling import Sampler, SampleResult, SampleRun, SampleSettings, stop_rule

from .format import fmt_rate
from .sample_view import (
    BEAM_WIDTHS,
    FLUSH_INTERVAL_S,
    LENGTH_CHOICES,
    MIN_LENGTH_CHOICES,
    PACE_CHOICES,
    PENALTY_CHOICES,
    SAMPLES_CHOICES,
    TOP_K_CHOICES,
    TOP_P_CHOICES,
    StreamChunk,
    beam_label,
    chunked_updates,
    pace_label,
    rate_label,
    score_label,
    settings_label,
    step_choice,
    step_temperature,
    stop_field,
)

GHOST_CHARS = 80           # length of the dimmed continuation in complete-as-you-type mode
GHOST_PAUSE_S = 0.35       # a pause in typing this long updates it


def _watched(run: SampleRun, stop: threading.Event, cancelled: Callable[[], bool] | None) -> Iterator[dict[int, str]]:
    for update in run:
        if cancelled is not None and cancelled():
            stop.set()
        yield update


def stream_chunks(sampler: Sampler, settings: SampleSettings, stop: threading.Event, *, pace: float | None = None,
                  clock: Callable[[], float] = time.perf_counter,
                  cancelled: Callable[[], bool] | None = None, interval: float | None = None) -> Iterator[StreamChunk]:
    """The sampler's text for `settings` (`settings.samples` streams drawn together) in chunks a few a
    second (or paced), until done or `stop`; the last chunk holds each stream's SampleResult."""
    run = sampler.start(settings)
    try:
        for chunk in chunked_updates(_watched(run, stop, cancelled), settings.samples, interval=interval, pace=pace,
                                     stop=stop, clock=clock):
            if chunk.done:
                run.close()  # a stopped pass: its results hold what was drawn
                chunk = replace(chunk, results=tuple(run.results))
            yield chunk
    finally:
        run.close()


def complete(sampler: Sampler, settings: SampleSettings, *, clock: Callable[[], float] = time.perf_counter,
             cancelled: Callable[[], bool] | None = None) -> StreamChunk | None:
    """A whole continuation (one per stream) as one chunk with its results, or None if cancelled meanwhile."""
    *_, chunk = stream_chunks(sampler, settings, threading.Event(), clock=clock, cancelled=cancelled,
                              interval=math.inf)
    return None if chunk.stopped else chunk


@dataclass(frozen=True)
class BeamProgress:
    """A beam search so far: its latest step (beams best first), the time since it began, and
    whether it is over (stopped: asked to stop before it ended)."""
    step: BeamStep | None
    elapsed_s: float
    done: bool = False
    stopped: bool = False


def beam_progress(sampler: Sampler, settings: SampleSettings, width: int, stop: threading.Event, *,
                  clock: Callable[[], float] = time.perf_counter, cancelled: Callable[[], bool] | None = None,
                  interval: float = FLUSH_INTERVAL_S) -> Iterator[BeamProgress]:
    """A beam search of `width` beams for `settings` (prime, length, stop text), a snapshot every
    `interval` seconds (never one per character) and the last when it ends or `stop` is set."""
    start = last = clock()
    latest: BeamStep | None = None
    steps = iter_beams(sampler, sampler.vocab, settings.prime, width, settings.length, stop=stop_rule(settings))
    try:
        for latest in steps:
            if stop.is_set() or (cancelled is not None and cancelled()):
                yield BeamProgress(latest, clock() - start, True, True)
                return
            now = clock()
            if latest.done:
                break
            if now - last >= interval:
                yield BeamProgress(latest, now - start)
                last = now
        yield BeamProgress(latest, clock() - start, True)
    finally:
        steps.close()


@dataclass(frozen=True)
class SourceInfo:
    """Where samples come from: a checkpoint, or the live run (a snapshot per sample)."""
    kind: str                  # "checkpoint" or "live"
    name: str                  # run name
    detail: str                # "LSTM 2x256, step 1,200"
    sampler: Sampler | None    # for a checkpoint; None for live (taken per sample)


@dataclass(frozen=True)
class StreamJob:
    """A stream to run in a worker: its generation, settings, pace, stop event and where it comes from;
    `beam` is the width of a beam search (0: sampling)."""
    generation: int
    settings: SampleSettings
    pace: float | None
    stop: threading.Event
    detail: str
    beam: int = 0


@dataclass(frozen=True)
class ResultLine:
    """The line under a result: its state, count and speed, and what it was made with."""
    state: str              # "streaming", "done" or "stopped"
    count: str              # "120/500 chars" while streaming, "200 chars in 0.52 s" after
    rate: str               # "1,234 chars/s", or '' before there is one
    pace: str               # "paced at 100/s", or '' unpaced
    made_with: tuple[str, ...]   # the settings, one phrase each, then the source
    score: str = ""         # "log-prob -123.4 nats · 1.87 bits/char" once a single stream or a beam search is done


@dataclass
class StreamSession:
    """The settings and the result being (or last) generated: one stream, several, or a beam search."""
    temperature: float = 0.8
    top_k: int = 0
    length: int = 500
    seed_fixed: bool = False
    seed: int | None = None
    pace: float | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    samples: int = 1
    min_length: int = 0
    stop_text: str = ""         # the stop field as typed: text, or /regex/
    include_stop: bool = False
    beam_on: bool = False
    beam_width: int = 4
    generation: int = 0
    streaming: bool = False
    texts: list[str] = field(default_factory=list)   # each stream's text so far (a beam search: the best beam's)
    results: tuple[SampleResult, ...] = ()            # each stream's, once done
    beam_step: BeamStep | None = None                 # the beam search's latest step
    result_settings: SampleSettings | None = None
    result_beam: int = 0                              # the width of the result's beam search (0: sampled)
    last_chunk: StreamChunk | None = None
    chunks_drawn: int = 0       # chunks of the current result shown so far (a few a second, never per character)
    result_detail: str = ""
    _stop: threading.Event | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: SampleSettings) -> StreamSession:
        stop_text = f"/{settings.stop}/" if settings.stop and settings.stop_regex else settings.stop
        return cls(temperature=settings.temperature, top_k=settings.top_k, length=settings.length,
                   seed_fixed=settings.seed is not None, seed=settings.seed, top_p=settings.top_p,
                   repetition_penalty=settings.repetition_penalty, samples=settings.samples,
                   min_length=settings.min_length, stop_text=stop_text, include_stop=settings.include_stop)

    @property
    def generated(self) -> str:
        """The first stream's text (the only one's, or the best beam's)."""
        return self.texts[0] if self.texts else ""

    # -- settings

    def settings(self, prime: str, seed: int | None) -> SampleSettings:
        stop, regex = stop_field(self.stop_text)
        return SampleSettings(prime=prime, temperature=self.temperature, top_k=self.top_k, length=self.length,
                              seed=seed, top_p=self.top_p, repetition_penalty=self.repetition_penalty, stop=stop,
                              stop_regex=regex, include_stop=self.include_stop,
                              min_length=min(self.min_length, self.length) if stop else 0, samples=self.samples)

    def next_seed(self, new: bool = False) -> int:
        """The fixed seed, or a new random one (always new with `new`)."""
        if self.seed_fixed and self.seed is not None and not new:
            return self.seed
        return random.SystemRandom().randrange(2**31)

    def change_temperature(self, delta: int) -> None:
        self.temperature = step_temperature(self.temperature, delta)

    def change_top_k(self, delta: int) -> None:
        self.top_k = step_choice(TOP_K_CHOICES, self.top_k, delta)

    def change_top_p(self, delta: int) -> None:
        self.top_p = step_choice(TOP_P_CHOICES, self.top_p, delta)

    def change_penalty(self, delta: int) -> None:
        self.repetition_penalty = step_choice(PENALTY_CHOICES, self.repetition_penalty, delta)

    def change_samples(self, delta: int) -> None:
        self.samples = step_choice(SAMPLES_CHOICES, self.samples, delta)

    def change_min_length(self, delta: int) -> None:
        self.min_length = step_choice(MIN_LENGTH_CHOICES, self.min_length, delta)

    def change_beam_width(self, delta: int) -> None:
        self.beam_width = step_choice(BEAM_WIDTHS, self.beam_width, delta)

    def change_length(self, delta: int) -> None:
        self.length = step_choice(LENGTH_CHOICES, self.length, delta)

    def change_pace(self, delta: int) -> None:
        self.pace = step_choice(PACE_CHOICES, self.pace, delta)

    def toggle_seed_mode(self) -> None:
        self.seed_fixed = not self.seed_fixed
        if self.seed_fixed and self.seed is None:
            self.seed = self.next_seed(new=True)

    def toggle_include_stop(self) -> None:
        self.include_stop = not self.include_stop

    def toggle_beam(self) -> None:
        self.beam_on = not self.beam_on

    def check(self, settings: SampleSettings, vocab) -> None:
        """Refuse settings the engine would refuse (SamplingError naming the setting), before a worker starts."""
        settings.validate(vocab)
        if self.beam_on and vocab is not None:
            check_beam(self.beam_width, settings.length, len(vocab), has_stop=bool(settings.stop))

    # -- a result

    def start(self, settings: SampleSettings, detail: str) -> StreamJob:
        """A new result (the one streaming, if any, is stopped): the job its worker runs, a beam
        search of beam_width beams when beam mode is on."""
        self.stop()
        self.generation += 1
        self.streaming = True
        self.seed = settings.seed
        beam = self.beam_width if self.beam_on else 0
        self.texts = [""] * (1 if beam else settings.samples)
        self.results = ()
        self.beam_step = None
        self.last_chunk = None
        self.chunks_drawn = 0
        self.result_settings = settings
        self.result_beam = beam
        self.result_detail = detail
        self._stop = threading.Event()
        return StreamJob(self.generation, settings, self.pace, self._stop, detail, beam)

    def add(self, generation: int, chunk: StreamChunk) -> bool:
        """A chunk from a stream's worker; whether it belongs to the current result."""
        if generation != self.generation:
            return False
        for index, text in enumerate(chunk.texts):
            self.texts[index] += text
        self.last_chunk = chunk
        self.chunks_drawn += 1
        if chunk.done:
            self.streaming = False
            self.results = chunk.results
        return True

    def beam_added(self, generation: int, progress: BeamProgress) -> bool:
        """A beam search's snapshot; whether it belongs to the current result. The best beam's text
        is the result's text (it may change as the search goes on, unlike a stream's)."""
        if generation != self.generation:
            return False
        self.beam_step = progress.step
        self.texts = [progress.step.best.text if progress.step is not None else ""]
        count = progress.step.step if progress.step is not None else 0
        self.last_chunk = StreamChunk((self.texts[0],), count, progress.elapsed_s, progress.done, progress.stopped)
        self.chunks_drawn += 1
        if progress.done:
            self.streaming = False
        return True

    def failed(self, generation: int) -> bool:
        """The stream's worker failed; whether it was the current one."""
        if generation != self.generation:
            return False
        self.streaming = False
        return True

    def stop(self) -> None:
        """Ask the stream to stop (its last chunk says so)."""
        if self._stop is not None:
            self._stop.set()

    def clear_result(self) -> None:
        self.texts = []
        self.results = ()
        self.beam_step = None
        self.result_settings = None

    @property
    def shown_samples(self) -> int:
        """How many streams the result shows side by side (1: the single view)."""
        return len(self.texts) if self.result_settings is not None and not self.result_beam else 1

    def result_line(self) -> ResultLine | None:
        """The result's line, or None before there is one."""
        settings, chunk = self.result_settings, self.last_chunk
        if settings is None:
            return None
        count = chunk.chars if chunk is not None else 0
        pace = "" if self.pace is None else f"paced at {pace_label(self.pace)}"
        if self.result_beam:
            return self._beam_line(settings, chunk, count)
        total = settings.length * len(self.texts)
        several = f" ({len(self.texts)} samples)" if len(self.texts) > 1 else ""
        if self.streaming:
            state, shown = "streaming", f"{count:,}/{total:,} chars{several}"
        else:
            state = "stopped" if chunk is not None and chunk.stopped else "done"
            at_stop = " (at the stop text)" if len(self.results) == 1 and self.results[0].stop_reason == "stop" else ""
            shown = f"{count:,} chars{several}{at_stop} in {chunk.elapsed_s if chunk else 0:.2f} s"
        score = ""
        if len(self.results) == 1 and self.results[0].length:
            score = score_label(self.results[0].total, self.results[0].bits_per_char)
        return ResultLine(state, shown, rate_label(chunk), pace, (*settings_label(settings).split(" · "),
                                                                  self.result_detail), score)

    def _beam_line(self, settings: SampleSettings, chunk: StreamChunk | None, steps: int) -> ResultLine:
        best = self.beam_step.best if self.beam_step is not None else None
        if self.streaming:
            state, shown = "searching", f"{steps:,}/{settings.length:,} chars"
        else:
            state = "stopped" if chunk is not None and chunk.stopped else "done"
            shown = f"{len(self.generated):,} chars in {chunk.elapsed_s if chunk else 0:.2f} s"
        rate = chunk.chars / chunk.elapsed_s if chunk is not None and chunk.elapsed_s > 0 and chunk.chars else None
        made_with = beam_label(self.result_beam, settings.length, settings.prime, settings.stop, settings.stop_regex)
        score = score_label(best.logprob, best.bits_per_char()) if best is not None and best.generated else ""
        return ResultLine(state, shown, "" if rate is None else f"{fmt_rate(rate)} steps/s", "",
                          (*made_with.split(" · "), self.result_detail), score)


@dataclass
class GhostCompletion:
    """Complete-as-you-type: a dimmed continuation of the prime, made after each pause in typing."""
    stream: StreamSession
    enabled: bool = False
    texts: list[str] = field(default_factory=list)   # one continuation per stream
    results: tuple[SampleResult, ...] = ()      # their log-probabilities
    prime: str = ""                             # the prime the shown continuation was made for
    settings: SampleSettings | None = None      # what it was made with (seed 0 unless one is fixed)
    chunk: StreamChunk | None = None            # its count and timing (chars/s)
    error: str | None = None

    @property
    def text(self) -> str:
        """The first continuation (the only one with one sample)."""
        return self.texts[0] if self.texts else ""

    def clear(self) -> None:
        self.texts, self.results = [], ()

    def toggle(self) -> None:
        self.enabled = not self.enabled
        if not self.enabled:
            self.clear()

    @property
    def wanted(self) -> bool:
        """Whether a continuation may be asked for now (a pause after typing asks)."""
        return self.enabled and not self.stream.streaming

    def job(self, prime: str) -> tuple[int, SampleSettings] | None:
        """When the pause is over: (generation, settings) for a continuation of `prime`, or None."""
        if not self.wanted:
            return None
        stream = self.stream
        seed = stream.seed if stream.seed_fixed and stream.seed is not None else 0
        settings = stream.settings(prime, seed)
        short = replace(settings, length=GHOST_CHARS, min_length=min(settings.min_length, GHOST_CHARS))
        return stream.generation, short

    def ready(self, generation: int, settings: SampleSettings, chunk: StreamChunk | None, error: str | None,
              prime: str) -> bool:
        """A continuation (or its error) made with `settings`, while the prime is `prime`: whether it
        is shown. One for another prime is stale (a newer one is coming); one asked for before the
        result now shown is dropped (that result stays)."""
        if not self.enabled or settings.prime != prime:
            return False
        if self.stream.streaming or generation != self.stream.generation:
            return False
        self.error = error
        if error is not None:
            self.clear()
            return True
        self.texts, self.results = list(chunk.texts), chunk.results
        self.prime, self.settings, self.chunk = settings.prime, settings, chunk
        self.stream.clear_result()
        return True

    def caption(self) -> tuple[str, str, str] | None:
        """(what it is, its chars/s, what it was made with) while one is shown."""
        if not (self.enabled and self.text and self.settings is not None):
            return None
        what = f"the model's continuation, {len(self.text):,} chars" if len(self.texts) == 1 else \
            f"the model's {len(self.texts)} continuations"
        return what, rate_label(self.chunk), settings_label(self.settings)


def output_parts(stream: StreamSession, ghost: GhostCompletion, prime: str) -> tuple[str, str, str, bool]:
    """What the output area shows: (prime, generated text, dimmed continuation, streaming cursor)."""
    if stream.result_settings is not None and (stream.generated or stream.streaming):
        return stream.result_settings.prime, stream.generated, "", stream.streaming
    if ghost.enabled:
        return prime, "", ghost.text, False
    return "", "", "", False


def pane_parts(stream: StreamSession, ghost: GhostCompletion, prime: str) -> list[tuple[str, str, str, bool, str]]:
    """Several streams side by side: (prime, generated text, dimmed continuation, cursor, title) for
    each pane, the title its number and, once done, its log-probability; [] when one view shows it all."""
    if stream.result_settings is not None and (stream.generated or stream.streaming):
        if stream.shown_samples < 2:
            return []
        scores = {result.index: result for result in stream.results}
        return [(stream.result_settings.prime, text, "", stream.streaming,
                 pane_title(index, scores.get(index))) for index, text in enumerate(stream.texts)]
    if ghost.enabled and len(ghost.texts) > 1 and ghost.prime == prime:
        scores = {result.index: result for result in ghost.results}
        return [(prime, "", text, False, pane_title(index, scores.get(index)))
                for index, text in enumerate(ghost.texts)]
    return []


def pane_title(index: int, result: SampleResult | None) -> str:
    """'#2 · -45.1 nats · 2.03 bits/char · at stop': a pane's number, and its score once done."""
    if result is None or not result.length:
        return f"#{index + 1}"
    at_stop = " · at stop" if result.stop_reason == "stop" else ""
    return f"#{index + 1} · {result.total:,.1f} nats · {result.bits_per_char:.2f} bits/char{at_stop}"


def beam_rows(step: BeamStep | None) -> list[tuple[int, bool, float, float, str]]:
    """The beams, best first: (rank, finished, log-probability in nats, bits/char, text)."""
    if step is None:
        return []
    return [(rank, beam.finished, beam.logprob, beam.bits_per_char(), beam.text)
            for rank, beam in enumerate(step.beams, 1)]

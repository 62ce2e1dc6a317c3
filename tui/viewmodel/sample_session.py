"""The Sample screen's state machines in plain Python.

`StreamSession`: the sampling settings, the seed mode, and one generated text at a time (a
generation counter, so chunks of a replaced stream are dropped; the text so far; stop; the result
line with its chars/s). `GhostCompletion`: complete-as-you-type, where a changed prime is followed,
after a pause, by a continuation made for it, shown only if the prime is still the same and no
result came in between. Worker threads run `stream_chunks` and `complete` with the inputs a job
holds and hand the results back on the UI thread.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from rnn_playground.core.sampling import Sampler, SampleSettings

from .sample_view import (
    LENGTH_CHOICES,
    PACE_CHOICES,
    TOP_K_CHOICES,
    StreamChunk,
    chunked_stream,
    pace_label,
    rate_label,
    settings_label,
    step_choice,
    step_temperature,
)

GHOST_CHARS = 80           # length of the dimmed continuation in complete-as-you-type mode
GHOST_PAUSE_S = 0.35       # a pause in typing this long updates it


def _chars(sampler: Sampler, settings: SampleSettings, stop: threading.Event,
           cancelled: Callable[[], bool] | None) -> Iterator[str]:
    for ch in sampler.stream(settings):
        if cancelled is not None and cancelled():
            stop.set()
        yield ch


def stream_chunks(sampler: Sampler, settings: SampleSettings, stop: threading.Event, *, pace: float | None = None,
                  clock: Callable[[], float] = time.perf_counter,
                  cancelled: Callable[[], bool] | None = None) -> Iterator[StreamChunk]:
    """The sampler's text for `settings` in chunks a few a second (or paced), until done or `stop`."""
    yield from chunked_stream(_chars(sampler, settings, stop, cancelled), pace=pace, stop=stop, clock=clock)


def complete(sampler: Sampler, settings: SampleSettings, *, clock: Callable[[], float] = time.perf_counter,
             cancelled: Callable[[], bool] | None = None) -> StreamChunk | None:
    """A whole continuation as one chunk (its text, count and timing), or None if cancelled meanwhile."""
    stop = threading.Event()
    *_, chunk = chunked_stream(_chars(sampler, settings, stop, cancelled), interval=math.inf, stop=stop, clock=clock)
    return None if chunk.stopped else chunk


@dataclass(frozen=True)
class SourceInfo:
    """Where samples come from: a checkpoint, or the live run (a snapshot per sample)."""
    kind: str                  # "checkpoint" or "live"
    name: str                  # run name
    detail: str                # "LSTM 2x256, step 1,200"
    sampler: Sampler | None    # for a checkpoint; None for live (taken per sample)


@dataclass(frozen=True)
class StreamJob:
    """A stream to run in a worker: its generation, settings, pace, stop event and where it comes from."""
    generation: int
    settings: SampleSettings
    pace: float | None
    stop: threading.Event
    detail: str


@dataclass(frozen=True)
class ResultLine:
    """The line under a result: its state, count and speed, and what it was made with."""
    state: str              # "streaming", "done" or "stopped"
    count: str              # "120/500 chars" while streaming, "200 chars in 0.52 s" after
    rate: str               # "1,234 chars/s", or '' before there is one
    pace: str               # "paced at 100/s", or '' unpaced
    made_with: tuple[str, ...]   # the settings, one phrase each, then the source


@dataclass
class StreamSession:
    """The settings and the result being (or last) generated."""
    temperature: float = 0.8
    top_k: int = 0
    length: int = 500
    seed_fixed: bool = False
    seed: int | None = None
    pace: float | None = None
    generation: int = 0
    streaming: bool = False
    generated: str = ""
    result_settings: SampleSettings | None = None
    last_chunk: StreamChunk | None = None
    chunks_drawn: int = 0       # chunks of the current result shown so far (a few a second, never per character)
    result_detail: str = ""
    _stop: threading.Event | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: SampleSettings) -> StreamSession:
        return cls(temperature=settings.temperature, top_k=settings.top_k, length=settings.length,
                   seed_fixed=settings.seed is not None, seed=settings.seed)

    # -- settings

    def settings(self, prime: str, seed: int | None) -> SampleSettings:
        return SampleSettings(prime=prime, temperature=self.temperature, top_k=self.top_k, length=self.length,
                              seed=seed)

    def next_seed(self, new: bool = False) -> int:
        """The fixed seed, or a new random one (always new with `new`)."""
        if self.seed_fixed and self.seed is not None and not new:
            return self.seed
        return random.SystemRandom().randrange(2**31)

    def change_temperature(self, delta: int) -> None:
        self.temperature = step_temperature(self.temperature, delta)

    def change_top_k(self, delta: int) -> None:
        self.top_k = step_choice(TOP_K_CHOICES, self.top_k, delta)

    def change_length(self, delta: int) -> None:
        self.length = step_choice(LENGTH_CHOICES, self.length, delta)

    def change_pace(self, delta: int) -> None:
        self.pace = step_choice(PACE_CHOICES, self.pace, delta)

    def toggle_seed_mode(self) -> None:
        self.seed_fixed = not self.seed_fixed
        if self.seed_fixed and self.seed is None:
            self.seed = self.next_seed(new=True)

    # -- a stream

    def start(self, settings: SampleSettings, detail: str) -> StreamJob:
        """A new result (the one streaming, if any, is stopped): the job its worker runs."""
        self.stop()
        self.generation += 1
        self.streaming = True
        self.seed = settings.seed
        self.generated = ""
        self.last_chunk = None
        self.chunks_drawn = 0
        self.result_settings = settings
        self.result_detail = detail
        self._stop = threading.Event()
        return StreamJob(self.generation, settings, self.pace, self._stop, detail)

    def add(self, generation: int, chunk: StreamChunk) -> bool:
        """A chunk from a stream's worker; whether it belongs to the current result."""
        if generation != self.generation:
            return False
        self.generated += chunk.text
        self.last_chunk = chunk
        self.chunks_drawn += 1
        if chunk.done:
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
        self.generated = ""
        self.result_settings = None

    def result_line(self) -> ResultLine | None:
        """The result's line, or None before there is one."""
        settings, chunk = self.result_settings, self.last_chunk
        if settings is None:
            return None
        count = chunk.chars if chunk is not None else 0
        if self.streaming:
            state, shown = "streaming", f"{count:,}/{settings.length:,} chars"
        else:
            state = "stopped" if chunk is not None and chunk.stopped else "done"
            shown = f"{count:,} chars in {chunk.elapsed_s if chunk else 0:.2f} s"
        pace = "" if self.pace is None else f"paced at {pace_label(self.pace)}"
        return ResultLine(state, shown, rate_label(chunk), pace, (*settings_label(settings).split(" · "),
                                                                  self.result_detail))


@dataclass
class GhostCompletion:
    """Complete-as-you-type: a dimmed continuation of the prime, made after each pause in typing."""
    stream: StreamSession
    enabled: bool = False
    text: str = ""
    prime: str = ""                             # the prime the shown continuation was made for
    settings: SampleSettings | None = None      # what it was made with (seed 0 unless one is fixed)
    chunk: StreamChunk | None = None            # its count and timing (chars/s)
    error: str | None = None

    def toggle(self) -> None:
        self.enabled = not self.enabled
        if not self.enabled:
            self.text = ""

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
        return stream.generation, replace(stream.settings(prime, seed), length=GHOST_CHARS)

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
            self.text = ""
            return True
        self.text, self.prime, self.settings, self.chunk = chunk.text, settings.prime, settings, chunk
        self.stream.clear_result()
        return True

    def caption(self) -> tuple[str, str, str] | None:
        """(what it is, its chars/s, what it was made with) while one is shown."""
        if not (self.enabled and self.text and self.settings is not None):
            return None
        return (f"the model's continuation, {len(self.text):,} chars", rate_label(self.chunk),
                settings_label(self.settings))


def output_parts(stream: StreamSession, ghost: GhostCompletion, prime: str) -> tuple[str, str, str, bool]:
    """What the output area shows: (prime, generated text, dimmed continuation, streaming cursor)."""
    if stream.result_settings is not None and (stream.generated or stream.streaming):
        return stream.result_settings.prime, stream.generated, "", stream.streaming
    if ghost.enabled:
        return prime, "", ghost.text, False
    return "", "", "", False

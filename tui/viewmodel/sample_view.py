"""What the Sample screen shows: character streams (one, or several drawn together) cut into timed chunks
(a few a second, or paced to a typewriter speed) with the characters/s of the result, the steps of the
sampling settings, a stop field's text read as a string or a /regex/, and a text's log-probability."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnn_playground.core.model import describe_model
from rnn_playground.tui.viewmodel.format import fmt_rate

if TYPE_CHECKING:
    from rnn_playground.core.sampling import SampleResult

# --------------------------------------------------------------------------- sampling

TEMPERATURE_STEP = 0.1
TEMPERATURE_MAX = 3.0
TOP_K_CHOICES = (0, 1, 2, 3, 5, 10, 20, 40, 80)
LENGTH_CHOICES = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
PACE_CHOICES: tuple[float | None, ...] = (None, 1000.0, 300.0, 100.0, 30.0, 10.0)  # chars/s; None = as fast as it goes
TOP_P_CHOICES = (1.0, 0.95, 0.9, 0.8, 0.5, 0.3, 0.1)   # 1 = off; each step narrower
PENALTY_CHOICES = (1.0, 1.1, 1.2, 1.5, 2.0)            # 1 = off
SAMPLES_CHOICES = (1, 2, 4, 8)                         # streams drawn together, shown side by side
MIN_LENGTH_CHOICES = (0, 10, 20, 50, 100, 200, 500)    # characters before a stop text counts
BEAM_WIDTHS = (1, 2, 4, 8, 16)
FLUSH_INTERVAL_S = 0.2          # unpaced streams are cut into about five chunks a second
MIN_FLUSH_INTERVAL_S = 1 / 30   # paced streams flush at most thirty times a second


def step_choice(choices: Sequence, current, delta: int):
    """The choice `delta` places from `current` (or from the nearest choice below it), clamped."""
    if current in choices:
        index = list(choices).index(current)
    else:
        below = [i for i, c in enumerate(choices) if c is not None and current is not None and c <= current]
        index = below[-1] if below else 0
    return choices[max(0, min(len(choices) - 1, index + delta))]


def step_temperature(current: float, delta: int) -> float:
    """Temperature up or down by 0.1 within [0, 3]; 0 means argmax. Rounded so 0.1 steps stay exact."""
    value = round(current + delta * TEMPERATURE_STEP, 2)
    return min(TEMPERATURE_MAX, max(0.0, value))


PANE_MIN_WIDTH = 40  # columns of a pane with several samples side by side, before they stack


def pane_grid(panes: int, width: int) -> tuple[int, int]:
    """(columns, rows) for `panes` samples side by side in `width` cells: as many columns as fit
    PANE_MIN_WIDTH each (lines of text long enough to read), balanced over the rows: 4 are 2x2 at 80
    or 120 columns, one row at 160."""
    columns = min(panes, max(1, width // PANE_MIN_WIDTH))
    rows = -(-panes // columns)
    return -(-panes // rows), rows


def flush_interval(pace: float | None) -> float:
    """How often a stream paced at `pace` chars/s hands text to the screen."""
    if pace is None:
        return FLUSH_INTERVAL_S
    return max(MIN_FLUSH_INTERVAL_S, min(FLUSH_INTERVAL_S, 1.0 / pace))


@dataclass(frozen=True)
class StreamChunk:
    """New text of each stream since the previous chunk, and the totals so far (all streams together)."""
    texts: tuple[str, ...]   # one per stream; a single stream's is `text`
    chars: int          # characters streamed so far, this chunk included
    elapsed_s: float    # since the stream began
    done: bool = False
    stopped: bool = False  # the stream ended because it was asked to stop
    results: tuple[SampleResult, ...] = ()  # on the last chunk: each stream's text, log-probability, stop reason

    @property
    def text(self) -> str:
        return self.texts[0]

    @property
    def chars_per_s(self) -> float | None:
        return self.chars / self.elapsed_s if self.elapsed_s > 0 and self.chars else None


def chunked_updates(updates: Iterable[dict[int, str]], streams: int = 1, *, interval: float | None = None,
                    pace: float | None = None, stop: threading.Event | None = None,
                    clock: Callable[[], float] = time.perf_counter) -> Iterator[StreamChunk]:
    """Cut a sampling pass's updates ({stream index: new text}, one per step) into chunks handed out
    every `interval` seconds (never one per character), optionally paced to `pace` steps a second.
    Ends early once `stop` is set, checked before every step. The last chunk has done=True (and
    stopped=True after a stop)."""
    interval = flush_interval(pace) if interval is None else interval
    start = clock()
    last = start
    buffers: list[list[str]] = [[] for _ in range(streams)]
    count = steps = 0
    stopped = False
    iterator = iter(updates)

    def drain() -> tuple[str, ...]:
        texts = tuple("".join(buffer) for buffer in buffers)
        for buffer in buffers:
            buffer.clear()
        return texts

    while True:
        if stop is not None and stop.is_set():
            stopped = True
            break
        try:
            update = next(iterator)
        except StopIteration:
            break
        steps += 1
        for index, text in update.items():
            buffers[index].append(text)
            count += len(text)
        if pace is not None:
            delay = start + steps / pace - clock()
            if delay > 0:
                if stop is not None:
                    if stop.wait(delay):
                        stopped = True
                        break
                else:
                    time.sleep(delay)
        now = clock()
        if now - last >= interval:
            yield StreamChunk(drain(), count, now - start)
            last = now
    yield StreamChunk(drain(), count, clock() - start, done=True, stopped=stopped)


def chunked_stream(chars: Iterable[str], *, interval: float | None = None, pace: float | None = None,
                   stop: threading.Event | None = None, clock: Callable[[], float] = time.perf_counter,
                   ) -> Iterator[StreamChunk]:
    """One character stream in chunks: chunked_updates of one stream, a character a step."""
    return chunked_updates(({0: ch} for ch in chars), 1, interval=interval, pace=pace, stop=stop, clock=clock)


# --------------------------------------------------------------------------- labels

def pace_label(pace: float | None) -> str:
    return "max" if pace is None else f"{fmt_rate(pace)}/s"


def rate_label(chunk: StreamChunk | None) -> str:
    """The characters/s of a result (core times it), or '' before there is one."""
    rate = chunk.chars_per_s if chunk is not None else None
    return "" if rate is None else f"{fmt_rate(rate)} chars/s"


def stop_field(value: str) -> tuple[str, bool]:
    """The stop field's text as (stop, is_regex): `/.../` is a regular expression (`/\\n/` stops at a
    newline), anything else the text itself."""
    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        return value[1:-1], True
    return value, False


def show_stop(stop: str, regex: bool) -> str:
    """A stop text as the stop field takes it: '/…/' for a regex, quoted for plain text."""
    return f"/{stop}/" if regex else repr(stop)


def settings_label(settings) -> str:
    """The settings a result was made with (a core.sampling.SampleSettings), in one line. Decoding
    settings left at their defaults (top-p 1, no penalty, no stop, one sample) are not named."""
    temperature = "argmax" if settings.temperature == 0 else f"{settings.temperature:.2f}"
    top_k = "off" if settings.top_k == 0 else str(settings.top_k)
    prime = settings.prime if len(settings.prime) <= 20 else settings.prime[:19] + "…"
    parts = [f"temperature {temperature}", f"top-k {top_k}"]
    if settings.top_p < 1:
        parts.append(f"top-p {settings.top_p:.2f}")
    if settings.repetition_penalty != 1:
        parts.append(f"penalty {settings.repetition_penalty:.2f}")
    parts.append(f"length {settings.length:,}")
    if settings.stop:
        parts.append(f"stop {show_stop(settings.stop, settings.stop_regex)}"
                     + (" included" if settings.include_stop else ""))
        if settings.min_length:
            parts.append(f"min-length {settings.min_length:,}")
    if settings.samples > 1:
        parts.append(f"{settings.samples} samples")
    parts += [f"seed {settings.seed}", f"prime {prime!r}"]
    return " · ".join(parts)


def beam_label(width: int, length: int, prime: str, stop: str = "", regex: bool = False) -> str:
    """What a beam search was made with, in one line."""
    shown_prime = prime if len(prime) <= 20 else prime[:19] + "…"
    parts = [f"beam {width}", f"length {length:,}"]
    if stop:
        parts.append(f"stop {show_stop(stop, regex)}")
    parts.append(f"prime {shown_prime!r}")
    return " · ".join(parts)


def score_label(total: float, bits_per_char: float) -> str:
    """A text's log-probability under the model: 'log-prob -123.4 nats · 1.87 bits/char'."""
    return f"log-prob {total:,.1f} nats · {bits_per_char:.2f} bits/char"


def describe_checkpoint(meta: dict, model_config) -> str:
    """"LSTM 2x256, step 1,200, best val 1.4321": a character checkpoint in a line."""
    step = (meta.get("progress") or {}).get("step")
    parts = [describe_model(model_config)]
    if step is not None:
        parts.append(f"step {step:,}")
    if meta.get("best_val_loss") is not None:
        parts.append(f"best val {meta['best_val_loss']:.4f}")
    return ", ".join(parts)

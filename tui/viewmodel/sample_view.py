"""What the Sample screen shows: a character stream cut into timed chunks (a few a second, or paced to a
typewriter speed) with the characters/s of the result, and the steps of the sampling settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from rnn_playground.core.model import describe_model
from rnn_playground.tui.viewmodel.format import fmt_rate

# --------------------------------------------------------------------------- sampling

TEMPERATURE_STEP = 0.1
TEMPERATURE_MAX = 3.0
TOP_K_CHOICES = (0, 1, 2, 3, 5, 10, 20, 40, 80)
LENGTH_CHOICES = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
PACE_CHOICES: tuple[float | None, ...] = (None, 1000.0, 300.0, 100.0, 30.0, 10.0)  # chars/s; None = as fast as it goes
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


def flush_interval(pace: float | None) -> float:
    """How often a stream paced at `pace` chars/s hands text to the screen."""
    if pace is None:
        return FLUSH_INTERVAL_S
    return max(MIN_FLUSH_INTERVAL_S, min(FLUSH_INTERVAL_S, 1.0 / pace))


@dataclass(frozen=True)
class StreamChunk:
    """New text since the previous chunk, and the totals so far."""
    text: str
    chars: int          # characters streamed so far, this chunk included
    elapsed_s: float    # since the stream began
    done: bool = False
    stopped: bool = False  # the stream ended because it was asked to stop

    @property
    def chars_per_s(self) -> float | None:
        return self.chars / self.elapsed_s if self.elapsed_s > 0 and self.chars else None


def chunked_stream(chars: Iterable[str], *, interval: float | None = None, pace: float | None = None,
                   stop: threading.Event | None = None, clock: Callable[[], float] = time.perf_counter,
                   ) -> Iterator[StreamChunk]:
    """Cut a character stream into chunks handed out every `interval` seconds (never one per
    character), optionally paced to `pace` characters a second. Ends early once `stop` is set,
    checked before every character. The last chunk has done=True (and stopped=True after a stop)."""
    interval = flush_interval(pace) if interval is None else interval
    start = clock()
    last = start
    buffer: list[str] = []
    count = 0
    stopped = False
    iterator = iter(chars)
    while True:
        if stop is not None and stop.is_set():
            stopped = True
            break
        try:
            ch = next(iterator)
        except StopIteration:
            break
        count += 1
        buffer.append(ch)
        if pace is not None:
            delay = start + count / pace - clock()
            if delay > 0:
                if stop is not None:
                    if stop.wait(delay):
                        stopped = True
                        break
                else:
                    time.sleep(delay)
        now = clock()
        if now - last >= interval:
            yield StreamChunk("".join(buffer), count, now - start)
            buffer.clear()
            last = now
    yield StreamChunk("".join(buffer), count, clock() - start, done=True, stopped=stopped)


# --------------------------------------------------------------------------- labels

def pace_label(pace: float | None) -> str:
    return "max" if pace is None else f"{fmt_rate(pace)}/s"


def rate_label(chunk: StreamChunk | None) -> str:
    """The characters/s of a result (core times it), or '' before there is one."""
    rate = chunk.chars_per_s if chunk is not None else None
    return "" if rate is None else f"{fmt_rate(rate)} chars/s"


def settings_label(settings) -> str:
    """The settings a result was made with (a core.sampling.SampleSettings), in one line."""
    temperature = "argmax" if settings.temperature == 0 else f"{settings.temperature:.2f}"
    top_k = "off" if settings.top_k == 0 else str(settings.top_k)
    prime = settings.prime if len(settings.prime) <= 20 else settings.prime[:19] + "…"
    return (f"temperature {temperature} · top-k {top_k} · length {settings.length:,} · seed {settings.seed} · "
            f"prime {prime!r}")


def describe_checkpoint(meta: dict, model_config) -> str:
    """"LSTM 2x256, step 1,200, best val 1.4321": a character checkpoint in a line."""
    step = (meta.get("progress") or {}).get("step")
    parts = [describe_model(model_config)]
    if step is not None:
        parts.append(f"step {step:,}")
    if meta.get("best_val_loss") is not None:
        parts.append(f"best val {meta['best_val_loss']:.4f}")
    return ", ".join(parts)

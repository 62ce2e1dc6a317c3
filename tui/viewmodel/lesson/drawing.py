"""Samples a Lesson page draws off the UI thread: a model step per character is too slow for a key's frame.

A page starts a `BackgroundDraw` for the settings it shows and polls it from `view` (the screen redraws a
few times a second); a newer draw cancels the older one. The work runs in a daemon thread, so nothing it
does (torch's inference mode, the sampler's thread count) leaks into the caller's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from rnn_playground.core.sampling import Sampler

from ..format import error_text

# work(add, cancelled): calls add(part, text) as text comes, and returns early once cancelled() is true.
Work = Callable[[Callable[[int, str], None], Callable[[], bool]], None]


class BackgroundDraw:
    def __init__(self, key: Hashable, work: Work, what: str = "Drawing the samples"):
        self.key = key                   # the settings drawn for: a page compares it with what it shows now
        self.error = ""
        self.done = False
        self._parts: dict[int, list[str]] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work, what), daemon=True, name=f"lesson: {what}")
        self._thread.start()

    def _run(self, work: Work, what: str) -> None:
        try:
            work(self._add, self._cancel.is_set)
        except Exception as exc:  # shown in words on the page, never a traceback
            self.error = error_text(exc, f"{what} failed")
        finally:
            self.done = True

    def _add(self, part: int, text: str) -> None:
        with self._lock:
            self._parts.setdefault(part, []).append(text)

    def text(self, part: int) -> str:
        with self._lock:
            return "".join(self._parts.get(part, ()))

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the draw ends (for the CLI and tests); whether it has."""
        self._thread.join(timeout)
        return self.done


class SamplerCache:
    """One core.sampling.Sampler for a page's model, built on first use (in a draw's thread: building one
    copies the model and, for a large LSTM, quantises it) and rebuilt when the model changes, so a draw
    still running for the previous model never hands its sampler to the next."""

    def __init__(self):
        self._lock = threading.Lock()
        self._model: object = None
        self._sampler: Sampler | None = None

    def get(self, model, vocab) -> Sampler:
        with self._lock:
            if self._sampler is None or self._model is not model:
                self._model, self._sampler = model, Sampler(model, vocab)
            return self._sampler

"""Lesson page 8, Complete: the learner types a beginning and sees several completions side by side.

The completions are drawn in one batched pass (core.sampling.Sampler.sample_many with samples=N: every
stream steps together, one matrix product per layer a step), each with its log-probability under the
model. Sampling is slow next to a keystroke, so it is a job: the screen asks `job()` after each change and
after each draw ends, runs the callable in a worker (one at a time, so keys typed during a draw are taken
together by the next) and hands the result to `finished`; a result for an older beginning is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.sampling import Sampler, SampleResult, SampleSettings
from rnn_playground.tui.viewmodel.format import error_text

from .page import PageKey, PageView, Source, Span, fit_line, line

SAMPLES = 4
LENGTH = 60
TEMPERATURE = 0.8
SEED = 21


@dataclass(frozen=True)
class Completions:
    generation: int
    prefix: str
    results: tuple[SampleResult, ...]


class CompletePage:
    name = "complete"
    title = "Complete"
    TYPE_AS_YOU_GO = True      # the screen hands over the text at each change, not only on Enter
    keys = (
        PageKey("t", "type", "Type"),
        PageKey("r", "reseed", "Reseed"),
        PageKey("n", "more", "More"),
    )

    def __init__(self) -> None:
        self.source: Source | None = None
        self.sampler: tuple[Source, Sampler] | None = None   # the model's sampler, built in the worker
        self.prefix = ""
        self.seed = SEED
        self.samples = SAMPLES
        self.length = LENGTH
        self.temperature = TEMPERATURE
        self.generation = 0        # numbers each request: a result for an older one is dropped
        self.wanted = 0            # the generation the page waits for (0: none)
        self.completions: Completions | None = None
        self.error = ""

    @property
    def field_text(self) -> str:
        """What the screen's text field shows on this page: the beginning being completed."""
        return self.prefix

    def set_source(self, source: Source) -> None:
        self.source, self.completions, self.error = source, None, ""
        self._ask()

    def _ask(self) -> None:
        self.generation += 1
        self.wanted = self.generation

    def settings(self) -> SampleSettings:
        return SampleSettings(prime=self.prefix, temperature=self.temperature, length=self.length, seed=self.seed,
                              samples=self.samples)

    def handle(self, action: str, argument: str = "") -> None:
        if action == "type":
            if argument == self.prefix:
                return
            self.prefix = argument
        elif action == "reseed":
            self.seed += 1
        elif action == "more":
            self.samples = SAMPLES + (self.samples - SAMPLES + 2) % 6
        else:
            return
        self._ask()

    # -- the job the screen runs in a worker

    def job(self):
        """A callable drawing the completions asked for last, or None when none is wanted (asked once)."""
        if self.source is None or not self.wanted:
            return None
        self.wanted = 0
        generation, settings, source = self.generation, self.settings(), self.source
        try:
            settings.validate(source.vocab)
        except PlaygroundError as exc:
            self.error = error_text(exc)
            return None
        self.error = ""

        def draw() -> Completions:  # in the worker (one job at a time): the sampler is built once per model
            if self.sampler is None or self.sampler[0] is not source:
                self.sampler = (source, Sampler(source.model, source.vocab))
            return Completions(generation, settings.prime, tuple(self.sampler[1].sample_many(settings)))
        return draw

    def finished(self, result: Completions) -> None:
        if result.generation == self.generation:
            self.completions = result

    def failed(self, message: str) -> None:
        self.error = message

    # -- drawing

    def view(self, width: int, height: int) -> PageView:
        caption = (f"{self.samples} completions of your beginning, one batched pass; log p nearer 0: likelier.",
                   "t types a beginning (Enter leaves the field), r draws others, n shows more.")
        title = "Complete: the model finishes what you type"
        busy = "drawing completions…" if self.wanted or (
            self.completions is None or self.completions.generation != self.generation) else ""
        if self.source is None:
            return PageView(title, caption, (), "sample", "Sample screen: longer samples, every setting",
                            busy="waiting for a model", error=self.error)
        lines = [line(Span("beginning ", "dim"), Span(repr(self.prefix) if self.prefix else "(empty: type t)", "bold"),
                      Span(f"   temperature {self.temperature:g}, seed {self.seed}, {self.length} characters", "dim"))]
        if self.completions is not None:
            lines += self._columns(self.completions, width, height - 2)
        lines = [fit_line(row, width) for row in lines][:height]
        return PageView(title, caption, tuple(lines), "sample", "Sample screen: longer samples, every setting",
                        busy=busy if not self.error else "", error=self.error)

    def _columns(self, completions: Completions, width: int, height: int) -> list:
        """The completions side by side, as many columns as fit (at least 16 cells each, 2 apart), wrapped in them."""
        results = completions.results
        per_row = max(1, min(len(results), (width + 2) // 18))
        column = (width + 2) // per_row - 2
        rows = []
        for first in range(0, len(results), per_row):
            group = results[first:first + per_row]
            rows.append(line())
            rows.append(line(*[Span(f"#{r.index + 1} log p {r.total:+.1f}".ljust(column) + "  ", "bold")
                               for r in group]))
            wrapped = [self._wrap(r.text, column) for r in group]
            depth = max(map(len, wrapped))
            budget = max(1, (height - 2 * ((len(results) + per_row - 1) // per_row)) // max(1, (
                len(results) + per_row - 1) // per_row))
            for row in range(min(depth, budget)):
                rows.append(line(*[Span((lines[row] if row < len(lines) else "").ljust(column) + "  ", "")
                                   for lines in wrapped]))
        return rows

    @staticmethod
    def _wrap(text: str, width: int) -> list[str]:
        """The text in lines of `width`; a newline shows as ↵ and starts a new line, a tab as →."""
        out = []
        parts = text.split("\n")
        for number, part in enumerate(parts):
            part = part.replace("\t", "→") + ("↵" if number < len(parts) - 1 else "")
            out.extend([part[i:i + width] for i in range(0, len(part), width)] or [""])
        return out

"""The Sampling page (chapter 21, the notebook's sample()): the next-character distribution for a prime,
stage by stage: the raw softmax, then temperature, then top-k, then top-p, each with its entropy, and a
same-seed sweep of temperatures.

Every stage is core.sampling.next_distribution itself with the settings switched on one at a time (the one
transform the sampler draws from), so the page shows exactly what the Sample screen draws from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnn_playground.core.corpus import describe_chars
from rnn_playground.core.sampling import SampleSettings, next_distribution

from ..format import bar, show_char, show_text_char
from ..sample_view import TOP_K_CHOICES, TOP_P_CHOICES, step_choice, step_temperature
from .drawing import BackgroundDraw, SamplerCache
from .page import Line, PageKey, PageView, Source, Span, fit_line, line

SWEEP_TEMPERATURES = (0.2, 0.5, 1.0, 1.5)
SWEEP_SEED = 1234
SWEEP_MAX_CHARS = 112     # characters of each sweep sample (fewer when the width is less)
TOP_ROWS = 16             # characters listed at most, the likeliest under the raw softmax
TITLE = "Sampling: softmax, temperature, top-k, top-p"


@dataclass(frozen=True)
class Stage:
    name: str
    settings: SampleSettings
    probs: torch.Tensor       # (vocab,): the probability of every character at this stage (0 when cut)

    @property
    def entropy_bits(self) -> float:
        return entropy_bits(self.probs)


def entropy_bits(probs: torch.Tensor) -> float:
    kept = probs[probs > 0].double()
    return max(0.0, float(-(kept * kept.log2()).sum()))  # one certain character: 0, never "-0.00"


def full_distribution(logits: torch.Tensor, settings: SampleSettings) -> torch.Tensor:
    """next_distribution for one (vocab,) row of logits, spread back over the whole vocabulary."""
    probs, indices = next_distribution(logits[None], settings)
    if indices is None:
        return probs[0]
    return torch.zeros_like(logits).scatter(0, indices[0], probs[0])


def stages(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> list[Stage]:
    """The distribution after each step of the transform, each one switched on after the last."""
    steps = [("softmax", SampleSettings(temperature=1.0)),
             (f"T={temperature:g}", SampleSettings(temperature=temperature)),
             (f"top-k {top_k or 'off'}", SampleSettings(temperature=temperature, top_k=top_k)),
             (f"top-p {top_p:g}" if top_p < 1 else "top-p off",
              SampleSettings(temperature=temperature, top_k=top_k, top_p=top_p))]
    return [Stage(name, settings, full_distribution(logits, settings)) for name, settings in steps]


class SamplingPage:
    name = "sampling"
    title = "Sampling"
    keys = (
        PageKey("t", "cooler", "temperature down"),
        PageKey("T", "warmer", "temperature up"),
        PageKey("k", "fewer_k", "smaller top-k"),
        PageKey("K", "more_k", "larger top-k"),
        PageKey("p", "narrower_p", "smaller top-p"),
        PageKey("P", "wider_p", "larger top-p"),
        PageKey("s", "reseed", "new sweep seed"),
        PageKey("e", "type", "edit the beginning"),
    )

    def __init__(self, source: Source | None = None):
        self.source: Source | None = None
        self.prime = ""
        self.temperature, self.top_k, self.top_p = 0.8, 0, 1.0
        self.seed = SWEEP_SEED
        self.error = ""
        self._logits: torch.Tensor | None = None
        self._samplers = SamplerCache()
        self._draw: BackgroundDraw | None = None
        if source is not None:
            self.set_source(source)

    def set_source(self, source: Source) -> None:
        if self.source is not None and source.model is self.source.model:
            self.source = source
            return
        self.source, self.error = source, ""   # a refusal was of text typed for the last model
        if self._draw is not None:
            self._draw.cancel()
        self._draw = None
        if not self.prime or source.vocab.missing(self.prime):
            self.prime = _default_prime(source)
        self._logits = self.next_logits(self.prime)

    def next_logits(self, prime: str) -> torch.Tensor:
        """(vocab,) logits of the character after `prime`: the model's forward pass in eval mode."""
        model = self.source.model
        ids = self.source.vocab.encode(prime)[None]
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                logits, _ = model(ids)
        finally:
            model.train(was_training)
        return logits[0, -1].float()

    def handle(self, action: str, argument: str = "") -> None:
        if action == "type":
            self._type(argument)
        elif action in ("cooler", "warmer"):
            self.temperature = step_temperature(self.temperature, 1 if action == "warmer" else -1)
        elif action in ("fewer_k", "more_k"):
            self.top_k = step_choice(TOP_K_CHOICES, self.top_k, 1 if action == "more_k" else -1)
        elif action in ("narrower_p", "wider_p"):  # TOP_P_CHOICES run from 1 (off) down
            self.top_p = step_choice(TOP_P_CHOICES, self.top_p, 1 if action == "narrower_p" else -1)
        elif action == "reseed":
            self.seed += 1

    def _type(self, prime: str) -> None:
        if not prime:
            self.error = "Type a prime of at least one character: the page shows what the model predicts after it."
            return
        if self.source is None:  # typed while the model loads: set_source checks it against the vocabulary
            self.prime, self.error = prime, ""
            return
        lacking = self.source.vocab.missing(prime)
        if lacking:
            self.error = (f"The prime has characters the model's vocabulary lacks: {describe_chars(lacking)}. "
                          "Remove them; the page keeps the last prime.")
            return
        self.prime, self.error = prime, ""
        self._logits = self.next_logits(prime)

    def stages(self) -> list[Stage]:
        return stages(self._logits, self.temperature, self.top_k, self.top_p)

    def start_sweep(self, length: int) -> BackgroundDraw:
        """Draw a sample of `length` characters at each sweep temperature (part i: SWEEP_TEMPERATURES[i]),
        all from the same seed with the page's top-k and top-p, in a thread: what the Sample screen draws."""
        if self._draw is not None:
            self._draw.cancel()
        source, settings = self.source, [self.sweep_settings(t, length) for t in SWEEP_TEMPERATURES]

        def work(add, cancelled) -> None:
            sampler = self._samplers.get(source.model, source.vocab)
            for part, one in enumerate(settings):
                if cancelled():
                    return
                add(part, sampler.generate(one))

        self._draw = BackgroundDraw(self.sweep_state(length), work, "Drawing the temperature sweep")
        return self._draw

    def sweep(self, length: int) -> list[tuple[float, str]]:
        """The sweep, waited for: (temperature, sample) for each of SWEEP_TEMPERATURES."""
        draw = self.start_sweep(length)
        draw.wait()
        return [(temperature, draw.text(part)) for part, temperature in enumerate(SWEEP_TEMPERATURES)]

    def sweep_state(self, length: int) -> tuple:
        return self.prime, self.top_k, self.top_p, self.seed, length

    def drawn_sweep(self, length: int) -> tuple[list[tuple[float, str]], bool, BackgroundDraw]:
        """The sweep drawn so far, whether it is stale, and its draw. A draw begins on the first view, at a
        new width, on typing and on s; k and p keys mark it stale (a draw takes a model step a character)."""
        state = self.sweep_state(length)
        if self._draw is None or self._draw.key[0] != self.prime or self._draw.key[3:] != state[3:]:
            self.start_sweep(length)
        draw = self._draw
        return ([(temperature, draw.text(part)) for part, temperature in enumerate(SWEEP_TEMPERATURES)],
                draw.key != state, draw)

    def sweep_settings(self, temperature: float, length: int) -> SampleSettings:
        return SampleSettings(prime=self.prime, temperature=temperature, top_k=self.top_k, top_p=self.top_p,
                              length=length, seed=self.seed)

    # -- drawing

    def view(self, width: int, height: int) -> PageView:
        caption = ("The next character's odds after your text, reshaped by each sampling setting.",
                   "Try: e edits the beginning; t/T temperature, k/K top-k, p/P top-p; s new seed.")
        if self._logits is None:
            return PageView(TITLE, caption, (), "sample", "Sample screen: generate with these settings",
                            error=self.error or "No model to sample from.")
        chars = self.source.vocab.chars
        shown = self.stages()
        tail = self.prime[-max(8, width - 40):]
        body: list[Line] = [line("after ", Span("".join(show_text_char(c) for c in tail), "accent"),
                                 Span(f"   T={self.temperature:g}  top-k {self.top_k or 'off'}  "
                                      f"top-p {self.top_p:g}", "dim"))]
        cell = max(6, (width - 4) // len(shown) - 6)  # a bar and " 0.42 " in each stage's column
        body.append(line("    ", *(Span(stage.name[:cell + 5].ljust(cell + 6), "bold") for stage in shown)))
        body.append(line("    ", *(Span(f"{stage.entropy_bits:.2f} bits".ljust(cell + 6), "dim") for stage in shown)))
        order = shown[0].probs.argsort(descending=True).tolist()
        sweep_rows = len(SWEEP_TEMPERATURES) + 1
        rows = max(3, min(TOP_ROWS, len(order), height - len(body) - sweep_rows))
        for index in order[:rows]:
            spans = [Span(f" {show_char(chars[index])}  ", "accent")]
            for stage in shown:
                prob = float(stage.probs[index])
                spans += [Span(bar(prob, cell), "bar"), Span(f"{prob:5.2f} " if prob > 0 else "  cut ", "dim")]
            body.append(tuple(spans))
        length, draw = sweep_length(width), None
        if len(body) + sweep_rows <= height:
            sweep, stale, draw = self.drawn_sweep(length)
            _, top_k, top_p, seed, _ = draw.key
            body.append(line(Span(f"Seed {seed}, {length} characters at each temperature", "dim"),
                             Span(f" (top-k {top_k or 'off'}, top-p {top_p:g}: s redraws)" if stale else ":", "dim")))
            for temperature, text in sweep:
                body.append(line(Span(f"T={temperature:<4g} ", "bold"),
                                 "".join(show_text_char(c) for c in text)[:width - 7]))
        lines = tuple(fit_line(row, width) for row in body[:height])
        busy = "" if draw is None or draw.done else "drawing the temperature sweep"
        error = self.error or (draw.error if draw is not None else "")
        return PageView(TITLE, caption, lines, "sample", "Sample screen: generate with these settings",
                        busy=busy, error=error)


def sweep_length(width: int) -> int:
    """Characters of each sweep sample at `width`: a line each, after its "T=0.5 " label."""
    return max(10, min(SWEEP_MAX_CHARS, width - 8))


def _default_prime(source: Source) -> str:
    """A beginning from the source's text: its first line's first word or so."""
    text = "".join(c for c in source.text[:40] if c in source.vocab.index) or source.vocab.chars[0]
    return text[:text.find(" ", 8)] if text.find(" ", 8) > 0 else text[:12]


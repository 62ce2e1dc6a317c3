"""The Train vs eval page (chapter 20): what net.eval() changes.

One passage of the text goes through the model in eval mode (dropout off) and in training mode under
several dropout masks. Masks are the trainer's own (core.model.stream_dropout_mask, keyed by a seed and
a "step" per mask: DropoutKey(mask_seed, mask)), so they are reproducible. The page works on its own copy
of the model (built with the dropout shown), never switching the source's model out of eval mode.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

import torch
from torch.nn import functional as F

from rnn_playground.core.corpus import describe_chars
from rnn_playground.core.model import CharRNN, DropoutKey
from rnn_playground.core.sampling import Sampler, SampleSettings, next_distribution

from ..format import bar, show_char, show_text_char
from .drawing import BackgroundDraw, SamplerCache
from .page import Line, PageKey, PageView, Source, Span, fit_line, line

MASKS = 3                      # training-mode passes shown, each with its own dropout mask
PASSAGE = 32                   # characters of input
TOP_ROWS = 12                  # likeliest next characters listed at most (eval mode's order)
OTHER_LINES = 9                # the body's lines besides those
DEMO_DROPOUTS = (0.1, 0.3, 0.5)
SAMPLE_TEMPERATURE = 0.8       # the Sample screen's default
CACHED_RESULTS = 32            # (dropout, masks, passage) results kept for stepping back and forth
SAMPLE_LINES = 2               # lines of each side's sample
TITLE = "Train vs eval: what dropout does, and why sampling turns it off"


class TrainEvalPage:
    name = "train_eval"
    title = "Train vs eval"
    keys = (
        PageKey("m", "masks", "new dropout masks"),
        PageKey("d", "dropout", "dropout for the demonstration"),
        PageKey("s", "reseed", "new sample seed"),
        PageKey("left", "previous", "earlier passage"),
        PageKey("right", "next", "later passage"),
    )

    def __init__(self, source: Source | None = None):
        self.source: Source | None = None
        self.mask_seed, self.sample_seed, self.position = 0, 7, 0
        self.demo_dropout: float | None = None    # None: the model's own dropout
        self.model: CharRNN | None = None
        self._samplers = SamplerCache()
        self._cache: dict[tuple, object] = {}
        self._draw: BackgroundDraw | None = None
        if source is not None:
            self.set_source(source)

    # -- state

    def set_source(self, source: Source) -> None:
        """A new text starts at its beginning; a new model is copied (a newer checkpoint of the same text
        keeps the passage and the demonstration's dropout)."""
        old, self.source = self.source, source
        new_text, new_model = old is None or source.text != old.text, old is None or source.model is not old.model
        if new_text:
            self.position = 0
            self.demo_dropout = None if new_model else self.demo_dropout
        if new_text or new_model:
            self._cache = {}
            self._stop_draw()
        if new_model:
            self._build()

    def _stop_draw(self) -> None:
        if self._draw is not None:
            self._draw.cancel()
        self._draw = None

    @property
    def own_dropout(self) -> float:
        return float(self.source.model.config.dropout)

    @property
    def dropout(self) -> float:
        return self.own_dropout if self.demo_dropout is None else self.demo_dropout

    def _build(self) -> None:
        """The page's copy of the model, with the dropout shown (the weights are the source's)."""
        model = CharRNN(replace(self.source.model.config, dropout=self.dropout))
        model.load_state_dict(self.source.model.state_dict())
        self.model = model.eval()

    def handle(self, action: str, argument: str = "") -> None:
        if self.source is None:
            return
        if action == "masks":
            self.mask_seed += 1
        elif action == "reseed":
            self.sample_seed += 1
            self._stop_draw()
        elif action == "dropout":
            choices = [None, *(p for p in DEMO_DROPOUTS if p != self.own_dropout)]
            at = choices.index(self.demo_dropout) if self.demo_dropout in choices else 0
            self.demo_dropout = choices[(at + 1) % len(choices)]
            self._build()
        elif action in ("previous", "next"):
            last = max(0, len(self.source.text) - PASSAGE - 1)
            step = PASSAGE if action == "next" else -PASSAGE
            self.position = min(last, max(0, self.position + step))

    def passage(self) -> str:
        """The input and its next character: PASSAGE + 1 characters from `position`."""
        return self.source.text[self.position:self.position + PASSAGE + 1]

    def eval_logits(self) -> torch.Tensor:
        """(PASSAGE, vocab) logits of the passage in eval mode."""
        ids = self.source.vocab.encode(self.passage()[:-1])[None]
        with torch.no_grad():
            return self.model.eval()(ids)[0][0]

    def train_logits(self) -> torch.Tensor:
        """(MASKS, PASSAGE, vocab) logits of the passage in training mode, one row per mask, all in one
        batched pass: row m is global stream m of DropoutKey(mask_seed, 0), so its mask is the one a
        batch-1 pass with DropoutKey(mask_seed, 0, first_stream=m) draws (core.model's keyed masks)."""
        ids = self.source.vocab.encode(self.passage()[:-1])[None].expand(MASKS, -1)
        with torch.no_grad():
            try:
                return self.model.train()(ids, dropout_key=DropoutKey(self.mask_seed, 0))[0]
            finally:
                self.model.eval()

    def results(self) -> list[tuple[str, torch.Tensor, float]]:
        """(label, next-character probabilities after the passage, mean loss over it) for eval mode and
        each mask."""
        targets = self.source.vocab.encode(self.passage()[1:])
        if len(self._cache) >= CACHED_RESULTS:
            self._cache.clear()
        eval_key, train_key = ("eval", self.position), ("train", self.dropout, self.mask_seed, self.position)
        if eval_key not in self._cache:
            self._cache[eval_key] = self.eval_logits()
        if train_key not in self._cache:
            self._cache[train_key] = self.train_logits()
        rows = [("eval", self._cache[eval_key])]
        rows += [(f"train {mask + 1}", logits) for mask, logits in enumerate(self._cache[train_key])]
        return [(label, logits[-1].softmax(-1), float(F.cross_entropy(logits, targets))) for label, logits in rows]

    def sample_settings(self, length: int) -> SampleSettings:
        return SampleSettings(prime=self.passage(), temperature=SAMPLE_TEMPERATURE, length=length,
                              seed=self.sample_seed)

    def sample_state(self, length: int) -> tuple:
        return self.position, self.dropout, self.sample_seed, length

    def start_draw(self, length: int) -> BackgroundDraw:
        """Draw `length` characters after the passage in each mode, from the same seed and the same draws,
        in a thread: part 0 eval mode (core.sampling.Sampler, what the Sample screen gives), part 1
        training mode (a fresh dropout mask each step, on the thread's own copy of the page's model)."""
        if self._draw is not None:
            self._draw.cancel()
        settings, source = self.sample_settings(length), self.source
        config, weights = self.model.config, self.model.state_dict()

        def work(add, cancelled) -> None:
            add(0, self._samplers.get(source.model, source.vocab).generate(settings))
            model = CharRNN(config)
            model.load_state_dict(weights)
            for char in train_mode_stream(model, source.vocab, settings):
                if cancelled():
                    return
                add(1, char)

        self._draw = BackgroundDraw(self.sample_state(length), work)
        return self._draw

    def samples(self, length: int) -> tuple[str, str]:
        """(eval, train) samples of `length` characters, waited for."""
        draw = self.start_draw(length)
        draw.wait()
        return draw.text(0), draw.text(1)

    def drawn_samples(self, length: int) -> tuple[str, str, bool, BackgroundDraw]:
        """(eval text, train text so far, stale, the draw). A draw begins on the first view, at a new width
        and on s; the other keys leave the last samples, marked stale (a draw takes a model step a character)."""
        if self._draw is None or self._draw.key[3] != length:
            self.start_draw(length)
        draw = self._draw
        return draw.text(0), draw.text(1), draw.key != self.sample_state(length), draw

    # -- drawing

    def _problem(self) -> str:
        """Why there is nothing to show, in words ("" when there is something)."""
        if self.source is None or len(self.source.text) < 2:
            return "No text to run through the model."
        lacking = self.source.vocab.missing(self.passage())
        if lacking:
            return (f"This passage has characters the model's vocabulary lacks: {describe_chars(lacking)}. "
                    "Step to another passage (left/right), or open the run's own corpus.")
        return ""

    def view(self, width: int, height: int) -> PageView:
        caption = ("One passage through the model in eval mode, and in training mode with dropout.",
                   "Try: m new masks, d the dropout, s a new sample seed, left/right the passage.")
        problem = self._problem()
        if problem:
            return PageView(TITLE, caption, (), "sample", "Sample screen: sampling runs in eval mode", error=problem)
        chars, passage = self.source.vocab.chars, self.passage()
        results = self.results()
        tail = "".join(show_text_char(c) for c in passage[:-1])[-max(10, width - 20):]
        body: list[Line] = [line("input ", Span(tail, "accent"), " -> ",
                                 Span(f"'{show_text_char(passage[-1])}'", "bold"))]
        if self.dropout == 0:
            body.append(line(Span("This model has dropout 0: both modes compute the same thing. ", "bad"),
                             Span("d: try one.", "dim")))
        else:
            whose = ("the model's own" if self.demo_dropout is None
                     else f"demonstration; the model's: {self.own_dropout:g}")
            body.append(line(Span(f"dropout {self.dropout:g} ({whose}); masks seed {self.mask_seed}", "dim")))
        column = max(12, (width - 5) // len(results))
        cell = column - 6
        body.append(line("     ", *(Span(label.ljust(column), "bold") for label, _, _ in results)))
        body.append(line(Span("loss ", "dim"), *(Span(f"{loss:.3f}".ljust(column), "bold") for _, _, loss in results)))
        rows = max(3, min(TOP_ROWS, height - OTHER_LINES))
        order = results[0][1].argsort(descending=True).tolist()[:rows]
        for index in order:
            spans = [Span(f" {show_char(chars[index])}   ", "accent")]
            for _, probs, _ in results:
                prob = float(probs[index])
                spans += [Span(bar(prob, cell), "bar"), Span(f"{prob:5.2f} ", "dim")]
            body.append(tuple(spans))
        half = max(10, (width - 3) // 2)
        length = half * SAMPLE_LINES
        eval_text, train_text, stale, draw = self.drawn_samples(length)
        eval_text, train_text = ("".join(show_text_char(c) for c in text) for text in (eval_text, train_text))
        seed = draw.key[2]
        body.append(line(Span(f"A sample in each mode from seed {seed} (T={SAMPLE_TEMPERATURE:g}), the same draws",
                              "dim"), Span(" (earlier settings: s draws again)" if stale else ":", "dim")))
        body.append(line(Span("eval: what the Sample screen gives".ljust(half), "bold"), Span(" | ", "dim"),
                         Span("train: dropout on at every step", "bold")))
        for row in range(SAMPLE_LINES):
            piece = slice(row * half, (row + 1) * half)
            body.append(line(eval_text[piece].ljust(half), Span(" | ", "dim"), train_text[piece]))
        body.append(line(Span("So sampling runs in eval mode: ", "bold"), "dropout off, one seed gives one text."))
        lines = tuple(fit_line(row, width) for row in body[:height])
        busy = "" if draw.done else f"drawing the samples: {len(train_text)}/{length} characters"
        return PageView(TITLE, caption, lines, "sample", "Sample screen: sampling runs in eval mode", busy=busy,
                        error=draw.error)


def train_mode_stream(model: CharRNN, vocab, settings: SampleSettings) -> Iterator[str]:
    """The sampler's draw (next_distribution, its seeded random.Random and its draw rule) with `model` in
    training mode: a fresh dropout mask at every step (DropoutKey(seed, step)). Leaves the model training."""
    rng = random.Random(settings.seed)
    ids, state = vocab.encode(settings.prime)[None], None
    model.train()
    with torch.no_grad():
        for step in range(settings.length):
            logits, state = model(ids, state, dropout_key=DropoutKey(settings.seed, step))
            probs, indices = next_distribution(logits[:, -1], settings)
            token = Sampler.draw_char(probs[0].tolist(), None if indices is None else indices[0].tolist(), rng)
            ids = torch.tensor([[token]])
            yield vocab.chars[token]

"""The Batching page (chapters 15, 18): the corpus cut into B streams, walked T columns at a time.

The windows are the trainer's own: core.model.StreamBatches over the training part of the text, split
the way core.chartask does (core.corpus.split_parts with the run's fractions). Nothing is re-derived here.

On a live run, `Source.live` tells where the trainer is. Keys read (each optional): "window" (the next
window the trainer takes, 0-based), else "epoch" (the trainer's float epoch, epoch + window / windows),
else "step" (window = step mod windows); "windows_per_epoch" (the run's, over its whole corpus, else the
page's own count); "batch" and "seq" (the run's B and T, else the config's). source.live_figures writes them.
"""

from __future__ import annotations

import math

import torch

from rnn_playground.core.corpus import split_parts
from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.model import StreamBatches

from ..format import show_text_char
from .page import Line, PageKey, PageView, Source, Span, fit_line, line

BATCH_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256)
SEQ_CHOICES = (4, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200)
MIN_ROWS = 2          # streams the page always shows, whatever the height
FIXED_LINES = 9       # the body's lines besides the two blocks of stream rows
TITLE = "Batching: the corpus as B streams, walked T characters at a time"


def _step(choices: tuple[int, ...], current: int, delta: int) -> int:
    """The next choice above (delta > 0) or below current; current itself when there is none."""
    if delta > 0:
        return next((c for c in choices if c > current), current)
    return next((c for c in reversed(choices) if c < current), current)


def training_text(source: Source) -> str:
    """The part of the source's text the trainer walks: the split core.chartask makes (validation and
    test parts held out from the end)."""
    config = source.config
    return split_parts(source.text, getattr(config, "val_fraction", 0.0),
                       getattr(config, "test_fraction", 0.0)).train


def course_last_targets(batches: StreamBatches) -> torch.Tensor:
    """The course's get_batches labels for the last window's last column: each stream's own first
    character (arr[:, 0]), where the true next character is meant."""
    return batches.inputs[:, 0].long()


def live_window(live: dict, windows: int) -> int | None:
    """The window the trainer takes next, from what the run reports (see the module's note); None when
    it reports nothing."""
    if not live or windows < 1:
        return None
    if live.get("window") is not None:
        return int(live["window"]) % windows
    if live.get("epoch") is not None:
        fraction = float(live["epoch"]) - math.floor(float(live["epoch"]))
        return int(round(fraction * windows)) % windows
    if live.get("step") is not None:
        return int(live["step"]) % windows
    return None


class BatchingPage:
    name = "batching"
    title = "Batching"
    keys = (
        PageKey("left", "previous", "previous window"),
        PageKey("right", "next", "next window"),
        PageKey("b", "fewer_streams", "fewer streams (B)"),
        PageKey("B", "more_streams", "more streams (B)"),
        PageKey("t", "shorter", "shorter windows (T)"),
        PageKey("T", "longer", "longer windows (T)"),
        PageKey("f", "follow", "follow the run / its B and T"),
    )

    def __init__(self, source: Source | None = None):
        self.source: Source | None = None
        self.ids: torch.Tensor | None = None
        self.batch, self.seq, self.window = 8, 20, 0
        self.batches: StreamBatches | None = None
        self.following = True        # on a live run: show the trainer's window
        self.error = self.cut_error = ""
        if source is not None:
            self.set_source(source)

    # -- state

    def set_source(self, source: Source) -> None:
        """A new source: the same text and run (a newer checkpoint, a live update) keeps the page where it
        is; another text or run starts it over at the run's B and T."""
        old, self.source = self.source, source
        if (old is not None and source.text == old.text and source.vocab == old.vocab
                and self._shape_of(source) == self._shape_of(old)):
            return
        self.batch, self.seq = self.run_shape()
        self.window, self.following, self.batches = 0, True, None
        try:
            self.ids = source.vocab.encode(training_text(source))
        except PlaygroundError as exc:
            self.ids, self.error = None, f"{exc} The page needs the text the model was trained on."
            return
        self._cut(self.batch, self.seq)

    def run_shape(self) -> tuple[int, int]:
        """The B and T the run trains with."""
        return self._shape_of(self.source)

    @staticmethod
    def _shape_of(source: Source) -> tuple[int, int]:
        live, config = source.live or {}, source.config
        return int(live.get("batch") or getattr(config, "batch", 8)), int(live.get("seq") or getattr(config, "seq", 20))

    def _cut(self, batch: int, seq: int) -> None:
        """StreamBatches at B x T, or the error in words (the last good cut stays)."""
        try:
            batches = StreamBatches(self.ids, batch, seq)
        except PlaygroundError as exc:
            self.cut_error = str(exc)
            if self.batches is None:  # nothing to keep: take the asked size, so that b and t go on from it
                self.batch, self.seq = batch, seq
                self.error = f"{exc} Lower B (b) or T (t)."
            else:
                self.error = f"{exc} Keeping B={self.batch}, T={self.seq}."
            return
        self.batches, self.batch, self.seq, self.error, self.cut_error = batches, batch, seq, "", ""
        self.window = min(self.window, len(batches) - 1)

    def handle(self, action: str, argument: str = "") -> None:
        if self.ids is None:
            return
        if action in ("previous", "next") and self.batches is not None:
            self.window, self.following = self.current(), False
            self.window = (self.window + (1 if action == "next" else -1)) % len(self.batches)
        elif action in ("fewer_streams", "more_streams"):
            self._cut(_step(BATCH_CHOICES, self.batch, 1 if action == "more_streams" else -1), self.seq)
        elif action in ("shorter", "longer"):
            self._cut(self.batch, _step(SEQ_CHOICES, self.seq, 1 if action == "longer" else -1))
        elif action == "follow":
            self.following = True
            self._cut(*self.run_shape())

    def trainer_window(self) -> int | None:
        """The window the live run takes next, when the page cuts at the run's B and T. Counted over the
        run's windows per epoch ("windows_per_epoch" in live, else the page's own: the same when the page reads the
        whole text), so it may lie beyond the part of the text the page was given."""
        if self.batches is None or self.source is None or (self.batch, self.seq) != self.run_shape():
            return None
        return live_window(self.source.live, int(self.source.live.get("windows_per_epoch") or len(self.batches)))

    def current(self) -> int:
        live = self.trainer_window() if self.following else None
        return self.window if live is None or live >= len(self.batches) else live

    def pairs(self, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of a window: StreamBatches.window itself."""
        return self.batches.window(window)

    # -- drawing

    def view(self, width: int, height: int) -> PageView:
        caption = ("Each row is a stream of the text; one step trains on the highlighted window.",
                   "Try: left/right step the window; b/B change the streams, t/T the window size.")
        if self.batches is None:
            return PageView(TITLE, caption, (), "train", "Train screen: batch and sequence settings",
                            error=self.error or "No text to cut.")
        window = self.current()
        batches = self.batches
        columns = batches.inputs.shape[1]
        start = window * self.seq
        body: list[Line] = [
            line(Span(f"B={self.batch}", "bold"),
                 f" streams x {columns:,} columns ({len(self.ids):,} training characters)"),
            line("window ", Span(f"{window + 1}", "accent"), f" of {len(batches):,} (", Span(f"T={self.seq}", "bold"),
                 f"): columns {start:,}-{start + self.seq - 1:,} of every stream"),
        ]
        rows = min(self.batch, max(MIN_ROWS, (height - FIXED_LINES) // 2))
        body.append(line(Span("the streams (window highlighted):", "dim")))
        body.extend(self._strip_line(row, start, width) for row in range(rows))
        if rows < self.batch:
            body.append(line(Span(f"  ... {self.batch - rows} more streams", "dim")))
        body.append(line(Span("x (input) and y (target, shifted by one) of the window:", "dim")))
        body.extend(self.window_block(window, width, rows))
        body.extend(self.wrap_lines())
        body.extend(self._live_lines(window))
        lines = tuple(fit_line(row, width) for row in body[:height])
        return PageView(TITLE, caption, lines, "train", "Train screen: batch and sequence settings",
                        error=self.error)

    def window_block(self, window: int, width: int, rows: int | None = None) -> list[Line]:
        """x and y of `window` side by side, one line per stream (the first `rows` of them)."""
        x, y = self.pairs(window)
        half = max(4, (width - 14) // 2)
        return [line(f"s{row + 1:<3}x ", Span(self._text(x[row])[:half], "accent"), "  y ",
                     Span(self._text(y[row])[:half], "bold"))
                for row in range(self.batch if rows is None else rows)]

    def _text(self, ids: torch.Tensor) -> str:
        chars = self.source.vocab.chars
        return "".join(show_text_char(chars[i]) for i in ids.tolist())

    def _strip_line(self, row: int, start: int, width: int) -> Line:
        """Stream `row` around the window: a little before it (dim), the window (accent), after it (dim)."""
        room = max(8, width - 5)
        inputs = self.batches.inputs[row]
        shown = min(self.seq, room)
        before = min(start, max(0, (room - shown) // 3))
        after = max(0, room - shown - before)
        left = self._text(inputs[start - before:start])
        middle = self._text(inputs[start:start + shown])
        right = self._text(inputs[start + self.seq:start + self.seq + after]) if shown == self.seq else ""
        return line(f"s{row + 1:<3} ", Span(left, "dim"), Span(middle, "accent"), Span(right, "dim"))

    def wrap_lines(self) -> list[Line]:
        """The course's wrap-around label on the last window against the true next character."""
        batches = self.batches
        ours = batches.window(len(batches) - 1)[1][0, -1].item()
        course = course_last_targets(batches)[0].item()
        chars = self.source.vocab.chars
        return [
            line(Span("Course: ", "bold"), "stream 1's last target wraps to its first character: ",
                 Span(f"'{show_text_char(chars[course])}' wrong", "bad")),
            line(Span("Ours (StreamBatches): ", "bold"), "y is ids[1:used + 1], the true next one: ",
                 Span(f"'{show_text_char(chars[ours])}' right", "good")),
        ]

    def _live_lines(self, window: int) -> list[Line]:
        live = self.trainer_window()
        if live is None:
            if self.source.live:
                run_batch, run_seq = self.run_shape()
                return [line(Span(f"The run trains at B={run_batch}, T={run_seq}: f follows it.", "dim"))]
            return [line(Span("Hidden state: carried from the window before; zeros at an epoch's first.", "dim"))]
        step = self.source.live.get("step")
        where = f", step {step:,}" if isinstance(step, int) else ""
        marker = " (this one)" if live == window else ""
        if live >= len(self.batches):
            marker = ", past the text this page has"
        if live == 0:
            origin = Span("reset to zeros: a new epoch starts", "bad")
        else:
            origin = Span(f"carried from window {live} of the same stream", "good")
        return [line(Span(f"Live{where}: ", "bold"), "the trainer takes ", Span(f"window {live + 1}", "accent"),
                     f" next{marker}."),
                line("  each stream's hidden state: ", origin)]


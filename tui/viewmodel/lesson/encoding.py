"""The Encoding page (the lesson's chapters 14 and 16): characters -> integer ids -> one-hot rows ->
embedding rows, on the source's own text and model, with the equality the lesson states (an embedding
lookup is the one-hot row times the weight matrix) computed, not asserted.

For a model trained with --embed onehot there is no embedding: the one-hot row is the input, and the
page shows instead what the first recurrent layer makes of it (one-hot times W_ih's transpose, which is
column `id` of W_ih), with the same equality computed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import torch

from rnn_playground.core.model import describe_model

from ..format import show_char
from ..gates_view import diverging
from .page import Line, PageKey, PageView, Source, Span, line, line_text

TRY = "Try left/right (a character), PgUp/PgDn (a slice), up/down (the vocabulary)."
CAPTION_EMBED = ("A character's id is its place in the vocabulary; its embedding is one-hot x W.", TRY)
CAPTION_ONEHOT = ("A character's id is its place in the vocabulary; its one-hot row is the input.", TRY)
MAX_ROWS = 6          # one-hot and embedding rows shown at most (the cursor's character and those after it)
HEAT_CELL = 6         # "+0.12 ": a value on the heat scale and its gap
VOCAB_GAP = 2


@dataclass(frozen=True)
class Encoded:
    """A stretch of the text through the encoding: ids [n], one-hot rows [n, V], the lookup (the
    embedding's rows, or W_ih's columns for a one-hot model) [n, D], one-hot x W [n, D] and the
    largest absolute difference between the two."""
    chars: str
    ids: torch.Tensor
    onehot: torch.Tensor
    lookup: torch.Tensor
    product: torch.Tensor
    difference: float


def _cell(ch: str) -> str:
    """A character as exactly one cell: wide and combining characters as a box."""
    if unicodedata.combining(ch) or unicodedata.east_asian_width(ch) in ("W", "F"):
        return "□"
    return show_char(ch)


class EncodingPage:
    name = "encoding"
    title = "Encoding"
    keys = (
        PageKey("left", "left", "previous character"),
        PageKey("right", "right", "next character"),
        PageKey("pageup", "page_up", "previous slice"),
        PageKey("pagedown", "page_down", "next slice"),
        PageKey("up", "vocab_up", "scroll the vocabulary up"),
        PageKey("down", "vocab_down", "scroll the vocabulary down"),
    )

    def __init__(self, source: Source | None = None) -> None:
        self.source: Source | None = None
        self.cursor = 0           # index into the source's text
        self.vocab_top = 0        # first vocabulary row shown
        self._slice = 16          # characters per slice at the last size drawn (PgUp/PgDn move by it)
        self._vocab_rows = 3      # vocabulary rows shown at the last size drawn
        self._per_row = 8         # vocabulary entries per row at the last size drawn
        self._follow = True       # the vocabulary scrolls to the cursor's character until scrolled by hand
        self.weight = torch.zeros(0, 0)
        self.error = ""
        if source is not None:
            self.set_source(source)

    # --- what it shows -------------------------------------------------------------------------
    def set_source(self, source: Source) -> None:
        self.source = source
        self.cursor = min(self.cursor, max(0, len(source.text) - 1))
        self.vocab_top = 0
        self._follow = True
        model = source.model
        with torch.no_grad():
            if self.onehot:
                # One-hot x W_ih^T: what the first layer reads of a character (a column of W_ih).
                weight = model.rnn.weight_ih_l0.detach().to("cpu", torch.float32).t().contiguous()
            else:
                weight = model.embed.weight.detach().to("cpu", torch.float32).contiguous()
        if weight.shape[0] != len(source.vocab):
            self.error = (f"{source.name}: the model reads {weight.shape[0]} characters but its vocabulary has "
                          f"{len(source.vocab)}; open the run again or pick another.")
            self.source = None
            return
        self.weight, self.error = weight, ""

    @property
    def onehot(self) -> bool:
        return self.source is not None and getattr(self.source.model.config, "onehot", False)

    def ids_of(self, text: str) -> list[int]:
        """Each character's id in the source's vocabulary (-1 for one it lacks)."""
        index = self.source.vocab.index
        return [index.get(ch, -1) for ch in text]

    def encode(self, start: int, count: int) -> Encoded:
        """The text's characters [start, start + count) through ids, one-hot rows and the weight matrix."""
        chars = self.source.text[start:start + count]
        ids = torch.tensor([i for i in self.ids_of(chars) if i >= 0], dtype=torch.long)
        chars = "".join(ch for ch, i in zip(chars, self.ids_of(chars), strict=True) if i >= 0)
        with torch.no_grad():
            onehot = torch.nn.functional.one_hot(ids, self.weight.shape[0]).to(self.weight.dtype)
            lookup = self.weight[ids]
            product = onehot @ self.weight
            difference = float((product - lookup).abs().max()) if len(ids) else 0.0
        return Encoded(chars, ids, onehot, lookup, product, difference)

    # --- keys ---------------------------------------------------------------------------------
    def handle(self, action: str, argument: str = "") -> None:
        if self.source is None:
            return
        last = max(0, len(self.source.text) - 1)
        moves = {"left": -1, "right": 1, "page_up": -self._slice, "page_down": self._slice}
        if action in moves:
            self.cursor = min(last, max(0, self.cursor + moves[action]))
            self._follow = True
        elif action in ("vocab_up", "vocab_down"):
            rows = -(-len(self.source.vocab) // max(1, self._per_row))
            step = -1 if action == "vocab_up" else 1
            self.vocab_top = min(max(0, rows - self._vocab_rows), max(0, self.vocab_top + step))
            self._follow = False

    # --- drawing ------------------------------------------------------------------------------
    def view(self, width: int, height: int) -> PageView:
        caption = CAPTION_ONEHOT if self.onehot else CAPTION_EMBED
        title = "Encoding: characters -> ids -> one-hot -> " + ("the first layer" if self.onehot else "embedding")
        if self.source is None:
            return PageView(title, caption, (), "gates", "Gates screen: what the layers do with each character",
                            busy="" if self.error else "waiting for a model", error=self.error)
        if not self.source.text:
            return PageView(title, caption, (line(Span("The text is empty: nothing to encode.", "dim")),), "gates",
                            "Gates screen: what the layers do with each character")
        lines = self._lines(max(20, width), max(1, height))
        lines = [_fit(row, width) for row in lines[:height]]
        return PageView(title, caption, tuple(lines), "gates", "Gates screen: what the layers do with each character")

    def _layout(self, height: int) -> tuple[int, int, bool]:
        """(one-hot and embedding rows, vocabulary rows, blank lines between sections) for a body of `height`."""
        blanks = 3 if height >= 24 else 2 if height >= 16 else 0
        room = max(3, height - 7 - blanks)  # heading, two text lines, three headers, the check
        rows = min(MAX_ROWS, max(1, room // 3))
        return rows, max(1, room - 2 * rows), blanks

    def _lines(self, width: int, height: int) -> list[Line]:
        source, vocab = self.source, self.source.vocab
        size = len(vocab)
        digits = len(str(max(0, size - 1)))
        rows, vocab_rows, blanks = self._layout(height)
        column = max(3, digits + 2)
        label = 6
        self._slice = slice_len = max(1, (width - label) // column)
        start = self.cursor // slice_len * slice_len
        text = source.text[start:start + slice_len]
        ids = self.ids_of(text)
        config = source.model.config
        model = f"{describe_model(config)}" + ("" if self.onehot else f", embed {config.embed}")
        heading = (f"{start + 1:,}-{start + len(text):,} of {len(source.text):,} characters, vocabulary {size:,}, "
                   f"{model}")
        if len(heading) + len(source.origin) + 7 <= width:  # the screen names the model too: whole or not at all
            heading += f", {source.origin}"
        out: list[Line] = [line(Span("text ", "bold"), heading)]
        chars_line: list[Span] = [Span("char".ljust(label), "dim")]
        ids_line: list[Span] = [Span("id".ljust(label), "dim")]
        for offset, (ch, i) in enumerate(zip(text, ids, strict=True)):
            style = "accent" if start + offset == self.cursor else ""
            chars_line.append(Span(_cell(ch).rjust(column - 1) + " ", style))
            ids_line.append(Span(("?" if i < 0 else str(i)).rjust(column - 1) + " ",
                                 "bad" if i < 0 else style))
        out += [tuple(chars_line), tuple(ids_line)]
        if blanks:
            out.append(line(""))
        out += self._vocab_lines(width, vocab_rows)
        if blanks > 1:
            out.append(line(""))
        encoded = self.encode(self.cursor, rows)
        out += self._onehot_lines(width, encoded)
        if blanks > 2:
            out.append(line(""))
        out += self._weight_lines(width, encoded)
        return out

    def _vocab_lines(self, width: int, rows: int) -> list[Line]:
        vocab = self.source.vocab
        size = len(vocab)
        digits = len(str(max(0, size - 1)))
        entry = digits + 2 + VOCAB_GAP  # "43 e  "
        self._per_row = per_row = max(1, (width - 1) // entry)
        self._vocab_rows = rows
        total_rows = -(-size // per_row)
        current = vocab.index.get(self.source.text[self.cursor], -1)
        if self._follow and current >= 0:
            row = current // per_row
            if not self.vocab_top <= row < self.vocab_top + rows:
                self.vocab_top = row
        self.vocab_top = min(self.vocab_top, max(0, total_rows - rows))
        shown = f"rows {self.vocab_top + 1}-{min(total_rows, self.vocab_top + rows)} of {total_rows}"
        out = [line(Span("vocabulary ", "bold"), Span(f"id character, sorted; {shown} (up/down)", "dim"))]
        for row in range(self.vocab_top, min(total_rows, self.vocab_top + rows)):
            spans: list[Span] = []
            for i in range(row * per_row, min(size, (row + 1) * per_row)):
                style = "accent" if i == current else ""
                spans.append(Span(f"{i:>{digits}} ", "dim" if not style else style))
                spans.append(Span(_cell(vocab.chars[i]) + " " * VOCAB_GAP, style))
            out.append(tuple(spans))
        return out

    def _onehot_lines(self, width: int, encoded: Encoded) -> list[Line]:
        size = len(self.source.vocab)
        out = [line(Span("one-hot ", "bold"), Span(f"{size} columns, all 0 but a 1 at the id", "dim"))]
        label = self._row_label_width()
        cells = max(3, width - label)
        for ch, i in zip(encoded.chars, encoded.ids.tolist(), strict=True):
            spans = [self._row_label(ch, i)]
            lo, hi = 0, size
            if size > cells:  # a window of the row around the hot column, cut ends marked
                lo = min(max(0, i - (cells - 2) // 2), size - (cells - 2))
                hi = lo + cells - 2
            spans.append(Span("…" if lo > 0 else "", "dim"))
            spans.append(Span("0" * (i - lo), "dim"))
            spans.append(Span("1", "accent"))
            spans.append(Span("0" * (hi - i - 1), "dim"))
            spans.append(Span("…" if hi < size else "", "dim"))
            out.append(tuple(s for s in spans if s.text))
        return out

    def _weight_lines(self, width: int, encoded: Encoded) -> list[Line]:
        size, dims = self.weight.shape
        label = self._row_label_width()
        shown = max(1, min(dims, (width - label) // HEAT_CELL))
        if self.onehot:
            head = line(Span("first layer ", "bold"),
                        Span(f"no embedding: one-hot x W_ih^T, column id of W_ih; {shown} of {dims}", "dim"))
            check = "one-hot x W_ih^T = column id of W_ih: max |difference| "
        else:
            head = line(Span("embedding ", "bold"),
                        Span(f"one-hot x W, W is {size} x {dims}; the first {shown} of {dims} dimensions", "dim"))
            check = "one-hot x W = embedding lookup W[id]: max |difference| "
        out = [head]
        for row, (ch, i) in enumerate(zip(encoded.chars, encoded.ids.tolist(), strict=True)):
            values = encoded.product[row, :shown].numpy()
            heat = diverging(values, "value")
            spans = [self._row_label(ch, i)]
            for value, level in zip(values, heat, strict=True):
                spans.append(Span(f"{value:+.2f}"[:HEAT_CELL - 1].rjust(HEAT_CELL - 1), "heat", float(level)))
                spans.append(Span(" "))
            out.append(tuple(spans))
        good = encoded.difference == 0.0
        out.append(line(Span(check, "dim"), Span(f"{encoded.difference:g}", "good" if good else "bad"),
                        Span(f"  (over {len(encoded.ids)} rows)", "dim")))
        return out

    def _row_label_width(self) -> int:
        return 3 + len(str(max(0, len(self.source.vocab) - 1))) + 2

    def _row_label(self, ch: str, i: int) -> Span:
        digits = len(str(max(0, len(self.source.vocab) - 1)))
        return Span(f" {_cell(ch)} {i:>{digits}}  ", "bold")


def _fit(row: Line, width: int) -> Line:
    """A line cut to `width` cells (every span is one cell per character here)."""
    if len(line_text(row)) <= width:
        return row
    out: list[Span] = []
    room = width
    for span in row:
        if room <= 0:
            break
        text = span.text if len(span.text) <= room else span.text[:max(0, room - 1)] + "…"
        out.append(Span(text, span.style, span.value))
        room -= len(text)
    return tuple(out)

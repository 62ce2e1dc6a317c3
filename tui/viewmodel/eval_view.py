"""Two models' surprisals on one text, as what a view draws: the text cut into spans by who predicts
better (A or B) and by how much, markers that read without colour, and where each side wins most.
Plain Python, for the terminal's `eval A B --diff` and any screen of the app alike; `Comparison`
and what follows it are the Gates screen's compare view (one value per character on the diverging
scale, the figures at the cursor, the spans to jump to, the choices of model B)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .format import show_char, show_text_char

TIE_BITS = 0.5     # a difference below this (bits) is a tie: too small to read as a win
LARGE_BITS = 2.0   # from this on a win is large: one side found the character 4x likelier
COLOUR_BITS = 2 * LARGE_BITS   # a difference this large takes the diverging scale's full colour
A_WINS, B_WINS, TIE = 1, -1, 0
# Under each character when colour is off: A's wins above the line, B's below it, large ones in capitals.
MARKERS = {(A_WINS, 1): "a", (A_WINS, 2): "A", (B_WINS, 1): "b", (B_WINS, 2): "B"}


@dataclass(frozen=True)
class DiffSpan:
    """Consecutive characters text[start:start + len(text)] with the same winner and level (0 tie, 1 small,
    2 large). `bits` is what A saved over B on them (B's surprisal minus A's, summed; negative: B saved)."""
    start: int
    text: str
    winner: int
    level: int
    bits: float

    @property
    def marker(self) -> str:
        return MARKERS.get((self.winner, self.level), " ") * len(self.text)


def bits_saved(a_nats: Sequence[float], b_nats: Sequence[float]) -> list[float]:
    """B's surprisal minus A's, in bits, per scored character (positive: A predicted it better)."""
    if len(a_nats) != len(b_nats):
        raise ValueError(f"The two models scored different texts ({len(a_nats)} and {len(b_nats)} characters).")
    return [(b - a) / math.log(2) for a, b in zip(a_nats, b_nats, strict=True)]


def _class(saved: float) -> tuple[int, int]:
    size = abs(saved)
    if size < TIE_BITS:
        return TIE, 0
    return (A_WINS if saved > 0 else B_WINS), (2 if size >= LARGE_BITS else 1)


def diff_spans(text: str, a_nats: Sequence[float], b_nats: Sequence[float]) -> list[DiffSpan]:
    """`text` as spans by winner and level; a_nats/b_nats score text[1:] (the first character, given
    nothing, is a tie of 0 bits)."""
    saved = bits_saved(a_nats, b_nats)
    if len(saved) != max(len(text) - 1, 0):
        raise ValueError(f"{len(saved)} scores for a text of {len(text)} characters; expected one per character "
                         "after the first.")
    spans: list[DiffSpan] = []
    for index, char in enumerate(text):
        value = saved[index - 1] if index else 0.0
        winner, level = _class(value)
        last = spans[-1] if spans else None
        if last is not None and (last.winner, last.level) == (winner, level) and char != "\n" \
                and not last.text.endswith("\n"):
            spans[-1] = DiffSpan(last.start, last.text + char, winner, level, last.bits + value)
        else:
            spans.append(DiffSpan(index, char, winner, level, value))
    return spans


@dataclass(frozen=True)
class DiffSummary:
    chars: int
    a_bits: float             # total bits of each model over the text
    b_bits: float
    a_better: int             # characters each predicts better by at least TIE_BITS
    b_better: int
    a_top: list[DiffSpan]     # where each wins most: runs of characters it predicts better, most bits first
    b_top: list[DiffSpan]


def summarize_diff(text: str, a_nats: Sequence[float], b_nats: Sequence[float], top: int = 5) -> DiffSummary:
    saved = bits_saved(a_nats, b_nats)
    classes = [_class(value)[0] for value in saved]
    return DiffSummary(len(saved), sum(a_nats) / math.log(2), sum(b_nats) / math.log(2),
                       classes.count(A_WINS), classes.count(B_WINS),
                       _top_runs(text, saved, A_WINS, top), _top_runs(text, saved, B_WINS, top))


def _top_runs(text: str, saved: list[float], winner: int, top: int) -> list[DiffSpan]:
    """Maximal runs of characters this side predicts better (any margin), most bits saved first."""
    runs: list[DiffSpan] = []
    start = None
    for index in range(len(saved) + 1):
        wins = index < len(saved) and saved[index] * winner > 0
        if wins and start is None:
            start = index
        elif not wins and start is not None:
            bits = sum(saved[start:index])
            runs.append(DiffSpan(start + 1, text[start + 1:index + 1], winner, _class(bits)[1], bits))
            start = None
    return sorted(runs, key=lambda span: -abs(span.bits))[:top]


# --------------------------------------------------------------------------- the Gates screen's compare view

@dataclass(frozen=True)
class Scores:
    """One model's surprisals over a text: nats for each character of text[1:], and which of them it
    scored as unknown (outside its vocabulary)."""
    name: str                 # "tiny LSTM 2x32", "5-gram Witten-Bell of tiny.txt"
    nats: np.ndarray
    unknown: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """A (the open run) against B over one text."""
    text: str
    a: Scores
    b: Scores
    saved: np.ndarray         # bits A saved over B per character of text[1:] (bits_saved)
    values: np.ndarray        # per character of text, on [-1, 1] (diff_values)
    summary: DiffSummary
    jumps: tuple[DiffSpan, ...]   # the summary's top spans of both sides, in text order


def diff_values(saved: np.ndarray) -> np.ndarray:
    """Each character of the text (the first, unscored: 0) on the diverging scale [-1, 1]: positive
    where A predicted it better, negative where B did, 0 for a tie (under TIE_BITS), the full colour
    from COLOUR_BITS on. Above 0.5 (-0.5) is then a large win (LARGE_BITS), what NO_COLOR marks."""
    saved = np.asarray(saved, dtype=np.float64)
    values = np.clip(saved / COLOUR_BITS, -1.0, 1.0)
    values[np.abs(saved) < TIE_BITS] = 0.0
    return np.concatenate([np.zeros(1), values])


def compare(text: str, a: Scores, b: Scores, top: int = 3) -> Comparison:
    """A against B over `text` (each Scores scoring text[1:])."""
    saved = np.asarray(bits_saved(a.nats, b.nats), dtype=np.float64)
    if len(saved) != max(len(text) - 1, 0):
        raise ValueError(f"{len(saved)} scores for a text of {len(text)} characters.")
    summary = summarize_diff(text, a.nats, b.nats, top=top)
    jumps = tuple(sorted(summary.a_top + summary.b_top, key=lambda span: span.start))
    return Comparison(text, a, b, saved, diff_values(saved), summary, jumps)


def next_jump(comparison: Comparison, pos: int, direction: int) -> DiffSpan | None:
    """The next (direction > 0) or previous top span from the cursor, by where it starts, round the
    end of the text; None when there is none."""
    spans = comparison.jumps
    if not spans:
        return None
    if direction > 0:
        return next((span for span in spans if span.start > pos), spans[0])
    return next((span for span in reversed(spans) if span.start < pos), spans[-1])


def _bits(nats: float) -> float:
    return nats / math.log(2)


@dataclass(frozen=True)
class CompareLines:
    """The compare view's panel in plain words (the face styles them and packs each tuple's phrases
    to its width, breaking lines between phrases)."""
    a_total: tuple[str, ...]      # ("A", "brisk-otter LSTM 2x64", "2.134 bits/char")
    b_total: tuple[str, ...]
    difference: tuple[str, ...]
    cursor: tuple[str, ...]
    legend: tuple[str, ...]
    a_spans: tuple[str, ...]      # where A wins most, one line each (the span the cursor is in marked ▸)
    b_spans: tuple[str, ...]


def span_line(span: DiffSpan, current: bool, width: int = 60) -> str:
    """One top span in at most `width` cells: its bits, where it starts and its text (cut with …)."""
    head = f"{'▸' if current else ' '}{abs(span.bits):.1f} bits at {span.start:,}: "
    room = max(4, width - len(head))
    shown = "".join(show_text_char(c) for c in span.text)
    return head + (shown if len(shown) <= room else shown[:room - 1] + "…")


def compare_lines(comparison: Comparison, pos: int, mono: bool = False, width: int = 60) -> CompareLines:
    """The panel at cursor `pos`: each model's bits per character over the text and the difference, the
    character at the cursor with each model's surprisal and the probability it gave it, the legend, and
    the top spans of each side as lines of at most `width` cells."""
    summary = comparison.summary
    chars = max(summary.chars, 1)
    a_rate, b_rate = summary.a_bits / chars, summary.b_bits / chars
    better = "A better" if a_rate < b_rate else "B better" if b_rate < a_rate else "even"
    difference = (f"A-B {a_rate - b_rate:+.3f} bits/char ({better})",
                  f"A wins {summary.a_better:,} chars, B {summary.b_better:,}, of {summary.chars:,}")
    if mono:
        legend: tuple[str, ...] = (f"text underlined: A better by {LARGE_BITS:g}+ bits",
                                   f"dim: B better by {LARGE_BITS:g}+")
    else:
        legend = ("text red: A predicts better", "blue: B does", f"deeper to {COLOUR_BITS:g}+ bits",
                  f"under {TIE_BITS:g}: neutral")
    if pos <= 0 or pos >= len(comparison.text):
        cursor: tuple[str, ...] = (f"at 0 {show_char(comparison.text[:1] or None)}:",
                                   "the first character, nothing to predict it from")
    else:
        index = pos - 1
        parts = [f"at {pos:,} {show_char(comparison.text[pos])}:"]
        for label, scores in (("A", comparison.a), ("B", comparison.b)):
            nats = float(scores.nats[index])
            unknown = ", unknown" if bool(scores.unknown[index]) else ""
            parts.append(f"{label} {_bits(nats):.2f} bits (p {math.exp(-nats):.3f}{unknown})")
        saved = float(comparison.saved[index])
        parts.append(f"{'A' if saved > 0 else 'B'} saves {abs(saved):.2f}" if abs(saved) >= TIE_BITS else "a tie")
        cursor = tuple(parts)
    inside = [span for span in comparison.jumps if span.start <= pos < span.start + len(span.text)]
    lines = {side: tuple(span_line(span, span in inside, width) for span in top)
             for side, top in ((A_WINS, summary.a_top), (B_WINS, summary.b_top))}
    return CompareLines(("A", comparison.a.name, f"{a_rate:.3f} bits/char"),
                        ("B", comparison.b.name, f"{b_rate:.3f} bits/char"), difference, cursor, legend,
                        lines[A_WINS], lines[B_WINS])


# --------------------------------------------------------------------------- model B

BASELINE = "ngram"   # the key of the choice "the n-gram of A's training text"


@dataclass(frozen=True)
class CompareChoice:
    key: str              # BASELINE, or a run folder's path
    label: str
    path: Path | None = None


def compare_choices(runs: Sequence, open_run: Path | None, baseline: bool = True) -> list[CompareChoice]:
    """What B can be: the n-gram of A's training text (unless `baseline` is False: its corpus cannot be
    read), then the other character runs (core.runs.RunInfo, newest first as listed), each usable one."""
    choices = [CompareChoice(BASELINE, "n-gram of A's training text")] if baseline else []
    here = Path(open_run).resolve() if open_run is not None else None
    for info in runs:
        if info.kind != "char" or info.problem or Path(info.path).resolve() == here:
            continue
        choices.append(CompareChoice(str(info.path), f"{info.name}  {info.model}  step {info.step:,}", Path(info.path)))
    return choices

"""Two models' surprisals on one text, as what a view draws: the text cut into spans by who predicts
better (A or B) and by how much, markers that read without colour, and where each side wins most.
Plain Python, for the terminal's `eval A B --diff` and any screen of the app alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TIE_BITS = 0.5     # a difference below this (bits) is a tie: too small to read as a win
LARGE_BITS = 2.0   # from this on a win is large: one side found the character 4x likelier
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

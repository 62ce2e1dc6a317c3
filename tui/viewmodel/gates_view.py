"""What the Gates screen shows: short labels with the lesson's names, every quantity on one diverging scale
[-1, 1], the next-character distribution with the true character marked, unit pages, word jumps in a text,
slices of a run's corpus and text files to trace."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnn_playground.core.errors import CorpusError
from rnn_playground.core.gates import QUANTITIES, Quantity

from .format import show_text_char

# --------------------------------------------------------------------------- gates: labels and scale

@dataclass(frozen=True)
class QuantityLabel:
    """How the Gates screen names an engine quantity (core.gates.QUANTITIES, the one table of them):
    the lesson's words first, PyTorch's beside them."""
    quantity: Quantity

    @property
    def key(self) -> str:
        return self.quantity.key

    @property
    def kind(self) -> str:
        return self.quantity.kind

    @property
    def lesson(self) -> str:
        """The lesson's gate ("Learn gate"), '' where it has none."""
        return self.quantity.gate

    @property
    def standard(self) -> str:
        """PyTorch's name ("candidate")."""
        return self.quantity.standard

    @property
    def symbol(self) -> str:
        """As the lesson and PyTorch write it ("N_t = g_t")."""
        q = self.quantity
        return f"{q.alias} = {q.symbol}" if q.alias else q.symbol

    @property
    def short(self) -> str:
        """Both names in a few characters, for narrow screens ("Learn N_t=g_t")."""
        return self.quantity.short or self.text

    @property
    def text(self) -> str:
        return f"{self.lesson} {self.symbol}" if self.lesson else f"{self.standard} {self.symbol}"


# The lesson reads an LSTM as Learn (N_t = g_t, then i_t), Forget, Remember, Use.
LESSON_ORDER = ("g", "i", "f", "c", "o", "h")
CELL_UPDATE = ("kept", "written")


def quantity_labels(cell: str) -> tuple[QuantityLabel, ...]:
    """Every quantity of a cell, those the lesson names in the lesson's order (Learn, Forget,
    Remember, Use), then the rest (the split of the cell update into kept and written) in the engine's."""
    quantities = QUANTITIES.get(cell) or QUANTITIES["rnn"]
    rest = len(LESSON_ORDER)
    ordered = sorted(quantities, key=lambda q: LESSON_ORDER.index(q.key) if q.gate and q.key in LESSON_ORDER else rest)
    return tuple(QuantityLabel(q) for q in ordered)


def heatmap_keys(cell: str) -> tuple[str, ...]:
    """The quantities drawn as heatmaps (all but the cell-update split)."""
    return tuple(q.key for q in quantity_labels(cell) if q.key not in CELL_UPDATE)


def diverging(values: np.ndarray, kind: str) -> np.ndarray:
    """Values on the one diverging scale [-1, 1] every heatmap shares: a gate (0..1) as 2v-1, so a
    closed gate is -1 and an open one +1; tanh quantities as they are; unbounded ones (the cell
    state, kept and written) through tanh, which keeps the sign and squeezes large values."""
    values = np.asarray(values, dtype=np.float64)
    if kind == "gate":
        out = 2.0 * values - 1.0
    elif kind == "tanh":
        out = values
    else:
        out = np.tanh(values)
    return np.clip(np.nan_to_num(out, nan=0.0), -1.0, 1.0)


@dataclass(frozen=True)
class HeatRow:
    """One heatmap line: a quantity's values over the units of a layer."""
    label: str          # "Learn gate N_t = g_t"
    short: str          # "Learn N_t=g_t", for narrow panels
    standard: str       # "candidate"
    values: np.ndarray  # on [-1, 1], one per unit
    raw: float          # the selected unit's value, as computed (not rescaled)
    key: str


SCALE_NOTE = ("scale: gates 0 blue, 0.5 neutral, 1 red; tanh values -1 blue, +1 red; "
              "c, kept and written as tanh(value)")
# Without colour (NO_COLOR) each unit is a bar whose height is its value: say that, not colours.
SCALE_NOTE_MONO = ("scale: bar height, gates 0 ▁ to 1 █; tanh values -1 ▁ to +1 █; "
                   "c, kept and written as tanh(value)")


def unit_page(units: int, per_page: int, unit: int) -> tuple[int, int, int, int]:
    """(page, pages, first, last+1) of the page holding `unit` when `per_page` units fit."""
    per_page = max(1, per_page)
    pages = max(1, math.ceil(units / per_page))
    page = min(max(unit, 0) // per_page, pages - 1)
    first = page * per_page
    return page, pages, first, min(units, first + per_page)


@dataclass(frozen=True)
class NextCharRow:
    char: str
    prob: float
    rank: int
    is_true: bool


@dataclass(frozen=True)
class NextCharView:
    rows: tuple[NextCharRow, ...]   # the top k, best first, then the true character if it is not among them
    true_char: str | None
    true_prob: float | None
    true_rank: int | None
    surprisal_bits: float | None


def next_char_view(info, k: int | None = None) -> NextCharView:
    """The next-character distribution of a `core.gates.StepInfo`: its top predictions with the true
    next character marked (appended with its rank when it is not among them)."""
    top = info.top if k is None else info.top[:k]
    rows = [NextCharRow(p.char, p.prob, n + 1, p.char == info.next_char) for n, p in enumerate(top)]
    if info.next_char is not None and not any(r.is_true for r in rows):
        rows.append(NextCharRow(info.next_char, info.next_prob, info.next_rank, True))
    return NextCharView(tuple(rows), info.next_char, info.next_prob, info.next_rank, info.surprisal_bits)


# --------------------------------------------------------------------------- gates: moving through a text

def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def next_word(text: str, pos: int) -> int:
    """The start of the next word after `pos` (or the last character)."""
    n = len(text)
    if n == 0:
        return 0
    i = pos
    while i < n and _is_word(text[i]):
        i += 1
    while i < n and not _is_word(text[i]):
        i += 1
    return min(i, n - 1)


def previous_word(text: str, pos: int) -> int:
    """The start of the word before `pos` (or 0)."""
    i = max(0, min(pos, len(text)))
    while i > 0 and not _is_word(text[i - 1]):
        i -= 1
    while i > 0 and _is_word(text[i - 1]):
        i -= 1
    return i


# --------------------------------------------------------------------------- gates: texts to trace

DEFAULT_SLICE = 2000


@dataclass(frozen=True)
class TextSource:
    text: str
    description: str   # for the screen: "corpus slice 5,400-7,400 of tinyshakespeare"


def read_text_file(path: Path | str, limit: int | None = None) -> TextSource:
    """A UTF-8 text file to trace (its first `limit` characters when given)."""
    from rnn_playground.core.corpus import decode_utf8
    path = Path(path).expanduser()
    if not str(path).strip() or str(path) == ".":
        raise CorpusError("Give the path of a UTF-8 text file to trace.")
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder; give a text file.") from None
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}. Check the path.") from None
    text = decode_utf8(data, f"File {path}")
    if not text:
        raise CorpusError(f"{path} is empty. Pick a file with some text in it.")
    total = len(text)
    if limit is not None and total > limit:
        text = text[:limit]
    shown = f"{path.name} ({total:,} chars" + (f", first {limit:,})" if limit is not None and total > limit else ")")
    return TextSource(text, shown)


def corpus_slice(spec: str, start: int | None = None, length: int = DEFAULT_SLICE, *, glob: str = "*",
                 val_fraction: float = 0.1) -> TextSource:
    """`length` characters of a corpus from `start` (default: where its validation part begins, text
    the model did not train on). Loads the corpus as training did."""
    from rnn_playground.core.corpus import load_corpus
    if length < 1:
        raise CorpusError(f"The slice must have at least 1 character, got {length}.")
    corpus = load_corpus(spec, glob=glob)
    text = corpus.text
    if start is None:
        start = len(text) - int(len(text) * val_fraction)
        if start + length > len(text):
            start = max(0, len(text) - length)
    if not 0 <= start < len(text):
        raise CorpusError(f"The corpus has {len(text):,} characters; a slice must start between 0 and "
                          f"{len(text) - 1:,}, not {start:,}.")
    end = min(len(text), start + length)
    name = Path(spec).name if not spec.startswith("builtin:") else spec
    return TextSource(text[start:end], f"corpus {name} chars {start:,}-{end:,}")


def run_corpus(meta: dict) -> tuple[str, str, float]:
    """(corpus spec, glob, validation fraction) of the run a checkpoint's metadata describes."""
    config = meta.get("config") or {}
    corpus = meta.get("corpus") or {}
    spec = corpus.get("spec") or config.get("corpus")
    if not spec:
        raise CorpusError("The checkpoint does not say which corpus it was trained on; type a text or load a file.")
    return spec, config.get("glob", "*"), float(config.get("val_fraction", 0.1))



def unit_values(trace, key: str, layer: int, unit: int, start: int = 0, end: int | None = None) -> np.ndarray:
    """Quantity `key` of one unit over steps start..end-1 of a `core.gates.Trace` (the text view's
    colours). The cell-update split is computed for those steps only, not the whole trace."""
    n = len(trace)
    end = n if end is None else max(0, min(end, n))
    start = max(0, min(start, end))
    if key in CELL_UPDATE:  # the engine computes the split for this window of this unit only
        return trace.cell_update(key, start, end, layer, unit).astype(np.float64)
    layer = trace.layer_index(layer)
    return np.asarray(trace.values(key)[start:end, layer, unit], dtype=np.float64)


# --------------------------------------------------------------------------- gates: every layer at once

@dataclass(frozen=True)
class LayerStrip:
    """One layer's quantity for a page of units over the characters shown: [units, characters]."""
    label: str              # "L1": layers counted from 1, the input's side first
    layer: int
    raw: np.ndarray         # as traced; NaN for characters not traced yet
    values: np.ndarray      # on the diverging scale [-1, 1]; 0 where not traced
    selected: float | None  # the selected unit's value at the cursor


@dataclass(frozen=True)
class LayersView:
    """Every layer's selected quantity, stacked, over the text around the cursor (lower layers tend to
    follow characters, upper ones structure)."""
    key: str
    start: int              # the text index of the first character shown
    chars: str              # the characters shown
    cursor: int             # the cursor's column among them
    first_unit: int
    last_unit: int          # one past the page's last unit
    unit: int               # the selected unit
    strips: tuple[LayerStrip, ...]


def window_start(pos: int, columns: int, length: int) -> int:
    """The first of `columns` characters shown around `pos` in a text of `length`: the cursor a third of
    the way in, the window inside the text."""
    columns = max(1, columns)
    return max(0, min(pos - columns // 3, length - columns))


def layers_view(trace, text: str, key: str, pos: int, columns: int, unit: int, per_page: int) -> LayersView:
    """The strips of every layer of a `core.gates.Trace` for the page of `per_page` units holding `unit`,
    over `columns` characters of `text` around `pos` (those past the trace are left blank)."""
    start = window_start(pos, columns, len(text))
    end = min(len(text), start + max(1, columns))
    _, _, first, last = unit_page(trace.hidden, per_page, unit)
    traced_end = max(start, min(end, len(trace)))
    kind = trace.quantity(key).kind
    strips = []
    for layer in range(trace.layers):
        raw = np.full((last - first, end - start), np.nan)
        if traced_end > start:
            if key in CELL_UPDATE:
                part = trace.cell_update(key, start, traced_end, layer)[:, first:last]
            else:
                part = trace.values(key)[start:traced_end, layer, first:last]
            raw[:, :traced_end - start] = np.asarray(part, dtype=np.float64).T
        selected = float(raw[unit - first, pos - start]) if start <= pos < traced_end else None
        strips.append(LayerStrip(f"L{layer + 1}", layer, raw, diverging(raw, kind), selected))
    return LayersView(key, start, text[start:end], pos - start, first, last, unit, tuple(strips))


SPAN_SHOWN = 24   # characters of a span quoted in the match view


def span_text(text: str, start: int, end: int) -> str:
    """'120-124 "he sa"': where a span of `text` lies (its first and last character) and what it reads."""
    shown = "".join(show_text_char(ch) for ch in text[start:min(end, start + SPAN_SHOWN)])
    return f"{start:,}-{end - 1:,} \"{shown}{'…' if end - start > SPAN_SHOWN else ''}\""


# --------------------------------------------------------------------------- gates: interventions

@dataclass(frozen=True)
class EffectRow:
    """A next character's probability without and with the interventions."""
    char: str
    before: float
    after: float
    is_true: bool


@dataclass(frozen=True)
class InterventionEffect:
    """What the interventions change at the cursor: the next-character distribution and the true next
    character's surprisal before and after, and the states of the layer's units (after - before)."""
    specs: tuple[str, ...]          # each intervention in the CLI's syntax
    selected: int
    rows: tuple[EffectRow, ...]     # the characters likeliest before or after, likeliest after first
    before_bits: float | None
    after_bits: float | None
    deltas: tuple[HeatRow, ...]     # c (LSTM) and h: after - before over the units, through tanh
    largest: float                  # the largest |difference| of those states here
    continued: tuple[str, str] | None   # the text continued without / with them, from the cursor


def intervention_effect(before, after, before_probs: np.ndarray, after_probs: np.ndarray, chars, specs: tuple[str, ...],
                        selected: int, unit: int, continued: tuple[str, str] | None = None,
                        k: int = 5) -> InterventionEffect:
    """The effect at one step from its `core.gates.StepInfo` and next-character probabilities ([vocab], in
    the order of `chars`) without (`before`) and with (`after`) the interventions: the k likeliest of each
    side and the true next character."""
    before_probs, after_probs = np.asarray(before_probs, np.float64), np.asarray(after_probs, np.float64)
    top = [int(i) for i in np.argsort(-after_probs, kind="stable")[:k]]
    top += [int(i) for i in np.argsort(-before_probs, kind="stable")[:k] if int(i) not in top]
    if before.next_char is not None and chars.index(before.next_char) not in top:
        top.append(chars.index(before.next_char))
    rows = tuple(sorted((EffectRow(chars[i], float(before_probs[i]), float(after_probs[i]),
                                   chars[i] == before.next_char) for i in top), key=lambda r: -r.after))
    deltas = []
    largest = 0.0
    for key in ("c", "h"):
        if key not in before.values:
            continue
        difference = np.asarray(after.values[key], dtype=np.float64) - np.asarray(before.values[key], np.float64)
        largest = max(largest, float(np.max(np.abs(difference))) if difference.size else 0.0)
        symbol = "c_t" if key == "c" else "h_t"
        deltas.append(HeatRow(f"change of {symbol}", f"Δ{symbol}", f"change of the {'cell' if key == 'c' else 'hidden'}"
                              " state", diverging(difference, "state"), float(difference[unit]), key))
    return InterventionEffect(specs, selected, rows, before.surprisal_bits, after.surprisal_bits, tuple(deltas),
                              largest, continued)

"""Analysis of a gate trace: gate saturation, text features and unit search.

Saturation follows Karpathy, Johnson and Fei-Fei (2015), "Visualizing and Understanding
Recurrent Networks": a gate unit is left-saturated at a step when its value is below 0.1 and
right-saturated above 0.9; the fractions of steps spent in each are per unit.

Unit search ranks the units of one quantity by the Pearson correlation of their values with
a feature of the text, to find interpretable cells (inside quotes, line position, depth).

The functions read a core.gates.Trace (its quantities and values); core.gates imports this module
for Trace's own saturation() and find_units(), so this one names the Trace without importing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import TraceError

FEATURES: dict[str, str] = {
    "inside-quotes": "1 from a double quote up to (not including) the next one, else 0",
    "inside-parens": "1 inside round brackets, from '(' up to (not including) its ')', else 0",
    "line-position": "characters read since the last newline (0 right after a newline)",
    "bracket-depth": "nesting depth of (), [] and {} (a closer without an opener is ignored)",
    "after-newline": "1 where the character just read is a newline, else 0",
    "vowel": "1 where the character just read is a vowel (a, e, i, o, u in either case), else 0",
}
REGEX_FEATURE = "1 for characters inside a match of the regular expression, 0 outside"
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_VOWELS = set("aeiouAEIOU")


def _depth(text: str, openers: str, closers: str) -> np.ndarray:
    out = np.empty(len(text), dtype=np.float64)
    depth = 0
    for t, ch in enumerate(text):
        if ch in openers:
            depth += 1
        elif ch in closers and depth > 0:
            depth -= 1
        out[t] = depth
    return out


def compile_regex(pattern: str, what: str = "The regular expression") -> re.Pattern:
    """`pattern` compiled, or a TraceError saying what is wrong (re raises RecursionError, not re.error,
    for brackets nested a few hundred deep)."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise TraceError(f"{what} {pattern!r} is invalid: {exc}. Fix it (Python 're' syntax) and try "
                         "again.") from None
    except RecursionError:
        raise TraceError(f"{what} {pattern[:40]!r}… is nested too deeply for Python's 're' "
                         f"({pattern.count('(')} brackets): simplify it.") from None


def regex_feature(text: str, pattern: str) -> np.ndarray:
    compiled = compile_regex(pattern)
    marks = np.zeros(len(text) + 1, dtype=np.int64)
    for match in compiled.finditer(text):
        if match.end() > match.start():
            marks[match.start()] += 1
            marks[match.end()] -= 1
    return (np.cumsum(marks[:-1]) > 0).astype(np.float64)


def text_feature(text: str, name: str | None = None, regex: str | None = None) -> np.ndarray:
    """A feature's value after reading each character of `text`: [len(text)] float64."""
    if (name is None) == (regex is None):
        raise TraceError("Give exactly one feature: a built-in name "
                         f"({', '.join(FEATURES)}) or a regular expression.")
    if regex is not None:
        return regex_feature(text, regex)
    if name not in FEATURES:
        raise TraceError(f"Unknown text feature '{name}'. Built-in features: {', '.join(FEATURES)}; "
                         "or pass a regular expression (--regex).")
    chars = np.array(list(text), dtype=object) if text else np.array([], dtype=object)
    if name == "inside-quotes":
        return (np.cumsum(chars == '"') % 2).astype(np.float64)
    if name == "after-newline":
        return (chars == "\n").astype(np.float64)
    if name == "vowel":
        return np.array([ch in _VOWELS for ch in text], dtype=np.float64)
    if name == "line-position":
        index = np.arange(len(text))
        last_newline = np.maximum.accumulate(np.where(chars == "\n", index, -1)) if text else index
        return (index - last_newline).astype(np.float64)
    if name == "inside-parens":
        return (_depth(text, "(", ")") > 0).astype(np.float64)
    return _depth(text, "([{", ")]}")


@dataclass(frozen=True)
class UnitMatch:
    layer: int
    key: str
    unit: int
    correlation: float  # Pearson r with the feature; the sign says whether the unit rises or falls with it


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of values [steps, ...] with feature [steps]; 0 for a
    unit whose value never changes."""
    x = values.reshape(values.shape[0], -1).astype(np.float64)
    f = feature.astype(np.float64) - feature.mean()
    xc = x - x.mean(axis=0)
    denom = np.sqrt((f @ f) * (xc * xc).sum(axis=0))
    constant = x.max(axis=0) == x.min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (f @ xc) / denom
    r[constant | ~np.isfinite(r)] = 0.0
    return np.clip(r, -1.0, 1.0).reshape(values.shape[1:])


def find_units(trace, feature: np.ndarray, key: str | None = None, layer: int | None = None,
               top: int = 10) -> list[UnitMatch]:
    """The `top` units of quantity `key` whose values correlate most strongly (either sign) with
    `feature` [steps], over all layers or one."""
    key = key or ("c" if trace.cell == "lstm" else "h")
    trace.quantity(key)
    feature = np.asarray(feature, dtype=np.float64)
    if feature.shape != (len(trace),):
        raise TraceError(f"The feature has {feature.shape[0] if feature.ndim else 0} values but the trace "
                         f"has {len(trace)} steps; they must match.")
    if len(trace) < 2:
        raise TraceError("Unit search needs a trace of at least 2 steps. Trace a longer text.")
    if feature.max() == feature.min():
        raise TraceError(f"The feature has the same value ({feature[0]:g}) at every step of this text, so "
                         "no unit can correlate with it. Use a text where the feature changes (for "
                         "inside-quotes, one that has quotes).")
    layers = list(range(trace.layers)) if layer is None else [trace.layer_index(layer)]
    r = correlations(trace.values(key)[:, layers], feature)  # [layers, units]
    order = np.argsort(-np.abs(r).ravel(), kind="stable")[:max(top, 0)]
    units = trace.hidden
    return [UnitMatch(layers[i // units], key, int(i % units), float(r.ravel()[i])) for i in order]


@dataclass(frozen=True)
class SaturationRow:
    """Summary of one gate at one layer."""
    layer: int
    key: str
    label: str
    units: int
    mean_left: float      # average over units of the fraction of steps below `low`
    mean_right: float     # ... above `high`
    mostly_left: int      # units below `low` in more than half the steps
    mostly_right: int     # units above `high` in more than half the steps
    never: int            # units never saturated at either side


@dataclass(frozen=True)
class Saturation:
    """Per layer, gate and unit: the fraction of steps below `low` (left) and above `high` (right)."""
    low: float
    high: float
    steps: int
    keys: tuple[str, ...]
    left: dict[str, np.ndarray]   # key -> [layers, units]
    right: dict[str, np.ndarray]  # key -> [layers, units]
    labels: dict[str, str]

    def unit(self, layer: int, key: str, unit: int) -> tuple[float, float]:
        return float(self.left[key][layer, unit]), float(self.right[key][layer, unit])

    def rows(self) -> list[SaturationRow]:
        rows = []
        for layer in range(next(iter(self.left.values())).shape[0] if self.left else 0):
            for key in self.keys:
                left, right = self.left[key][layer], self.right[key][layer]
                rows.append(SaturationRow(layer, key, self.labels[key], len(left), float(left.mean()),
                                          float(right.mean()), int((left > 0.5).sum()), int((right > 0.5).sum()),
                                          int(((left == 0) & (right == 0)).sum())))
        return rows


def saturation(trace, low: float = 0.1, high: float = 0.9, keys: Sequence[str] | None = None) -> Saturation:
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise TraceError(f"Saturation thresholds must be finite with low < high, got low {low} and high {high}.")
    if not len(trace):
        raise TraceError("The trace has no steps yet: extend it with some text first.")
    if keys is None:
        keys = tuple(q.key for q in trace.quantities if q.kind == "gate")
    keys = tuple(keys)
    left, right, labels = {}, {}, {}
    for key in keys:
        quantity = trace.quantity(key)
        values = trace.values(key)  # [steps, layers, units]
        left[key] = (values < low).mean(axis=0)
        right[key] = (values > high).mean(axis=0)
        labels[key] = quantity.label
    return Saturation(low, high, len(trace), keys, left, right, labels)


# --------------------------------------------------------------------------- span match (LSTMVis's Match View)
#
# After Strobelt, Gehrmann, Pfister and Rush (2018), "LSTMVis": a unit is "on" at a step when its value is above
# a threshold; the units on at every step of a selected span are the span's hypothesis, and the spans elsewhere
# whose on-units overlap it most are its matches. The threshold is a percentile of the quantity's values over
# the whole text (of the layer searched), so it means the same for a gate (0..1) and a cell state (unbounded).
# One departure from LSTMVis: it grows candidate spans of any length from runs where the selected units are
# jointly on; here every candidate has the selection's length, so all scores compare like with like, and the
# score is LSTMVis's own Jaccard index |S & A| / |S | A| (S: the selection's on-units, A: the candidate's),
# ties broken by the larger mean value of S over the candidate. Matches never overlap the selection or each other.

MATCH_CELLS = 4_000_000   # the window sums run over chunks of units holding about this many step-unit cells


@dataclass(frozen=True)
class SpanMatch:
    start: int           # first step of the span
    end: int             # one past its last step
    score: float         # Jaccard index of its on-units with the selection's, 0..1
    shared: int          # selected units on over this span too
    active: int          # units on over this span, selected or not
    mean: float          # the selected units' mean value over the span (the tie-break)


@dataclass(frozen=True)
class SpanMatches:
    """The selection, what it selected and its matches, best first."""
    start: int
    end: int
    key: str
    layer: int | None       # None: every layer (units numbered layer * hidden + unit)
    percentile: float
    threshold: float        # the quantity's value at that percentile over the text
    units: tuple[int, ...]  # the selected units: on at every step of the span
    matches: tuple[SpanMatch, ...]


def percentile_threshold(values: np.ndarray, percentile: float) -> float:
    """The value below which `percentile` % of `values` lie (linear interpolation, numpy's default);
    non-finite values are left out."""
    if not (math.isfinite(percentile) and 0.0 <= percentile <= 100.0):
        raise TraceError(f"The percentile must be between 0 and 100, got {percentile}.")
    flat = np.asarray(values).ravel()   # no float64 copy: a long text's values are large
    finite = np.isfinite(flat)
    if not finite.all():
        flat = flat[finite]
    if not flat.size:
        raise TraceError("The quantity has no finite values over this text, so no threshold can be set.")
    return float(np.percentile(flat, percentile))


def _check_span(steps: int, start: int, end: int) -> None:
    if not 0 <= start < end <= steps:
        raise TraceError(f"The span {start}-{end} is not inside the text, which has steps 0 to {steps - 1}: "
                         "select at least one character of the traced text.")
    if start < end - start and steps - end < end - start:
        raise TraceError(f"The span is {end - start} characters of a {steps}-character text: no other span of "
                         "its length fits beside it. Select a shorter span or trace a longer text.")


def match_values(values: np.ndarray, start: int, end: int, threshold: float, top: int = 10
                 ) -> tuple[np.ndarray, list[SpanMatch]]:
    """Span match over values [steps, units]: (the selected units, the `top` matches best first)."""
    values = np.asarray(values)
    steps, units = values.shape
    _check_span(steps, start, end)
    length = end - start
    on = values > threshold
    selected = np.flatnonzero(on[start:end].all(axis=0))
    if not selected.size:
        return selected, []
    windows = steps - length + 1
    shared = np.zeros(windows, dtype=np.int64)
    active = np.zeros(windows, dtype=np.int64)
    chunk = max(1, MATCH_CELLS // max(steps, 1))
    mask = np.zeros(units, dtype=bool)
    mask[selected] = True
    chosen = np.zeros(steps + 1)   # the selected units' values summed at each step, then over steps
    for first in range(0, units, chunk):  # window sums of "on" by cumulative sums, a chunk of units at a time
        block = on[:, first:first + chunk]
        sums = np.zeros((steps + 1, block.shape[1]), dtype=np.int32)
        np.cumsum(block, axis=0, out=sums[1:])
        always = (sums[length:] - sums[:-length]) == length   # [windows, chunk]: on at every step of the window
        active += always.sum(axis=1)
        mine = mask[first:first + chunk]
        if mine.any():
            shared += always[:, mine].sum(axis=1)
            chosen[1:] += values[:, first:first + chunk][:, mine].sum(axis=1, dtype=np.float64)
    np.cumsum(chosen, out=chosen)
    means = (chosen[length:] - chosen[:-length]) / (length * selected.size)
    scores = shared / (selected.size + active - shared)
    # means rounded for the order: cumulative sums leave float noise that must not break ties (earlier first)
    order = np.lexsort((np.arange(windows), -np.round(means, 9), -scores))
    taken: list[SpanMatch] = []
    blocked = np.zeros(windows, dtype=bool)
    blocked[max(0, start - length + 1):end] = True   # windows overlapping the selection
    for s in order:
        if len(taken) >= max(top, 0) or shared[s] == 0:
            break
        if blocked[s]:
            continue
        taken.append(SpanMatch(int(s), int(s) + length, float(scores[s]), int(shared[s]), int(active[s]),
                               float(means[s])))
        blocked[max(0, s - length + 1):s + length] = True
    return selected, taken


def span_values(trace, key: str | None = None, layer: int | None = None) -> tuple[str, int | None, np.ndarray]:
    """(key, layer, values [steps, units]) a span match reads: quantity `key` (default c for an LSTM, else h)
    at `layer`, or at every layer side by side (None: unit numbers layer * hidden + unit). One layer's values
    are a view of the trace: a complete trace is never written again, so they can be read without its lock."""
    key = key or ("c" if trace.cell == "lstm" else "h")
    trace.quantity(key)
    if layer is not None:
        layer = trace.layer_index(layer)
        if key in ("kept", "written"):
            return key, layer, trace.cell_update(key, layer=layer)
        return key, layer, trace.values(key)[:, layer]
    return key, None, trace.values(key).reshape(len(trace), -1)


def match_span_values(values: np.ndarray, start: int, end: int, key: str, layer: int | None,
                      percentile: float = 90.0, top: int = 10) -> SpanMatches:
    """match_spans over span_values' values."""
    _check_span(values.shape[0], start, end)
    threshold = percentile_threshold(values, percentile)
    selected, matches = match_values(values, start, end, threshold, top)
    return SpanMatches(start, end, key, layer, float(percentile), threshold, tuple(int(u) for u in selected),
                       tuple(matches))


def match_spans(trace, start: int, end: int, key: str | None = None, layer: int | None = None,
                percentile: float = 90.0, top: int = 10) -> SpanMatches:
    """The spans of the traced text whose units of quantity `key` (default c for an LSTM, else h) at `layer`
    (None: all layers) are on like those of steps start..end-1, best first. A unit is on above the value at
    `percentile` % of the quantity's values over the text at that layer (or all layers)."""
    key, layer, values = span_values(trace, key, layer)
    return match_span_values(values, start, end, key, layer, percentile, top)

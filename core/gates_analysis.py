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


def regex_feature(text: str, pattern: str) -> np.ndarray:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise TraceError(f"The regular expression {pattern!r} is invalid: {exc}. "
                         "Fix it (Python 're' syntax) and try again.") from None
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

"""Interventions for people: the `L1:U42:c=0@120` syntax both faces read, and what changed.

Syntax: `L<layer>:U<units>:<quantity>=<value>[@<position>]`
- layer: L1 .. Ln, counted from 1 = nearest the input (as the app and the CLI show layers);
- units: U42, a list U3,7,9, a range U3-9, or a mix U3-5,9 (0-based, as the unit numbers shown);
- quantity=value: h=<any number> or (LSTM) c=<any number>, 0 silencing the unit; a gate forced to 0 or 1:
  LSTM f (f=1 never forget, f=0 forget everything), i (i=0 write nothing), o (o=0 say nothing); GRU r, z;
- @position: the character index of the text from which it holds (default 0, the first character).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rnn_playground.core.errors import TraceError
from rnn_playground.core.gates import Trace
from rnn_playground.core.intervene import Intervention, a_cell, allowed_quantities, check_intervention

from .format import escape_char

SYNTAX = "L<layer>:U<units>:<quantity>=<value>[@<position>], e.g. L1:U42:c=0@120 or L2:U3-9,12:f=1"
_SPEC = re.compile(r"^\s*L(?P<layer>[^:]*):U(?P<units>[^:]*):(?P<quantity>[^=]*)=(?P<value>[^@]*)"
                   r"(?:@(?P<position>.*))?$", re.IGNORECASE)
_NUMBER = re.compile(r"^\d+$")


def _units(text: str, spec: str, hidden: int) -> tuple[int, ...]:
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not _NUMBER.match(low.strip()) or (dash and not _NUMBER.match(high.strip())):
            raise TraceError(f"Intervention {spec!r}: units {text!r} are not unit numbers; write U42, U3,7,9 or "
                             "U3-9.")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise TraceError(f"Intervention {spec!r}: the unit range {part} runs backwards; write it low-high.")
        if last >= hidden:  # checked before the range is spelled out: U0-999999999999 would fill the memory
            raise TraceError(f"Intervention {spec!r}: unit {max(first, hidden)} is out of range; the layer has units "
                             f"0 to {hidden - 1}.")
        units.extend(range(first, last + 1))
    return tuple(dict.fromkeys(units))


def parse_intervention(spec: str, cell: str, layers: int, hidden: int, length: int | None = None) -> Intervention:
    """`spec` as an Intervention for a model of `layers` x `hidden` `cell` units and a text of `length`
    characters; a TraceError saying what is wrong and what is allowed otherwise."""
    match = _SPEC.match(spec)
    if match is None:
        raise TraceError(f"Intervention {spec!r} does not follow the syntax {SYNTAX}.")
    layer_text = match["layer"].strip()
    if not _NUMBER.match(layer_text):
        raise TraceError(f"Intervention {spec!r}: the layer must be L1 to L{layers}, got L{layer_text}.")
    quantity = match["quantity"].strip().lower()
    allowed = allowed_quantities(cell)
    if quantity not in allowed:
        states = "h" + (" or c" if cell == "lstm" else "")
        gates = ", ".join(q for q in allowed if q not in ("h", "c"))
        raise TraceError(f"Intervention {spec!r}: {a_cell(cell)} has no quantity {quantity!r} to intervene on; "
                         f"use {states} (any value)" + (f" or a gate {gates} (0 or 1)." if gates else "."))
    try:
        value = float(match["value"].strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TraceError(f"Intervention {spec!r}: the value {match['value'].strip()!r} is not a finite number.")
    position = "0" if match["position"] is None else match["position"].strip()   # '@' alone is no position
    if not _NUMBER.match(position):
        last = "" if length is None else f" to {length - 1}"
        raise TraceError(f"Intervention {spec!r}: the position must be a character index 0{last}, got "
                         f"{position!r}.")
    units = _units(match["units"], spec, hidden)
    intervention = Intervention(int(layer_text) - 1, units, quantity, value, int(position))
    check_intervention(intervention, cell, layers, hidden, length)
    return intervention


@dataclass(frozen=True)
class StepChange:
    """One step from the intervention on: the true next character's surprisal before and after."""
    step: int
    char: str
    next_char: str
    before_bits: float
    after_bits: float
    top_before: tuple            # core.gates.Prediction, best first
    top_after: tuple

    @property
    def change(self) -> float:
        return self.after_bits - self.before_bits


@dataclass(frozen=True)
class InterventionComparison:
    interventions: tuple[Intervention, ...]
    start: int
    steps: tuple[StepChange, ...]   # every step from `start` that has a next character

    @property
    def mean_change(self) -> float:
        """Mean surprisal change (bits per character) over the text after the start."""
        return float(np.mean([s.change for s in self.steps])) if self.steps else 0.0

    def most_changed(self, n: int = 5) -> list[StepChange]:
        return sorted(self.steps, key=lambda s: -abs(s.change))[:n]

    def summary(self) -> str:
        if not self.steps:
            return f"No character after position {self.start} to predict: nothing to compare."
        most = ", ".join(f"{escape_char(s.next_char)}@{s.step + 1} {s.change:+.2f}" for s in self.most_changed())
        return (f"Mean surprisal change over the {len(self.steps):,} characters after position {self.start}: "
                f"{self.mean_change:+.3f} bits; changed most: {most}")

    def to_dict(self) -> dict:
        return {
            "interventions": [iv.to_dict() for iv in self.interventions],
            "from": self.start,
            "mean_surprisal_change_bits": self.mean_change,
            "steps": [{"step": s.step, "char": s.char, "next": s.next_char,
                       "original": {"surprisal_bits": s.before_bits, "top": [[p.char, p.prob] for p in s.top_before]},
                       "intervened": {"surprisal_bits": s.after_bits, "top": [[p.char, p.prob] for p in s.top_after]}}
                      for s in self.steps],
        }


def compare_intervention(original: Trace, changed: Trace, k: int = 5) -> InterventionComparison:
    """Per step from the earliest intervention on, the original and intervened predictions."""
    start = min((iv.start for iv in changed.interventions), default=0)
    before, after = original.surprisal_bits, changed.surprisal_bits
    chars = original.chars
    steps = tuple(StepChange(t, chars[t], chars[t + 1], float(before[t]), float(after[t]),
                             tuple(original.top_k(t, k)), tuple(changed.top_k(t, k)))
                  for t in range(start, len(original) - 1))
    return InterventionComparison(tuple(changed.interventions), start, steps)

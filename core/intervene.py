"""Interventions on a traced character model: clamp, silence or force units from a position on.

An `Intervention` names one layer, one or more units, a quantity and a value, and the step (character
index of the trace) it starts at:

- a state clamped: h (any cell) or c (LSTM) set to any finite value; 0 silences the unit. The clamp
  replaces the state right after the step's update: a clamped c_t gives h_t = o_t * tanh(c_t clamped),
  a clamped h_t is what the next layer, the output layer (so this step's next-character distribution)
  and the next step read;
- a gate forced: LSTM f = 1 ("never forget"), f = 0 ("forget everything"), i = 0 ("write nothing"),
  o = 0 ("say nothing"), and the other 0/1 values of i, f, o; GRU r or z = 0 or 1. A forced gate replaces
  the gate's value before the step uses it (in the cell update, or for GRU in n_t and h_t), and is what
  the trace shows for that gate.

`Trace.intervened(interventions)` (core.gates, which imports this module) recomputes the trace from the
earliest start under all of them at once (several may share a layer; on the same unit and quantity the
later one wins), reusing the original's state there: the steps before are copied, never recomputed,
and the original trace is left unchanged.
With no intervention the result equals the original bit for bit (the same step loop runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import TraceError

STATES = ("h", "c")
GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z"), "rnn": ()}
GATE_VALUES = (0.0, 1.0)


def unit_list(units: Sequence[int]) -> str:
    """Units as few characters as the syntax allows: (3, 4, 5, 9) -> '3-5,9'."""
    parts: list[str] = []
    ordered = sorted(set(units))
    begin = 0
    for n in range(1, len(ordered) + 1):
        if n == len(ordered) or ordered[n] != ordered[n - 1] + 1:
            first, last = ordered[begin], ordered[n - 1]
            parts.append(str(first) if first == last else f"{first}-{last}")
            begin = n
    return ",".join(parts)


@dataclass(frozen=True)
class Intervention:
    """From step `start` on, set `units` of `quantity` at `layer` (0-based) to `value`."""
    layer: int
    units: tuple[int, ...]
    quantity: str
    value: float = 0.0
    start: int = 0

    def describe(self) -> str:
        """The CLI's syntax, layers counted from 1: 'L1:U3,7:c=0@120'; it parses back to this intervention."""
        short = f"{self.value:g}"
        value = short if float(short) == self.value else repr(float(self.value))   # 6 digits lose 1/3
        return f"L{self.layer + 1}:U{unit_list(self.units)}:{self.quantity}={value}@{self.start}"

    def to_dict(self) -> dict:
        return {"layer": self.layer, "units": list(self.units), "quantity": self.quantity, "value": self.value,
                "start": self.start, "spec": self.describe()}


def a_cell(cell: str) -> str:
    """'an LSTM', 'a GRU', 'an RNN'."""
    return f"{'a' if cell == 'gru' else 'an'} {cell.upper()}"


def allowed_quantities(cell: str) -> tuple[str, ...]:
    return ("h", "c", *GATES["lstm"]) if cell == "lstm" else ("h", *GATES.get(cell, ()))


def check_intervention(intervention: Intervention, cell: str, layers: int, hidden: int,
                       length: int | None = None) -> None:
    """Raise TraceError saying what is wrong with `intervention` for this model (and text of `length` steps)."""
    what = f"Intervention {intervention.describe()}"
    if not 0 <= intervention.layer < layers:
        raise TraceError(f"{what}: layer {intervention.layer + 1} does not exist; the model has layers 1 to "
                         f"{layers} (1 is nearest the input).")
    if not intervention.units:
        raise TraceError(f"{what}: name at least one unit (0 to {hidden - 1}).")
    bad = [u for u in intervention.units if not 0 <= u < hidden]
    if bad:
        raise TraceError(f"{what}: unit {bad[0]} is out of range; the layer has units 0 to {hidden - 1}.")
    allowed = allowed_quantities(cell)
    if intervention.quantity not in allowed:
        raise TraceError(f"{what}: {a_cell(cell)} has no quantity '{intervention.quantity}' to intervene on; "
                         f"choose one of {', '.join(allowed)} (h{', c' if cell == 'lstm' else ''} any value, "
                         "gates 0 or 1).")
    if intervention.quantity in STATES:
        if not math.isfinite(intervention.value):
            raise TraceError(f"{what}: a state can be clamped to any finite value, not {intervention.value}.")
    elif intervention.value not in GATE_VALUES:
        raise TraceError(f"{what}: a gate can be forced to 0 or 1, not {intervention.value:g}.")
    if intervention.start < 0 or (length is not None and intervention.start >= length):
        last = "" if length is None else f" to {length - 1}"
        raise TraceError(f"{what}: position {intervention.start} is outside the text; positions run from 0{last} "
                         "(character indices).")


@dataclass(frozen=True)
class StepEdit:
    """One intervention as the tracer's step loop applies it: from local step `start` on, set `units`
    of quantity `key` (a gate row, "c" or "h") to `value`."""
    key: str
    units: torch.Tensor  # long indices
    value: float
    start: int

    def apply(self, t: int, values: torch.Tensor) -> None:
        if t >= self.start:
            values[self.units] = self.value


def step_edits(interventions: Sequence[Intervention]) -> tuple[tuple[int, StepEdit], ...]:
    """The (layer, StepEdit) pairs the tracer's step loop applies."""
    return tuple((iv.layer, StepEdit(iv.quantity, torch.tensor(sorted(set(iv.units)), dtype=torch.long),
                                     float(iv.value), iv.start)) for iv in interventions)

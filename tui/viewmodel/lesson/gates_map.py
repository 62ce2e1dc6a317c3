"""Lesson page 7, Gates: a one-page map of the recurrent cell with the selected unit's live values.

The lesson draws the LSTM as four gates between three inputs (E_t, STM_{t-1}, LTM_{t-1}) and two outputs
(LTM_t, STM_t); PyTorch names the same numbers i, f, g, o, c and h. Every value here is the gate tracer's
(core.gates.GateTracer) for one unit of one layer at the current character, so the map shows what the
Gates screen shows, named the lesson's way.

The lesson's Use gate differs from PyTorch's: the lesson puts a learned tanh layer on the forget-gated
memory, STM_t = tanh(W_u LTM_{t-1} f_t + b_u) * V_t, where PyTorch uses the new cell state with no weights
of its own, h_t = o_t * tanh(c_t). A PyTorch model has no W_u, so the page computes the lesson's form with
W_u = 1 and b_u = 0 (tanh(f_t c_{t-1}) * o_t) beside PyTorch's own and says so.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.gates import GateTracer, Trace
from rnn_playground.tui.viewmodel.format import error_text, layer_number, show_char

from ..gates_view import diverging
from .page import Line, PageKey, PageView, Source, Span, fit_line, line, line_text

TEXT_CHARS = 2_000   # the stretch of the source's text the page steps through
HEAT_CELLS = 6       # width of a value's heat swatch


def _value(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "  n/a "


def _heat(value: float, kind: str) -> Span:
    return Span("█" * HEAT_CELLS, "heat", float(diverging(np.array([value]), kind)[0]))


class GatesMapPage:
    name = "gates_map"
    title = "Gates"
    keys = (
        PageKey("right", "move(1)", "Char"),
        PageKey("left", "move(-1)", "Char back"),
        PageKey("full_stop", "unit(1)", "Unit"),
        PageKey("comma", "unit(-1)", "Unit back"),
        PageKey("l", "layer(1)", "Layer"),
    )

    def __init__(self) -> None:
        self.source: Source | None = None
        self.tracer: GateTracer | None = None
        self.trace: Trace | None = None
        self.text = ""
        self.pos = 0
        self.layer = 0
        self.unit = 0
        self.error = ""

    # -- state

    def set_source(self, source: Source) -> None:
        """A new model. On the same text (a newer checkpoint of the run training) the character, unit and
        layer stay where the new model has them; another text starts over."""
        old_text, (pos, layer, unit) = self.text, (self.pos, self.layer, self.unit)
        self.source, self.tracer, self.trace, self.error = source, None, None, ""
        self.pos = self.layer = self.unit = 0
        try:
            self.tracer = GateTracer(source.model, source.vocab)
            self.text = "".join(ch for ch in source.text[:TEXT_CHARS] if ch in source.vocab.index)
            if not self.text:
                raise PlaygroundError("The model's text is empty here: nothing to step through.")
            if self.text == old_text:
                self.pos = pos
                self.layer, self.unit = (layer, unit) if layer < self.tracer.layers and unit < self.tracer.hidden \
                    else (0, 0)
            self.trace = self.tracer.start()
            self._reach(self.pos)
        except PlaygroundError as exc:
            self.tracer = self.trace = None
            self.error = error_text(exc, "Tracing failed")

    def _reach(self, pos: int) -> None:
        """Trace up to and including character `pos` (a step forward traces one more character)."""
        if len(self.trace) <= pos:
            self.trace.extend(self.text[len(self.trace):pos + 1])

    def handle(self, action: str, argument: str = "") -> None:
        if self.trace is None:
            return
        name, _, number = action.partition("(")
        delta = int(number.rstrip(")") or 1)
        if name == "move":
            self.pos = max(0, min(len(self.text) - 1, self.pos + delta))
            self._reach(self.pos)
        elif name == "unit":
            self.unit = (self.unit + delta) % self.tracer.hidden
        elif name == "layer":
            self.layer = (self.layer + delta) % self.tracer.layers

    # -- the numbers

    def values(self) -> dict[str, float]:
        """The selected unit's values at the current character, by the tracer's keys, plus the previous state
        ("h_prev", "c_prev"), the size of the layer's input vector ("x": |E_t|, the embedding's length on layer 1,
        the layer below's |h_t| above it: every unit reads the whole vector) and the two Use gates
        ("use_pytorch" = o_t tanh(c_t), "use_lesson" = o_t tanh(f_t c_{t-1}))."""
        trace, pos, layer, unit = self.trace, self.pos, self.layer, self.unit
        out = {q.key: float(trace.at(pos, layer, q.key)[unit]) for q in trace.quantities}
        before = trace.state(pos - 1) if pos > 0 else trace.initial_state
        out["h_prev"] = float(before.h[layer, unit])
        if before.c is not None:
            out["c_prev"] = float(before.c[layer, unit])
        if layer == 0:
            embedding = self.source.model.embed.weight[self.source.vocab.index[self.text[pos]]].detach()
            out["x"] = float(embedding.norm())
        else:
            out["x"] = float(np.linalg.norm(trace.at(pos, layer - 1, "h")))
        if self.tracer.cell == "lstm":
            out["use_pytorch"] = out["o"] * math.tanh(out["c"])
            out["use_lesson"] = out["o"] * math.tanh(out["f"] * out["c_prev"])
        return out

    # -- drawing

    def view(self, width: int, height: int) -> PageView:
        if self.trace is None:
            return PageView("Gates: the cell, named the lesson's way", ("", ""), (), "gates",
                            "Gates screen: every gate of every unit", busy="" if self.error else "waiting for a model",
                            error=self.error)
        cell = self.tracer.cell
        v = self.values()
        lines = [self._heading(), self._strip(width), line()]
        if cell == "lstm":
            lines += self._lstm(v, width)
            caption = ("Your LSTM's unit at this character, in the lesson's names: -1 blue, +1 red.",
                       "←→ step, ,. unit, l layer; last lines: Use gate, PyTorch's vs lesson's.")
        elif cell == "gru":
            lines += self._gru(v, width)
            caption = ("A GRU has two gates; here in the lesson's terms (one state: STM = LTM).",
                       "←→ step the text, ,. change unit, l layer; g opens the Gates screen here.")
        else:
            lines += self._rnn(v, width)
            caption = ("A plain RNN has no gates: its one state is rewritten at every character.",
                       "←→ step the text, ,. change unit, l layer; train an LSTM to see gates.")
        lines = [fit_line(row, width) for row in lines][:height]
        return PageView(f"Gates: the {cell.upper()} cell, named the lesson's way", caption, tuple(lines), "gates",
                        "Gates screen at this character")

    def _heading(self) -> Line:
        ch = self.text[self.pos]
        return line(Span("char ", "dim"), Span(f"{self.pos:,}", "bold"), Span(f" {show_char(ch)!s} ", "accent"),
                    Span("[←→]  layer ", "dim"), Span(layer_number(self.layer, self.tracer.layers), "bold"),
                    Span(" [l]  unit ", "dim"), Span(f"{self.unit}", "bold"),
                    Span(f" of {self.tracer.hidden} [,.]", "dim"))

    def _strip(self, width: int) -> Line:
        """The text around the cursor, the current character marked."""
        before = max(4, width // 2)
        start = max(0, self.pos - before)
        shown = [show_char(ch) if ch in "\n\t" else ch for ch in self.text[start:start + width]]
        cursor = self.pos - start
        return line(Span("".join(shown[:cursor]), "dim"), Span(shown[cursor] if cursor < len(shown) else " ", "accent"),
                    Span("".join(shown[cursor + 1:]), "dim"))

    def _row(self, label: str, symbol: str, value: float, kind: str, note: str = "") -> Line:
        return line(Span(f"{label:<14}", "bold"), Span(f"{symbol:<14}", "dim"), _heat(value, kind),
                    Span(f" {_value(value)}  "), Span(note, "dim"))

    def _inputs(self, v: dict, memory: str, width: int) -> list[Line]:
        rows = [line(Span("in  ", "dim"), Span("|E_t| ", "bold"), Span(_value(v["x"])),
                     Span("   STM_{t-1} ", "bold"), Span(_value(v["h_prev"])))]
        if memory:
            rows[0] += (Span("   LTM_{t-1} ", "bold"), Span(_value(v["c_prev"])))
        note = "   (|E_t|: length of the layer's input)"
        if len(line_text(rows[0])) + len(note) <= width:  # a whole note or none
            rows[0] += (Span(note, "dim"),)
        return rows

    def _lstm(self, v: dict, width: int) -> list[Line]:
        kept, written = v["kept"], v["written"]
        return [
            *self._inputs(v, "c", width),
            line(Span("    │ each gate reads E_t and STM_{t-1}; only Forget touches LTM_{t-1}", "dim")),
            self._row("Learn gate", "N_t = g_t", v["g"], "tanh", "new information"),
            self._row("", "i_t", v["i"], "gate", f"N_t i_t = {_value(written)} learned"),
            self._row("Forget gate", "f_t", v["f"], "gate", f"LTM_{{t-1}} f_t = {_value(kept)} kept"),
            self._row("Remember gate", "LTM_t = c_t", v["c"], "state",
                      f"= {_value(kept)} + {_value(written)}"),
            self._row("Use gate", "o_t", v["o"], "gate", "how much memory is used"),
            line(),
            line(Span("out ", "dim"), Span("LTM_t ", "bold"), Span(_value(v["c"])), Span("   STM_t = h_t ", "bold"),
                 Span(_value(v["h"])), Span("   (to the next layer and the output)", "dim")),
            self._row("Use, PyTorch", "o_t tanh(c_t)", v["use_pytorch"], "tanh", "= STM_t = h_t, what it computes"),
            self._row("Use, lesson", "o_t tanh(kept)", v["use_lesson"], "tanh", "tanh on f_t c_{t-1}, W_u=1 assumed"),
        ]

    def _gru(self, v: dict, width: int) -> list[Line]:
        z, n, h_prev = v["z"], v["n"], v["h_prev"]
        return [
            *self._inputs(v, "", width),
            line(Span("    │ no separate memory: STM and LTM are one state, h_t", "dim")),
            self._row("reset r_t", "(Learn input)", v["r"], "gate", "how much STM_{t-1} feeds in"),
            self._row("Learn", "N_t = n_t", n, "tanh", f"(1 - z_t) N_t = {_value((1 - z) * n)}, learned"),
            self._row("update z_t", "(Forget)", z, "gate", f"z_t STM_{{t-1}} = {_value(z * h_prev)}, kept"),
            self._row("Remember/Use", "h_t", v["h"], "tanh", "= kept + learned (no Use gate)"),
        ]

    def _rnn(self, v: dict, width: int) -> list[Line]:
        return [*self._inputs(v, "", width),
                self._row("no gates", "h_t", v["h"], "tanh" if self.tracer.cell == "rnn" else "state",
                          "tanh(W E_t + U STM_{t-1}), all new")]

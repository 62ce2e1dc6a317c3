"""Gate tracer: what happens inside a character model at every step of a text.

For each character and each layer the tracer recomputes, from the module's own weights,
every internal quantity of the recurrence:

- LSTM: input gate i, forget gate f, candidate g, output gate o, cell state c and hidden
  state h (PyTorch's layout: the weight rows are the i, f, g, o blocks, and both biases
  are added), plus the split of each cell update into what was kept (f * c_prev) and what
  was written (i * g);
- GRU: reset gate r, update gate z, candidate n (the reset gate multiplies W_hn h + b_hn,
  as PyTorch does) and h;
- vanilla RNN: h (tanh or relu).

Per step it also keeps the log-probabilities of the next character, from which come the
top-k predictions and the probability, rank and surprisal of the true next character.

Everything runs in eval mode (no dropout), on the CPU, in float64 when the model is float64
and float32 otherwise. The per-step values equal what nn.LSTM / nn.GRU / nn.RNN compute
(tests/test_gates.py holds the proof). Results are numpy arrays shaped [steps, layers,
units]; a front end only indexes them.

    tracer = GateTracer(model, vocab)            # or GateTracer.from_checkpoint(path)
    trace = tracer.trace("def f(x):", prefix="")  # all steps at once
    trace.extend("\\n")                           # one more step, no recomputation
    trace.values("f")                             # [steps, layers, units]
    trace.step_info(3, layer=1)                   # everything a screen shows for one step
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import atomic_writer
from .corpus import Vocab, describe_chars
from .device import check_threads, torch_threads
from .errors import TraceError
from .gates_analysis import Saturation, UnitMatch, find_units, saturation, text_feature
from .intervene import Intervention, StepEdit, check_intervention, step_edits
from .loading import load_model
from .model import ONEHOT, OneHot, describe_model
from .sampling import Sampler, SampleSettings, next_distribution

JSON_FORMAT = "rnn-playground/gate-trace/1"
LN2 = math.log(2.0)
_PREFIX_CHUNK = 2048  # a prefix runs through in chunks, so a long one needs little memory


@dataclass(frozen=True)
class Quantity:
    """One traced quantity, with its standard (PyTorch) name and the lesson's name."""
    key: str          # "i", "f", ... as used by Trace.values()
    symbol: str       # "i_t"
    standard: str     # "input gate"
    lesson: str       # "Learn gate: i_t" ('' where the lesson has no name for it)
    formula: str
    kind: str         # "gate" (sigmoid, 0..1), "tanh" (-1..1), "state" (unbounded) or "derived"
    # The lesson's names in short, for displays: its gate ("Learn gate"), its own symbol ("N_t"),
    # and both names in a few characters ("Learn N_t=g_t").
    gate: str = ""
    alias: str = ""
    short: str = ""

    @property
    def label(self) -> str:
        """'input gate i_t (Learn gate: i_t)': both names, for people."""
        return f"{self.standard} {self.symbol}" + (f" ({self.lesson})" if self.lesson else "")


_LSTM = (
    Quantity("i", "i_t", "input gate", "Learn gate: i_t, how much of N_t is learned",
             "i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)", "gate", "Learn gate", "", "Learn i_t"),
    Quantity("f", "f_t", "forget gate", "Forget gate: f_t",
             "f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)", "gate", "Forget gate", "", "Forget f_t"),
    Quantity("g", "g_t", "candidate", "Learn gate: N_t, the new information",
             "g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)", "tanh", "Learn gate", "N_t", "Learn N_t=g_t"),
    Quantity("o", "o_t", "output gate", "Use gate, standard form: o_t",
             "o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)", "gate", "Use gate", "", "Use o_t"),
    Quantity("c", "c_t", "cell state", "Remember gate: LTM_t = LTM_{t-1} f_t + N_t i_t",
             "c_t = f_t * c_{t-1} + i_t * g_t", "state", "Remember gate", "LTM_t", "Remember c_t"),
    Quantity("h", "h_t", "hidden state", "Use gate output, standard form: STM_t",
             "h_t = o_t * tanh(c_t)", "tanh", "Use gate", "STM_t", "Use STM=h_t"),
    Quantity("kept", "f_t*c_{t-1}", "kept from the cell", "Forget gate output: LTM_{t-1} f_t",
             "kept_t = f_t * c_{t-1}", "derived", "Forget gate out", "", "kept f*c_{t-1}"),
    Quantity("written", "i_t*g_t", "written to the cell", "Learn gate output: N_t i_t",
             "written_t = i_t * g_t", "derived", "Learn gate out", "", "written i*g"),
)
_GRU = (
    Quantity("r", "r_t", "reset gate", "", "r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)", "gate",
             short="reset r_t"),
    Quantity("z", "z_t", "update gate", "", "z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)", "gate",
             short="update z_t"),
    Quantity("n", "n_t", "candidate", "", "n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))", "tanh",
             short="candidate n_t"),
    Quantity("h", "h_t", "hidden state", "STM_t", "h_t = (1 - z_t) * n_t + z_t * h_{t-1}", "tanh",
             alias="STM_t", short="hidden h_t"),
)
_RNN_TANH = (Quantity("h", "h_t", "hidden state", "STM_t", "h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)",
                      "tanh", alias="STM_t", short="hidden h_t"),)
_RNN_RELU = (Quantity("h", "h_t", "hidden state", "STM_t", "h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)",
                      "state", alias="STM_t", short="hidden h_t"),)

QUANTITIES: dict[str, tuple[Quantity, ...]] = {"lstm": _LSTM, "gru": _GRU, "rnn": _RNN_TANH, "rnn_relu": _RNN_RELU}
_GATE_ROWS = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ()}


@dataclass(frozen=True)
class Prediction:
    char: str
    prob: float


@dataclass(frozen=True)
class UnitValue:
    unit: int
    value: float


@dataclass(frozen=True)
class StepInfo:
    """Everything about one step at one layer: what a stepping screen shows."""
    index: int                     # step number within the trace (0 = first character of the text)
    char: str                      # the character read at this step
    layer: int
    values: dict[str, np.ndarray]  # quantity key -> [units] at this layer
    top: tuple[Prediction, ...]    # likeliest next characters, best first
    next_char: str | None          # the true next character (None at the end of the text)
    next_prob: float | None
    next_rank: int | None          # 1 = the model's first choice
    surprisal_bits: float | None   # -log2 next_prob


@dataclass(frozen=True)
class RecurrentState:
    """Hidden state per layer, [layers, units] each; c is None except for an LSTM."""
    h: np.ndarray
    c: np.ndarray | None


def _describe_module(rnn: nn.Module) -> str:
    return f"{type(rnn).__name__}(input {rnn.input_size}, hidden {rnn.hidden_size}, layers {rnn.num_layers})"


def _cell_of(rnn: nn.Module) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN):
        return "rnn" if rnn.nonlinearity == "tanh" else "rnn_relu"
    raise TraceError(f"The gate tracer understands nn.LSTM, nn.GRU and nn.RNN, not {type(rnn).__name__}. "
                     "Trace a character model trained by rnn-playground.")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class Recurrence:
    """The recurrence of an nn.LSTM / nn.GRU / nn.RNN, recomputed step by step from its weights.

    Works on plain input vectors, so it can be checked against the bare torch module; the
    GateTracer adds the embedding in front and the output layer behind.
    """

    def __init__(self, rnn: nn.Module, *, where: str = "the model"):
        cell = _cell_of(rnn)
        problems = []
        if getattr(rnn, "proj_size", 0):
            problems.append(f"proj_size={rnn.proj_size} (LSTM projections)")
        if rnn.bidirectional:
            problems.append("bidirectional=True")
        if problems:
            raise TraceError(f"Cannot trace {where}: its {_describe_module(rnn)} uses {' and '.join(problems)}, "
                             "which the gate tracer does not support. Trace a unidirectional model without "
                             "projections (every model rnn-playground trains is one).")
        self.cell = "rnn" if cell.startswith("rnn") else cell
        self.relu = cell == "rnn_relu"
        self.quantities = QUANTITIES[cell]
        self.gate_rows = _GATE_ROWS[self.cell]
        self.layers = rnn.num_layers
        self.hidden = rnn.hidden_size
        self.input_size = rnn.input_size
        first = next(rnn.parameters(), None)
        if first is None:
            raise TraceError(f"Cannot trace {where}: its recurrent layer has no weights.")
        self.dtype = _compute_dtype(first.dtype)
        with torch.no_grad():
            self.w_ih, self.w_hh, self.b_ih, self.b_hh = [], [], [], []
            for layer in range(self.layers):
                w_ih = getattr(rnn, f"weight_ih_l{layer}").detach().to("cpu", self.dtype, copy=True)
                w_hh = getattr(rnn, f"weight_hh_l{layer}").detach().to("cpu", self.dtype, copy=True)
                rows = w_hh.shape[0]
                zeros = torch.zeros(rows, dtype=self.dtype)
                b_ih = getattr(rnn, f"bias_ih_l{layer}", None)
                b_hh = getattr(rnn, f"bias_hh_l{layer}", None)
                b_ih = zeros if b_ih is None else b_ih.detach().to("cpu", self.dtype, copy=True)
                b_hh = zeros.clone() if b_hh is None else b_hh.detach().to("cpu", self.dtype, copy=True)
                for name, tensor in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih), ("bias_hh", b_hh)):
                    if not torch.isfinite(tensor).all():
                        raise TraceError(f"Cannot trace {where}: {name}_l{layer} holds NaN or infinite values.")
                self.w_ih.append(w_ih.contiguous())
                self.w_hh.append(w_hh.contiguous())
                self.b_ih.append(b_ih.contiguous())
                self.b_hh.append(b_hh.contiguous())

    @property
    def gate_count(self) -> int:
        return len(self.gate_rows)

    def input_projection(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """W_ih x + b_ih for every step at once ([steps, in] -> [steps, rows]); LSTM and RNN also
        fold in b_hh here, GRU keeps it apart (it sits inside r * (W_hn h + b_hn))."""
        bias = self.b_ih[layer] if self.cell == "gru" else self.b_ih[layer] + self.b_hh[layer]
        return torch.addmm(bias, x, self.w_ih[layer].t())

    def run_layer(self, layer: int, xproj: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
                  gates: torch.Tensor | None, cells: torch.Tensor | None, hiddens: torch.Tensor,
                  edits: Sequence[StepEdit] = ()) -> None:
        """Run one layer over xproj [steps, rows], starting from h (and c), writing every step's
        gates [steps, k, units], cells [steps, units] and hiddens [steps, units] in place.

        `edits` (core.intervene) overwrite values from their step on: a forced gate right after the
        gate is computed (before the cell update uses it), a clamped c right after the cell update
        (so h_t = o_t * tanh(clamped c_t)), a clamped h right after h_t (so the next layer, the
        output layer and the next step read it). Without edits the loop is today's, op for op."""
        w_hh = self.w_hh[layer]
        rows = self.gate_rows
        gate_edits = [(rows.index(e.key), e) for e in edits if e.key in rows]
        c_edits = [e for e in edits if e.key == "c"]
        h_edits = [e for e in edits if e.key == "h"]
        units = self.hidden
        steps = xproj.shape[0]
        if self.cell == "lstm":
            pre = torch.empty(4 * units, dtype=self.dtype)
            for t in range(steps):
                g4 = gates[t]
                flat = g4.view(-1)
                torch.addmv(xproj[t], w_hh, h, out=pre)
                torch.sigmoid(pre, out=flat)
                torch.tanh(pre[2 * units:3 * units], out=g4[2])
                for row, edit in gate_edits:
                    edit.apply(t, g4[row])
                c_new = cells[t]
                torch.mul(g4[1], c, out=c_new)
                c_new.addcmul_(g4[0], g4[2])
                for edit in c_edits:
                    edit.apply(t, c_new)
                h_new = hiddens[t]
                torch.tanh(c_new, out=h_new)
                h_new.mul_(g4[3])
                for edit in h_edits:
                    edit.apply(t, h_new)
                h, c = h_new, c_new
        elif self.cell == "gru":
            b_hh = self.b_hh[layer]
            hh = torch.empty(3 * units, dtype=self.dtype)
            for t in range(steps):
                g3 = gates[t]
                x = xproj[t]
                torch.addmv(b_hh, w_hh, h, out=hh)
                rz = g3[:2].view(-1)
                torch.add(x[:2 * units], hh[:2 * units], out=rz)
                rz.sigmoid_()
                for row, edit in gate_edits:
                    edit.apply(t, g3[row])
                n = g3[2]
                torch.mul(g3[0], hh[2 * units:], out=n)
                n.add_(x[2 * units:])
                n.tanh_()
                h_new = hiddens[t]
                torch.sub(h, n, out=h_new)
                h_new.mul_(g3[1])
                h_new.add_(n)
                for edit in h_edits:
                    edit.apply(t, h_new)
                h = h_new
        else:
            for t in range(steps):
                h_new = hiddens[t]
                torch.addmv(xproj[t], w_hh, h, out=h_new)
                if self.relu:
                    h_new.relu_()
                else:
                    h_new.tanh_()
                for edit in h_edits:
                    edit.apply(t, h_new)
                h = h_new


class _Buffers:
    """Preallocated per-step storage that grows geometrically, so extending is amortised O(1)."""

    def __init__(self, rec: Recurrence, vocab_size: int, capacity: int):
        self.rec, self.vocab_size = rec, vocab_size
        self.capacity = 0
        self.gates = self.cells = self.hiddens = self.log_probs = None
        self.reserve(max(capacity, 1))

    def reserve(self, needed: int, used: int = 0) -> None:
        if needed <= self.capacity:
            return
        rec = self.rec
        capacity = max(needed, self.capacity + self.capacity // 2, 16)
        old = (self.gates, self.cells, self.hiddens, self.log_probs)
        self.gates = torch.empty(capacity, rec.layers, rec.gate_count, rec.hidden, dtype=rec.dtype)
        self.cells = torch.empty(capacity, rec.layers, rec.hidden, dtype=rec.dtype) if rec.cell == "lstm" else None
        self.hiddens = torch.empty(capacity, rec.layers, rec.hidden, dtype=rec.dtype)
        self.log_probs = torch.empty(capacity, self.vocab_size, dtype=rec.dtype)
        if used:
            for new, previous in zip((self.gates, self.cells, self.hiddens, self.log_probs), old, strict=True):
                if new is not None:
                    new[:used] = previous[:used]
        self.capacity = capacity


class RecurrentTracer:
    """What both tracers (GateTracer, series_gates.SeriesTracer) share: the thread setting, the model's facts
    read off self.recurrence, and a CPU copy of the output layer. Subclasses set self.recurrence."""

    recurrence: Recurrence

    def _set_loop_threads(self, loop_threads: int | None) -> None:
        if loop_threads is not None:
            check_threads(loop_threads, "Threads for tracing", advice="", error=TraceError)
        self.loop_threads = loop_threads

    def _copy_head(self, head: nn.Linear) -> None:
        """The output layer as x @ _head_w + _head_b, in the recurrence's dtype (a missing bias is zeros)."""
        dtype = self.recurrence.dtype
        with torch.no_grad():
            self._head_w = head.weight.detach().to("cpu", dtype, copy=True).t().contiguous()
            self._head_b = (head.bias.detach().to("cpu", dtype, copy=True) if head.bias is not None
                            else torch.zeros(head.out_features, dtype=dtype))

    # --- facts about the model -------------------------------------------------------------
    @property
    def cell(self) -> str:
        return self.recurrence.cell

    @property
    def layers(self) -> int:
        return self.recurrence.layers

    @property
    def hidden(self) -> int:
        return self.recurrence.hidden

    @property
    def dtype(self) -> torch.dtype:
        return self.recurrence.dtype

    @property
    def quantities(self) -> tuple[Quantity, ...]:
        return self.recurrence.quantities

    def zero_state(self) -> RecurrentState:
        """The state a trace starts from by default: zeros, in the recurrence's precision."""
        rec = self.recurrence
        zeros = np.zeros((rec.layers, rec.hidden), dtype=np.float64 if rec.dtype == torch.float64 else np.float32)
        return RecurrentState(zeros, zeros.copy() if rec.cell == "lstm" else None)


class GateTracer(RecurrentTracer):
    """Traces a character model (embedding -> LSTM/GRU/RNN -> linear) over any text.

    Keeps its own CPU copy of the weights, so the model it came from may go on training.
    `loop_threads` is the torch thread count while tracing (1 is fastest for a recurrence on
    a small or busy CPU and never oversubscribes; None leaves torch's setting alone).
    """

    def __init__(self, model: nn.Module, vocab: Vocab, loop_threads: int | None = 1):
        self._set_loop_threads(loop_threads)
        where = f"this {type(model).__name__}"
        missing = [name for name in ("embed", "rnn", "head") if not isinstance(getattr(model, name, None), nn.Module)]
        if missing:
            raise TraceError(f"Cannot trace {where}: the gate tracer needs a character model with an embedding, "
                             f"a recurrent layer and an output layer (embed, rnn, head); it lacks "
                             f"{', '.join(missing)}. Use a checkpoint of a character model.")
        embed, rnn, head = model.embed, model.rnn, model.head
        if not isinstance(embed, (nn.Embedding, OneHot)) or not isinstance(head, nn.Linear):
            raise TraceError(f"Cannot trace {where}: expected an nn.Embedding (or one-hot) input and an nn.Linear "
                             f"output layer, found {type(embed).__name__} and {type(head).__name__}.")
        self.onehot = isinstance(embed, OneHot)
        self.recurrence = rec = Recurrence(rnn, where=where)
        if embed.num_embeddings != len(vocab) or head.out_features != len(vocab):
            raise TraceError(f"Cannot trace {where}: it reads {embed.num_embeddings} and predicts "
                             f"{head.out_features} characters, but the vocabulary has {len(vocab)}. "
                             "Use the vocabulary saved with the checkpoint.")
        if embed.embedding_dim != rec.input_size or head.in_features != rec.hidden:
            raise TraceError(f"Cannot trace {where}: its layers do not fit together (embedding {embed.embedding_dim}, "
                             f"{_describe_module(rnn)}, output layer input {head.in_features}).")
        self.vocab = vocab
        with torch.no_grad():
            table = embed.weight.detach().to("cpu", rec.dtype, copy=True)
            # Layer 0's input projection for every character, looked up per step (exact either way).
            self._input_table = rec.input_projection(0, table).contiguous()
        self._copy_head(head)
        self._lookup = torch.full((max(map(ord, vocab.chars), default=0) + 1,), -1, dtype=torch.long)
        if len(vocab):
            self._lookup[torch.tensor([ord(ch) for ch in vocab.chars])] = torch.arange(len(vocab))

    @classmethod
    def from_checkpoint(cls, path: Path | str, loop_threads: int | None = 1) -> GateTracer:
        model, vocab, _ = load_model(path, "cpu")
        return cls(model, vocab, loop_threads)

    # --- facts about the model (the rest come from RecurrentTracer) --------------------------
    @property
    def embed(self) -> int:
        """The model's embed setting: its embedding size, or ONEHOT (one-hot rows are its input)."""
        return ONEHOT if self.onehot else self.recurrence.input_size

    def describe(self) -> str:
        return f"{describe_model(self)}, {len(self.vocab)} characters"

    # --- tracing -------------------------------------------------------------------------
    def encode(self, text: str, what: str = "The text") -> torch.Tensor:
        lacking = self.vocab.missing(text)
        if lacking:
            first = min(text.index(ch) for ch in lacking)
            raise TraceError(f"{what} has characters the model's vocabulary lacks: {describe_chars(lacking)} "
                             f"(the first at position {first}). Remove them, or trace with a checkpoint "
                             "trained on text that has them.")
        if not text:
            return torch.empty(0, dtype=torch.long)
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        return self._lookup[codes]

    def start(self, prefix: str = "", state: RecurrentState | None = None) -> Trace:
        """A trace with no steps yet, starting from the state reached after `prefix` (read from
        `state`, or from zeros). Extend it one character at a time."""
        state = self.zero_state() if state is None else state
        rec = self.recurrence
        if state.h.shape != (rec.layers, rec.hidden) or (rec.cell == "lstm") != (state.c is not None) or (
                state.c is not None and state.c.shape != state.h.shape):
            raise TraceError(f"The starting state does not fit this {self.describe()} model "
                             f"(h {state.h.shape}, c {None if state.c is None else state.c.shape}).")
        ids = self.encode(prefix, "The prefix")
        h = torch.as_tensor(np.array(state.h), dtype=rec.dtype).clone()
        c = torch.as_tensor(np.array(state.c), dtype=rec.dtype).clone() if state.c is not None else None
        scratch = _Buffers(rec, len(self.vocab), min(len(ids), _PREFIX_CHUNK))
        for begin in range(0, len(ids), _PREFIX_CHUNK):
            chunk = ids[begin:begin + _PREFIX_CHUNK]
            self._advance(chunk, h, c, scratch, 0, predict=False)
            last = len(chunk) - 1
            h = scratch.hiddens[last].clone()
            c = scratch.cells[last].clone() if c is not None else None
        return Trace(self, prefix, h, c)

    def trace(self, text: str, prefix: str = "", state: RecurrentState | None = None) -> Trace:
        """Trace every character of `text`, starting from the state after `prefix`."""
        if not text:
            raise TraceError("Nothing to trace: the text is empty. Give at least one character.")
        self.encode(text)  # refuse unknown characters before any work
        trace = self.start(prefix, state)
        trace.extend(text)
        return trace

    def _advance(self, ids: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None, buffers: _Buffers,
                 at: int, predict: bool = True, edits: Sequence[tuple[int, StepEdit]] = ()) -> None:
        """Run `ids` from state (h0, c0) [layers, units], writing steps at..at+len(ids) of `buffers`;
        `edits` are (layer, StepEdit) with `start` counted in trace steps."""
        rec = self.recurrence
        steps = len(ids)
        end = at + steps
        with torch.inference_mode(), torch_threads(self.loop_threads):
            x = None
            for layer in range(rec.layers):
                xproj = self._input_table[ids] if layer == 0 else rec.input_projection(layer, x)
                hiddens = buffers.hiddens[at:end, layer]
                local = [StepEdit(e.key, e.units, e.value, e.start - at) for at_layer, e in edits
                         if at_layer == layer]
                rec.run_layer(layer, xproj, h0[layer], c0[layer] if c0 is not None else None,
                              buffers.gates[at:end, layer], buffers.cells[at:end, layer] if c0 is not None else None,
                              hiddens, local)
                x = hiddens
            if predict:
                logits = torch.addmm(self._head_b, x, self._head_w)
                torch.log_softmax(logits, dim=-1, out=buffers.log_probs[at:end])


class Trace:
    """The traced steps of one text. Arrays are numpy views [steps, layers, units] of the
    trace's storage: read them, do not write them, and ask again after an extend (a view
    taken before does not grow, and may stop sharing memory when storage is reallocated)."""

    def __init__(self, tracer: GateTracer, prefix: str, h0: torch.Tensor, c0: torch.Tensor | None):
        self.tracer = tracer
        self.prefix = prefix
        self._chars: list[str] = []
        self._h0, self._c0 = h0, c0
        self._buffers = _Buffers(tracer.recurrence, len(tracer.vocab), 16)
        self._length = 0
        self.interventions: tuple[Intervention, ...] = ()  # applied to every step they cover
        self._edits: tuple[tuple[int, StepEdit], ...] = ()

    # --- growing -----------------------------------------------------------------------
    def extend(self, text: str) -> Trace:
        """Read more characters, continuing from the last step. Returns self."""
        if not text:
            return self
        ids = self.tracer.encode(text)
        n, m = self._length, len(ids)
        self._buffers.reserve(n + m, used=n)
        h, c = self._state_tensors(n - 1)
        self.tracer._advance(ids, h, c, self._buffers, n, edits=self._edits)
        self._chars.extend(text)
        self._length = n + m
        return self

    def copy_bytes(self, steps: int) -> int:
        """What intervened() copies for interventions from step `steps` on: every stored value of the steps
        before (a screen recomputes in a worker when that is large)."""
        buffers = self._buffers
        per_step = sum(b[0].numel() * b.element_size() for b in (buffers.gates, buffers.cells, buffers.hiddens,
                                                                   buffers.log_probs) if b is not None)
        return max(0, min(steps, self._length)) * per_step

    def intervened(self, interventions: Sequence[Intervention], end: int | None = None) -> Trace:
        """This trace recomputed under core.intervene.Intervention's (all at once) from the earliest
        one's position on, starting from this trace's state there: the steps before are copied, not
        recomputed, and this trace is left as it was. On an intervened trace they add to its own. The
        result keeps its interventions when extended. With `end`, only the steps before it (at least the
        earliest intervened one): the rest can follow with extend(), a chunk at a time (a screen
        recomputing a long text in a worker)."""
        added = tuple(interventions)
        n = self._length
        for intervention in added:
            check_intervention(intervention, self.cell, self.layers, self.hidden, n)
        start = min((intervention.start for intervention in added), default=0)
        interventions = self.interventions + added
        if end is not None:
            n = max(min(n, end), min(n, start + 1))
        out = Trace(self.tracer, self.prefix, self._h0, self._c0)
        out.interventions = interventions
        out._edits = step_edits(interventions)
        if not n:
            return out
        old, new = self._buffers, out._buffers
        new.reserve(n)
        for target, source in ((new.gates, old.gates), (new.cells, old.cells), (new.hiddens, old.hiddens),
                               (new.log_probs, old.log_probs)):
            if target is not None:
                target[:start] = source[:start]
        h, c = self._state_tensors(start - 1)
        self.tracer._advance(self.tracer.encode(self.text[start:n]), h, c, new, start, edits=out._edits)
        out._chars = list(self._chars[:n])
        out._length = n
        return out

    def continuation(self, at: int, length: int, seed: int = 0, temperature: float = 1.0) -> str:
        """`length` characters drawn after step `at`, under this trace's interventions (those starting
        later take effect when the continuation reaches their position): the text as the model, so edited,
        would go on. temperature 0 takes the likeliest character each step; otherwise each draw is one
        random.Random(seed) float against the distribution at that temperature, so the same seed draws
        the same characters with and without interventions until their distributions part. Each draw is
        what the trace of the text up to `at` plus the continuation, under the same interventions,
        predicts at that step."""
        return self.continuation_from(at).draw(length, seed, temperature)

    def continuation_from(self, at: int) -> Continuation:
        """What a continuation after step `at` needs, copied: drawing from it reads this trace no more, so
        a worker can draw while the trace is extended."""
        at = self.step_index(at)
        h, c = self._state_tensors(at)
        offset = at + 1  # the continuation's step 0 is this step of the text
        edits = tuple((layer, StepEdit(e.key, e.units, e.value, e.start - offset)) for layer, e in self._edits)
        return Continuation(self.tracer, self.prefix, h, c, self._buffers.log_probs[at].clone(), edits)

    def step(self, char: str, layer: int | None = None, k: int = 5) -> StepInfo:
        """Read one character and return what happened at that step."""
        if len(char) != 1:
            raise TraceError(f"step() reads exactly one character, got {len(char)} ({char[:20]!r}). "
                             "Use extend() for longer text.")
        self.extend(char)
        return self.step_info(self._length - 1, layer, k)

    def _state_tensors(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if step < 0:
            return self._h0, self._c0
        b = self._buffers
        return b.hiddens[step].clone(), (b.cells[step].clone() if b.cells is not None else None)

    # --- basic facts -------------------------------------------------------------------
    def __len__(self) -> int:
        return self._length

    @property
    def text(self) -> str:
        return "".join(self._chars)

    @property
    def chars(self) -> Sequence[str]:
        return tuple(self._chars)

    @property
    def cell(self) -> str:
        return self.tracer.cell

    @property
    def layers(self) -> int:
        return self.tracer.layers

    @property
    def hidden(self) -> int:
        return self.tracer.hidden

    @property
    def quantities(self) -> tuple[Quantity, ...]:
        return self.tracer.quantities

    def quantity(self, key: str) -> Quantity:
        for quantity in self.quantities:
            if quantity.key == key:
                return quantity
        raise TraceError(f"A {self.cell.upper()} has no quantity '{key}'. "
                         f"Choose one of: {', '.join(q.key for q in self.quantities)}.")

    def step_index(self, step: int) -> int:
        """`step` as a plain index (negative counts from the end); a clear error when out of range."""
        if not self._length:
            raise TraceError("The trace has no steps yet: extend it with some text first.")
        if not -self._length <= step < self._length:
            raise TraceError(f"Step {step} is outside the trace, which has steps 0 to {self._length - 1}.")
        return step % self._length

    def layer_index(self, layer: int | None) -> int:
        """`layer` as a plain index; None is the top layer (nearest the output)."""
        if layer is None:
            return self.layers - 1
        if not -self.layers <= layer < self.layers:
            raise TraceError(f"Layer {layer} does not exist: the model has layers 0 to {self.layers - 1}.")
        return layer % self.layers

    # --- values --------------------------------------------------------------------------
    def values(self, key: str) -> np.ndarray:
        """Quantity `key` at every step: [steps, layers, units] (a view for stored quantities)."""
        quantity = self.quantity(key)
        n, b = self._length, self._buffers
        rows = self.tracer.recurrence.gate_rows
        if key in rows:
            return b.gates[:n, :, rows.index(key)].numpy()
        if key == "h":
            return b.hiddens[:n].numpy()
        if key == "c":
            return b.cells[:n].numpy()
        if key in ("kept", "written"):
            return self.cell_update(key)
        raise AssertionError(quantity)  # pragma: no cover - every quantity is handled above

    def cell_update(self, key: str, start: int = 0, end: int | None = None, layer: int | None = None,
                    unit: int | None = None) -> np.ndarray:
        """The LSTM cell update split in two over steps start..end-1: "kept" (f_t * c_{t-1}) or "written"
        (i_t * g_t); [steps, layers, units], or one layer and/or one unit when given. The one place the split
        is computed: for a window of one unit (the Gates text view), only that window is multiplied."""
        self.quantity(key)
        n = self._length
        end = n if end is None else max(0, min(end, n))
        start = max(0, min(start, end))
        layers = slice(None) if layer is None else self.layer_index(layer)
        units = slice(None) if unit is None else unit
        gates = self._buffers.gates[start:end, layers]  # [steps, (layers,) gate rows, units]
        if key == "written":
            return (gates[..., 0, units] * gates[..., 2, units]).numpy()
        cells = self._buffers.cells
        if start == 0 and end > 0:  # the first step's c_{t-1} is the starting state
            previous = torch.cat([self._c0[layers, units].unsqueeze(0), cells[:end - 1, layers, units]])
        else:
            previous = cells[max(start - 1, 0):max(end - 1, 0), layers, units]
        return (gates[..., 1, units] * previous).numpy()

    def at(self, step: int, layer: int, key: str) -> np.ndarray:
        """Quantity `key` at one step and layer: [units]."""
        step, layer = self.step_index(step), self.layer_index(layer)
        if key in ("kept", "written"):
            return self.cell_update(key, step, step + 1, layer)[0]
        return self.values(key)[step, layer]

    @property
    def initial_state(self) -> RecurrentState:
        """The state before the first step (after the prefix)."""
        return RecurrentState(self._h0.numpy().copy(), self._c0.numpy().copy() if self._c0 is not None else None)

    def state(self, step: int) -> RecurrentState:
        """The state after reading step `step` ([layers, units] each); -1 is the final state."""
        step = self.step_index(step)
        h, c = self._state_tensors(step)
        return RecurrentState(h.numpy(), c.numpy() if c is not None else None)

    @property
    def final_state(self) -> RecurrentState:
        return self.state(-1) if self._length else self.initial_state

    def most_active(self, step: int, layer: int | None = None, key: str = "h", n: int = 5) -> list[UnitValue]:
        """The n units with the largest |value| of `key` at one step, largest first."""
        values = self.at(step, self.layer_index(layer), key)
        order = np.argsort(-np.abs(values), kind="stable")[:max(n, 0)]
        return [UnitValue(int(u), float(values[u])) for u in order]

    # --- predictions -----------------------------------------------------------------------
    @property
    def log_probs(self) -> np.ndarray:
        """Natural-log probabilities of the next character after each step: [steps, vocab]."""
        return self._buffers.log_probs[:self._length].numpy()

    @property
    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs)

    def _next_ids(self) -> np.ndarray:
        index = self.tracer.vocab.index
        return np.array([index[ch] for ch in self._chars[1:]], dtype=np.int64)

    @property
    def next_prob(self) -> np.ndarray:
        """Probability of the true next character after each step: [steps]; NaN for the last step."""
        out = np.full(self._length, np.nan)
        if self._length > 1:
            out[:-1] = np.exp(self.log_probs[np.arange(self._length - 1), self._next_ids()].astype(np.float64))
        return out

    @property
    def surprisal_bits(self) -> np.ndarray:
        """-log2 of the true next character's probability: [steps]; NaN for the last step."""
        out = np.full(self._length, np.nan)
        if self._length > 1:
            out[:-1] = -self.log_probs[np.arange(self._length - 1), self._next_ids()].astype(np.float64) / LN2
        return out

    @property
    def next_rank(self) -> np.ndarray:
        """Rank of the true next character among all (1 = the likeliest): [steps]; 0 for the last step."""
        out = np.zeros(self._length, dtype=np.int64)
        if self._length > 1:
            lp = self.log_probs[:-1]
            true = lp[np.arange(self._length - 1), self._next_ids()]
            out[:-1] = (lp > true[:, None]).sum(axis=1) + 1
        return out

    def top_k(self, step: int, k: int = 5) -> list[Prediction]:
        """The k likeliest next characters after `step`, best first (ties by vocabulary order)."""
        step = self.step_index(step)
        lp = self.log_probs[step]
        order = np.argsort(-lp, kind="stable")[:max(k, 0)]
        chars = self.tracer.vocab.chars
        return [Prediction(chars[i], float(np.exp(np.float64(lp[i])))) for i in order]

    def step_info(self, step: int, layer: int | None = None, k: int = 5) -> StepInfo:
        step, layer = self.step_index(step), self.layer_index(layer)
        values = {q.key: self.at(step, layer, q.key).copy() for q in self.quantities}
        last = step == self._length - 1
        next_char = None if last else self._chars[step + 1]
        if last:
            prob = rank = bits = None
        else:
            lp = self.log_probs[step]
            true = lp[self.tracer.vocab.index[next_char]]
            prob, bits = float(np.exp(np.float64(true))), float(-np.float64(true) / LN2)
            rank = int((lp > true).sum()) + 1
        return StepInfo(step, self._chars[step], layer, values, tuple(self.top_k(step, k)), next_char,
                        prob, rank, bits)

    # --- analysis (core.gates_analysis does the work) ----------------------------------------
    def saturation(self, low: float = 0.1, high: float = 0.9, keys: Sequence[str] | None = None) -> Saturation:
        """Fraction of steps each unit of each gate spends below `low` and above `high`."""
        return saturation(self, low, high, keys)

    def feature(self, name: str | None = None, regex: str | None = None) -> np.ndarray:
        """A text feature at every step (the value after reading that step's character): [steps]."""
        if not self._length:
            raise TraceError("The trace has no steps yet: extend it with some text first.")
        return text_feature(self.prefix + self.text, name, regex)[len(self.prefix):]

    def find_units(self, name: str | None = None, regex: str | None = None, key: str | None = None,
                   layer: int | None = None, top: int = 10) -> list[UnitMatch]:
        """Units of quantity `key` (default c for an LSTM, else h) ranked by |correlation| with a
        feature; all layers unless `layer` is given."""
        return find_units(self, self.feature(name, regex), key, layer, top)

    # --- export --------------------------------------------------------------------------
    def _json_header(self, layers: list[int], k: int, extra: dict | None = None) -> dict:
        rec = self.tracer.recurrence
        prob, rank, bits = self.next_prob, self.next_rank, self.surprisal_bits
        steps = []
        for t, ch in enumerate(self._chars):
            known = t < self._length - 1
            steps.append({
                "char": ch,
                "next": self._chars[t + 1] if known else None,
                "next_prob": float(prob[t]) if known else None,
                "next_rank": int(rank[t]) if known else None,
                "surprisal_bits": float(bits[t]) if known else None,
                "top": [[p.char, p.prob] for p in self.top_k(t, k)],
            })
        initial = self.initial_state
        return {
            "format": JSON_FORMAT,
            "model": {"cell": self.cell, "layers": self.layers, "hidden": self.hidden,
                      "vocab_size": len(self.tracer.vocab), "nonlinearity": "relu" if rec.relu else "tanh"},
            "dtype": str(rec.dtype).replace("torch.", ""),
            "prefix": self.prefix,
            "text": self.text,
            "layers": layers,
            "layer_indices": "0-based: 0 is the layer nearest the input, as in 'layers' and the layer axis of "
                             "'values'; the app and the CLI show index i as 'layer i+1 of N'",
            "quantities": {q.key: {"symbol": q.symbol, "standard": q.standard, "lesson": q.lesson,
                                   "formula": q.formula, "kind": q.kind} for q in self.quantities},
            "initial_state": {"h": _finite_list(initial.h[layers]),
                              "c": _finite_list(initial.c[layers]) if initial.c is not None else None},
            "steps": steps,
            **(extra or {}),
        }

    def _layers_arg(self, layers: Sequence[int] | None) -> list[int]:
        return [self.layer_index(layer) for layer in (range(self.layers) if layers is None else layers)]

    def to_dict(self, layers: Sequence[int] | None = None, k: int = 5) -> dict:
        """The whole trace as JSON-ready data: per-step characters and predictions (top k), and
        every quantity as values[key][step][layer][unit] for the chosen layers (all by default).
        Non-finite values (only a diverging relu RNN makes them) become None."""
        layers = self._layers_arg(layers)
        data = self._json_header(layers, k)
        data["values"] = {q.key: _finite_list(self.values(q.key)[:, layers]) for q in self.quantities}
        return data

    def write_json(self, path: Path | str, layers: Sequence[int] | None = None, k: int = 5,
                   extra: dict | None = None) -> Path:
        """Write to_dict() as JSON, streamed step by step (a long trace never sits in memory as
        Python lists), atomically: the file appears complete or not at all. `extra` adds top-level
        keys (an intervened trace's interventions and comparison)."""
        path = Path(path)
        layers = self._layers_arg(layers)
        header = json.dumps(self._json_header(layers, k, extra), ensure_ascii=False)
        digits = "%.17g" if self.tracer.dtype == torch.float64 else "%.9g"  # enough to round-trip exactly
        row_format = "[" + ",".join([digits] * self.hidden) + "]"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TraceError(f"Cannot write the trace to {path}: {exc.strerror or exc}. "
                             "Pick a folder you can write to.") from None
        try:
            with atomic_writer(path, "w", encoding="utf-8") as out:
                out.write(header[:-1] + ', "values": {')
                for n, quantity in enumerate(self.quantities):
                    values = self.values(quantity.key)[:, layers]
                    finite = bool(np.isfinite(values).all())
                    out.write(("" if n == 0 else ", ") + json.dumps(quantity.key) + ": [")
                    for t in range(values.shape[0]):
                        block = values[t]
                        text = ("[" + ",".join(row_format % tuple(row.tolist()) for row in block) + "]"
                                if finite else json.dumps(_finite_list(block)))
                        out.write(text if t == 0 else "," + text)
                    out.write("]")
                out.write("}}")
        except OSError as exc:
            raise TraceError(f"Cannot write the trace to {path}: {exc.strerror or exc}. "
                             "Pick a folder you can write to, with enough free space.") from None
        return path


class Continuation:
    """The state after one step of a trace, its next-character log-probabilities and its interventions
    (Trace.continuation_from): text drawn from there, step by step on the tracer's recurrence."""

    def __init__(self, tracer: GateTracer, prefix: str, h: torch.Tensor, c: torch.Tensor | None,
                 log_probs: torch.Tensor, edits: tuple[tuple[int, StepEdit], ...]):
        self.tracer, self.prefix, self._h, self._c = tracer, prefix, h, c
        self._log_probs, self._edits = log_probs, edits

    def draw(self, length: int, seed: int = 0, temperature: float = 1.0) -> str:
        """`length` characters (see Trace.continuation)."""
        if not temperature >= 0 or not math.isfinite(temperature):
            raise TraceError(f"The temperature must be 0 (the likeliest character) or more, not {temperature}.")
        rng = random.Random(seed)
        scratch = Trace(self.tracer, self.prefix, self._h, self._c)
        scratch._edits = self._edits
        chars = self.tracer.vocab.chars
        log_probs = self._log_probs
        out: list[str] = []
        for n in range(max(0, length)):
            if n:
                log_probs = scratch._buffers.log_probs[n - 1]
            out.append(chars[_draw(log_probs, temperature, rng)])
            if n < length - 1:
                scratch.extend(out[-1])
        return "".join(out)


def _draw(log_probs: torch.Tensor, temperature: float, rng: random.Random) -> int:
    """One character drawn from log-probabilities at `temperature` (0: the likeliest) with one float of `rng`,
    as the sampler draws (the same transform and the same draw)."""
    probs, indices = next_distribution(log_probs.to(torch.float64)[None], SampleSettings(temperature=temperature))
    return Sampler.draw_char(probs[0].tolist(), None if indices is None else indices[0].tolist(), rng)


def _finite_list(values: np.ndarray) -> list:
    """values.tolist() with NaN and infinities as None, so the result is valid JSON."""
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()

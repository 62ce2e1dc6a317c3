"""Gate tracer: the recomputed recurrence equals torch's modules; predictions, extension, analysis, errors."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch
from torch import nn

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import PlaygroundError, TraceError
from rnn_playground.core.gates import QUANTITIES, GateTracer, RecurrentState
from rnn_playground.core.gates_analysis import FEATURES, correlations, text_feature

TEXT = 'She said "run (fast)" and [then {left}].\nHe asked "why?" - no answer.\n'
VOCAB = Vocab.from_text(TEXT + "xyz")
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Wrapped(nn.Module):
    """A character model around any recurrent module: what GateTracer expects (embed, rnn, head)."""

    def __init__(self, rnn: nn.Module, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, rnn.input_size)
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, vocab_size)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embed(ids), state)
        return self.head(out), state


def make_model(cell: str, layers: int, hidden: int, dtype=torch.float64, seed: int = 0, embed: int = 7,
               scale: float = 3.0, **kwargs) -> Wrapped:
    torch.manual_seed(seed)
    rnn = MODULES[cell](embed, hidden, layers, batch_first=True, **kwargs)
    model = Wrapped(rnn, len(VOCAB))
    with torch.no_grad():  # larger than default weights, so gates leave the linear middle of the sigmoid
        for p in model.parameters():
            p.mul_(scale)
    return model.to(dtype).eval()


def truncated(rnn: nn.Module, layers: int) -> nn.Module:
    """The first `layers` layers of `rnn` as their own module (its output is that layer's h at every step)."""
    cls = type(rnn)
    kwargs = {"nonlinearity": rnn.nonlinearity} if cls is nn.RNN else {}
    first = cls(rnn.input_size, rnn.hidden_size, layers, batch_first=True, **kwargs).to(rnn.weight_hh_l0.dtype)
    first.load_state_dict({k: v for k, v in rnn.state_dict().items() if int(k.rsplit("_l", 1)[1]) < layers})
    return first.eval()


CASES = [(cell, layers, hidden) for cell in ("lstm", "gru", "rnn") for layers, hidden in ((1, 8), (2, 33), (3, 16))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cell,layers,hidden", CASES)
def test_every_step_equals_the_torch_module(cell, layers, hidden, dtype):
    model = make_model(cell, layers, hidden, dtype)
    trace = GateTracer(model, VOCAB).trace(TEXT)
    tol = TOL[dtype]
    ids = VOCAB.encode(TEXT).unsqueeze(0)
    with torch.no_grad():
        x = model.embed(ids)
        for layer in range(layers):  # every layer's h at every step
            out, _ = truncated(model.rnn, layer + 1)(x)
            assert np.abs(trace.values("h")[:, layer] - out[0].numpy()).max() < tol
        out, state = model.rnn(x)
    h_final, c_final = state if cell == "lstm" else (state, None)
    assert trace.values("h").dtype == (np.float64 if dtype == torch.float64 else np.float32)
    assert np.abs(trace.values("h")[:, -1] - out[0].numpy()).max() < tol
    assert np.abs(trace.final_state.h - h_final[:, 0].numpy()).max() < tol
    if cell == "lstm":
        assert np.abs(trace.final_state.c - c_final[:, 0].numpy()).max() < tol
        assert np.abs(trace.values("c")[-1] - c_final[:, 0].numpy()).max() < tol
    else:
        assert trace.final_state.c is None


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gates_are_the_ones_torch_used(cell):
    """Gates recomputed independently in numpy from the module's weights and its own h outputs."""
    model = make_model(cell, 2, 12)
    trace = GateTracer(model, VOCAB).trace(TEXT)
    ids = VOCAB.encode(TEXT).unsqueeze(0)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    with torch.no_grad():
        x = model.embed(ids)[0].numpy()
        for layer in range(2):
            h_all = truncated(model.rnn, layer + 1)(model.embed(ids))[0][0].numpy()
            h_prev = np.vstack([np.zeros((1, 12)), h_all[:-1]])
            w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{n}_l{layer}").numpy()
                                      for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            xi, hh = x @ w_ih.T + b_ih, h_prev @ w_hh.T + b_hh
            if cell == "lstm":
                i, f, g, o = np.split(xi + hh, 4, axis=1)
                expected = {"i": sigmoid(i), "f": sigmoid(f), "g": np.tanh(g), "o": sigmoid(o)}
                c = trace.values("c")[:, layer]
                c_prev = np.vstack([np.zeros((1, 12)), c[:-1]])
                assert np.abs(trace.values("kept")[:, layer] - expected["f"] * c_prev).max() < 1e-10
                assert np.abs(trace.values("written")[:, layer] - expected["i"] * expected["g"]).max() < 1e-10
                assert np.abs(c - (expected["f"] * c_prev + expected["i"] * expected["g"])).max() < 1e-10
                assert np.abs(trace.values("h")[:, layer] - expected["o"] * np.tanh(c)).max() < 1e-10
            else:
                (xr, xz, xn), (hr, hz, hn) = np.split(xi, 3, axis=1), np.split(hh, 3, axis=1)
                r, z = sigmoid(xr + hr), sigmoid(xz + hz)
                expected = {"r": r, "z": z, "n": np.tanh(xn + r * hn)}  # reset applied to W_hn h + b_hn
            for key, value in expected.items():
                assert np.abs(trace.values(key)[:, layer] - value).max() < 1e-10, key
            x = h_all


@pytest.mark.parametrize("kwargs", [{"nonlinearity": "relu"}, {"bias": False}])
def test_relu_rnn_and_models_without_biases(kwargs):
    cell = "rnn" if "nonlinearity" in kwargs else "lstm"
    model = make_model(cell, 2, 10, scale=0.5 if cell == "rnn" else 3.0, **kwargs)  # relu: no blow-up
    trace = GateTracer(model, VOCAB).trace(TEXT)
    with torch.no_grad():
        out, _ = model.rnn(model.embed(VOCAB.encode(TEXT).unsqueeze(0)))
    assert np.abs(out[0].numpy()).max() > 0.1
    assert np.abs(trace.values("h")[:, -1] - out[0].numpy()).max() < 1e-10


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_trace_from_a_prefix_continues_the_module_state(cell):
    model = make_model(cell, 2, 9)
    prefix, text = TEXT[:30], TEXT[30:]
    trace = GateTracer(model, VOCAB).trace(text, prefix=prefix)
    with torch.no_grad():
        x = model.embed(VOCAB.encode(prefix + text).unsqueeze(0))
        out, _ = model.rnn(x)
        _, after_prefix = model.rnn(x[:, :30])
    assert trace.prefix == prefix and trace.text == text and len(trace) == len(text)
    assert np.abs(trace.values("h")[:, -1] - out[0, 30:].numpy()).max() < 1e-10
    h0 = after_prefix[0] if cell == "lstm" else after_prefix
    assert np.abs(trace.initial_state.h - h0[:, 0].numpy()).max() < 1e-10
    # the same start given as an explicit state
    again = GateTracer(model, VOCAB).trace(text, state=trace.initial_state)
    assert np.abs(again.values("h") - trace.values("h")).max() < 1e-12


def test_predictions_match_an_independent_softmax():
    model = make_model("lstm", 2, 16)
    trace = GateTracer(model, VOCAB).trace(TEXT)
    with torch.no_grad():
        logits, _ = model(VOCAB.encode(TEXT).unsqueeze(0))
    logits = logits[0].numpy()
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    assert np.abs(trace.probs - probs).max() < 1e-10
    nxt = np.array([VOCAB.index[ch] for ch in TEXT[1:]])
    p_true = probs[np.arange(len(TEXT) - 1), nxt]
    assert np.abs(trace.next_prob[:-1] - p_true).max() < 1e-10
    assert np.abs(trace.surprisal_bits[:-1] - (-np.log2(p_true))).max() < 1e-9
    assert math.isnan(trace.next_prob[-1]) and math.isnan(trace.surprisal_bits[-1]) and trace.next_rank[-1] == 0
    for step in (0, 5, len(TEXT) - 2):
        order = np.argsort(-probs[step])
        assert trace.next_rank[step] == list(order).index(nxt[step]) + 1
        top = trace.top_k(step, 4)
        assert [p.char for p in top] == [VOCAB.chars[i] for i in order[:4]]
        assert [p.prob for p in top] == pytest.approx(list(probs[step, order[:4]]), abs=1e-12)
        info = trace.step_info(step, layer=0, k=4)
        assert info.char == TEXT[step] and info.next_char == TEXT[step + 1] and info.layer == 0
        assert info.next_prob == pytest.approx(p_true[step], abs=1e-12)
        assert info.next_rank == trace.next_rank[step]
        assert info.surprisal_bits == pytest.approx(-math.log2(p_true[step]), abs=1e-9)
        assert info.top == tuple(top)
        assert set(info.values) == {q.key for q in QUANTITIES["lstm"]}
        assert np.array_equal(info.values["f"], trace.values("f")[step, 0])
    last = trace.step_info(-1)
    assert last.next_char is None and last.next_prob is None and last.next_rank is None


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_extending_step_by_step_equals_tracing_the_whole_text(cell):
    model = make_model(cell, 2, 11)
    tracer = GateTracer(model, VOCAB)
    whole = tracer.trace(TEXT)
    stepped = tracer.start()
    assert len(stepped) == 0
    for n, ch in enumerate(TEXT):
        info = stepped.step(ch, layer=1)
        assert info.index == n and info.char == ch and info.next_char is None
    halves = tracer.trace(TEXT[:20]).extend(TEXT[20:])
    from_prefix = tracer.trace(TEXT[20:], prefix=TEXT[:20])
    for other in (stepped, halves):
        assert other.text == whole.text and len(other) == len(whole)
        for q in whole.quantities:
            assert np.abs(other.values(q.key) - whole.values(q.key)).max() < 1e-12, q.key
        assert np.abs(other.log_probs - whole.log_probs).max() < 1e-12
        assert np.array_equal(other.next_rank, whole.next_rank)
        assert np.abs(other.final_state.h - whole.final_state.h).max() < 1e-12
    for q in whole.quantities:
        assert np.abs(from_prefix.values(q.key) - whole.values(q.key)[20:]).max() < 1e-12, q.key
    # the previously last step learns its true next character once the text grows
    short = tracer.trace("Sh")
    assert short.step_info(1).next_char is None
    short.extend("e")
    assert short.step_info(1).next_char == "e"
    assert short.step_info(1).next_prob == pytest.approx(whole.next_prob[1], abs=1e-12)


def test_float32_extension_is_within_float32_rounding():
    model = make_model("lstm", 3, 20, torch.float32)
    tracer = GateTracer(model, VOCAB)
    whole = tracer.trace(TEXT)
    stepped = tracer.start()
    for ch in TEXT:
        stepped.extend(ch)
    assert np.abs(stepped.values("c") - whole.values("c")).max() < 1e-5


def test_the_tracer_keeps_its_own_copy_of_the_weights():
    model = make_model("lstm", 1, 5)
    tracer = GateTracer(model, VOCAB)
    before = tracer.trace(TEXT).values("h").copy()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert np.array_equal(tracer.trace(TEXT).values("h"), before)


def test_lesson_names_sit_beside_the_standard_ones():
    names = {q.key: q for q in QUANTITIES["lstm"]}
    assert names["i"].standard == "input gate" and "Learn gate" in names["i"].lesson
    assert "Learn gate: N_t" in names["g"].lesson
    assert names["f"].lesson.startswith("Forget gate")
    assert "Remember gate" in names["c"].lesson and "LTM_t" in names["c"].lesson
    assert "Use gate" in names["o"].lesson and "o_t * tanh(c_t)" in names["h"].formula
    assert names["kept"].formula == "kept_t = f_t * c_{t-1}" and names["written"].formula == "written_t = i_t * g_t"
    assert "input gate i_t (Learn gate" in names["i"].label
    assert [q.key for q in QUANTITIES["gru"]] == ["r", "z", "n", "h"]


def test_most_active_units_and_state_access():
    model = make_model("lstm", 2, 6)
    trace = GateTracer(model, VOCAB).trace(TEXT)
    values = trace.at(4, 1, "c")
    active = trace.most_active(4, 1, "c", n=3)
    assert [a.unit for a in active] == list(np.argsort(-np.abs(values))[:3])
    assert active[0].value == pytest.approx(values[active[0].unit])
    state = trace.state(4)
    assert np.array_equal(state.h, trace.values("h")[4]) and np.array_equal(state.c, trace.values("c")[4])
    assert np.array_equal(trace.at(0, 0, "kept"), trace.values("kept")[0, 0])
    assert np.array_equal(trace.at(7, 1, "kept"), trace.values("kept")[7, 1])


# --- saturation on a hand-built model --------------------------------------------------------------

def hand_built_lstm(chars: str = "abc") -> tuple[Wrapped, Vocab]:
    """One layer, two units, no recurrence, one-hot input: each gate depends only on the character."""
    vocab = Vocab(chars)
    rnn = nn.LSTM(len(vocab), 2, 1, batch_first=True)
    model = Wrapped(rnn, len(vocab)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.weight.copy_(torch.eye(len(vocab)))
        w, b = rnn.weight_ih_l0, rnn.bias_ih_l0     # rows: i0 i1 f0 f1 g0 g1 o0 o1
        w[0] = torch.tensor([10.0, -10.0, 0.0])     # i unit 0: 'a' high, 'b' low, 'c' 0.5
        b[2:4] = 10.0                               # f: always about 1
        b[6:8] = -10.0                              # o: always about 0
        w[7] = torch.tensor([0.0, 0.0, 20.0])       # o unit 1: 'c' lifts it to sigmoid(10)
    return model, vocab


def test_saturation_fractions_on_known_weights():
    model, vocab = hand_built_lstm()
    trace = GateTracer(model, vocab).trace("aaabbc" * 5)
    sat = trace.saturation()
    assert sat.keys == ("i", "f", "o") and sat.steps == 30
    assert sat.left["i"][0].tolist() == pytest.approx([2 / 6, 0.0])
    assert sat.right["i"][0].tolist() == pytest.approx([3 / 6, 0.0])
    assert sat.right["f"][0].tolist() == [1.0, 1.0] and sat.left["f"][0].tolist() == [0.0, 0.0]
    assert sat.left["o"][0].tolist() == pytest.approx([1.0, 5 / 6])
    assert sat.right["o"][0].tolist() == pytest.approx([0.0, 1 / 6])
    assert sat.unit(0, "i", 0) == pytest.approx((2 / 6, 3 / 6))
    rows = {row.key: row for row in sat.rows()}
    assert rows["i"].mean_left == pytest.approx(1 / 6) and rows["i"].mean_right == pytest.approx(1 / 4)
    assert rows["i"].never == 1 and rows["f"].mostly_right == 2 and rows["o"].mostly_left == 2
    # thresholds are adjustable: sigmoid(10) = 0.99995 is not above 0.99999
    strict = trace.saturation(low=1e-5, high=0.99999)
    assert strict.right["f"][0].tolist() == [0.0, 0.0] and strict.left["o"][0].tolist() == [0.0, 0.0]
    custom = trace.saturation(low=0.4, high=0.6, keys=["g"])
    assert custom.keys == ("g",) and custom.left["g"][0].tolist() == [1.0, 1.0]  # tanh(0) = 0 < 0.4


def test_saturation_keys_per_cell():
    gru = GateTracer(make_model("gru", 1, 4), VOCAB).trace(TEXT).saturation()
    assert gru.keys == ("r", "z") and gru.left["r"].shape == (1, 4)
    rnn = GateTracer(make_model("rnn", 1, 4), VOCAB).trace(TEXT).saturation()
    assert rnn.keys == () and rnn.rows() == []


# --- features and unit search -------------------------------------------------------------------

def test_builtin_features_on_a_known_text():
    text = 'ab "c(d)" e\n[x{y}]) z'
    f = {name: text_feature(text, name).tolist() for name in FEATURES}
    assert f["inside-quotes"] == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["inside-parens"] == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["bracket-depth"] == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 2, 2, 1, 0, 0, 0, 0]
    assert f["line-position"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert f["after-newline"] == [1 if ch == "\n" else 0 for ch in text]
    assert f["vowel"] == [1 if ch in "aeiou" else 0 for ch in text]
    assert text_feature(text, regex=r"\(.*?\)").tolist() == [0, 0, 0, 0, 0, 1, 1, 1] + [0] * 13
    assert text_feature(text, regex=r'"[^"]*(?=")').tolist() == f["inside-quotes"]
    assert text_feature(text, regex=r"x*").sum() == 1  # empty matches mark nothing


def test_features_see_the_prefix():
    model = make_model("lstm", 1, 4)
    trace = GateTracer(model, VOCAB).trace('x" y', prefix='a "n')
    assert trace.feature("inside-quotes").tolist() == [1, 0, 0, 0]
    assert trace.feature("line-position").tolist() == [5, 6, 7, 8]


def planted_quote_model(hidden: int = 6, unit: int = 4) -> tuple[Wrapped, Vocab]:
    """An LSTM whose unit `unit` flips its cell between -1/0 (outside) and +1 (inside) at every '"'.

    On a quote: input gate open, forget gate shut, candidate = +1 if the unit's h is not positive
    (outside) else -1. Elsewhere: forget gate open, input gate shut, so the cell holds its value.
    The other units have small random weights and never read the planted one.
    """
    vocab = Vocab(TEXT)
    quote = vocab.index['"']
    torch.manual_seed(3)
    rnn = nn.LSTM(len(vocab), hidden, 1, batch_first=True)
    model = Wrapped(rnn, len(vocab)).double().eval()
    H, K = hidden, 20.0
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(len(vocab)))
        for p in (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0):
            p.mul_(0.5)
        rows = {gate: gate * H + unit for gate in range(4)}  # i, f, g, o rows of the planted unit
        for row in rows.values():
            rnn.weight_ih_l0[row] = 0
            rnn.weight_hh_l0[row] = 0
            rnn.bias_ih_l0[row] = 0
            rnn.bias_hh_l0[row] = 0
        rnn.weight_hh_l0[:, unit] = 0                 # nobody else reads the planted unit
        rnn.bias_ih_l0[rows[0]] = -K                  # i: shut ...
        rnn.weight_ih_l0[rows[0], quote] = 2 * K      # ... open on a quote
        rnn.bias_ih_l0[rows[1]] = K                   # f: open ...
        rnn.weight_ih_l0[rows[1], quote] = -2 * K     # ... shut on a quote
        rnn.weight_hh_l0[rows[2], unit] = -K          # g = tanh(-K (h - 0.38)): +1 outside, -1 inside
        rnn.bias_hh_l0[rows[2]] = 0.38 * K
        rnn.bias_ih_l0[rows[3]] = K                   # o: open
    return model, vocab


def test_unit_search_finds_a_planted_quote_unit():
    model, vocab = planted_quote_model()
    # the prefix leaves the planted cell at -1 (outside), where every later closing quote leaves it too
    trace = GateTracer(model, vocab).trace(TEXT * 4, prefix='"a"')
    assert trace.initial_state.c[0, 4] < -0.99
    inside = trace.feature("inside-quotes")
    c = trace.values("c")[:, 0, 4]
    assert np.all(c[inside == 1] > 0.99) and np.all(c[inside == 0] < 0.01)  # the planted unit really tracks it
    matches = trace.find_units("inside-quotes", top=3)
    assert matches[0].layer == 0 and matches[0].unit == 4 and matches[0].key == "c"
    assert matches[0].correlation > 0.99 and abs(matches[1].correlation) < 0.9
    assert len(matches) == 3
    by_h = trace.find_units("inside-quotes", key="h", layer=0, top=1)
    assert by_h[0].unit == 4 and by_h[0].key == "h"
    by_regex = trace.find_units(regex=r'"[a-z?() ]*(?=")', top=1)  # the quoted spans of TEXT
    assert by_regex[0].unit == 4 and by_regex[0].correlation == pytest.approx(matches[0].correlation)


def test_correlations_treat_constant_units_as_zero():
    feature = np.array([0.0, 1.0, 0.0, 1.0])
    values = np.array([[0.3, 1.0, -2.0], [0.3, 2.0, -4.0], [0.3, 1.0, -2.0], [0.3, 2.0, -4.0]])
    assert correlations(values, feature).tolist() == pytest.approx([0.0, 1.0, -1.0])


# --- errors ------------------------------------------------------------------------------------------

def test_bad_text_gets_clear_errors():
    tracer = GateTracer(make_model("lstm", 1, 4), VOCAB)
    with pytest.raises(TraceError, match="empty"):
        tracer.trace("")
    with pytest.raises(TraceError, match=r"lacks: 'é', '€' \(the first at position 3\)"):
        tracer.trace("She€ é")
    with pytest.raises(TraceError, match="The prefix has characters"):
        tracer.trace("She", prefix="ü")
    trace = tracer.trace(TEXT)
    with pytest.raises(TraceError, match="Layer 3 does not exist: the model has layers 0 to 0"):
        trace.at(0, 3, "h")
    with pytest.raises(TraceError, match="no quantity 'r'. Choose one of: i, f, g, o, c, h, kept, written"):
        trace.values("r")
    with pytest.raises(TraceError, match="Step 500 is outside the trace"):
        trace.step_info(500)
    with pytest.raises(TraceError, match="Unknown text feature 'quotes'"):
        trace.find_units("quotes")
    with pytest.raises(TraceError, match="regular expression '\\(' is invalid"):
        trace.find_units(regex="(")
    with pytest.raises(TraceError, match="same value"):
        trace.find_units(regex="Q")
    with pytest.raises(TraceError, match="low < high"):
        trace.saturation(0.9, 0.1)
    with pytest.raises(TraceError, match="exactly one character"):
        trace.step("ab")
    with pytest.raises(TraceError, match="no steps yet"):
        tracer.start().saturation()
    with pytest.raises(TraceError, match="does not fit"):
        tracer.start(state=RecurrentState(np.zeros((2, 4)), None))
    assert issubclass(TraceError, PlaygroundError)


@pytest.mark.parametrize("module,message", [
    (nn.LSTM(7, 8, 1, batch_first=True, proj_size=4), r"proj_size=4 .* does not support"),
    (nn.GRU(7, 8, 2, batch_first=True, bidirectional=True), r"bidirectional=True, which the gate tracer does not"),
])
def test_unsupported_models_are_refused(module, message):
    with pytest.raises(TraceError, match=message):
        GateTracer(Wrapped(module, len(VOCAB)), VOCAB)


def test_foreign_models_are_refused():
    with pytest.raises(TraceError, match="lacks embed, rnn, head"):
        GateTracer(nn.Linear(3, 3), VOCAB)
    with pytest.raises(TraceError, match="understands nn.LSTM, nn.GRU and nn.RNN, not Linear"):
        model = make_model("lstm", 1, 4)
        model.rnn = nn.Linear(7, 4)
        GateTracer(model, VOCAB)
    with pytest.raises(TraceError, match=re.escape(f"but the vocabulary has {len(VOCAB) - 1}")):
        GateTracer(make_model("lstm", 1, 4), Vocab(VOCAB.chars[1:]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_json_export_round_trips_exactly(dtype, tmp_path):
    import json
    trace = GateTracer(make_model("lstm", 2, 5, dtype), VOCAB).trace(TEXT[:20], prefix="She ")
    path = trace.write_json(tmp_path / "sub" / "trace.json", layers=[1], k=2)
    data = json.loads(path.read_text(encoding="utf-8"))
    expected = trace.to_dict(layers=[1], k=2)
    assert {k: v for k, v in data.items() if k != "values"} == {k: v for k, v in expected.items() if k != "values"}
    assert data["prefix"] == "She " and data["layers"] == [1] and len(data["steps"]) == 20
    assert data["steps"][0]["top"][0][0] == trace.top_k(0, 1)[0].char
    for key in ("i", "c", "kept", "h"):
        assert np.array_equal(np.array(data["values"][key], dtype=trace.values(key).dtype),
                              trace.values(key)[:, [1]]), key
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(TraceError, match="Cannot write the trace"):
        trace.write_json(blocked / "trace.json")


def test_the_step_loop_thread_setting_is_restored():
    torch.set_num_threads(2)
    try:
        GateTracer(make_model("gru", 2, 4), VOCAB, loop_threads=1).trace(TEXT[:10])
        assert torch.get_num_threads() == 2
        GateTracer(make_model("gru", 2, 4), VOCAB, loop_threads=None).trace(TEXT[:10])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    for threads in (0, (os.cpu_count() or 1) + 1):
        with pytest.raises(TraceError, match="Threads for tracing must be a whole number from 1 to"):
            GateTracer(make_model("gru", 1, 4), VOCAB, loop_threads=threads)

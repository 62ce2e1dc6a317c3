"""Interventions in the gate tracer equal a hand-modified forward of the module (float64), and leave
the original trace and the steps before them exactly as they were."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import TraceError
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.intervene import Intervention
from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.intervene import parse_intervention

TEXT = 'She said "run (fast)" and [then {left}].\nHe asked "why?" - no answer.\n'
VOCAB = Vocab.from_text(TEXT)


def model_of(cell: str, layers: int = 2, hidden: int = 9, seed: int = 1) -> CharRNN:
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, hidden=hidden, layers=layers, embed=5,
                                dropout=0.0))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)  # gates away from the sigmoid's linear middle
    return model.double().eval()


def hand_forward(model: CharRNN, text: str, interventions: list[Intervention]):
    """The module's recurrence written out step by step, with the interventions applied where the
    tracer documents them: gates before use, c after the update (before h), h after h_t."""
    rnn, cell = model.rnn, model.config.cell
    units = model.config.hidden
    x = model.embed(VOCAB.encode(text)).detach()
    hs, cs = [], []

    def edit(layer: int, t: int, key: str, values: torch.Tensor) -> torch.Tensor:
        values = values.clone()
        for iv in interventions:
            if iv.layer == layer and iv.quantity == key and t >= iv.start:
                values[list(iv.units)] = iv.value
        return values

    with torch.no_grad():
        for layer in range(model.config.layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            h = torch.zeros(units, dtype=torch.float64)
            c = torch.zeros(units, dtype=torch.float64)
            out_h, out_c = [], []
            for t in range(x.shape[0]):
                a = w_ih @ x[t] + b_ih
                b = w_hh @ h + b_hh
                if cell == "lstm":
                    pre = a + b
                    i = edit(layer, t, "i", torch.sigmoid(pre[:units]))
                    f = edit(layer, t, "f", torch.sigmoid(pre[units:2 * units]))
                    g = torch.tanh(pre[2 * units:3 * units])
                    o = edit(layer, t, "o", torch.sigmoid(pre[3 * units:]))
                    c = edit(layer, t, "c", f * c + i * g)
                    h = edit(layer, t, "h", o * torch.tanh(c))
                elif cell == "gru":
                    r = edit(layer, t, "r", torch.sigmoid(a[:units] + b[:units]))
                    z = edit(layer, t, "z", torch.sigmoid(a[units:2 * units] + b[units:2 * units]))
                    n = torch.tanh(a[2 * units:] + r * b[2 * units:])
                    h = edit(layer, t, "h", (1 - z) * n + z * h)
                else:
                    h = edit(layer, t, "h", torch.tanh(a + b))
                out_h.append(h)
                out_c.append(c)
            x = torch.stack(out_h)
            hs.append(x)
            cs.append(torch.stack(out_c))
        log_probs = torch.log_softmax(model.head(x), dim=-1)
    return torch.stack(hs, 1).numpy(), torch.stack(cs, 1).numpy(), log_probs.numpy()


CASES = {
    "lstm f=0": ("lstm", [Intervention(0, (1, 2), "f", 0.0, 5)]),
    "lstm f=1": ("lstm", [Intervention(1, (4,), "f", 1.0, 11)]),
    "lstm o=0": ("lstm", [Intervention(1, (3,), "o", 0.0, 0)]),
    "lstm i=0": ("lstm", [Intervention(0, (0, 8), "i", 0.0, 20)]),
    "lstm c=0": ("lstm", [Intervention(0, (4,), "c", 0.0, 7)]),
    "lstm h clamp": ("lstm", [Intervention(1, (0,), "h", 0.5, 3)]),
    "lstm several": ("lstm", [Intervention(0, (4,), "c", -1.5, 7), Intervention(1, (0, 1), "h", 0.0, 12),
                              Intervention(0, (2,), "f", 1.0, 30)]),
    "gru h": ("gru", [Intervention(0, (6,), "h", 0.0, 4)]),
    "gru z r": ("gru", [Intervention(1, (2,), "z", 1.0, 9), Intervention(0, (5,), "r", 0.0, 2)]),
    "rnn h": ("rnn", [Intervention(0, (1, 2, 3), "h", 0.25, 6)]),
}


@pytest.mark.parametrize("case", CASES)
def test_intervened_trace_equals_a_hand_modified_forward(case):
    cell, interventions = CASES[case]
    model = model_of(cell)
    trace = GateTracer(model, VOCAB).trace(TEXT)
    before = {key: trace.values(key).copy() for key in ("h", "c") if key == "h" or cell == "lstm"}
    changed = trace.intervened(interventions)
    h, c, log_probs = hand_forward(model, TEXT, interventions)
    assert np.abs(changed.values("h") - h).max() < 1e-12
    if cell == "lstm":
        assert np.abs(changed.values("c") - c).max() < 1e-12
    assert np.abs(changed.log_probs - log_probs).max() < 1e-12
    for key, values in before.items():  # the original is untouched
        assert np.array_equal(trace.values(key), values)
    start = min(iv.start for iv in interventions)
    assert np.array_equal(changed.values("h")[:start], trace.values("h")[:start])  # copied, bit for bit
    assert np.array_equal(changed.log_probs[:start], trace.log_probs[:start])
    assert not np.allclose(changed.log_probs[start:], trace.log_probs[start:])  # it did change something
    for iv in interventions:  # the trace shows the forced or clamped values
        shown = changed.values(iv.quantity)[iv.start:, iv.layer][:, list(iv.units)]
        assert np.all(shown == iv.value)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_no_intervention_recomputes_the_same_trace_bit_for_bit(cell, dtype):
    model = model_of(cell).to(dtype)
    trace = GateTracer(model, VOCAB).trace(TEXT, prefix="He said ")
    again = trace.intervened([])
    for quantity in trace.quantities:
        assert np.array_equal(again.values(quantity.key), trace.values(quantity.key))
    assert np.array_equal(again.log_probs, trace.log_probs)
    assert again.text == trace.text and again.prefix == trace.prefix


def test_an_intervened_trace_keeps_its_interventions_when_extended():
    model = model_of("lstm")
    tracer = GateTracer(model, VOCAB)
    interventions = [Intervention(0, (4,), "c", 0.0, 7), Intervention(1, (2,), "o", 0.0, 15)]
    grown = tracer.trace(TEXT[:30]).intervened(interventions).extend(TEXT[30:])
    whole = tracer.trace(TEXT).intervened(interventions)
    assert grown.interventions == tuple(interventions)
    assert np.abs(grown.values("h") - whole.values("h")).max() < 1e-12
    assert np.abs(grown.log_probs - whole.log_probs).max() < 1e-12


def test_interventions_on_an_intervened_trace_add_to_its_own():
    trace = GateTracer(model_of("lstm"), VOCAB).trace(TEXT)
    first, second = Intervention(0, (4,), "c", 0.0, 25), Intervention(1, (2,), "f", 0.0, 9)
    stacked = trace.intervened([first]).intervened([second])
    together = trace.intervened([first, second])
    assert stacked.interventions == (first, second)
    assert np.array_equal(stacked.values("h"), together.values("h"))
    assert np.array_equal(stacked.log_probs, together.log_probs)


def test_silencing_a_unit_zeroes_it_and_nothing_before_the_position():
    trace = GateTracer(model_of("lstm"), VOCAB).trace(TEXT)
    silenced = trace.intervened([Intervention(1, (5,), "h", 0.0, 40), Intervention(1, (5,), "c", 0.0, 40)])
    assert np.all(silenced.values("h")[40:, 1, 5] == 0) and np.all(silenced.values("c")[40:, 1, 5] == 0)
    assert np.array_equal(silenced.values("h")[:40], trace.values("h")[:40])
    assert np.array_equal(silenced.values("h")[:, 0], trace.values("h")[:, 0])  # the layer below never sees it


@pytest.mark.parametrize("cell,intervention,message", [
    ("lstm", Intervention(2, (0,), "c", 0.0), "layer 3 does not exist; the model has layers 1 to 2"),
    ("lstm", Intervention(0, (9,), "c", 0.0), "unit 9 is out of range; the layer has units 0 to 8"),
    ("lstm", Intervention(0, (), "c", 0.0), "name at least one unit"),
    ("lstm", Intervention(0, (1,), "g", 0.0), "no quantity 'g' to intervene on; choose one of h, c, i, f, o"),
    ("gru", Intervention(0, (1,), "c", 0.0), "a GRU has no quantity 'c'"),
    ("rnn", Intervention(0, (1,), "z", 1.0), "choose one of h "),
    ("lstm", Intervention(0, (1,), "f", 0.5), "a gate can be forced to 0 or 1, not 0.5"),
    ("lstm", Intervention(0, (1,), "h", float("nan")), "any finite value"),
    ("lstm", Intervention(0, (1,), "h", 0.0, len(TEXT)), f"positions run from 0 to {len(TEXT) - 1}"),
])
def test_bad_interventions_get_clear_errors(cell, intervention, message):
    trace = GateTracer(model_of(cell), VOCAB).trace(TEXT)
    with pytest.raises(TraceError) as caught:
        trace.intervened([intervention])
    assert message in str(caught.value)


# --------------------------------------------------------------------------- the syntax and the CLI

@pytest.mark.parametrize("spec,expected", [
    ("L1:U42:c=0@120", Intervention(0, (42,), "c", 0.0, 120)),
    ("l2:u3,7,9:h=-1.5", Intervention(1, (3, 7, 9), "h", -1.5, 0)),
    ("L1:U3-5,9:f=1@7", Intervention(0, (3, 4, 5, 9), "f", 1.0, 7)),
    ("L2:U0:o=0", Intervention(1, (0,), "o", 0.0, 0)),
])
def test_the_intervention_syntax(spec, expected):
    assert parse_intervention(spec, "lstm", 2, 64, 200) == expected
    assert parse_intervention(expected.describe(), "lstm", 2, 64, 200) == expected


@pytest.mark.parametrize("spec,cell,message", [
    ("L1-U4-c=0", "lstm", "does not follow the syntax L<layer>:U<units>:<quantity>=<value>[@<position>]"),
    ("L3:U4:c=0", "lstm", "layer 3 does not exist; the model has layers 1 to 2"),
    ("Lx:U4:c=0", "lstm", "the layer must be L1 to L2, got Lx"),
    ("L0:U4:c=0", "lstm", "layer 0 does not exist"),
    ("L1:U64:c=0", "lstm", "unit 64 is out of range; the layer has units 0 to 63"),
    ("L1:U4-2:c=0", "lstm", "the unit range 4-2 runs backwards"),
    ("L1:Ua:c=0", "lstm", "units 'a' are not unit numbers"),
    ("L1:U4:g=0", "lstm", "an LSTM has no quantity 'g' to intervene on; use h or c (any value) or a gate i, f, o (0 "
     "or 1)"),
    ("L1:U4:c=0", "gru", "a GRU has no quantity 'c' to intervene on; use h (any value) or a gate r, z (0 or 1)"),
    ("L1:U4:z=0", "rnn", "an RNN has no quantity 'z' to intervene on; use h (any value)."),
    ("L1:U4:f=0.5", "lstm", "a gate can be forced to 0 or 1, not 0.5"),
    ("L1:U4:h=nan", "lstm", "the value 'nan' is not a finite number"),
    ("L1:U4:h=x", "lstm", "the value 'x' is not a finite number"),
    ("L1:U4:h=0@200", "lstm", "position 200 is outside the text; positions run from 0 to 199"),
    ("L1:U4:h=0@-1", "lstm", "the position must be a character index 0 to 199, got '-1'"),
])
def test_bad_specs_say_what_is_wrong_and_what_is_allowed(spec, cell, message):
    with pytest.raises(TraceError) as caught:
        parse_intervention(spec, cell, 2, 64, 200)
    assert message in str(caught.value)


def test_gates_cli_intervenes_and_writes_both_traces(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    text = 'def f(x):\n    return "Quoted (words)"\n'
    out_json = tmp_path / "intervened.json"
    specs = ["L2:U0-31:h=0@10", "L1:U3:f=1@12"]
    args = ["gates", str(tiny_run), "--text", text, "--json", str(out_json), "--top", "4"]
    assert main(args + [a for spec in specs for a in ("--intervene", spec)]) == 0
    out = capsys.readouterr().out
    assert "under L2:U" in out and "L1:U3:f=1@12" in out and "the 4 predictions that changed most" in out
    assert f"Mean surprisal change over the {len(text) - 11} characters after position 10:" in out

    tracer = GateTracer.from_checkpoint(tiny_run)
    original = tracer.trace(text)
    changed = original.intervened([Intervention(1, tuple(range(32)), "h", 0.0, 10),
                                   Intervention(0, (3,), "f", 1.0, 12)])
    data = json.loads(out_json.read_text(encoding="utf-8"))
    for key in ("h", "c", "f"):  # the states are the intervened trace's, exactly
        assert np.array_equal(np.array(data["values"][key], dtype=np.float32), changed.values(key)), key
    assert np.all(np.array(data["values"]["h"])[10:, 1] == 0)
    block = data["intervention"]
    assert [iv["spec"] for iv in block["interventions"]] == specs and block["from"] == 10
    assert block["interventions"][0]["layer"] == 1 and block["interventions"][0]["units"] == list(range(32))
    steps = block["steps"]
    assert [s["step"] for s in steps] == list(range(10, len(text) - 1))
    assert steps[0]["original"]["surprisal_bits"] == pytest.approx(original.surprisal_bits[10])
    assert steps[0]["intervened"]["surprisal_bits"] == pytest.approx(changed.surprisal_bits[10])
    assert len(steps[0]["original"]["top"]) == 3 and steps[0]["next"] == text[11]
    mean = np.mean(changed.surprisal_bits[10:-1] - original.surprisal_bits[10:-1])
    assert block["mean_surprisal_change_bits"] == pytest.approx(mean)
    assert f"{mean:+.3f} bits" in out


def test_gates_cli_intervention_errors_are_clear(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    for spec, message in (("L3:U1:c=0", "layer 3 does not exist; the model has layers 1 to 2"),
                          ("L1:U40:c=0", "unit 40 is out of range; the layer has units 0 to 31"),
                          ("L1:U1:n=0", "an LSTM has no quantity 'n'"),
                          ("L1:U1:c=0@99", "position 99 is outside the text; positions run from 0 to 2")):
        assert main(["gates", str(tiny_run), "--text", "def", "--intervene", spec]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["gates", str(tiny_run), "--text", "def", "--intervene", "L1:U1:c=0", "--find", "vowel"]) == 2
    assert "cannot be combined with --find" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gates", "--help"])
    assert "--intervene" in capsys.readouterr().out

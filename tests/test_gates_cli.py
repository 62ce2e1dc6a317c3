"""`rnn-playground gates` end to end on a tiny trained checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.gates import JSON_FORMAT, GateTracer
from tui.cli import main

from .conftest import TINY_TEXT

TEXT = 'def f(x):\n    return "Quoted (words)"\n'


def test_gates_table_json_and_unit_search(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    out_json = tmp_path / "trace.json"
    assert main(["gates", str(tiny_run), "--text", TEXT, "--rows", "5", "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    assert f"traced {len(TEXT)} characters" in captured.err and "LSTM 2x32" in captured.err
    out = captured.out
    assert f"{len(TEXT)} steps, layer 1" in out and "top 3 predictions" in out and "most active h_t" in out
    assert f"showing steps 0-4 of {len(TEXT)}" in out
    assert "gate saturation" in out and "forget gate f_t (Forget gate: f_t)" in out
    assert "input gate i_t (Learn gate" in out and "output gate o_t" in out

    data = json.loads(out_json.read_text(encoding="utf-8"))
    trace = GateTracer.from_checkpoint(tiny_run).trace(TEXT)
    assert data["format"] == JSON_FORMAT and data["text"] == TEXT and data["layers"] == [0, 1]
    assert data["model"]["cell"] == "lstm" and data["dtype"] == "float32"
    assert set(data["values"]) == {"i", "f", "g", "o", "c", "h", "kept", "written"}
    assert "Remember gate" in data["quantities"]["c"]["lesson"]
    for key in data["values"]:
        assert np.array_equal(np.array(data["values"][key], dtype=np.float32), trace.values(key)), key
    steps = data["steps"]
    assert len(steps) == len(TEXT) and [s["char"] for s in steps] == list(TEXT)
    assert steps[0]["next"] == "e" and steps[0]["next_prob"] == pytest.approx(trace.next_prob[0])
    assert steps[0]["next_rank"] == trace.next_rank[0] and len(steps[0]["top"]) == 3
    assert steps[-1]["next"] is None and steps[-1]["next_prob"] is None

    one_layer = tmp_path / "layer0.json"
    assert main(["gates", str(tiny_run), "--text", TEXT, "--layer", "0", "--json", str(one_layer),
                 "--threads", "0"]) == 0
    data = json.loads(one_layer.read_text(encoding="utf-8"))
    assert data["layers"] == [0] and np.array(data["values"]["c"]).shape == (len(TEXT), 1, 32)
    assert f"{len(TEXT)} steps, layer 0" in capsys.readouterr().out

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT[:2000], encoding="utf-8")
    assert main(["gates", str(tiny_run), "--file", str(corpus), "--find", "inside-quotes", "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert "units that best track inside-quotes" in out and "cell state c_t" in out
    expected = GateTracer.from_checkpoint(tiny_run).trace(TINY_TEXT[:2000]).find_units("inside-quotes", top=4)
    for match in expected:
        assert f"{match.correlation:+.3f}" in out
    assert main(["gates", str(tiny_run), "--file", str(corpus), "--regex", r"\[[^]]*", "--quantity", "f",
                 "--layer", "1", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert r"regex \[[^]]*" in out and "forget gate f_t" in out


def test_gates_errors_are_clear(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # one message, one line
    assert main(["gates", str(tiny_run), "--text", "naïve"]) == 2
    assert "lacks: 'ï' (the first at position 2)" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", ""]) == 2
    assert "the text is empty" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", "def", "--layer", "2"]) == 2
    assert "Layer 2 does not exist" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", "def f", "--regex", "("]) == 2
    assert "is invalid" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", "def", "--quantity", "z"]) == 2
    assert "no quantity 'z'" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--file", str(tmp_path / "missing.txt")]) == 2
    assert "Cannot read" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", "def", "--threads", "-1"]) == 2
    assert "--threads must be 0" in capsys.readouterr().err
    assert main(["gates", str(tmp_path / "nowhere"), "--text", "def"]) == 2
    assert "No checkpoint or run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gates", str(tiny_run), "--text", "a", "--file", "b"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["gates", "--help"])
    assert "inside-quotes" in capsys.readouterr().out

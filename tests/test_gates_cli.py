"""`rnn-playground gates` end to end on a tiny trained checkpoint."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rnn_playground.core.gates import JSON_FORMAT, GateTracer
from rnn_playground.tui.cli.main import main

from .conftest import TINY_TEXT, run_to_end, tiny_config

TEXT = 'def f(x):\n    return "Quoted (words)"\n'


def test_gates_table_json_and_unit_search(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    out_json = tmp_path / "trace.json"
    assert main(["gates", str(tiny_run), "--text", TEXT, "--rows", "5", "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    assert f"traced {len(TEXT)} characters" in captured.err and "LSTM 2x32" in captured.err
    out = captured.out
    assert f"{len(TEXT)} steps, layer 2 of 2" in out and "top 3 predictions" in out and "most active h_t" in out
    assert f"showing steps 0-4 of {len(TEXT)}" in out
    assert "gate saturation" in out and "forget gate f_t (Forget gate: f_t)" in out
    assert "input gate i_t (Learn gate" in out and "output gate o_t" in out

    data = json.loads(out_json.read_text(encoding="utf-8"))
    trace = GateTracer.from_checkpoint(tiny_run).trace(TEXT)
    assert data["format"] == JSON_FORMAT and data["text"] == TEXT and data["layers"] == [0, 1]
    assert data["layer_indices"].startswith("0-based")  # the JSON keeps indices, and says so
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

    # --layer picks the table's layer, counted from 1 as shown; --json still holds the full trace.
    layer0 = tmp_path / "layer0.json"
    assert main(["gates", str(tiny_run), "--text", TEXT, "--layer", "1", "--json", str(layer0),
                 "--threads", "0"]) == 0
    data = json.loads(layer0.read_text(encoding="utf-8"))
    assert data["layers"] == [0, 1] and np.array(data["values"]["c"]).shape == (len(TEXT), 2, 32)
    out = capsys.readouterr().out
    assert f"{len(TEXT)} steps, layer 1 of 2" in out and "2 of 2" in out  # the saturation table's layers

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT[:2000], encoding="utf-8")
    assert main(["gates", str(tiny_run), "--file", str(corpus), "--find", "inside-quotes", "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert "units that best track inside-quotes" in out and "cell state c_t" in out
    expected = GateTracer.from_checkpoint(tiny_run).trace(TINY_TEXT[:2000]).find_units("inside-quotes", top=4)
    for match in expected:
        assert f"{match.correlation:+.3f}" in out
    assert main(["gates", str(tiny_run), "--file", str(corpus), "--regex", r"\[[^]]*", "--quantity", "f",
                 "--layer", "2", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert r"regex \[[^]]*" in out and "forget gate f_t" in out
    assert out.count("2 of 2") == 2 and "1 of 2" not in out  # both matches from the second layer


def test_gates_errors_are_clear(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # one message, one line
    assert main(["gates", str(tiny_run), "--text", "naïve"]) == 2
    assert "lacks: 'ï' (the first at position 2)" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", ""]) == 2
    assert "--text is empty" in capsys.readouterr().err
    for layer in ("3", "0"):
        assert main(["gates", str(tiny_run), "--text", "def", "--layer", layer]) == 2
        assert f"--layer {layer} does not exist: the model has layers 1 to 2" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", "def f", "--regex", "("]) == 2
    assert "--regex must be a regular expression" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--text", "def", "--quantity", "z"]) == 2
    assert "--quantity must be one of i, f, g, o, c, h, kept, written for this LSTM, got 'z'" in capsys.readouterr().err
    assert main(["gates", str(tiny_run), "--file", str(tmp_path / "missing.txt")]) == 2
    assert "Cannot read" in capsys.readouterr().err
    for threads in ("-1", str((os.cpu_count() or 1) + 1), "100000"):  # torch crashes on absurd counts
        assert main(["gates", str(tiny_run), "--text", "def", "--threads", threads]) == 2
        assert "--threads must be 0 (torch's default) or 1 to" in capsys.readouterr().err
    for flag, least in (("--rows", 0), ("--top-k", 1), ("--units", 0), ("--top", 1)):
        assert main(["gates", str(tiny_run), "--text", "def", flag, str(least - 1)]) == 2
        assert f"{flag} must be {least} or more, got {least - 1}" in capsys.readouterr().err
    assert main(["gates", str(tmp_path / "nowhere"), "--text", "def"]) == 2
    assert "No checkpoint or run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gates", str(tiny_run), "--text", "a", "--file", "b"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["gates", "--help"])
    assert "inside-quotes" in capsys.readouterr().out


def table_row(out: str, step: int) -> list[str]:
    """The cells of one step's row in the printed table."""
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0] == str(step) and len(cells) == 8:
            return cells
    raise AssertionError(f"no row for step {step} in:\n{out}")


def test_gates_table_numbers_prefix_and_thresholds(tiny_run, capsys, monkeypatch):
    """The table's p(next), rank and bits are core's, for a trace that starts after --prefix;
    --low/--high reach the saturation table."""
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped cells
    prefix, text = "def f(", "x, y):\n    return"
    assert main(["gates", str(tiny_run), "--text", text, "--prefix", prefix, "--rows", "0",
                 "--low", "0.2", "--high", "0.75"]) == 0
    out = capsys.readouterr().out
    trace = GateTracer.from_checkpoint(tiny_run).trace(text, prefix=prefix)
    assert trace.step_info(0).next_prob != GateTracer.from_checkpoint(tiny_run).trace(text).step_info(0).next_prob
    for step in range(len(text) - 1):
        info = trace.step_info(step, k=3)
        cells = table_row(out, step)
        assert cells[3:6] == [f"{info.next_prob:.3f}", str(info.next_rank), f"{info.surprisal_bits:.2f}"], step
    assert table_row(out, len(text) - 1)[3:6] == ["-", "-", "-"]
    assert "(left: < 0.2, right: > 0.75)" in out
    forget = next(row for row in trace.saturation(0.2, 0.75).rows() if row.layer == 1 and row.key == "f")
    assert any("forget gate" in line and f"{forget.mean_left:.1%}" in line and f"{forget.mean_right:.1%}" in line
               for line in out.splitlines() if line.strip("│┃ ").startswith("2 of 2"))


@pytest.mark.parametrize("cell, shown", [("gru", "update gate z_t"), ("rnn", None)])
def test_gates_cli_on_gru_and_rnn(cell, shown, tiny_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from rnn_playground.core.trainer import Trainer
    trainer = Trainer(tiny_config(tiny_corpus, cell=cell, steps=4, val_every=4, run_name=cell,
                                  runs_dir=str(tmp_path / "runs")))
    run_to_end(trainer)
    out_json = tmp_path / f"{cell}.json"
    assert main(["gates", str(trainer.run_dir), "--text", TEXT, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert f"{len(TEXT)} steps, layer 2 of 2" in out
    if shown is None:
        assert "A vanilla RNN has no gates, so there is no gate saturation to report." in out
    else:
        assert "gate saturation" in out and shown in out
    data = json.loads(out_json.read_text(encoding="utf-8"))
    expected = {"gru": {"r", "z", "n", "h"}, "rnn": {"h"}}[cell]
    assert data["model"]["cell"] == cell and set(data["values"]) == expected


def test_gates_json_file_gets_the_umask_permissions_like_every_other_file(tiny_run, tmp_path):
    out_json = tmp_path / "trace.json"
    assert main(["gates", str(tiny_run), "--text", TEXT, "--rows", "2", "--json", str(out_json)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp alone makes 0600: the trace must be readable as the checkpoints beside it are.
    assert out_json.stat().st_mode & 0o777 == 0o666 & ~umask == (tiny_run / "last.safetensors").stat().st_mode & 0o777

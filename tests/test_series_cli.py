"""`rnn-playground series train|forecast` end to end, in-process and as a subprocess."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.checkpoint import load_checkpoint
from core.runs import read_status
from tui.cli import EXIT_ERROR, main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "8", "--batch", "4", "--length", "400", "--device", "cpu", "--val-every", "10", "--log-every", "5"]


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # Rich wraps at the terminal width; keep messages on one line


@pytest.fixture
def sine_run(tmp_path) -> Path:
    assert main(["series", "train", "--signal", "sine", "--steps", "20", "--name", "cli-sine", *TINY]) == 0
    return tmp_path / "runs" / "cli-sine"


def test_train_then_forecast_table(tmp_path, capsys):
    assert main(["series", "train", "--signal", "sine", "--steps", "20", "--name", "cli-sine", *TINY]) == 0
    sine_run = tmp_path / "runs" / "cli-sine"
    out, err = capsys.readouterr()
    assert "series signal sine: 400 points, 320 training / 80 validation" in err
    assert "seasonal period 40" in err and "finished at step 20" in err
    assert "model (one step)" in out and "last value" in out and "seasonal naive (period 40)" in out
    assert f"rnn-playground series forecast {sine_run} --steps 100" in err
    meta = load_checkpoint(sine_run / "last.safetensors").meta
    assert meta["kind"] == "series" and meta["progress"]["step"] == 20
    assert read_status(sine_run)["state"] == "finished"

    assert main(["series", "forecast", str(sine_run), "--steps", "4"]) == 0
    out, _ = capsys.readouterr()
    assert "free-running forecast past the end of signal sine" in out
    rows = [line for line in out.splitlines() if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert [row.split("│")[2].strip() for row in rows] == ["400", "401", "402", "403"]
    assert "MSE vs last value" in out and "100.00%" in out


def test_forecast_csv_out(sine_run, tmp_path, capsys):
    path = tmp_path / "forecast.csv"
    assert main(["series", "forecast", str(sine_run), "--steps", "12", "--csv-out", str(path), "--best"]) == 0
    out, err = capsys.readouterr()
    assert f"wrote 12 forecast points to {path}" in err and "best.safetensors" in out
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["index", "forecast"] and [int(r[0]) for r in rows[1:]] == list(range(400, 412))
    assert all(np.isfinite(float(r[1])) for r in rows[1:])
    assert main(["series", "forecast", str(sine_run), "--steps", "3", "--csv-out", "-", "--period", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "index,forecast" and len(out.splitlines()) == 4  # stdout is pure CSV
    assert "model (one step)" in err and "seasonal" not in err  # --period 0 turns the seasonal baseline off


def test_forecast_as_a_subprocess(sine_run):
    env = {**os.environ, "COLUMNS": "250"}
    result = subprocess.run([sys.executable, "-m", "tui", "series", "forecast", str(sine_run), "--steps", "5",
                             "--csv-out", "-", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 6 and rows[1][0] == "400"
    assert "last value" in result.stderr


def test_resume_from_the_cli(sine_run, capsys):
    capsys.readouterr()
    assert main(["series", "train", "--resume", str(sine_run), "--steps", "30"]) == 0
    _, err = capsys.readouterr()
    assert "resuming at step 20" in err and "finished at step 30" in err
    assert load_checkpoint(sine_run / "last.safetensors").meta["progress"]["step"] == 30
    assert main(["series", "train", "--resume", str(sine_run), "--preset", "course"]) == EXIT_ERROR
    assert "--preset applies to new runs" in capsys.readouterr().err


def test_csv_training_and_forecast_on_new_data(tmp_path, capsys):
    t = np.arange(300)
    path = tmp_path / "sales.csv"
    path.write_text("day,sales\n" + "".join(f"{i},{100 + 10 * np.sin(i * np.pi / 10):.4f}\n" for i in t))
    assert main(["series", "train", "--csv", str(path), "--column", "sales", "--period", "20", "--steps", "10",
                 "--name", "sales", "--seq", "10", *TINY]) == 0
    _, err = capsys.readouterr()
    assert f"series {path}: 300 points, 240 training / 60 validation; 1 input feature (sales)" in err
    newer = tmp_path / "newer.csv"
    newer.write_text(path.read_text() + "300,105.0\n301,103.0\n")
    assert main(["series", "forecast", str(tmp_path / "runs" / "sales"), "--steps", "2", "--csv", str(newer),
                 "--csv-out", str(tmp_path / "f.csv")]) == 0
    out, err = capsys.readouterr()
    assert "differs from the data the model was trained on" in err
    assert "seasonal naive (period 20)" in out
    assert [r[0] for r in csv.reader((tmp_path / "f.csv").open())][1:] == ["302", "303"]


def test_course_preset_from_the_cli(capsys):
    assert main(["series", "train", "--preset", "course", "--name", "course", "--device", "cpu",
                 "--steps", "5"]) == 0
    _, err = capsys.readouterr()
    assert "1 stream(s) x windows of 20 points" in err
    meta = load_checkpoint(Path(os.environ["RNN_PLAYGROUND_RUNS"]) / "course" / "last.safetensors").meta
    assert meta["model"]["cell"] == "rnn" and meta["model"]["hidden"] == 32 and meta["series"]["preset"] == "course"
    assert meta["config"]["lr"] == 0.01 and meta["config"]["batch"] == 1 and meta["config"]["steps"] == 5


@pytest.mark.parametrize("argv, message", [
    (["series", "train", "--signal", "sine", "--csv", "x.csv"], "Give either --signal or --csv, not both"),
    (["series", "train", "--signal", "triangle"], "Unknown signal 'triangle'"),
    (["series", "train", "--csv", "{missing}"], "No CSV file at"),
    (["series", "train", "--csv", "{bad}", "--column", "v"], "line 3, column 'v' holds 'n/a'"),
    (["series", "train", "--csv", "{bad}", "--column", "w"], "has no column named 'w'; its columns are: t, v"),
    (["series", "train", "--csv", "{bad}", "--column", "v", "--drop-bad-rows"], "training points are too few"),
    (["series", "forecast", "{missing}"], "No checkpoint or run folder at"),
])
def test_errors_are_clear_messages(tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,v\n0,1\n1,n/a\n2,3\n")
    argv = [a.format(missing=tmp_path / "missing.csv", bad=bad) for a in argv]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


def test_series_without_a_subcommand_shows_help(capsys):
    assert main(["series"]) == EXIT_ERROR
    assert "forecast" in capsys.readouterr().out

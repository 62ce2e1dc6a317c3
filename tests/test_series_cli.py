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

from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.runs import read_status
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.cli.terminal import EXIT_ERROR

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "8", "--batch", "4", "--device", "cpu", "--val-every", "10", "--log-every", "5"]
SINE = ["--signal", "sine", "--length", "400"]


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # Rich wraps at the terminal width; keep messages on one line


@pytest.fixture
def sine_run(tmp_path) -> Path:
    assert main(["series", "train", *SINE, "--steps", "20", "--name", "cli-sine", *TINY]) == 0
    return tmp_path / "runs" / "cli-sine"


def test_train_then_forecast_table(tmp_path, capsys):
    assert main(["series", "train", *SINE, "--steps", "20", "--name", "cli-sine", *TINY]) == 0
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
    one_step, forecast = out.split("free-running forecast past the end of signal sine")

    def first_cells(text: str, column: int) -> list[str]:
        rows = [line for line in text.splitlines() if line.startswith("│") and line.split("│")[1].strip().isdigit()]
        return [row.split("│")[column].strip() for row in rows]

    assert [row for row in first_cells(forecast, 2)] == ["400", "401", "402", "403"]
    # The README's one-step predictions over the validation range, before the forecast: 20 of its 80 points.
    assert "one-step predictions over the validation range (20 of 80 points, evenly spaced)" in one_step
    indices = [int(cell) for cell in first_cells(one_step, 1)]
    assert len(indices) == 20 and indices[0] == 320 and indices[-1] == 399 and indices == sorted(indices)
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
    result = subprocess.run([sys.executable, "-m", "rnn_playground.tui", "series", "forecast", str(sine_run),
                             "--steps", "5", "--csv-out", "-", "--device", "cpu"], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=120)
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
    (["series", "train", "--signal", "triangle"],
     "--signal must be a built-in signal (sine, sines, damped, noisy-sine, square, random-walk), got 'triangle'"),
    (["series", "train", "--csv", "{missing}"], "No CSV file at"),
    (["series", "train", "--csv", "{bad}", "--column", "v"], "line 3, column 'v' holds 'n/a'"),
    (["series", "train", "--csv", "{bad}", "--column", "w"], "has no column named 'w'; its columns are: t, v"),
    (["series", "train", "--csv", "{bad}", "--column", "v", "--drop-bad-rows"], "training points are too few"),
    (["series", "forecast", "{missing}"], "No checkpoint or run folder at"),
    (["series", "train", "--csv", "{empty}"], "is empty. A series CSV needs one number per row"),
    (["series", "train", "--csv", "{one}"], "has only one data row (line 2); a series needs many rows"),
    (["series", "train", "--signal", "sine", "--column", "foo", "--inputs", "bar", "--drop-bad-rows"],
     "--column, --inputs and --drop-bad-rows apply to a CSV file, but the data here is the built-in signal 'sine'"),
    (["series", "train", "--csv", "{bad}", "--freqs", "2", "--noise", "0.3", "--length", "50"],
     "--length, --noise and --freqs set up a built-in signal, but the data here is the CSV file"),
    (["series", "train", "--csv", "{bad}", "--data-seed", "0"], "--data-seed sets up a built-in signal"),
    (["series", "train", "--signal", "sine", "--freqs", "1,2"],
     "--freqs gives 2 frequencies, but the 'sine' signal has one. Give a single frequency, or use --signal sines"),
    (["series", "train", "--signal", "random-walk", "--freqs", "1"], "takes no --freqs"),
])
def test_errors_are_clear_messages(tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,v\n0,1\n1,n/a\n2,3\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "one.csv").write_text("value\n4.5\n")
    argv = [a.format(missing=tmp_path / "missing.csv", bad=bad, empty=tmp_path / "empty.csv", one=tmp_path / "one.csv")
            for a in argv]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


def test_series_without_a_subcommand_shows_help(capsys):
    assert main(["series"]) == EXIT_ERROR
    assert "forecast" in capsys.readouterr().out


def train(capsys, *argv: str):
    """Train a tiny series run from the command line; its last checkpoint's metadata and what it printed."""
    assert main(["series", "train", "--steps", "1", "--batch", "1", "--seq", "10", "--hidden", "4", "--device",
                 "cpu", "--val-every", "1", *argv]) == 0
    printed = capsys.readouterr()
    name = argv[argv.index("--name") + 1]
    return load_checkpoint(Path(os.environ["RNN_PLAYGROUND_RUNS"]) / name / "last.safetensors").meta, printed


def test_signal_flags_take_effect(capsys):
    one, _ = train(capsys, "--signal", "noisy-sine", "--length", "200", "--data-seed", "1", "--name", "a")
    again, _ = train(capsys, "--signal", "noisy-sine", "--length", "200", "--data-seed", "1", "--name", "b")
    other, _ = train(capsys, "--signal", "noisy-sine", "--length", "200", "--data-seed", "2", "--name", "c")
    assert one["data"]["fingerprint"] == again["data"]["fingerprint"] != other["data"]["fingerprint"]
    assert one["data"]["points"] == 200
    # A sine's standard deviation is 1/sqrt(2); noise of std 1 adds its variance.
    clean, _ = train(capsys, "--signal", "sine", "--length", "400", "--name", "clean")
    noisy, _ = train(capsys, "--signal", "sine", "--length", "400", "--noise", "1", "--name", "noisy")
    assert clean["normalizer"]["std"][0] == pytest.approx(0.5 ** 0.5, abs=0.01)
    assert noisy["normalizer"]["std"][0] == pytest.approx(1.5 ** 0.5, abs=0.1)
    fast, printed = train(capsys, "--signal", "sine", "--length", "400", "--freqs", "2", "--name", "fast")
    assert fast["data"]["period"] == 20 and "seasonal period 20" in printed.err
    assert fast["series"]["freqs"] == "2" and fast["data"]["fingerprint"] != clean["data"]["fingerprint"]


def test_csv_flags_take_effect(tmp_path, capsys):
    path = tmp_path / "pairs.csv"
    path.write_text("".join(f"{i},{i % 7},{(i * 3) % 5}\n" for i in range(5, 205)))
    plain, printed = train(capsys, "--csv", str(path), "--column", "1", "--name", "plain")
    assert plain["data"]["points"] == 200 and plain["data"]["header_line"] is None
    assert "no header row (columns numbered from 0; pass --header yes if line 1 is one)" in printed.err
    headed, printed = train(capsys, "--csv", str(path), "--column", "1", "--header", "yes", "--name", "headed")
    assert headed["data"]["points"] == 199 and headed["data"]["names"] == ["5"]
    assert "header row: line 1;" in printed.err
    both, printed = train(capsys, "--csv", str(path), "--column", "1", "--inputs", "2", "--name", "both")
    assert both["model"]["inputs"] == 2 and both["data"]["names"] == ["column 1", "column 2"]
    assert "2 input features (column 1, column 2)" in printed.err


def test_a_model_with_extra_inputs_forecasts_zero_steps_by_default(tmp_path, capsys):
    path = tmp_path / "two.csv"
    path.write_text("y,x\n" + "".join(f"{np.sin(i / 5):.5f},{np.cos(i / 5):.5f}\n" for i in range(200)))
    run = Path(os.environ["RNN_PLAYGROUND_RUNS"]) / "two"
    _, printed = train(capsys, "--csv", str(path), "--column", "y", "--inputs", "x", "--name", "two")
    assert f"validation metrics with: rnn-playground series forecast {run} --steps 0" in printed.err
    assert "--steps 100" not in printed.err
    assert main(["series", "forecast", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "the model also reads x, whose values past the end of the data are unknown, so there is no forecast" in err
    assert "model (one step)" in out and "free-running forecast" not in out
    assert main(["series", "forecast", str(run), "--steps", "3"]) == EXIT_ERROR
    assert "future values of the extra input columns (x)" in capsys.readouterr().err


def test_forecast_on_another_csv_with_other_column_names(tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_text("t,sales\n" + "".join(f"{i},{np.sin(i / 4):.5f}\n" for i in range(200)))
    other = tmp_path / "b.csv"
    other.write_text("when,revenue\n" + "".join(f"{i},{np.sin(i / 4 + 1):.5f}\n" for i in range(150)))
    run = Path(os.environ["RNN_PLAYGROUND_RUNS"]) / "sales"
    train(capsys, "--csv", str(path), "--column", "sales", "--name", "sales")
    assert main(["series", "forecast", str(run), "--csv", str(other)]) == EXIT_ERROR
    assert "has no column named 'sales'; its columns are: when, revenue" in capsys.readouterr().err
    assert main(["series", "forecast", str(run), "--csv", str(other), "--column", "revenue", "--steps", "2",
                 "--csv-out", str(tmp_path / "f.csv")]) == 0
    assert [r[0] for r in csv.reader((tmp_path / "f.csv").open())] == ["index", "150", "151"]
    assert main(["series", "forecast", str(run), "--csv", str(other), "--column", "revenue", "--inputs", "when",
                 "--steps", "0"]) == EXIT_ERROR
    assert "The model reads 1 feature(s)" in capsys.readouterr().err
    # A model trained on a signal reads no CSV columns.
    train(capsys, "--signal", "sine", "--length", "200", "--name", "sig")
    assert main(["series", "forecast", str(run.parent / "sig"), "--column", "2"]) == EXIT_ERROR
    assert "--column applies to a CSV file, but the data here is the built-in signal 'sine'" in \
        capsys.readouterr().err


def test_forecast_when_the_training_csv_has_moved(tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_text("v\n" + "".join(f"{np.sin(i / 4):.5f}\n" for i in range(200)))
    run = Path(os.environ["RNN_PLAYGROUND_RUNS"]) / "moving"
    train(capsys, "--csv", str(path), "--name", "moving")
    moved = path.rename(tmp_path / "b.csv")
    assert main(["series", "forecast", str(run), "--steps", "2"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"The run's data file {path} (the path stored with {run / 'last.safetensors'}) is not there any more" in err
    assert "give its new path with --csv NEWPATH" in err and "Check the path given to --csv" not in err
    assert main(["series", "forecast", str(run), "--steps", "2", "--csv", str(moved)]) == 0


def test_forecast_refuses_a_negative_period(sine_run, capsys):
    capsys.readouterr()
    assert main(["series", "forecast", str(sine_run), "--period", "-2"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "--period must be 0 (no seasonal-naive baseline) or a positive number of points, got -2" in err
    assert "Traceback" not in err


def test_an_automatic_period_too_long_for_a_short_series_is_a_note(capsys):
    _, printed = train(capsys, "--signal", "sine", "--length", "30", "--period", "0", "--seq", "5", "--name", "short")
    assert "note: no seasonal-naive baseline: signal sine repeats every 40 points, more than its 24-point" in \
        printed.err
    assert "use a longer --length or a lower --val-fraction" in printed.err and "shorter period" not in printed.err
    assert "model (one step)" in printed.out and "seasonal naive" not in printed.out
    # The run stores no period, so forecasting it later does not bring the too-long one back.
    assert main(["series", "forecast", str(Path(os.environ["RNN_PLAYGROUND_RUNS"]) / "short"), "--steps", "1"]) == 0
    assert "seasonal naive" not in capsys.readouterr().out

"""Headless commands as scripts and logs see them: no terminal, signals, pipes closed early.
Real subprocesses with real pipes; tiny models."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.events import SampleEvent, StepEvent, ValidationEvent
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.runs import read_status
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.cli.render import TrainDisplay
from rnn_playground.tui.viewmodel.monitor import RunMonitor

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "rnn_playground.tui"]  # the command line, run as `rnn-playground` is
TINY_FLAGS = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch", "4", "--seq", "8",
              "--sample-chars", "10", "--device", "cpu", "--no-amp"]


def env(**extra) -> dict:
    # COLUMNS unset: a process without a terminal must not wrap at Rich's 80-column default anyway.
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return {**base, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def wait_for_steps(metrics: Path, steps: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and (not metrics.exists() or metrics.read_text().count('"step"') < steps):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)


# --------------------------------------------------------------------------- SIGTERM / SIGHUP

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_at_a_step_save_and_exit_128_plus_signum(signum, tiny_corpus, tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen([*CLI, "train", "--corpus", str(tiny_corpus), "--steps",
                             "1000000", "--name", "signalled", "--runs-dir", str(runs_dir), *TINY_FLAGS,
                             "--val-every", "100000"],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_steps(runs_dir / "signalled" / "metrics.jsonl", 3, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    reason = {signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}[signum]
    assert proc.returncode == 128 + signum, err
    assert f"stopped ({reason})" in err and "Traceback" not in err
    checkpoint = load_checkpoint(runs_dir / "signalled" / "last.safetensors")
    assert checkpoint.meta["progress"]["step"] > 0
    status = read_status(runs_dir / "signalled")
    assert status["state"] == "stopped" and status["step"] == checkpoint.meta["progress"]["step"]


def test_a_hangup_during_a_sigterm_stop_does_not_cut_the_save_short(tiny_corpus, tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen([*CLI, "train", "--corpus", str(tiny_corpus), "--steps",
                             "1000000", "--name", "twice", "--runs-dir", str(runs_dir), *TINY_FLAGS,
                             "--val-every", "100000"],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_steps(runs_dir / "twice" / "metrics.jsonl", 3, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.02)
    proc.send_signal(signal.SIGHUP)  # (Python may run the two handlers in either order)
    out, err = proc.communicate(timeout=60)
    first = {"terminated": signal.SIGTERM, "hangup": signal.SIGHUP}[err.split("stopped (")[1].split(")")[0]]
    assert proc.returncode == 128 + first, err
    assert "Traceback" not in err
    assert read_status(runs_dir / "twice")["state"] == "stopped"
    assert load_checkpoint(runs_dir / "twice" / "last.safetensors").meta["progress"]["step"] > 0


def test_series_train_stops_on_sigterm_and_saves(tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen([*CLI, "series", "train", "--signal", "sine", "--length", "400",
                             "--hidden", "8", "--batch", "4", "--device", "cpu", "--steps", "1000000",
                             "--val-every", "100000", "--log-every", "5", "--name", "series-term",
                             "--runs-dir", str(runs_dir)],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_steps(runs_dir / "series-term" / "metrics.jsonl", 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped (terminated)" in err and "Traceback" not in err
    assert load_checkpoint(runs_dir / "series-term" / "last.safetensors").meta["progress"]["step"] > 0
    assert read_status(runs_dir / "series-term")["state"] == "stopped"


# --------------------------------------------------------------------------- pipes closed early

def pipe_into_closed_reader(args: list[str], *, stream: str = "stdout") -> subprocess.CompletedProcess:
    """Run the CLI with `stream` going into a pipe whose reader has already gone (`... | head -c0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write gets EPIPE
    try:
        kwargs = {"stdout": write_end, "stderr": subprocess.PIPE} if stream == "stdout" else \
                 {"stdout": subprocess.PIPE, "stderr": write_end}
        result = subprocess.run([*CLI, *args], cwd=ROOT, env=env(), timeout=120, **kwargs)
    finally:
        os.close(write_end)
    return result


def test_sample_into_head_exits_quietly(tiny_run):
    proc = subprocess.Popen([*CLI, "sample", str(tiny_run), "--length", "200000"],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(20)  # like `head -c 20`: read a little, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert len(head) == 20
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert proc.returncode == 128 + signal.SIGPIPE


@pytest.mark.parametrize("command", ["runs", "gates", "series-forecast", "sample"])
def test_every_streaming_command_exits_quietly_into_a_closed_pipe(command, tiny_run, tmp_path):
    args = {"runs": ["runs", str(tiny_run.parent)],
            "gates": ["gates", str(tiny_run), "--text", "hello there", "--threads", "1"],
            "sample": ["sample", str(tiny_run), "--length", "50"]}.get(command)
    if command == "series-forecast":
        assert main(["series", "train", "--signal", "sine", "--length", "400", "--hidden", "8", "--batch", "4",
                     "--device", "cpu", "--steps", "5", "--name", "s", "--runs-dir", str(tmp_path / "s")]) == 0
        args = ["series", "forecast", str(tmp_path / "s" / "s"), "--steps", "3"]
    result = pipe_into_closed_reader(args)
    err = result.stderr.decode()
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert result.returncode == 128 + signal.SIGPIPE


def test_train_into_a_closed_pipe_stops_saves_and_exits_quietly(tiny_corpus, tmp_path):
    """`train ... 2>&1 | head`: the progress stream's reader goes away. Like a Unix tool the command
    ends quietly (128 + SIGPIPE), but at a step boundary with the run saved and marked stopped."""
    runs_dir = tmp_path / "runs"
    result = pipe_into_closed_reader(["train", "--corpus", str(tiny_corpus), "--steps", "1000000", "--name",
                                      "piped", "--runs-dir", str(runs_dir), *TINY_FLAGS, "--val-every", "100000"],
                                     stream="stderr")
    assert result.returncode == 128 + signal.SIGPIPE
    assert b"Traceback" not in result.stdout
    assert load_checkpoint(runs_dir / "piped" / "last.safetensors").meta["progress"]["step"] >= 0
    assert read_status(runs_dir / "piped")["state"] == "stopped"


# --------------------------------------------------------------------------- output for logs

def test_progress_lines_in_a_log_are_one_line_each(tiny_corpus, tmp_path):
    long_dir = tmp_path / ("a-runs-folder-with-a-long-name-" * 3)
    result = subprocess.run([*CLI, "train", "--corpus", str(tiny_corpus), "--steps", "20",
                             "--val-every", "10", "--name", "logged-run-with-a-long-name", "--runs-dir",
                             str(long_dir), *TINY_FLAGS], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    [started] = [line for line in lines if line.startswith("run logged-run-with-a-long-name in ")]
    assert str(long_dir / "logged-run-with-a-long-name") in started and started.endswith("validation characters")
    [finished] = [line for line in lines if line.startswith("finished at step 20")]
    assert "best val loss" in finished


def test_runs_lists_whole_names_and_dates_without_a_terminal_and_as_json(tiny_run, tmp_path):
    long_name = tiny_run.parent / ("a-run-name-far-longer-than-eighty-columns-allow-" * 2 + "end")
    tiny_run.rename(long_name)
    result = subprocess.run([*CLI, "runs", str(long_name.parent)], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if long_name.name in line]
    assert "LSTM 2x32" in row and len([c for c in row.split("│") if c.strip()]) >= 6
    assert __import__("re").search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row)

    result = subprocess.run([*CLI, "runs", str(long_name.parent), "--json"], cwd=ROOT,
                            env=env(), capture_output=True, text=True, timeout=60)
    [record] = json.loads(result.stdout)
    assert record["name"] == long_name.name and record["path"] == str(long_name.resolve())
    assert record["model"] == "LSTM 2x32" and record["step"] == 40 and record["kind"] == "char"
    assert record["best_val_loss"] == pytest.approx(read_status(long_name)["best_val_loss"])
    assert record["live"] is False and record["size_bytes"] > 0 and "T" in record["updated_iso"]


def test_runs_shows_a_small_series_loss_with_significant_digits(tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    assert main(["series", "train", "--signal", "sine", "--length", "400", "--hidden", "8", "--batch", "4",
                 "--device", "cpu", "--steps", "5", "--name", "tiny-mse", "--runs-dir", str(runs_dir)]) == 0
    status = json.loads((runs_dir / "tiny-mse" / "run.json").read_text())
    status["best_val_loss"] = 0.0000123
    (runs_dir / "tiny-mse" / "run.json").write_text(json.dumps(status))
    capsys.readouterr()
    assert main(["runs", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "1.23e-05" in out and "0.0000" not in out


def test_plain_log_gives_small_losses_significant_digits_and_no_series_samples():
    log = io.StringIO()
    display = TrainDisplay(Console(file=log), "rnn-playground series train", show_samples=False)
    monitor = RunMonitor()  # the one fold: the display renders its snapshots, as the app does
    for event in (StepEvent(step=10, total_steps=100, epoch=0.5, loss=3.2e-5, tokens_per_s=1000.0, lr=1e-3,
                            elapsed_s=3.0, eta_s=30.0),
                  ValidationEvent(step=10, val_loss=2.5e-5, best_val_loss=2.5e-5, is_best=True),
                  SampleEvent(step=10, text="validation MSE: model 2.5e-05"),
                  ValidationEvent(step=20, val_loss=2.6e-5, best_val_loss=2.5e-5, is_best=False)):
        monitor.add(event)
        display.show(monitor.snapshot())
    text = log.getvalue()
    # a validation that is the best says so; one that is not gives the best beside it
    assert "step 10: val loss 2.50e-05, best so far" in text and "loss 3.20e-05" in text
    assert "step 20: val loss 2.60e-05 (best 2.50e-05)" in text
    assert "0.0000" not in text and "sample at step" not in text


def test_series_train_prints_no_sample_lines(tmp_path, capsys):
    assert main(["series", "train", "--signal", "sine", "--length", "400", "--hidden", "8", "--batch", "4",
                 "--device", "cpu", "--steps", "20", "--val-every", "5", "--name", "no-samples",
                 "--runs-dir", str(tmp_path / "runs")]) == 0
    err = capsys.readouterr().err
    assert "step 20: val loss" in err and "sample at step" not in err


def test_sample_does_not_echo_a_rejected_prime(tiny_run, capsys):
    assert main(["sample", str(tiny_run), "--prime", "Ωmega"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "'Ω'" in captured.err


def test_gates_prints_every_step_of_the_layers_gate_means(tiny_run, capsys):
    text = "hello there"
    assert main(["gates", str(tiny_run), "--text", text, "--layer", "1", "--rows", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "gate means over the 32 units of layer 1 of 2, per step" in out
    trace = GateTracer.from_checkpoint(tiny_run).trace(text)
    section = out.split("gate means over the 32 units of layer 1 of 2, per step")[1].split("gate saturation")[0]
    header = next(line for line in section.splitlines() if "step" in line and "i_t" in line)
    assert all(symbol in header for symbol in ("i_t", "f_t", "g_t", "o_t", "h_t"))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in section.splitlines()
            if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert [int(row[0]) for row in rows] == list(range(len(text)))
    for step, row in enumerate(rows):
        assert row[1] == ("␣" if text[step] == " " else text[step])
        expected = [f"{trace.values(key)[step, 0].mean():+.2f}" for key in ("i", "f", "g", "o", "h")]
        assert row[2:7] == expected, step


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_train_in_a_terminal_that_vanishes_saves_on_sighup(tiny_corpus, tmp_path):
    """The SSH session closes: the terminal is gone (writes fail with EIO) and SIGHUP arrives. The
    live panel must not end the run before it saves: stopped at a step, saved, exit 129."""
    import pty
    runs_dir = tmp_path / "runs"
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, "train", "--corpus", str(tiny_corpus), "--steps",
                             "1000000", "--name", "hung-up", "--runs-dir", str(runs_dir), *TINY_FLAGS,
                             "--val-every", "100000"],
                            cwd=ROOT, env={**env(), "TERM": "xterm-256color"}, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.time() + 90
        metrics = runs_dir / "hung-up" / "metrics.jsonl"
        while time.time() < deadline and (not metrics.exists() or metrics.read_text().count('"step"') < 3):
            assert proc.poll() is None, seen
            import select
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 1 << 16)
        assert b"status" in seen  # the live panel was drawn: this is the terminal path
    finally:
        os.close(master)  # the terminal goes away first, as when the SSH connection drops
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 128 + signal.SIGHUP
    checkpoint = load_checkpoint(runs_dir / "hung-up" / "last.safetensors")
    assert checkpoint.meta["progress"]["step"] > 0
    assert read_status(runs_dir / "hung-up")["state"] == "stopped"

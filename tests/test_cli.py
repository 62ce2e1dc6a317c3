"""The headless command end to end: real processes, real files."""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.events import SampleEvent, StepEvent, ValidationEvent
from rnn_playground.core.runs import read_status
from rnn_playground.tui.cli.main import build_parser, main
from rnn_playground.tui.cli.render import TrainDisplay
from rnn_playground.tui.viewmodel.monitor import RunMonitor

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--hidden", "32", "--embed", "16", "--batch", "8", "--seq", "16", "--val-every", "10",
              "--sample-chars", "10", "--device", "cpu", "--no-amp"]


def cli(*args: str, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnn_playground.tui", *args], cwd=kwargs.pop("cwd", ROOT), env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_train_runs_sample_end_to_end(tiny_corpus, tmp_path, capsys):
    runs_dir = tmp_path / "cli-runs"
    code = main(["train", "--corpus", str(tiny_corpus), "--steps", "20", "--name", "first",
                 "--runs-dir", str(runs_dir), *TINY_FLAGS])
    assert code == 0
    assert (runs_dir / "first" / "last.safetensors").exists()
    err = capsys.readouterr().err
    assert "finished at step 20" in err

    assert main(["runs", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "first" in out and "LSTM 2x32" in out and "20" in out

    assert main(["sample", str(runs_dir / "first"), "--prime", "The ", "--length", "50", "--seed", "7"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("The ") and len(first.rstrip("\n")) == 54
    assert main(["sample", str(runs_dir / "first" / "best.safetensors"), "--length", "5"]) == 0
    assert len(capsys.readouterr().out.strip("\n")) >= 4
    assert main(["sample", str(runs_dir / "first"), "--prime", "The ", "--length", "50", "--seed", "7"]) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main(["sample", str(runs_dir / "first"), "--prime", "The ", "--length", "50", "--weights", "int8"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("The ") and "int8 weights" in captured.err
    assert main(["sample", str(runs_dir / "first"), "--weights", "fp32", "--length", "5"]) == 0
    assert "fp32 weights" in capsys.readouterr().err

    assert main(["train", "--resume", str(runs_dir / "first"), "--steps", "30"]) == 0
    assert load_checkpoint(runs_dir / "first" / "last.safetensors").meta["progress"]["step"] == 30


def test_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 500)
    assert main(["train", "--corpus", str(bad), *TINY_FLAGS]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "byte offset 3" in err and "Traceback" not in err
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "No checkpoint or run folder" in capsys.readouterr().err
    assert main(["train", "--device", "tpu", "--corpus", str(bad)]) == 2
    assert "Unknown device 'tpu'" in capsys.readouterr().err


def test_train_refuses_a_negative_or_absurd_min_lr(tiny_corpus, tmp_path, capsys):
    runs_dir = tmp_path / "cli-runs"
    common = ["train", "--corpus", str(tiny_corpus), "--steps", "5", "--runs-dir", str(runs_dir), *TINY_FLAGS]
    assert main([*common, "--lr", "0.01", "--min-lr", "1e38"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("error: --min-lr (the floor the learning rate decays to) must be zero or positive (and sane), got "
            "1e+38. Set --min-lr between 0 and --lr (0.01).") in err and "Traceback" not in err
    assert main([*common, "--min-lr", "-0.001"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("error: --min-lr (the floor the learning rate decays to) must be zero or positive (and sane), got "
            "-0.001. Set --min-lr between 0 and --lr (0.003).") in err
    assert not runs_dir.exists()  # refused before anything was written
    assert main([*common, "--lr", "0.01", "--min-lr", "0.01", "--name", "floor-at-peak"]) == 0
    assert read_status(runs_dir / "floor-at-peak")["state"] == "finished"


def test_sample_refuses_prime_outside_vocab(tiny_run, capsys):
    assert main(["sample", str(tiny_run), "--prime", "Ωmega"]) == 2
    assert "'Ω'" in capsys.readouterr().err


def test_every_train_flag_is_documented_with_its_default():
    result = cli("train", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for name in TrainConfig.__dataclass_fields__:
        flag = "--" + name.replace("_", "-")
        if name == "run_name":
            flag = "--name"
        assert flag in help_text, flag
    assert "(default: 512)" in help_text and "(default: builtin:python-stdlib)" in help_text
    for sub in ("sample", "runs", "devices"):
        assert cli(sub, "--help").returncode == 0


def command_paths(parser: argparse.ArgumentParser, path=()):
    """Every command and subcommand of the parser, as argument lists: [], ["train"], ["series", "train"], ..."""
    yield list(path)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_paths(sub, (*path, name))


def help_lines(capsys, path: list[str]) -> list[str]:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out.splitlines()


def test_every_flag_states_its_default_once(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag's help
    paths = list(command_paths(build_parser()))
    assert ["series", "train"] in paths and ["gates"] in paths and ["sample"] in paths
    pages = {" ".join(path): help_lines(capsys, path) for path in paths}
    for page, lines in pages.items():
        for line in lines:
            assert "(default: None)" not in line and "(default: )" not in line, (page, line)
            assert len(re.findall(r"\(default\b|[;.]\s+default\b", line, re.IGNORECASE)) <= 1, (page, line)

    def flag(page: str, name: str) -> str:
        [line] = [line for line in pages[page] if re.match(rf"\s+{name}\b", line)]
        return line.rstrip()

    assert flag("series train", "--steps").endswith("stop at this total step count (default when no budget is "
                                                    "given: 2000)")
    assert flag("series train", "--hidden").endswith("hidden units per layer (default: 32)")
    assert flag("series train", "--signal").endswith("(default: sine, unless --csv)")
    assert flag("series train", "--csv").endswith("instead of a built-in signal")  # no default worth stating
    assert flag("train", "--minutes").endswith("(default when no budget is given: 10)")
    assert flag("train", "--hidden").endswith("(default: 512)")
    assert flag("sample", "--seed").endswith("seed for a reproducible sample (default: random)")
    assert flag("sample", "--prime").endswith("text to start from (default: a newline)")
    # "torch's default" in its text is not its default
    assert flag("gates", "--threads").endswith("default: 1 for tracing, the free cores for --rank)")


def test_live_progress_panel_keeps_each_part_on_its_own_lines():
    display = TrainDisplay(Console(file=io.StringIO()), "rnn-playground train")  # not a terminal: no Live
    monitor = RunMonitor()
    for event in (StepEvent(step=50, total_steps=100, epoch=0.5, loss=1.25, tokens_per_s=1000.0, lr=1e-3,
                            elapsed_s=30.0, eta_s=30.0),
                  ValidationEvent(step=50, val_loss=1.5, best_val_loss=1.5, is_best=True),
                  SampleEvent(step=50, text="the quick brown fox " * 6)):
        monitor.add(event)
        display.show(monitor.snapshot())
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(display._render())  # the view the live panel shows on a terminal
    lines = console.export_text().splitlines()
    assert lines and all(len(line) <= 80 for line in lines)
    [bar] = [line for line in lines if "━" in line]
    assert re.fullmatch(r"│ progress\s+[━╺╸ ]+│", bar)
    [top] = [i for i, line in enumerate(lines) if "sample" in line]
    assert re.fullmatch(r"│ ╭─+ sample ─+╮ │", lines[top]) and lines[top - 1] == bar
    assert all(re.fullmatch(r"│ │ .* │ │", line) for line in lines[top + 1:top + 3])
    assert lines[-1] == "╰" + "─" * 78 + "╯"


def test_devices_lists_cpu():
    result = cli("devices")
    assert result.returncode == 0 and "cpu" in result.stdout


def test_ctrl_c_stops_cleanly_and_saves(tiny_corpus, tmp_path):
    runs_dir = tmp_path / "sigint-runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(tiny_corpus),
                             "--steps", "1000000", "--name", "interrupted", "--runs-dir", str(runs_dir), *TINY_FLAGS,
                             "--val-every", "100000"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = runs_dir / "interrupted" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or metrics.read_text().count('"step"') < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped (interrupted)" in err
    checkpoint = load_checkpoint(runs_dir / "interrupted" / "last.safetensors")
    assert checkpoint.meta["progress"]["step"] > 0
    assert read_status(runs_dir / "interrupted")["state"] == "stopped"

"""The headless command end to end: real processes, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from core.checkpoint import load_checkpoint
from core.runs import read_status
from core.trainer import TrainConfig
from tui.cli import main


ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--hidden", "32", "--embed", "16", "--batch", "8", "--seq", "16", "--val-every", "10",
              "--sample-chars", "10", "--device", "cpu", "--no-amp"]


def cli(*args: str, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui", *args], cwd=kwargs.pop("cwd", ROOT), env=env,
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


def test_sample_refuses_prime_outside_vocab(tiny_run, capsys):
    assert main(["sample", str(tiny_run), "--prime", "Ωmega"]) == 2
    assert "'Ω'" in capsys.readouterr().err


def test_every_train_flag_is_documented_with_its_default():
    result = cli("train", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for name, field in TrainConfig.__dataclass_fields__.items():
        flag = "--" + name.replace("_", "-")
        if name == "run_name":
            flag = "--name"
        assert flag in help_text, flag
    assert "(default: 512)" in help_text and "(default: builtin:python-stdlib)" in help_text
    for sub in ("sample", "runs", "devices"):
        assert cli(sub, "--help").returncode == 0


def test_devices_lists_cpu():
    result = cli("devices")
    assert result.returncode == 0 and "cpu" in result.stdout


def test_ctrl_c_stops_cleanly_and_saves(tiny_corpus, tmp_path):
    runs_dir = tmp_path / "sigint-runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tui", "train", "--corpus", str(tiny_corpus), "--steps",
                             "1000000", "--name", "interrupted", "--runs-dir", str(runs_dir), *TINY_FLAGS,
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

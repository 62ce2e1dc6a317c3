"""Training in several processes (issue 13): real torchrun launches of 2 gloo ranks on the CPU, compared with
one process, resumed, steered through the control channel, stopped by signals and broken by a killed rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.distributed import split_rows

from .conftest import TINY_TEXT
from .tui_helpers import records, until

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
# fp32, one thread per rank, every step reported, validation by steps only: comparable step for step.
FLAGS = ["--hidden", "32", "--layers", "2", "--embed", "16", "--batch", "8", "--seq", "16", "--val-every", "10",
         "--val-seconds", "0", "--log-every", "1", "--sample-chars", "0", "--no-amp", "--threads", "1",
         "--lr", "1e-2", "--warmup", "5"]
TWO_RANKS = ["--devices", "cpu", "--nproc", "2"]


def train(root: Path, name: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    corpus = root / "tiny.txt"
    if not corpus.exists():
        corpus.write_text(TINY_TEXT, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(corpus),
                             "--runs-dir", str(root / "runs"), "--name", name, *FLAGS, *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return result


def losses(run_dir: Path) -> tuple[dict[int, float], dict[int, float]]:
    """Training loss by step, validation loss by step."""
    return ({r["step"]: r["loss"] for r in records(run_dir, "step")},
            {r["step"]: r["val_loss"] for r in records(run_dir, "validation")})


def assert_same_run(reference: Path, other: Path, tolerance: float, steps: range) -> None:
    (train_a, val_a), (train_b, val_b) = losses(reference), losses(other)
    for step in steps:
        assert train_b[step] == pytest.approx(train_a[step], abs=tolerance), f"training loss at step {step}"
    assert set(val_a) & set(val_b), "no validation to compare"
    for step in set(val_a) & set(val_b):
        assert val_b[step] == pytest.approx(val_a[step], abs=tolerance), f"validation loss at step {step}"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    """One folder of runs for the module: each launch costs seconds, so runs are shared between tests."""
    return tmp_path_factory.mktemp("distributed")


@pytest.fixture(scope="module")
def one_process(runs_root) -> Path:
    result = train(runs_root, "one", "--steps", "30", "--dropout", "0")
    assert result.returncode == 0, result.stderr
    return runs_root / "runs" / "one"


@pytest.fixture(scope="module")
def two_ranks(runs_root) -> Path:
    result = train(runs_root, "two", "--steps", "20", "--dropout", "0", *TWO_RANKS)
    assert result.returncode == 0, result.stderr
    return runs_root / "runs" / "two"


def test_two_gloo_ranks_train_as_one_process_does(one_process, two_ranks):
    assert_same_run(one_process, two_ranks, 1e-5, range(1, 21))
    started = records(two_ranks, "started")[0]
    assert started["world_size"] == 2 and started["devices"] == ["cpu", "cpu"]
    rates = [r["rank_tokens_per_s"] for r in records(two_ranks, "step")]
    assert all(len(pair) == 2 and min(pair) > 0 for pair in rates)
    assert runs.read_status(two_ranks)["world_size"] == 2
    assert records(two_ranks)[-1]["event"] == "finished"


def test_with_dropout_each_streams_masks_are_the_same_in_two_ranks_as_in_one(one_process, runs_root):
    # The default dropout: masks keyed by (seed, step, stream), so the split of the streams does not matter.
    for name, extra in (("one-dropout", []), ("two-dropout", TWO_RANKS)):
        result = train(runs_root, name, "--steps", "15", "--dropout", "0.3", *extra)
        assert result.returncode == 0, result.stderr
    one, two = runs_root / "runs" / "one-dropout", runs_root / "runs" / "two-dropout"
    assert_same_run(one, two, 1e-5, range(1, 16))
    # and the masks matter: without dropout the losses differ
    assert losses(one_process)[0][15] != pytest.approx(losses(one)[0][15], abs=1e-4)


def test_a_distributed_checkpoint_holds_every_rank_and_serves_one_cpu(one_process, two_ranks, runs_root):
    checkpoint = load_checkpoint(two_ranks / "last.safetensors")
    assert checkpoint.meta["world_size"] == 2
    # Every stream's hidden state, in the one-process layout: (layers, batch, hidden).
    assert checkpoint.tensors["state.0"].shape == (2, 8, 32)
    assert {"rng.torch", "rng.torch.rank1"} <= set(checkpoint.tensors)
    # Rank 1 carried streams 4..7: its rows are its own, not a copy of rank 0's.
    assert not torch.equal(checkpoint.tensors["state.0"][:, split_rows(8, 0, 2)],
                           checkpoint.tensors["state.0"][:, split_rows(8, 1, 2)])
    for command in (["sample", str(two_ranks), "--length", "20", "--seed", "1", "--device", "cpu"],
                    ["gates", str(two_ranks), "--text", "The quick brown fox", "--rows", "3"]):
        result = subprocess.run([sys.executable, "-m", "rnn_playground.tui", *command], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


def test_resume_continues_exactly_in_the_same_and_in_another_world_size(one_process, two_ranks, runs_root):
    # An uninterrupted 2-rank run of 30 steps, against the 20-step one resumed for 10 more in 2 ranks.
    result = train(runs_root, "two-through", "--steps", "30", "--dropout", "0", *TWO_RANKS)
    assert result.returncode == 0, result.stderr
    resumed = runs_root / "runs" / "two-resumed"
    resumed.mkdir(parents=True)
    for name in ("last.safetensors", "metrics.jsonl", "run.json"):
        (resumed / name).write_bytes((two_ranks / name).read_bytes())
    result = train(runs_root, "ignored", "--resume", str(resumed), "--steps", "30", *TWO_RANKS)
    assert result.returncode == 0, result.stderr
    through = runs_root / "runs" / "two-through"
    train_a, _ = losses(through)
    train_b, _ = losses(resumed)
    assert [train_b[s] for s in range(21, 31)] == [train_a[s] for s in range(21, 31)]  # bit for bit

    # The same checkpoint resumed by one process: the streams continue, with a note about the random streams.
    single = runs_root / "runs" / "two-on-one"
    single.mkdir(parents=True)
    for name in ("last.safetensors", "metrics.jsonl", "run.json"):
        (single / name).write_bytes((two_ranks / name).read_bytes())
    result = train(runs_root, "ignored", "--resume", str(single), "--steps", "30")
    assert result.returncode == 0, result.stderr
    assert "saved by 2 processes and resumes in 1" in result.stdout + result.stderr
    assert_same_run(one_process, single, 1e-5, range(21, 31))


def rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the launcher's worker of local rank `rank` (torchrun starts them as its children)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher.pid and f"LOCAL_RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no worker of local rank {rank}")


def start_two_ranks(root: Path, name: str, *args: str) -> subprocess.Popen:
    corpus = root / "tiny.txt"
    if not corpus.exists():
        corpus.write_text(TINY_TEXT, encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(corpus),
                             "--runs-dir", str(root / "runs"), "--name", name, *FLAGS, "--log-every", "0",
                             "--steps", "1000000", *TWO_RANKS, *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_killed_rank_ends_the_run_with_its_name_and_keeps_the_last_checkpoint(tmp_path):
    launcher = start_two_ranks(tmp_path, "killed", "--val-every", "5")
    run_dir = tmp_path / "runs" / "killed"
    try:
        until(lambda: (run_dir / "last.safetensors").exists(), 120, what="a first checkpoint")
        os.kill(rank_pid(launcher, 1), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert launcher.returncode == 2
    assert "rank 1" in stderr and "SIGKILL" in stderr, stderr
    assert "is intact" in stderr and f"--resume {run_dir}" in stderr
    load_checkpoint(run_dir / "last.safetensors")  # whole: its digest checks
    assert not list(run_dir.glob(".*.tmp"))


def test_a_signal_to_the_launcher_stops_every_rank_with_one_checkpoint(tmp_path):
    launcher = start_two_ranks(tmp_path, "signalled")
    run_dir = tmp_path / "runs" / "signalled"
    try:
        until(lambda: records(run_dir, "started") if run_dir.exists() else None, 120, what="the run to start")
        time.sleep(1.0)
        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM, stderr
    stopped = records(run_dir, "stopped")
    assert len(stopped) == 1 and stopped[0]["reason"] == "terminated"
    saves = [r for r in records(run_dir, "checkpoint") if r["reason"] == "stop"]
    assert len(saves) == 1 and saves[0]["step"] == stopped[0]["step"]
    assert load_checkpoint(run_dir / "last.safetensors").meta["progress"]["step"] == stopped[0]["step"]
    assert runs.read_status(run_dir)["state"] == "stopped"


def test_max_restarts_resumes_a_run_after_a_rank_dies(tmp_path):
    launcher = start_two_ranks(tmp_path, "restarted", "--val-every", "5", "--max-restarts", "1")
    run_dir = tmp_path / "runs" / "restarted"
    try:
        until(lambda: (run_dir / "last.safetensors").exists(), 120, what="a first checkpoint")
        os.kill(rank_pid(launcher, 1), signal.SIGKILL)
        restarted = until(lambda: len(records(run_dir, "started")) >= 2, 120, what="the restart")
        assert restarted
        start = records(run_dir, "started")[-1]
        assert start["start_step"] > 0
        launcher.send_signal(signal.SIGINT)
        _, stderr = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, stderr
    assert records(run_dir)[-1]["event"] == "stopped"


def test_control_reaches_every_rank_at_the_same_step(tmp_path):
    config = dict(corpus=str(tmp_path / "tiny.txt"), hidden=32, layers=1, embed=8, batch=8, seq=16,
                  steps=1_000_000, val_every=100_000, val_seconds=0, log_every=0, sample_chars=0, amp=False,
                  device="cpu", threads=1, runs_dir="runs", run_name="steered")  # relative: see rank_worker.py
    (tmp_path / "tiny.txt").write_text(TINY_TEXT, encoding="utf-8")
    worker = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                               str(ROOT / "tests" / "rank_worker.py"), json.dumps(config), str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "cwd0" / "runs" / "steered"

    def rank_events(rank: int, kind: str) -> list[dict]:
        try:
            lines = (tmp_path / f"rank{rank}.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return []
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    def ctl(command: str) -> None:
        result = subprocess.run([sys.executable, "-m", "rnn_playground.tui", "ctl", str(run_dir), command],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr

    try:
        until(lambda: rank_events(0, "step") and rank_events(1, "step"), 120, what="both ranks training")
        ctl("pause")
        until(lambda: rank_events(0, "paused") and rank_events(1, "paused"), 120, what="both ranks paused")
        ctl("save")
        until(lambda: [r for r in records(run_dir, "checkpoint") if r["reason"] == "requested"], 120, what="the save")
        ctl("resume")
        until(lambda: rank_events(0, "resumed") and rank_events(1, "resumed"), 120, what="both ranks resumed")
        ctl("stop")
        _, stderr = worker.communicate(timeout=90)
    finally:
        worker.kill()
    assert worker.returncode == 0, stderr
    for kind in ("paused", "resumed", "stopped"):
        assert [e["step"] for e in rank_events(0, kind)] == [e["step"] for e in rank_events(1, kind)], kind
    assert rank_events(0, "checkpoint")[-1]["step"] == rank_events(1, "checkpoint")[-1]["step"]
    assert not (tmp_path / "rank1.jsonl").read_text().count('"control"')  # rank 0 alone reads the channel
    assert records(run_dir, "control")  # and acknowledges in metrics.jsonl
    assert not (tmp_path / "cwd1" / "runs").exists()  # rank 1 wrote nothing: no run.json, no checkpoint


@pytest.mark.parametrize(("argv", "message"), [
    (["--devices", "cpu", "--nproc", "0"], "--nproc must be at least 1"),
    (["--nproc", "2"], "--nproc needs --devices"),
    (["--devices", ","], "--devices is empty"),
    (["--devices", "cuda"], "no CUDA GPU" if not torch.cuda.is_available() else "asks for more GPUs"),
    (["--devices", "tpu:0,tpu:1"], "--devices must name a device of this machine"),
    (["--devices", "cpu,cpu", "--nproc", "3"], "does not match the 2 devices"),
    (["--devices", "cpu,cpu", "--device", "cpu"], "not both"),
    (["--devices", "cpu", "--nproc", "3", "--batch", "8"], "--batch 8 does not split evenly across 3 processes"),
])
def test_bad_launch_flags_are_refused_before_anything_starts(argv, message, tiny_corpus, capsys):
    from rnn_playground.tui.cli.main import main
    if argv[:2] == ["--devices", "cuda"] and torch.cuda.is_available():
        argv = [*argv, "--nproc", str(torch.cuda.device_count() + 1)]
    code = main(["train", "--corpus", str(tiny_corpus), "--steps", "2", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_workers_get_the_users_flags_with_the_run_named_and_every_device_listed():
    from rnn_playground.tui.cli.distributed import worker_argv
    argv = ["--corpus", "x.txt", "--nproc", "2", "--devices=cpu", "--max-restarts", "1", "--hidden", "64",
            "--name", "mine"]
    assert worker_argv(argv, "mine", ["cpu", "cpu"]) == ["--corpus", "x.txt", "--hidden", "64", "--devices", "cpu,cpu",
                                                         "--name", "mine"]


def test_a_face_launches_a_two_rank_run_and_steers_it_through_the_controller(tmp_path):
    from rnn_playground.core.config import TrainConfig
    from rnn_playground.tui.viewmodel.launch import LaunchedRun, train_command

    from .tui_helpers import Face

    (tmp_path / "tiny.txt").write_text(TINY_TEXT, encoding="utf-8")
    config = TrainConfig(corpus=str(tmp_path / "tiny.txt"), hidden=32, layers=1, embed=8, batch=8, seq=16,
                         steps=1_000_000, val_every=100_000, val_seconds=0, sample_chars=0, amp=False, threads=1,
                         runs_dir=str(tmp_path / "runs"), run_name="launched")
    command = train_command(config, "cpu,cpu")
    assert command[1:4] == ["-m", "rnn_playground.tui", "train"]
    flags = command[4:]
    assert "--no-amp" in flags and "--dropout" not in flags  # only what differs from the defaults
    flags.remove("--no-amp")
    assert dict(zip(flags[::2], flags[1::2], strict=True)) == {
        "--corpus": str(tmp_path / "tiny.txt"), "--hidden": "32", "--layers": "1", "--embed": "8", "--batch": "8",
        "--seq": "16", "--steps": "1000000", "--val-every": "100000", "--val-seconds": "0", "--threads": "1",
        "--sample-chars": "0", "--runs-dir": str(tmp_path / "runs"), "--devices": "cpu,cpu", "--name": "launched"}
    face = Face()
    controller = face.controller
    run_dir = tmp_path / "runs" / "launched"
    assert controller.start(LaunchedRun(command, run_dir, poll_s=0.05))
    state = face.until(lambda s: s.snapshot.step > 0, timeout=120, what="the first steps")
    assert state.controllable and state.can_pause
    controller.pause()
    face.until(lambda s: s.snapshot.status == "paused", what="paused")
    controller.stop("user")
    state = face.until(lambda s: not s.active, what="the stop")
    assert state.status == "stopped" and state.snapshot.last_checkpoint_step == state.snapshot.step
    assert records(run_dir, "started")[0]["world_size"] == 2


def test_a_launched_run_that_cannot_start_says_why(tmp_path):
    from rnn_playground.core.config import TrainConfig
    from rnn_playground.tui.viewmodel.launch import LaunchedRun, train_command

    from .tui_helpers import Face

    config = TrainConfig(corpus=str(tmp_path / "missing.txt"), runs_dir=str(tmp_path / "runs"), run_name="broken")
    face = Face()
    assert face.controller.start(LaunchedRun(train_command(config, "cpu,cpu"), tmp_path / "runs" / "broken",
                                             poll_s=0.05))
    state = face.until(lambda s: not s.active, timeout=120, what="the end")
    assert state.status == "error"
    assert "missing.txt" in state.snapshot.error


async def test_the_train_screen_starts_a_run_in_two_processes_and_steers_it(tmp_path, tiny_corpus):
    from rnn_playground.core.runs import read_status

    from .conftest import long_config
    from .tui_helpers import Internals, make_app, press, wait_for

    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, hidden=16, layers=1, embed=8, threads=1))
    async with app.run_test(size=(100, 30)) as pilot:
        picker = app.screen.form.query_one("#device")
        await wait_for(pilot, lambda: "cpu,cpu" in [v for _, v in Internals.select_options(picker)], 20,
                       "the device choices")
        app.screen.form.select_device("cpu,cpu")
        await press(pilot, "s")
        await wait_for(pilot, lambda: app.train_controller.snapshot.step > 0, 120, "training in two processes")
        run_dir = tmp_path / "runs" / app.train_controller.snapshot.run_name
        assert read_status(run_dir)["world_size"] == 2
        await press(pilot, "space")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "paused", 60, "paused")
        await press(pilot, "x")
        await wait_for(pilot, lambda: not app.train_controller.active, 60, "stopped")
    assert records(run_dir)[-1]["event"] == "stopped"
    assert load_checkpoint(run_dir / "last.safetensors").meta["world_size"] == 2

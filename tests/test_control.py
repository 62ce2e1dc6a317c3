"""The control channel of a run (core.control), `rnn-playground ctl`, and FolderRun steering a run in another
process: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import atomic_writer, read_metadata
from rnn_playground.core.control import ControlChannel, ControlCommand, next_seq, read_command
from rnn_playground.core.events import CheckpointSaved, ControlReceived, Finished, Paused, StepEvent, Stopped
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli.main import main

from .conftest import tiny_config
from .tui_helpers import ROOT, Face, as_a_user_who_cannot_write, hold_lock, records, start_headless_run, until

pytestmark = pytest.mark.timeout(180)

def write_command(run_dir: Path, **command) -> None:
    with atomic_writer(run_dir / runs.CONTROL) as handle:
        handle.write(json.dumps({"sent_at": time.time(), **command}).encode())


def test_ctl_pauses_saves_resumes_and_stops_a_headless_run(tiny_corpus, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "headless"
    process = start_headless_run(tiny_corpus, run_dir)
    try:
        assert main(["ctl", str(run_dir), "pause"]) == 0
        assert "Run headless acknowledged pause at step" in capsys.readouterr().err
        paused = until(lambda: records(run_dir, "paused"), what="the pause")[0]

        # Another process's ctl, as a user would type it.
        result = subprocess.run([sys.executable, "-m", "rnn_playground.tui", "ctl", str(run_dir), "save"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "acknowledged save" in result.stderr
        saved = until(lambda: [r for r in records(run_dir, "checkpoint") if r["reason"] == "requested"],
                      what="the requested checkpoint")[0]
        assert saved["step"] == paused["step"]  # saved while paused: no step ran meanwhile
        assert read_metadata(run_dir / runs.LAST)["progress"]["step"] == paused["step"]

        assert main(["ctl", str(run_dir), "resume"]) == 0
        until(lambda: records(run_dir, "resumed"), what="the resume")
        assert main(["ctl", str(run_dir), "stop", "--timeout", "30"]) == 0
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    stopped = records(run_dir, "stopped")[0]
    acks = [(r["seq"], r["command"]) for r in records(run_dir, "control")]
    assert [command for _, command in acks] == ["pause", "save", "resume", "stop"]
    assert all(earlier < later for (earlier, _), (later, _) in zip(acks, acks[1:], strict=False))
    assert [r["reason"] for r in records(run_dir, "checkpoint")][-1] == "stop"
    assert read_metadata(run_dir / runs.LAST)["progress"]["step"] == stopped["step"]
    assert runs.read_status(run_dir)["state"] == "stopped" and not runs.is_live(run_dir)

    capsys.readouterr()
    assert main(["ctl", str(run_dir), "pause"]) == 2  # the run has ended
    err = capsys.readouterr().err
    assert f"Run {run_dir} is not training (it has stopped)" in err and "--resume" in err


def test_a_stale_or_repeated_command_never_acts_on_a_new_run(tiny_corpus, tmp_path):
    config = tiny_config(tiny_corpus, steps=40, val_every=100, run_name="fresh", runs_dir=str(tmp_path / "runs"))
    run_dir = tmp_path / "runs" / "fresh"
    run_dir.mkdir(parents=True)
    write_command(run_dir, run_id="an-earlier-process", seq=7, command="pause")  # left by an earlier run
    trainer = Trainer(config)
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, StepEvent) and event.step == 5:
            write_command(run_dir, run_id=trainer.run_id, seq=3, command="save")
        elif isinstance(event, StepEvent) and event.step == 10:
            write_command(run_dir, run_id=trainer.run_id, seq=3, command="stop")  # the same seq again
        elif isinstance(event, StepEvent) and event.step == 15:
            write_command(run_dir, run_id=trainer.run_id, seq=2, command="pause")  # a lower one
        elif isinstance(event, StepEvent) and event.step == 20:
            write_command(run_dir, run_id="an-earlier-process", seq=99, command="stop")
    acks = [e for e in events if isinstance(e, ControlReceived)]
    assert [(e.step, e.seq, e.command) for e in acks] == [(5, 3, "save")]
    assert any(isinstance(e, CheckpointSaved) and e.reason == "requested" and e.step == 5 for e in events)
    assert not any(isinstance(e, (Paused, Stopped)) for e in events)
    assert isinstance(events[-1], Finished) and events[-1].step == 40
    assert runs.read_status(run_dir)["run_id"] == trainer.run_id
    # The control file is a run file: the finished run can be deleted with it.
    assert runs.CONTROL in {p.name for p in runs.delete_run(run_dir, tmp_path / "runs")}


def test_the_channel_reads_the_file_only_when_it_changed(tmp_path):
    channel = ControlChannel(tmp_path, "me")
    assert channel.poll() is None  # no file
    write_command(tmp_path, run_id="me", seq=1, command="pause")
    assert channel.poll().command == "pause"
    assert channel.poll() is None  # unchanged: not applied twice
    write_command(tmp_path, run_id="me", seq=2, command="resume")
    assert channel.poll().command == "resume"
    (tmp_path / runs.CONTROL).write_text("{not json")
    assert channel.poll() is None


def test_ctl_says_clearly_why_a_command_cannot_be_delivered(tiny_run, tmp_path, capsys, monkeypatch):
    assert main(["ctl", str(tiny_run), "stop"]) == 2
    assert f"Run {tiny_run} is not training (it has finished), so there is nothing to stop" \
        in capsys.readouterr().err
    monkeypatch.setenv(runs.RUNS_ENV, str(tiny_run.parent))
    monkeypatch.chdir(tmp_path)
    assert main(["ctl", tiny_run.name, "stop"]) == 2  # a run named, under the runs folder
    assert f"Run {tiny_run} is not training (it has finished)" in capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["ctl", str(empty), "pause"]) == 2
    assert f"{empty} is not a run folder" in capsys.readouterr().err
    assert main(["ctl", str(tmp_path / "nowhere"), "pause"]) == 2
    assert "is not a run folder" in capsys.readouterr().err

    deaf = tmp_path / "runs" / "deaf"
    holder = hold_lock(deaf)
    try:
        began = time.monotonic()
        assert main(["ctl", str(deaf), "pause", "--timeout", "0.5"]) == 2
        assert time.monotonic() - began < 30
        err = capsys.readouterr().err
        assert f"Run {deaf} did not acknowledge pause within 0.5 s" in err and "did not answer" in err
    finally:
        holder.kill()
        holder.wait()


def test_ctl_on_a_folder_this_user_cannot_write_names_the_permissions(tmp_path):
    folder = tmp_path / "runs" / "readonly"
    holder = hold_lock(folder)
    try:
        folder.chmod(0o555)
        prefix = as_a_user_who_cannot_write(folder)
        result = subprocess.run([*prefix, sys.executable, "-m", "rnn_playground.tui", "ctl", str(folder), "pause"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert f"Cannot pause run {folder}: this user cannot write to its folder (Permission denied)" in result.stderr
        assert "permissions decide who may control a run" in result.stderr and "belongs to user" in result.stderr
        assert not (folder / runs.CONTROL).exists()
        code = ("import sys; from rnn_playground.tui.viewmodel.controller import FolderRun; "
                "print(FolderRun(sys.argv[1]).controllable)")
        watcher = subprocess.run([*prefix, sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120)
        assert watcher.stdout.strip() == "False", watcher.stderr  # watched only
    finally:
        folder.chmod(0o755)
        holder.kill()
        holder.wait()


def test_folder_run_steers_a_run_in_another_process_through_the_controller(tiny_corpus, tmp_path):
    run_dir = tmp_path / "runs" / "elsewhere"
    process = start_headless_run(tiny_corpus, run_dir)
    try:
        face = Face()
        controller = face.controller
        assert controller.watch(run_dir, poll_s=0.02)
        state = face.until(lambda s: s.snapshot.step > 0, what="the first steps")
        assert state.controllable and state.can_pause and state.can_stop
        assert controller.live_model() is None  # the model lives in the other process

        controller.pause()
        assert controller.state.status == "pausing"
        state = face.until(lambda s: s.snapshot.status == "paused", what="paused")
        paused_at = state.snapshot.step
        assert controller.save()
        state = face.until(lambda s: s.snapshot.last_checkpoint is not None, what="the requested save")
        assert state.snapshot.last_checkpoint_step == paused_at
        controller.resume()
        face.until(lambda s: s.snapshot.status == "training" and s.snapshot.step > paused_at, what="training again")

        controller.stop("user")
        assert controller.state.status == "stopping"
        state = face.until(lambda s: not s.active, what="the stop")
        assert state.status == "stopped" and state.snapshot.last_checkpoint_step == state.snapshot.step
        assert any("asked through the run's folder" in line.text for line in state.snapshot.log)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert [r["command"] for r in records(run_dir, "control")] == ["pause", "save", "resume", "stop"]



def test_a_command_sent_after_the_file_was_deleted_still_applies(tmp_path):
    """Sequence numbers come from the clock: with control.json deleted mid-run, the next command still
    outranks the ones the run applied (and a clock that stepped back still gets one more than the last)."""
    channel = ControlChannel(tmp_path, "me")
    write_command(tmp_path, run_id="me", seq=next_seq(None, "me"), command="pause")
    assert channel.poll() is not None
    (tmp_path / runs.CONTROL).unlink()
    write_command(tmp_path, run_id="me", seq=next_seq(read_command(tmp_path), "me"), command="resume")
    applied = channel.poll()
    assert applied is not None and applied.command == "resume"
    ahead = ControlCommand("me", 10**30, "pause", 0.0)
    assert next_seq(ahead, "me") == 10**30 + 1 and next_seq(ahead, "another run") < 10**30

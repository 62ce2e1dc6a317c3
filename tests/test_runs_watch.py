"""The monitor (events folded into snapshots, a run folder watched), run details and safe deletion
(core.runs), and the settings and corpus checks the app's form uses. Real trainers on tiny models, real files."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from rnn_playground.core import runs
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.events import StepEvent, ValidationEvent
from rnn_playground.core.runs import delete_run, run_details
from rnn_playground.core.trainer import TrainControl, Trainer
from rnn_playground.tui.viewmodel.monitor import RunMonitor, Series
from rnn_playground.tui.viewmodel.settings import check_corpus, check_settings, config_form_values, name_settings

from .conftest import tiny_config
from .tui_helpers import Face


def test_series_keeps_finite_values_and_bounds_memory():
    series = Series(max_points=8)
    assert not series.add(1, float("nan"))
    for step in range(1, 101):
        series.add(step, 100.0 - step)
    assert len(series) <= 8
    assert series.steps == sorted(series.steps) and series.steps[-1] == 100
    assert series.last == 0.0 and series.best == 0.0


def test_monitor_from_events_equals_monitor_from_metrics(tiny_run):
    """The live view (events in this process) and the watched view (metrics.jsonl) agree."""
    records, _ = runs.read_metrics(tiny_run)
    from rnn_playground.core.events import event_from_json
    live, watched = RunMonitor(), RunMonitor()
    for record in records:
        live.add(event_from_json(record))
        watched.add_record(record)
    a, b = live.snapshot(), watched.snapshot()
    assert a == b
    assert a.status == "finished" and a.step == 40 and a.total_steps == 40
    assert len(a.train_losses) >= 30 and a.val_steps == (20, 40)
    assert a.best_loss == min(a.train_losses) and a.progress == 1.0
    assert a.best_val_loss == min(a.val_losses)
    assert a.sample is not None and a.sample_step == 40
    assert any("saved best.safetensors" in line.text for line in a.log)
    assert [line.seq for line in a.log] == sorted({line.seq for line in a.log})


def test_monitor_skips_unknown_records_and_nonfinite_losses():
    monitor = RunMonitor()
    assert not monitor.add_record({"event": "from-the-future", "x": 1})
    monitor.add(StepEvent(5, 10, 0.1, float("nan"), 100.0, 1e-3, 1.0, 1.0))
    monitor.add(StepEvent(6, 10, 0.1, 2.0, 100.0, 1e-3, 1.2, 1.0))
    snap = monitor.snapshot()
    assert snap.train_losses == (2.0,) and snap.loss == 2.0 and snap.progress == pytest.approx(0.6)
    monitor.add(ValidationEvent(6, 2.5, 2.5, True))
    assert monitor.snapshot().val_loss == 2.5


def test_a_watch_follows_a_run_training_in_another_thread_until_it_stops(tiny_corpus, tmp_path):
    """The watched view (a FolderRun: the run's metrics.jsonl as it grows) follows the run to its end."""
    control = TrainControl()
    trainer = Trainer(tiny_config(tiny_corpus, steps=100_000, run_name="watched", runs_dir=str(tmp_path / "runs")),
                      control)
    thread = threading.Thread(target=lambda: list(trainer.run()))
    thread.start()
    try:
        face = Face()
        assert face.controller.watch(trainer.run_dir, poll_s=0.02)
        first = face.until(lambda s: s.snapshot.status == "training" and s.snapshot.step >= 10, what="training")
        assert runs.is_live(trainer.run_dir) and first.watched and first.active
        # The watch follows the run as it grows (on a loaded machine the stop could otherwise come first).
        face.until(lambda s: len(s.snapshot.train_losses) > len(first.snapshot.train_losses), what="more steps")
        control.stop()
        thread.join(30)
        last = face.until(lambda s: not s.active, what="the watch to end with the run")
        assert last.snapshot.status == "stopped" and last.snapshot.step >= first.snapshot.step
        assert len(last.snapshot.train_losses) > len(first.snapshot.train_losses)
        assert last.snapshot.last_checkpoint_step == last.snapshot.step  # the stop's checkpoint
    finally:
        control.stop()
        thread.join(30)


def test_a_watch_reads_a_run_folder_as_it_is_now_and_a_new_watch_reads_it_afresh(tmp_path):
    """A watch of a run no process writes reads its metrics.jsonl once and ends; a replaced (shorter) file is a
    new run's, read from its start by the next watch (the Runs screen watches a run again when it is live again)."""
    run = tmp_path / "r"
    run.mkdir()
    line = {"event": "step", "step": 1, "total_steps": None, "epoch": 0.0, "loss": 3.0, "tokens_per_s": 1.0,
            "lr": 0.1, "elapsed_s": 1.0, "eta_s": None, "skipped_steps": 0, "time": 1.0}
    (run / runs.METRICS).write_text(json.dumps(line) + "\n" + json.dumps({**line, "step": 2}) + "\n")
    face = Face()
    assert face.controller.watch(run, poll_s=0.02)
    assert face.until(lambda s: not s.active, what="the watch's end").snapshot.train_steps == (1, 2)
    (run / runs.METRICS).write_text(json.dumps({**line, "step": 7}) + "\n")  # shorter: replaced
    assert face.controller.watch(run, poll_s=0.02)
    assert face.until(lambda s: not s.active, what="the second watch's end").snapshot.train_steps == (7,)


def test_run_details_reads_config_and_vocab(tiny_run):
    details = run_details(tiny_run)
    assert details is not None
    assert details.vocab_size == len(set((Path(details.corpus)).read_text()))
    assert details.model["hidden"] == 32 and details.config["batch"] == 8
    assert details.state == "finished" and "last.safetensors" in details.checkpoints
    assert run_details(tiny_run.parent / "missing") is None


def test_delete_run_removes_a_finished_run(tiny_run):
    removed = delete_run(tiny_run, tiny_run.parent)
    assert not tiny_run.exists()
    assert {p.name for p in removed} >= {"last.safetensors", "metrics.jsonl", "run.json"}


def test_delete_run_refuses_what_might_not_be_a_run(tiny_run, tmp_path):
    (tiny_run / "notes.txt").write_text("mine")
    with pytest.raises(PlaygroundError, match="notes.txt"):
        delete_run(tiny_run, tiny_run.parent)
    assert (tiny_run / "last.safetensors").exists()  # nothing was deleted
    (tiny_run / "notes.txt").unlink()
    with pytest.raises(PlaygroundError, match="not directly inside"):
        delete_run(tiny_run, tmp_path / "elsewhere")
    plain = tiny_run.parent / "plain"
    plain.mkdir()
    with pytest.raises(PlaygroundError, match="holds no run"):
        delete_run(plain, tiny_run.parent)


def test_delete_run_refuses_a_live_run(tiny_run):
    runs.write_status(tiny_run, state="running", pid=os.getpid(), host=__import__("socket").gethostname())
    with runs.RunLock.acquire(tiny_run):  # a writer holds the run
        with pytest.raises(PlaygroundError, match="training right now"):
            delete_run(tiny_run, tiny_run.parent)
    delete_run(tiny_run, tiny_run.parent)  # the status still says running, but no writer holds it


def test_check_settings_attributes_engine_errors_to_fields():
    good = check_settings({"hidden": "64", "layers": "1", "dropout": "0.1", "batch": "8", "seq": "16",
                           "lr": "0.01", "seed": "7", "cell": "gru", "corpus": "x.txt"},
                          budget_kind="steps", budget="100")
    assert good.ok and good.config.hidden == 64 and good.config.cell == "gru" and good.config.steps == 100
    assert good.config.minutes is None
    bad = check_settings({"hidden": "0", "layers": "two", "dropout": "1.5", "lr": "-1", "batch": "8"},
                         budget_kind="minutes", budget="0")
    assert not bad.ok
    assert "--hidden must be at least 1" in bad.errors["hidden"]
    assert "whole number" in bad.errors["layers"]
    assert "--dropout must be in [0, 1)" in bad.errors["dropout"]
    assert "--lr" in bad.errors["lr"]
    assert "--minutes must be a positive number" in bad.errors["budget"]
    assert "batch" not in bad.errors
    resumed = check_settings({}, budget_kind="steps", budget="40", resume_step=40)
    assert "step 40" in resumed.errors["budget"]


def test_messages_name_settings_as_each_front_end_does():
    # One message, written with the CLI's flags; a front end names the settings its own way.
    errors = check_settings({"hidden": "0", "val_every": "x", "seq": ""}).errors
    assert errors["hidden"] == "--hidden must be at least 1, got 0."
    assert errors["val_every"] == "--val-every must be a whole number, got 'x'."
    assert errors["seq"] == "--seq is empty; enter a value."
    names = {"hidden": "hidden size", "val_every": "eval", "lr": "lr"}
    assert name_settings(errors["hidden"], names) == "hidden size must be at least 1, got 0."
    assert name_settings(errors["val_every"], names) == "eval must be a whole number, got 'x'."
    # flags it does not name stay flags, and a longer flag is never taken for a shorter one
    assert name_settings("Lower --min-lr (at most --lr), or --lr-half-life.", names) == \
        "Lower --min-lr (at most lr), or --lr-half-life."


def test_config_form_values_round_trip():
    config = TrainConfig(hidden=48, dropout=0.0, lr=0.003, steps=250, cell="rnn")
    values = config_form_values(config)
    assert values["hidden"] == "48" and values["lr"] == "0.003" and values["budget_kind"] == "steps"
    check = check_settings({k: values[k] for k in ("hidden", "layers", "dropout", "batch", "seq", "lr", "seed",
                                                  "cell")},
                           budget_kind=values["budget_kind"], budget=values["budget"])
    assert check.ok and check.config.hidden == 48 and check.config.steps == 250 and check.config.dropout == 0.0


def test_check_corpus_uses_the_engines_errors(tiny_corpus, tmp_path):
    ok = check_corpus(str(tiny_corpus), batch=8, seq=16)
    assert ok.ok and ok.chars == len(tiny_corpus.read_text())
    small = check_corpus(str(tiny_corpus), batch=512, seq=400)
    assert not small.ok and "needs at least" in small.message
    # the setting to mark: batch when a batch of one fits, else seq, else the corpus
    assert small.field == "batch"
    assert check_corpus(str(tiny_corpus), batch=1, seq=100_000).field == "seq"
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("ab")
    assert check_corpus(str(tiny), batch=1, seq=1).field == "corpus"
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"abc\x00def" * 100)
    assert "NUL byte at byte offset 3" in check_corpus(str(binary)).message
    assert "neither a file" in check_corpus(str(tmp_path / "nope.txt")).message
    assert not check_corpus("  ").ok
    remote = check_corpus("tinyshakespeare")  # not in the (empty, per-test) cache: never downloaded here
    assert remote.ok and "downloads" in remote.message


def test_pick_auto_device_agrees_with_the_engine():
    from rnn_playground.core.device import DeviceInfo, list_devices, pick_auto_device, resolve_device
    assert pick_auto_device(list_devices()) == str(resolve_device("auto"))
    gpus = [DeviceInfo("cpu", "c", 1, 1), DeviceInfo("cuda:0", "a", 10, 2), DeviceInfo("cuda:1", "b", 10, 5)]
    assert pick_auto_device(gpus) == "cuda:1"
    assert pick_auto_device([DeviceInfo("cpu", "c", 1, 1), DeviceInfo("mps", "m", None, None)]) == "mps"
    assert pick_auto_device([DeviceInfo("cpu", "c", 1, 1)]) == "cpu"


@pytest.mark.parametrize("reason", ["user", "quit", "interrupted", "restart"])
def test_a_stop_is_logged_as_information_not_a_warning(reason):
    """Issue 10: a stop the user asked for (and that saved a checkpoint) was logged as "warning:"."""
    from rnn_playground.core.events import Stopped
    from rnn_playground.tui.viewmodel.monitor import describe_event
    assert describe_event(Stopped(12, reason, 3.0)) == ("info", f"stopped ({reason}) at step 12")
    monitor = RunMonitor()
    monitor.add(Stopped(12, reason, 3.0))
    assert [line.level for line in monitor.snapshot().log] == ["info"]

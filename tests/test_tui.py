"""The app, driven from the keyboard with Textual's Pilot, on the real core: tiny real models
train on the CPU in threads, checkpoints and metrics.jsonl are real files."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from rnn_playground.core import runs
from rnn_playground.core.device import DeviceInfo
from rnn_playground.core.trainer import TrainControl, Trainer

from .conftest import long_config, tiny_config
from .tui_helpers import Internals, make_app, press, screen_text, shows, type_into, wait_for

pytestmark = pytest.mark.timeout(120)

def plain(widget) -> str:
    return str(widget.content)


def snap(app):
    """The Train run's latest snapshot, as its controller received it."""
    return app.train_controller.snapshot


def active(app) -> bool:
    return app.train_controller.active


def train_steps(app) -> int:
    return snap(app).step


def spark_points(app, panel_id: str) -> int:
    from textual.widgets import Sparkline
    return len(app.screen.query_one(f"#{panel_id} Sparkline", Sparkline).data or [])


def log_text(app) -> str:
    """The Train screen's event log as written, its wrapped lines joined."""
    from textual.widgets import RichLog
    return " ".join(strip.text for strip in app.screen.query_one("#event-log", RichLog).lines)


def squash(text: str) -> str:
    """Text without whitespace: a wrapped line loses the space where it broke."""
    return "".join(text.split())


# --------------------------------------------------------------------------- shell


async def test_modes_by_key_and_palette(tmp_path):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.screens.help import HelpScreen
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.screens.series import SeriesScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        for key, screen in (("2", SampleScreen), ("3", GatesScreen), ("4", SeriesScreen), ("5", RunsScreen),
                            ("1", TrainScreen)):
            await press(pilot, key)
            await wait_for(pilot, lambda: isinstance(app.screen, screen), 5, f"{screen.__name__}")
        await press(pilot, "4")
        await shows(pilot, "Series run")
        await press(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        text = await shows(pilot, "Everywhere")
        assert "Ctrl+q" in text
        await press(pilot, "escape")
        await press(pilot, "ctrl+p")
        await pilot.pause(0.2)
        await press(pilot, *"go to runs")
        await pilot.pause(0.5)
        await press(pilot, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "palette switch to Runs")
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "q")  # closes help, does not quit
        assert isinstance(app.screen, RunsScreen)
        await press(pilot, "q")
        await pilot.pause()
    assert app.return_code == 0


async def test_footer_shows_only_applicable_keys(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        footer = await wait_for(pilot, lambda: "Start" in (line := screen_text(app).splitlines()[-1]) and line, 5,
                                "footer")
        assert "Pause" not in footer and "Stop" not in footer
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "training", 30, "training")
        footer = await wait_for(pilot, lambda: "Pause" in (line := screen_text(app).splitlines()[-1]) and line, 5,
                                "footer update")
        assert "Stop" in footer and "Start" not in footer
        await press(pilot, "space")
        await wait_for(pilot, lambda: "Resume" in screen_text(app).splitlines()[-1], 10, "Resume in footer")
        await press(pilot, "x")
        await wait_for(pilot, lambda: not active(app), 30, "stopped")
        await wait_for(pilot, lambda: "Start" in screen_text(app).splitlines()[-1], 5, "Start in footer")
        # Inside a text field, the letter keys type: the footer stops offering them.
        app.screen.set_focus(app.screen.query_one("#hidden"))
        footer = await wait_for(pilot, lambda: (line := screen_text(app).splitlines()[-1]) and "F1" in line
                                and line, 5, "field footer")
        assert "⏎ Start" in footer and "esc Leave field" in footer and "^q Quit" in footer
        assert "s Start" not in footer and "q Quit" not in footer.replace("^q Quit", "") and "1-6" not in footer


# --------------------------------------------------------------------------- train screen


async def test_fill_the_form_train_pause_resume_stop_and_find_the_run(tmp_path, tiny_corpus, monkeypatch):
    from rnn_playground.tui.app.screens.runs import RunsScreen
    monkeypatch.chdir(tmp_path)  # so the corpus path to type is short
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, corpus="tinyshakespeare", hidden=512))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await type_into(pilot, "#corpus", tiny_corpus.name)
        await type_into(pilot, "#hidden", "24")
        await type_into(pilot, "#layers", "1")
        await type_into(pilot, "#batch", "8")
        await type_into(pilot, "#seq", "16")
        await type_into(pilot, "#seed", "7")
        await wait_for(pilot, lambda: "characters" in plain(app.screen.query_one("#corpus-info")), 20,
                       "corpus check")
        await press(pilot, "enter")  # Enter in a field starts
        await wait_for(pilot, lambda: snap(app).status == "training", 30, "training to start")
        run_dir = Path(snap(app).run_dir)
        config = snap(app).config
        assert config["hidden"] == 24 and config["layers"] == 1 and config["seed"] == 7
        assert config["corpus"] == str(tiny_corpus)  # stored absolute: a resume works from any folder
        assert app.screen.query_one("#form").disabled  # the settings of a running run are fixed

        # Step count and sparkline data grow.
        await wait_for(pilot, lambda: spark_points(app, "train-loss") >= 3, 30, "loss points")
        first_step, first_points = train_steps(app), spark_points(app, "train-loss")
        await wait_for(pilot, lambda: spark_points(app, "train-loss") > first_points and train_steps(app) > first_step,
                       30, "more points")
        assert "device cpu" in plain(app.screen.query_one("#run-device"))

        # Pause: the step count stops.
        await press(pilot, "space")
        await wait_for(pilot, lambda: snap(app).status == "paused", 20, "paused")
        paused_at = train_steps(app)
        await pilot.pause(0.6)
        assert train_steps(app) == paused_at
        assert "paused" in plain(app.screen.query_one("#run-status"))
        assert f"step {paused_at:,}" in plain(app.screen.query_one("#run-status"))

        # Resume: it moves again.
        await press(pilot, "space")
        await wait_for(pilot, lambda: train_steps(app) > paused_at, 20, "steps after resume")

        # Stop: a checkpoint is saved.
        await press(pilot, "x")
        await wait_for(pilot, lambda: not active(app), 30, "stop")
        assert snap(app).status == "stopped"
        assert (run_dir / runs.LAST).exists()
        await shows(pilot, "stopped (user) at step")
        assert "warning:" not in log_text(app)  # a stop asked for is information
        assert not app.screen.query_one("#form").disabled  # a new run can start

        # The Runs screen lists it.
        await press(pilot, "5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.infos, 10, "runs listed")
        assert app.screen.infos[0].name == run_dir.name
        await shows(pilot, run_dir.name)
        # Its details name the checkpoint the stop saved, at the step it was saved.
        from rnn_playground.core.checkpoint import read_metadata
        saved_step = read_metadata(run_dir / runs.LAST)["progress"]["step"]
        assert saved_step == snap(app).last_checkpoint_step == snap(app).step
        details = app.screen.query_one("#details-info")
        info = await wait_for(pilot, lambda: f"stopped · step {saved_step:,}" in (text := plain(details)) and text,
                              10, "the details")
        saved = re.search(r"saved ([a-z, ]+)", info).group(1)  # a phrase of the details: "saved best, last"
        assert "last" in saved.strip().split(", ")


async def test_invalid_fields_block_starting(tmp_path, tiny_corpus, monkeypatch):
    from textual.widgets import Input
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await type_into(pilot, "#hidden", "0")
        error = app.screen.query_one("#err-hidden")
        # The engine's message, naming the field as the form shows it (the CLI says --hidden).
        await wait_for(pilot, lambda: plain(error) == "hidden must be at least 1, got 0.", 5, "hidden error")
        assert error.display
        await shows(pilot, "hidden must be at")
        await type_into(pilot, "#dropout", "x")
        await wait_for(pilot, lambda: plain(app.screen.query_one("#err-dropout")) ==
                       "dropout must be a number, got 'x'.", 5, "dropout")
        await press(pilot, "enter")
        await press(pilot, "escape")
        await wait_for(pilot, lambda: app.screen.focused is app.screen.query_one("#start"), 5, "out of the field")
        shown = {n.identity for n in Internals.notifications(app)}
        await press(pilot, "s")  # the start key says why nothing started, and goes to the first field marked
        notice = await wait_for(pilot, lambda: next((n for n in Internals.notifications(app)
                                                     if n.identity not in shown), None),
                                5, "the reason nothing started")
        assert notice.title == "Not started" and "hidden must be at least 1" in str(notice.message)
        await wait_for(pilot, lambda: app.screen.focused is app.screen.query_one("#hidden"), 5, "focus on hidden")
        assert not active(app) and snap(app).status == "idle"
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
        # A corpus that is too small for the batch: the engine's message, under batch, in the form's words.
        await type_into(pilot, "#hidden", "16")
        await type_into(pilot, "#dropout", "0")
        await type_into(pilot, "#batch", "512")
        corpus_error, batch_error = app.screen.query_one("#err-corpus"), app.screen.query_one("#err-batch")
        await wait_for(pilot, lambda: "needs at least" in plain(batch_error), 20, "corpus size error")
        assert plain(batch_error).endswith("Use a larger text, or lower batch or seq len.")
        assert plain(corpus_error) == "" and not corpus_error.display
        shown = {n.identity for n in Internals.notifications(app)}
        await press(pilot, "escape")
        # Out of the field before the start key (under load a quick "s" could still type into it).
        await wait_for(pilot, lambda: not isinstance(app.screen.focused, Input), 5, "out of the batch field")
        await press(pilot, "s")
        await wait_for(pilot, lambda: any(n.identity not in shown and "needs at least" in str(n.message)
                                          for n in Internals.notifications(app)), 5, "why")
        assert not active(app)
        # A sequence no text this small can hold: under seq len.
        await type_into(pilot, "#batch", "1")
        await type_into(pilot, "#seq", "100000")
        await wait_for(pilot, lambda: "needs at least" in plain(app.screen.query_one("#err-seq")), 20, "seq error")
        await type_into(pilot, "#seq", "16")
        await type_into(pilot, "#corpus", "missing.txt")
        await wait_for(pilot, lambda: "neither a file" in plain(corpus_error), 20, "missing corpus error")
        # Fixed: it starts.
        await type_into(pilot, "#corpus", tiny_corpus.name)
        await type_into(pilot, "#batch", "8")
        await wait_for(pilot, lambda: not app.screen.query_one("#form").errors, 20, "errors to clear")
        await press(pilot, "enter")
        await wait_for(pilot, lambda: active(app), 10, "start")
        app.train_controller.stop()
        await wait_for(pilot, lambda: not active(app), 30, "stop")


async def test_training_error_is_logged_and_notified_and_the_app_carries_on(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, steps=30))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await wait_for(pilot, lambda: app.screen.query_one("#form").corpus_check is not None, 20, "corpus check")
        tiny_corpus.write_bytes(b"\xff\xfe not utf-8 " * 400)  # broken after it was checked
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "error" and not active(app), 30, "error")
        assert "not UTF-8" in snap(app).error
        assert any("not UTF-8" in str(n.message) for n in Internals.notifications(app))
        await shows(pilot, "error: Corpus file")
        tiny_corpus.write_text("All is well again. " * 500)
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "finished" and not active(app), 60,
                       "a new run to finish")


def gib(n: float) -> int:
    return int(n * 2**30)


async def pick(pilot, select, value: str) -> None:
    """Choose `value` in a Select from the keyboard: Enter opens the list at the current value,
    the arrows move, Enter chooses."""
    values = [v for _, v in Internals.select_options(select)]
    pilot.app.screen.set_focus(select)
    await pilot.pause(0.01)
    await press(pilot, "enter")
    await wait_for(pilot, lambda: select.expanded, 5, "the device list to open")
    moves = values.index(value) - values.index(select.value)
    await press(pilot, *(["down"] * moves if moves > 0 else ["up"] * -moves), "enter")
    await wait_for(pilot, lambda: not select.expanded and select.value == value, 5, f"{value} chosen")


async def test_device_picker_lists_every_device_and_the_keyboard_choice_reaches_the_run(tmp_path, tiny_corpus):
    from textual.widgets import Select

    from rnn_playground.core.device import list_devices
    cpu = list_devices()[0]  # this machine's CPU as core lists it; GPUs and MPS as core would list them
    devices = [cpu, DeviceInfo("cuda:0", "NVIDIA H200", gib(140), gib(10)),
               DeviceInfo("cuda:1", "NVIDIA GeForce RTX 4090", gib(24), gib(20)),
               DeviceInfo("mps", "Apple Metal (MPS)", None, None)]
    app = make_app(tmp_path, devices=devices, initial_config=long_config(tiny_corpus, device="auto"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        select = app.screen.query_one("#device", Select)
        cpu_memory = f"{cpu.free_memory / 2**30:.1f}/{cpu.total_memory / 2**30:.1f} GB free"
        assert Internals.select_options(select) == [
            ("auto  (picks cuda:1)", "auto"),  # the GPU with the most free memory
            (f"cpu  {cpu.name}  {cpu_memory}", "cpu"),
            ("cuda:0  NVIDIA H200  10.0/140.0 GB free", "cuda:0"),
            ("cuda:1  NVIDIA GeForce RTX 4090  20.0/24.0 GB free", "cuda:1"),
            ("mps  Apple Metal (MPS)", "mps"),
            ("all 2 GPUs  cuda:0..cuda:1, one process each (NCCL)", "cuda:0,cuda:1"),  # a run in several processes
            ("cpu x2  two processes (gloo)", "cpu,cpu"),
        ]
        assert select.value == "auto"
        # Opened, the list shows them all (wrapped to the form's width).
        app.screen.set_focus(select)
        await press(pilot, "enter")
        await shows(pilot, "Apple Metal (MPS)")
        form_column = squash("".join(line.split("▕")[0] for line in screen_text(app).splitlines()))
        for label, value in Internals.select_options(select):
            if "," not in value:  # the single devices; the runs in several processes follow below them
                assert squash(label) in form_column, label
        await press(pilot, "escape")
        await wait_for(pilot, lambda: not select.expanded, 5, "the list to close")

        await pick(pilot, select, "cuda:1")
        assert app.screen.form.state().device == "cuda:1"
        await pick(pilot, select, "mps")
        assert app.screen.form.state().device == "mps"
        await pick(pilot, select, "cpu")
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "training", 30, "training")
        assert snap(app).config["device"] == "cpu"
        assert snap(app).device.startswith("cpu")
        assert runs.read_status(Path(snap(app).run_dir))["config"]["device"] == "cpu"
        app.train_controller.stop()
        await wait_for(pilot, lambda: not active(app), 30, "stop")


async def test_device_picker_without_injected_devices_lists_what_core_finds(tmp_path, tiny_corpus):
    from textual.widgets import Select

    from rnn_playground.core.device import list_devices, pick_auto_device
    found = list_devices()
    app = make_app(tmp_path, devices=None, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(100, 30)) as pilot:
        select = app.screen.query_one("#device", Select)
        await wait_for(pilot, lambda: len(Internals.select_options(select)) > 1, 20, "devices found")
        singles = [(label, value) for label, value in Internals.select_options(select) if "," not in value]
        assert [value for _, value in singles] == ["auto"] + [d.spec for d in found]
        assert Internals.select_options(select)[-1][1] == "cpu,cpu"  # two CPU processes, on any machine
        assert Internals.select_options(select)[0][0] == f"auto  (picks {pick_auto_device(found)})"
        for (label, _), device in zip(singles[1:], found, strict=True):
            assert label.startswith(f"{device.spec}  {device.name}")
        assert select.value == "cpu"  # the initial config's


async def test_out_of_memory_in_the_app_is_logged_and_notified_and_a_new_run_trains(tmp_path, tiny_corpus,
                                                                                     monkeypatch):
    """Fault injection (a real out-of-memory needs a GPU): the first run's 5th step raises
    torch.OutOfMemoryError, as CUDA's allocator does; the next run is left alone."""
    import torch

    from rnn_playground.core.chartask import CharTask
    real_loss, calls = CharTask.loss, []

    def loss(self, window, state, step):
        calls.append(window)
        if len(calls) == 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_loss(self, window, state, step)

    monkeypatch.setattr(CharTask, "loss", loss)
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, steps=30, log_every=1))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await wait_for(pilot, lambda: app.screen.query_one("#form").corpus_check is not None, 20, "corpus check")
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "error" and not active(app), 30, "error")
        message = "Out of memory on cpu at step 4. Lower --batch, --seq or --hidden and start again."
        assert snap(app).error == message
        await wait_for(pilot, lambda: squash(f"error: {message}") in squash(log_text(app)), 5, "the log line")
        notes = [n for n in Internals.notifications(app) if str(n.message) == message]
        assert notes and notes[0].title == "Training error" and notes[0].severity == "error"
        await shows(pilot, "✗ error")
        first = Path(snap(app).run_dir)
        assert runs.read_status(first)["state"] == "error"
        assert app.is_running and not app.screen.query_one("#form").disabled
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "finished" and not active(app), 60,
                       "a new run to finish")
        assert Path(snap(app).run_dir) != first and snap(app).step == 30
        assert len(snap(app).train_losses) == 30


async def test_non_finite_loss_in_the_app_is_logged_and_notified_and_a_new_run_trains(tmp_path, tiny_corpus,
                                                                                      tiny_run, monkeypatch):
    """Fault injection (the settings the engine accepts cannot make the loss diverge: --lr is below
    10, the rate never exceeds it, gradients are clipped): the first model the app builds has an
    infinite output bias, so every loss is non-finite. The run stops after MAX_BAD_STEPS, before any checkpoint,
    and says so; then a run with a good run's settings trains."""
    import torch

    from rnn_playground.core import chartask
    from rnn_playground.core.trainer import MAX_BAD_STEPS
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    real_model, built = chartask.CharRNN, []

    def poisoned_once(config):
        model = real_model(config)
        if not built:
            with torch.no_grad():
                model.head.bias[0] = float("inf")  # an infinite logit at every position
        built.append(model)
        return model

    monkeypatch.setattr(chartask, "CharRNN", poisoned_once)
    app = make_app(tmp_path, runs_dir=tiny_run.parent,
                   initial_config=long_config(tiny_corpus, lr=3e-3, log_every=1))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await wait_for(pilot, lambda: app.screen.query_one("#form").corpus_check is not None, 20, "corpus check")
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "error" and not active(app), 30, "error")
        assert len(built) == 1 and not torch.isfinite(built[0].head.bias).all()
        error = snap(app).error
        assert error == (f"Stopped: the loss was NaN or infinite for {MAX_BAD_STEPS} steps in a row (step "
                         f"{MAX_BAD_STEPS}). Lower --lr, or check the data; no checkpoint was saved in this run "
                         "yet (one is saved every --val-every steps, 25 here), so there is nothing to resume from.")
        await wait_for(pilot, lambda: squash(f"error: {error}") in squash(log_text(app)), 5, "the log line")
        assert any(str(n.message) == error and n.title == "Training error" for n in Internals.notifications(app))
        await shows(pilot, "✗ error")
        bad = Path(snap(app).run_dir)
        assert runs.read_status(bad)["state"] == "error" and not list(bad.glob("*.safetensors"))
        assert app.is_running and not app.screen.query_one("#form").disabled

        # Take a good run's settings from the Runs screen (t, then r: a new run with them) and start.
        await press(pilot, "5")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.infos) == 2
                                and app.screen, 20, "both runs listed")
        for _ in range([info.path for info in screen.infos].index(tiny_run)):
            await press(pilot, "down")
        await wait_for(pilot, lambda: screen.selected == tiny_run and screen.details is not None, 10, "tiny selected")
        await press(pilot, "t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.form.resume_step == 40, 10,
                       "resume mode")
        await press(pilot, "escape", "r", "s")
        await wait_for(pilot, lambda: snap(app).run_dir not in (None, str(bad), str(tiny_run)), 30,
                       "a new run")
        await wait_for(pilot, lambda: snap(app).status == "finished" and not active(app), 60,
                       "the new run to finish")
        final = snap(app)
        assert final.step == 80 and final.skipped_steps == 0 and final.error is None
        assert final.config["lr"] == 1e-2 and len(built) == 2  # the good run's settings, a model built anew


async def test_save_now_and_restart_with_new_settings(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, val_every=100_000))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await press(pilot, "s")
        await wait_for(pilot, lambda: train_steps(app) > 0, 30, "steps")
        run_dir = Path(snap(app).run_dir)
        assert not (run_dir / runs.LAST).exists()
        await press(pilot, "c")
        await wait_for(pilot, lambda: (run_dir / runs.LAST).exists(), 20, "checkpoint on request")
        await wait_for(pilot, lambda: "(requested)" in screen_text(app), 5, "log line")
        await press(pilot, "r")
        await wait_for(pilot, lambda: not active(app), 30, "stopped for restart")
        assert app.screen.focused is app.screen.query_one("#corpus")  # ready to edit
        await type_into(pilot, "#hidden", "20")
        await press(pilot, "enter")
        await wait_for(pilot, lambda: snap(app).run_dir not in (None, str(run_dir)), 30, "new run")
        assert snap(app).config["hidden"] == 20
        app.train_controller.stop()
        await wait_for(pilot, lambda: not active(app), 30, "stop")


async def test_quitting_while_training_asks_then_saves_a_checkpoint(tmp_path, tiny_corpus):
    from rnn_playground.tui.app.screens.confirm import ConfirmScreen
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, val_every=100_000))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await press(pilot, "s")
        await wait_for(pilot, lambda: train_steps(app) > 5, 30, "steps")
        run_dir = Path(snap(app).run_dir)
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "n")  # keep training
        assert active(app) and app.is_running
        await press(pilot, "ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        await wait_for(pilot, lambda: not app.is_running, 30, "the app to close")
    assert app.return_code == 0
    assert app.train_controller.wait(0)
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped"
    records, _ = runs.read_metrics(run_dir)
    stopped = [r for r in records if r["event"] == "stopped"]
    assert stopped and stopped[-1]["reason"] == "quit"
    from rnn_playground.core.checkpoint import read_metadata
    assert read_metadata(run_dir / runs.LAST)["progress"]["step"] == stopped[-1]["step"] > 5


async def test_quitting_while_a_series_run_trains_asks_then_saves_a_checkpoint(tmp_path):
    from rnn_playground.tui.app.screens.confirm import ConfirmScreen
    from rnn_playground.tui.app.screens.series import SeriesScreen
    app = make_app(tmp_path, mode="series")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, SeriesScreen)
        screen.query_one("#series-hidden").value = "8"
        screen.query_one("#series-steps").value = "1000000"
        await pilot.pause()
        await press(pilot, "s")
        await wait_for(pilot, lambda: screen.snapshot.step > 5 and screen.snapshot.run_dir, 30, "steps")
        run_dir = Path(screen.snapshot.run_dir)
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "n")  # keep training
        assert screen.controller.active and app.is_running
        await press(pilot, "q")
        await press(pilot, "y")
        await wait_for(pilot, lambda: not app.is_running, 30, "the app to close")
    assert app.return_code == 0
    assert screen.controller.wait(0)
    assert runs.read_status(run_dir)["state"] == "stopped"
    records, _ = runs.read_metrics(run_dir)
    stopped = [r for r in records if r["event"] == "stopped"]
    assert stopped and stopped[-1]["reason"] == "quit"
    from rnn_playground.core.checkpoint import read_metadata
    assert read_metadata(run_dir / runs.LAST)["progress"]["step"] == stopped[-1]["step"] > 5


# --------------------------------------------------------------------------- runs screen


def start_headless(tiny_corpus, tmp_path, name="headless", **overrides):
    """A real Trainer in a thread, as another process would run it: it only writes files."""
    control = TrainControl()
    config = tiny_config(tiny_corpus, run_name=name, runs_dir=str(tmp_path / "runs"),
                         **{"steps": 100_000, "val_every": 30, "log_every": 0, **overrides})
    trainer = Trainer(config, control)
    progress = {"step": 0}

    def run():
        for event in trainer.run():
            if event.kind == "step":
                progress["step"] = event.step
            if event.kind == "step" and overrides.get("throttle"):
                time.sleep(overrides["throttle"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return trainer, control, thread, progress


async def test_a_headless_run_is_live_and_its_new_metrics_appear(tmp_path, tiny_corpus):
    """The list is read once (list_interval is far beyond the test), so everything that follows the
    run comes from watching its metrics.jsonl; when the run stops, the details stop saying live at
    once, and the list and the details are read again without waiting for the periodic listing."""
    from rnn_playground.tui.app.screens.runs import SETTLE_SECONDS, RunsScreen
    trainer, control, thread, progress = start_headless(tiny_corpus, tmp_path)
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.infos, 20, "listed")
            screen = app.screen
            assert screen.infos[0].name == "headless" and screen.infos[0].live
            await wait_for(pilot, lambda: "● live" in screen_text(app), 5, "live mark")
            await wait_for(pilot, lambda: screen.watch_snapshot is not None and screen.watch_snapshot.step > 0, 20,
                           "first metrics")
            seen_step = screen.watch_snapshot.step
            seen_points = spark_points(app, "details-train")
            # The other "process" keeps appending to metrics.jsonl; the screen follows.
            await wait_for(pilot, lambda: screen.watch_snapshot.step > seen_step
                           and spark_points(app, "details-train") > seen_points, 30, "new metrics on screen")
            await wait_for(pilot, lambda: f"step {screen.watch_snapshot.step:,}" in
                           plain(screen.query_one("#details-status")), 5, "step shown")
            lines, _ = runs.read_metrics(trainer.run_dir)
            last_step = max(r["step"] for r in lines if r["event"] == "step")
            assert screen.watch_snapshot.step >= min(last_step, seen_step + 1)
            await wait_for(pilot, lambda: spark_points(app, "details-val") >= 1, 30, "validation points")
            # It cannot be deleted while live.
            assert screen.check_action("delete", ()) is None
            details_info = screen.query_one("#details-info")
            assert "\nrunning live · step" in plain(details_info)
            control.stop()
            thread.join(30)
            await wait_for(pilot, lambda: screen.watch_snapshot.status == "stopped", 20, "stopped on screen")
            stopped_at = screen.watch_snapshot.step
            # At most a second after the watch saw the stop (a listing would take 600 s).
            await wait_for(pilot, lambda: " live" not in plain(details_info)
                           and f"\nstopped · step {stopped_at:,}" in plain(details_info), 1.0,
                           "the details to say stopped, not live")
            await wait_for(pilot, lambda: not screen.infos[0].live and "● live" not in screen_text(app)
                           and screen.details is not None and screen.details.state == "stopped"
                           and not screen.details.info.live, SETTLE_SECONDS, "the list and the details read again")
            assert screen.check_action("delete", ()) is True  # no longer live: it can be deleted
    finally:
        control.stop()
        thread.join(30)


async def test_a_headless_train_process_is_watched_live_until_interrupted(tmp_path, tiny_corpus):
    """A real `rnn-playground train` in another process: the Runs screen marks it live, follows its
    metrics.jsonl as it grows, and shows it stopped once Ctrl+C (SIGINT) ends it."""
    import signal
    import subprocess
    import sys

    from rnn_playground.tui.app.screens.runs import RunsScreen
    root = Path(__file__).resolve().parents[1]
    runs_dir = tmp_path / "runs"
    run_dir = runs_dir / "headless-proc"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "train.log", "w") as output:
        proc = subprocess.Popen([sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(tiny_corpus),
                                 "--steps", "10000000", "--name", run_dir.name, "--runs-dir", str(runs_dir),
                                 "--hidden", "32", "--embed", "16", "--batch", "8", "--seq", "16",
                                 "--val-every", "40", "--sample-chars", "10", "--log-every", "5",
                                 "--device", "cpu", "--no-amp"],
                                cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        # The list is read at the start and on r (list_interval is far beyond the test): what follows
        # the run is the watch of its metrics.jsonl, and the listing the stop triggers.
        app = make_app(tmp_path, runs_dir=runs_dir, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "the Runs screen")
            # The process may not have written run.json yet: list again (r) until it shows, live.
            screen = app.screen
            deadline = time.monotonic() + 60
            while not (screen.infos and screen.infos[0].live) and time.monotonic() < deadline:
                await press(pilot, "r")
                await pilot.pause(0.3)
            assert screen.infos and screen.infos[0].live, "the run listed, live"
            assert [info.name for info in screen.infos] == [run_dir.name]
            assert runs.read_status(run_dir)["pid"] == proc.pid
            await wait_for(pilot, lambda: "● live" in screen_text(app), 10, "live mark")
            await wait_for(pilot, lambda: screen.watch_snapshot is not None and screen.watch_snapshot.step > 0
                           and spark_points(app, "details-train") > 0, 60, "first metrics")
            seen_step, seen_points = screen.watch_snapshot.step, spark_points(app, "details-train")
            await wait_for(pilot, lambda: screen.watch_snapshot.step > seen_step
                           and spark_points(app, "details-train") > seen_points, 60, "new metrics on screen")
            await wait_for(pilot, lambda: f"step {screen.watch_snapshot.step:,}" in
                           plain(screen.query_one("#details-status")), 10, "step shown")
            assert proc.poll() is None  # still training: what the screen shows came from a live process
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
            await wait_for(pilot, lambda: screen.watch_snapshot.status == "stopped", 60, "stopped on screen")
            await wait_for(pilot, lambda: " live" not in plain(screen.query_one("#details-info")), 1.0,
                           "the details to stop saying live")
            await wait_for(pilot, lambda: not screen.infos[0].live and "● live" not in screen_text(app), 10,
                           "no longer live")
            stopped_at = runs.read_status(run_dir)["step"]
            assert screen.watch_snapshot.step == stopped_at
            await wait_for(pilot, lambda: plain(screen.query_one("#details-status")).startswith(
                f"stopped  step {stopped_at:,}"), 10, "stopped status shown")
            # The details panel reloads too: the state from run.json, the checkpoint the stop saved.
            # (The state can show from the metrics before run.json is read again: wait for the checkpoints.)
            def saved_checkpoints(text: str) -> list[str]:
                found = re.search(r"saved ([a-z, ]+)", text)  # a phrase of the details: "saved best, last"
                return found.group(1).strip().split(", ") if found else []
            info = await wait_for(pilot, lambda: f"stopped · step {stopped_at:,}" in (
                text := plain(screen.query_one("#details-info"))) and "last" in saved_checkpoints(text) and text,
                20, "stopped in the details, with the checkpoint the stop saved")
            assert " live" not in info
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert "stopped (interrupted)" in (tmp_path / "train.log").read_text()


async def test_runs_open_in_sample_and_gates_delete_and_resume(tmp_path, tiny_run):
    from rnn_playground.tui.app.screens.confirm import ConfirmScreen
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    other = tiny_run.parent / "second"
    import shutil
    shutil.copytree(tiny_run, other)
    os.utime(other / runs.LAST, (time.time() - 3600, time.time() - 3600))
    app = make_app(tmp_path, runs_dir=tiny_run.parent, mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.infos) == 2, 20, "runs")
        runs_screen = app.screen
        await wait_for(pilot, lambda: runs_screen.details is not None, 10, "details")
        assert runs_screen.details.vocab_size
        await shows(pilot, f"vocab {runs_screen.details.vocab_size}")
        selected = runs_screen.selected
        await press(pilot, "s")
        await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen), 5, "sample")
        assert app.selected_run == selected
        await shows(pilot, f"source {selected.name}")
        await press(pilot, "5", "g")
        await wait_for(pilot, lambda: isinstance(app.screen, GatesScreen), 5, "gates")
        await shows(pilot, f"{selected.name} LSTM")

        # Delete the second row, confirming.
        await press(pilot, "5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs")
        await press(pilot, "down")
        await wait_for(pilot, lambda: runs_screen.selected == other, 5, "second selected")
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "n")
        assert other.exists()
        await press(pilot, "d")
        await press(pilot, "y")
        await wait_for(pilot, lambda: not other.exists() and len(runs_screen.infos) == 1, 10, "deleted")

        # Resume the remaining one: the Train screen, in resume mode, continues from its step.
        await wait_for(pilot, lambda: runs_screen.selected == tiny_run and runs_screen.details is not None, 10,
                       "selection")
        await press(pilot, "t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), 5, "train screen")
        form = app.screen.query_one("#form")
        await wait_for(pilot, lambda: form.resume_step == 40, 5, "resume mode")
        await shows(pilot, "Resume tiny (step 40)")
        assert app.screen.query_one("#hidden").disabled
        assert app.screen.query_one("#budget").value == "80"  # the budget was spent: as many steps again
        await press(pilot, "enter")
        await wait_for(pilot, lambda: snap(app).status == "finished" and not active(app), 60,
                       "resumed run to finish")
        assert snap(app).step == 80 and snap(app).start_step == 40
        assert snap(app).run_dir == str(tiny_run)
        # r leaves resume mode: the same settings now start a new run, under a new name.
        app.screen.set_focus(None)
        await press(pilot, "r", "s")
        await wait_for(pilot, lambda: snap(app).run_dir not in (None, str(tiny_run)), 30, "a new run")
        assert form.resume_step is None and snap(app).start_step == 0
        await wait_for(pilot, lambda: not active(app), 60, "the new run to end")


async def test_readme_documents_every_key():
    from rnn_playground.tui.app.keys import key_display, key_table
    from rnn_playground.tui.app.shell import PlaygroundApp
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## The app", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    for scope, keys, _description in key_table(PlaygroundApp):
        assert any(row.startswith(f"| {scope} |") and f"`{key_display(keys)}`" in row for row in rows), \
            f"README's key tables lack {key_display(keys)} ({scope})"


def test_no_color_and_ansi_themes_render(tmp_path, tiny_run, monkeypatch):
    """NO_COLOR and the ANSI themes: every screen renders, and what shows focus or the selected row
    does not rely on colour alone (it is reverse or bold)."""
    import asyncio

    from textual.widgets import DataTable
    for no_color, theme in ((True, None), (False, "ansi-dark"), (True, "ansi-light")):
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        else:
            monkeypatch.delenv("NO_COLOR", raising=False)
        app = make_app(tmp_path, runs_dir=tiny_run.parent)

        async def run():
            if theme:
                app.theme = theme
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                assert app.no_color == no_color
                await shows(pilot, "Start")
                start = app.screen.query_one("#start")
                assert app.screen.focused is start and start.styles.text_style.reverse
                await press(pilot, "5")
                await shows(pilot, "tiny")
                cursor = app.screen.query_one(DataTable).get_component_styles("datatable--cursor")
                if no_color:
                    assert cursor.text_style.reverse
                for key, marker in (("2", "prime"), ("3", "No run opened"), ("4", "Series run")):
                    await press(pilot, key)
                    await shows(pilot, marker)
        asyncio.run(run())


async def test_the_app_run_from_the_command_freezes_what_lives_as_long_as_it(tmp_path):
    """run_app's app freezes the objects alive once its screens are built, so full garbage
    collections no longer walk them (100-200 ms pauses; benchmarks/bench_gates_ui). Apps made in
    tests do not, or every test's app would stay in memory."""
    import gc
    gc.unfreeze()
    for freeze in (False, True):
        app = make_app(tmp_path, freeze_gc=freeze)
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                assert (gc.get_freeze_count() > 0) == freeze
        finally:
            gc.unfreeze()


async def test_embedding_averaging_and_validation_interval_from_the_form(tmp_path, tiny_corpus):
    """The form's embed, ema and val every fields reach the run (and are checked as typed)."""
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await type_into(pilot, "#ema", "1.5")
        await wait_for(pilot, lambda: "ema must be in [0, 1)" in plain(app.screen.query_one("#err-ema")), 5,
                       "ema error")
        await type_into(pilot, "#val_every", "0")
        await wait_for(pilot, lambda: plain(app.screen.query_one("#err-val_every"))
                       == "eval must be at least 1, got 0.",
                       5, "val every error")
        await type_into(pilot, "#ema", "0")
        await type_into(pilot, "#val_every", "7")
        await type_into(pilot, "#embed", "12")
        await press(pilot, "escape", "s")
        await wait_for(pilot, lambda: getattr(app.train_controller.backend, "trainer", None) is not None
                       and snap(app).val_steps, 60, "a validation")  # no backend until the key reaches the screen
        trainer = app.train_controller.backend.trainer
        config = trainer.config
        assert (config.embed, config.ema, config.val_every) == (12, 0.0, 7)
        assert trainer.model.embed.embedding_dim == 12 and trainer.averaged is None
        assert snap(app).val_steps[0] == 7
        await press(pilot, "x")
        await wait_for(pilot, lambda: not active(app), 30, "stopped")


async def test_a_new_run_clears_the_previous_sample_and_says_when_it_validates(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, steps=10, val_every=5))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await press(pilot, "s")
        await wait_for(pilot, lambda: snap(app).status == "finished" and not active(app), 60,
                       "the first run to finish")
        sample = app.screen.query_one("#sample")
        await wait_for(pilot, lambda: sample.border_title == "sample at step 10" and plain(sample), 5, "its sample")
        # A second run that validates only much later: nothing of the first run's sample stays.
        await type_into(pilot, "#budget", "100000")
        await type_into(pilot, "#val_every", "50000")
        await press(pilot, "enter")
        await wait_for(pilot, lambda: snap(app).status == "training" and train_steps(app) > 0, 30,
                       "the second run to train")
        assert sample.border_title == "sample" and plain(sample) == ""
        await shows(pilot, "val loss -  best -  next step 50,000")
        app.train_controller.stop()
        await wait_for(pilot, lambda: not active(app), 30, "stop")


async def test_every_form_field_describes_itself_and_f1_explains_it(tmp_path, tiny_corpus):
    """The one-line description of the focused field is its CLI --help text (core.config's field
    help); F1 in the field opens the help with the longer one, the flag and the default."""
    import dataclasses

    from textual.widgets import Select

    from rnn_playground.core.config import TrainConfig
    from rnn_playground.tui.app.screens.help import HelpScreen
    helps = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}

    def described(shown: str, name: str) -> bool:  # "label  help (or its first clauses)  (F1: more)"
        description = shown.removesuffix("  (F1: more)").split("  ", 1)[-1]
        return len(description) > 10 and helps[name]["help"].startswith(description)
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        line = app.screen.query_one("#field-help")
        assert not line.display  # the Start button is no field
        fields = list(app.screen.query(".form-row Input, .form-row Select"))
        assert len(fields) >= 15
        for field in fields:
            app.screen.set_focus(field)
            name = app.screen.query_one("#budget_kind", Select).value if field.id.startswith("budget") else field.id
            await wait_for(pilot, lambda: line.display and described(plain(line), name), 5, f"the help of {field.id}")
        for name in ("ema", "val_every", "embed", "seq", "batch", "dropout"):
            assert helps[name]["more"], name  # the fields a newcomer asked about explain themselves at length
        app.screen.set_focus(app.screen.query_one("#ema"))
        await pilot.pause()
        await press(pilot, "f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
        topic = plain(app.screen.query_one("#help-topic"))
        assert topic.startswith("ema: keep an exponential moving average") and "(default: 0.99)" in topic
        assert helps["ema"]["more"] in topic and "On the command line: --ema" in topic
        await shows(pilot, "The average of the recent weights predicts better")
        await press(pilot, "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), 5, "help closed")
        assert app.screen.focused is app.screen.query_one("#ema")
        # Outside a field, the help is the keys alone.
        app.screen.set_focus(app.screen.query_one("#start"))
        await wait_for(pilot, lambda: not line.display, 5, "the line to go")
        await press(pilot, "f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
        assert not app.screen.query_one("#help-topic").display
        await press(pilot, "escape")


async def test_the_field_help_line_fits_whole_clauses_at_80x24(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.screen.set_focus(app.screen.query_one("#ema"))
        text = await shows(pilot, "ema  keep an exponential moving average of the weights with this decay")
        assert "decay (" not in text and "…" not in text.splitlines()[-2]


async def test_the_next_validation_shows_whole_at_80x24(tmp_path):
    from rnn_playground.tui.viewmodel.monitor import RunSnapshot
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        snap = RunSnapshot(run_name="r", status="training", step=11_000, val_losses=(2.0, 1.5),
                           val_steps=(10_000, 10_800), val_loss=1.5, best_val_loss=1.5, next_val_in_s=25.0)
        app.screen.live.show(snap)
        await shows(pilot, "val loss 1.5000  best 1.5000  next in 0:25")
        # where best and a longer note do not both fit, the note shows
        app.screen.live.show(RunSnapshot(**{**snap.__dict__, "next_val_in_s": None, "next_val_step": 12_000}))
        await shows(pilot, "val loss 1.5000  next step 12,000")
        app.screen.live.show(RunSnapshot(**{**snap.__dict__, "status": "finished"}))  # no next one
        text = await shows(pilot, "val loss 1.5000  best 1.5000")
        assert "next" not in text

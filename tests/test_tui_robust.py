"""The app never ends on a screen's error: runs opened in any order across the screens while a
run trains, and an unexpected exception in a handler or a worker shown to the user."""

from __future__ import annotations

import itertools
import os
import shutil
import time

import pytest

from rnn_playground.core import runs

from .conftest import long_config
from .tui_helpers import make_app, press, screen_text, shows, wait_for

pytestmark = pytest.mark.timeout(240)


async def select_run(pilot, runs_screen, target) -> None:
    """Move the table's cursor with the arrow keys until `target` is the selected run."""
    deadline = time.monotonic() + 20
    while runs_screen.selected != target:
        assert time.monotonic() < deadline, f"could not select {target.name}"
        names = [info.path for info in runs_screen.infos]
        if target in names and runs_screen.selected in names:
            await press(pilot, "down" if names.index(target) > names.index(runs_screen.selected) else "up")
        await pilot.pause(0.05)


async def test_runs_open_in_every_order_across_sample_gates_and_train_while_a_run_trains(tmp_path, tiny_run,
                                                                                          tiny_corpus):
    """Issue 10: a run open on Gates, then `g` or `s` on another run from Runs, ended the app
    (render_panels read the tracer of the run being replaced)."""
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    other = tiny_run.parent / "second"
    shutil.copytree(tiny_run, other)
    os.utime(other / runs.LAST, (time.time() - 3600, time.time() - 3600))
    app = make_app(tmp_path, runs_dir=tiny_run.parent,
                   initial_config=long_config(tiny_corpus, hidden=16, layers=1, embed=8))
    screens = {"s": SampleScreen, "g": GatesScreen, "t": TrainScreen}
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "training", 30, "training to start")
        opened = 0
        for order in itertools.permutations("sgt"):
            for key in order:
                await press(pilot, "5")
                await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.infos) >= 2,
                               20, "runs listed")
                runs_screen = app.screen
                target = (tiny_run, other)[opened % 2]
                await select_run(pilot, runs_screen, target)
                if key == "t":  # a run trains: Train more is greyed, the Train screen shows the live run
                    await press(pilot, "t", "1")
                else:
                    await press(pilot, key)
                await wait_for(pilot, lambda: isinstance(app.screen, screens[key]), 10, screens[key].__name__)
                # The screen loads the run in a worker while the app's own run trains: under a loaded CI
                # machine that has taken over 10 s.
                if key == "g":
                    await shows(pilot, f"{target.name} LSTM", 30)
                elif key == "s":
                    await shows(pilot, f"source {target.name}", 30)
                opened += 1
        assert app.is_running and app.train_controller.active
        await press(pilot, "1", "x")
        await wait_for(pilot, lambda: not app.train_controller.active, 30, "the run to stop")
    assert app.return_code in (None, 0)


async def test_an_unexpected_error_in_a_handler_an_action_or_a_worker_is_shown_and_the_app_goes_on(
        tmp_path, tiny_run, monkeypatch):
    """Faults injected where the real code has none left: a screen's message handler, a key's
    action and a worker each raise once. Each reaches the user as a notification naming the
    screen; the app stays open and the screen keeps working."""
    from rnn_playground.tui.app import guard
    from rnn_playground.tui.app.screens import runs as runs_module
    from rnn_playground.tui.app.screens.runs import RunsScreen
    faults = {"handler", "action", "worker"}
    real_listed, real_refresh, real_list = (RunsScreen.on_runs_listed, RunsScreen.action_refresh,
                                            runs_module.runs_for_display)

    def fail_once(kind, real):
        def call(*args, **kwargs):
            if kind in faults:
                faults.discard(kind)
                raise RuntimeError(f"injected {kind} fault")
            return real(*args, **kwargs)
        return call

    app = make_app(tmp_path, runs_dir=tiny_run.parent, mode="runs", watch_interval=0, list_interval=0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.infos, 20, "runs listed")
        monkeypatch.setattr(RunsScreen, "on_runs_listed", fail_once("handler", real_listed))
        monkeypatch.setattr(RunsScreen, "action_refresh", fail_once("action", real_refresh))
        monkeypatch.setattr(runs_module, "runs_for_display", fail_once("worker", real_list))
        for kind, where in (("action", "Runs screen, action refresh"), ("worker", "worker runs-list"),
                            ("handler", "Runs screen (RunsListed)")):
            guard.UNEXPECTED_ERRORS.clear()
            await press(pilot, "r")
            await wait_for(pilot, lambda: guard.UNEXPECTED_ERRORS, 10, f"the {kind} fault")
            assert f"injected {kind} fault" in guard.UNEXPECTED_ERRORS[-1]
            await shows(pilot, "Unexpected error")
            await shows(pilot, f"injected {kind} fault")
            assert app.is_running and where in guard.UNEXPECTED_ERRORS[-1], guard.UNEXPECTED_ERRORS[-1]
            app.clear_notifications()
        # A timer's callback (Gates plays with one) is guarded the same way.
        guard.UNEXPECTED_ERRORS.clear()
        app.screen.set_timer(0.01, fail_once("timer", None))
        faults.add("timer")
        await wait_for(pilot, lambda: guard.UNEXPECTED_ERRORS, 10, "the timer fault")
        assert "Runs screen (timer)" in guard.UNEXPECTED_ERRORS[-1] and app.is_running
        guard.UNEXPECTED_ERRORS.clear()
        # The screen still handles its messages and keys: a refresh lists the runs again.
        app.screen.infos = []
        await press(pilot, "r")
        await wait_for(pilot, lambda: app.screen.infos, 10, "runs listed again")
        assert not faults
        await press(pilot, "q")
    assert app.return_code == 0


async def test_a_worker_that_fails_unexpectedly_is_shown_and_its_busy_text_goes(tmp_path, tiny_run, monkeypatch):
    """Saturation's worker raises an error nobody expected while "computing saturation…" is on
    screen: the user sees it as a notification naming the screen and the worker, and the busy
    text goes (it stayed on screen for good before)."""
    import threading

    from rnn_playground.core.gates import Trace
    from rnn_playground.tui.app import guard
    from rnn_playground.tui.app.screens.gates import GatesScreen
    release = threading.Event()

    def failing_saturation(self, *args, **kwargs):
        release.wait(30)  # until the test has seen the busy text
        raise RuntimeError("injected saturation fault")

    monkeypatch.setattr(Trace, "saturation", failing_saturation)
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        app.open_run("gates", tiny_run)
        await wait_for(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace is not None, 30,
                       "the run traced")
        screen = app.screen
        await press(pilot, "s")
        await shows(pilot, "computing saturation…")
        assert screen.busy_text() == "computing saturation…"
        release.set()
        await wait_for(pilot, lambda: guard.UNEXPECTED_ERRORS, 20, "the fault")
        assert "the Gates screen, worker gates-saturation" in guard.UNEXPECTED_ERRORS[-1]
        await shows(pilot, "injected saturation fault")
        await wait_for(pilot, lambda: "computing saturation…" not in screen_text(app), 10, "the busy text gone")
        assert screen.busy_text() == "" and screen.gates.saturation is None and app.is_running
        guard.UNEXPECTED_ERRORS.clear()


async def test_a_runs_worker_that_fails_unexpectedly_is_shown_and_leaves_no_busy_text(tmp_path, tiny_run,
                                                                                       monkeypatch):
    """The Runs screen's workers are covered by the same handler: the details of the selected run
    fail to load, the user is told, and no "loading…" is left."""
    from rnn_playground.tui.app import guard
    from rnn_playground.tui.app.screens import runs as runs_module
    from rnn_playground.tui.app.screens.runs import RunsScreen

    def failing_details(run_dir):
        raise RuntimeError("injected details fault")

    monkeypatch.setattr(runs_module, "run_details", failing_details)
    app = make_app(tmp_path, runs_dir=tiny_run.parent, mode="runs", watch_interval=0, list_interval=0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: guard.UNEXPECTED_ERRORS, 20, "the fault")
        assert "the Runs screen, worker runs-details" in guard.UNEXPECTED_ERRORS[-1]
        await shows(pilot, "injected details fault")
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.details is None
        await wait_for(pilot, lambda: screen.busy_text() == "", 10, "the worker ended")
        screen.on_resize()  # redraws the details panel, as a resize of the terminal does
        await pilot.pause()
        assert "loading…" not in screen_text(app)
        guard.UNEXPECTED_ERRORS.clear()


async def test_a_widgets_worker_that_fails_unexpectedly_is_shown(tmp_path, tiny_run, monkeypatch):
    """The Train form checks the corpus in a worker of its own (a widget's, not a screen's): the same
    handler reports an error nobody expected there, naming the form and its screen."""
    from rnn_playground.tui.app import guard
    from rnn_playground.tui.app.widgets import form as form_module

    def failing_check(*args, **kwargs):
        raise RuntimeError("injected corpus-check fault")

    monkeypatch.setattr(form_module, "check_corpus", failing_check)
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: guard.UNEXPECTED_ERRORS, 20, "the fault")
        assert "the TrainForm of the Train screen, worker corpus-check" in guard.UNEXPECTED_ERRORS[-1]
        await shows(pilot, "RuntimeError: injected")  # the notification (it wraps after this)
        assert app.is_running
        guard.UNEXPECTED_ERRORS.clear()


async def test_back_to_the_open_run_before_another_one_loads_keeps_it_open(tmp_path, tiny_run):
    """The Sample screen follows app.selected_run even in the background: another run selected, then the open
    one again before the other's load ends, used to leave the other run's load to replace the open one."""
    from rnn_playground.tui.app.screens.sample import SampleScreen
    other = tiny_run.parent / "second"
    shutil.copytree(tiny_run, other)
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run("sample", tiny_run)
        await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint is not None,
                       30, "the first run loaded")
        screen = app.screen
        app.selected_run = other
        app.selected_run = tiny_run  # before the other run's load has ended
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert screen.run == tiny_run and screen.checkpoint.name == tiny_run.name and not screen.is_loading

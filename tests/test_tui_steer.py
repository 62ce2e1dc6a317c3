"""Steering a run another process trains, from the app: the Runs screen's run keys (p, c, x) on the
selected live run, `t` to follow it on the Train screen whose keys then steer it, and the words a run
that cannot be steered from here shows instead. Real `rnn-playground train` processes, real folders."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import read_metadata

from .conftest import long_config
from .tui_helpers import (
    ROOT,
    Internals,
    as_a_user_who_cannot_write,
    hold_lock,
    make_app,
    press,
    records,
    screen_text,
    start_headless_run,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)


def footer_of(app) -> str:
    return screen_text(app).splitlines()[-1]


def notes(app) -> list[str]:
    return [str(notification.message) for notification in Internals.notifications(app)]


async def runs_screen_on(pilot, run_dir):
    """The Runs screen with `run_dir` selected, its details read and its metrics watched."""
    from rnn_playground.tui.app.screens.runs import RunsScreen
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.infos, 30, "the runs listed")
    screen = app.screen
    while screen.selected != run_dir:
        await press(pilot, "down")
    await wait_for(pilot, lambda: screen.details is not None and screen.reach is not None
                   and screen.watch_snapshot is not None, 30, "its details and metrics")
    return screen


def acknowledged(run_dir) -> list[str]:
    return [record["command"] for record in records(run_dir, "control")]


async def test_the_runs_screen_pauses_saves_resumes_and_stops_a_headless_run(tiny_corpus, tmp_path):
    run_dir = tmp_path / "runs" / "elsewhere"
    process = start_headless_run(tiny_corpus, run_dir)
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await runs_screen_on(pilot, run_dir)
            await wait_for(pilot, lambda: screen.watch_snapshot.step > 0, 30, "its steps")
            assert screen.controller in app.controllers and screen.watch_state.watched
            footer = await wait_for(pilot, lambda: "p Pause" in (line := footer_of(app)) and line, 10, "keys")
            assert "t Follow on Train" in footer and "x Stop" in footer and "c Save" in footer, footer

            await press(pilot, "p")
            await wait_for(pilot, lambda: screen.watch_snapshot.status == "paused", 30, "paused, as its metrics say")
            paused = records(run_dir, "paused")[0]
            await wait_for(pilot, lambda: "p Resume" in footer_of(app)
                           and screen.query_one("#details-status").render().plain.startswith("paused"), 10, "shown")
            await press(pilot, "c")
            saved = await wait_for(pilot, lambda: [r for r in records(run_dir, "checkpoint")
                                                   if r["reason"] == "requested"], 30, "the requested checkpoint")
            assert saved[0]["step"] == paused["step"]  # saved while paused
            await press(pilot, "p")
            await wait_for(pilot, lambda: records(run_dir, "resumed"), 30, "resumed")
            await press(pilot, "x")
            # Waited for without blocking: the app's loop must go on to handle the key and send the command.
            await wait_for(pilot, lambda: process.poll() is not None, 60, "the run's process to end")
            assert process.returncode == 0
            await wait_for(pilot, lambda: screen.watch_snapshot.status == "stopped", 30, "stopped on screen")
            await wait_for(pilot, lambda: "p Pause" not in footer_of(app) and "t Train more" in footer_of(app),
                           10, "the run keys gone, t trains it more")
            assert not app.training_here()  # only watched: q would not ask
    finally:
        if process.poll() is None:
            process.kill()
    assert acknowledged(run_dir) == ["pause", "save", "resume", "stop"]
    stopped = records(run_dir, "stopped")[0]
    assert records(run_dir, "checkpoint")[-1]["reason"] == "stop"
    assert read_metadata(run_dir / runs.LAST)["progress"]["step"] == stopped["step"]


async def test_t_follows_a_headless_run_on_the_train_screen_and_its_keys_steer_it(tiny_corpus, tmp_path):
    """`t` on a live run: the Train screen shows it and its keys pause and stop it through its folder; `s` there
    lets go of it (it trains on in its own process) and starts a run of the app's own."""
    from rnn_playground.tui.app.screens.train import TrainScreen
    run_dir = tmp_path / "runs" / "elsewhere"
    process = start_headless_run(tiny_corpus, run_dir)
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs",
                       initial_config=long_config(tiny_corpus, hidden=16, layers=1, embed=8))
        async with app.run_test(size=(80, 24)) as pilot:
            await runs_screen_on(pilot, run_dir)
            await press(pilot, "t")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), 10, "the Train screen")
            train = app.train_controller
            await wait_for(pilot, lambda: app.train_run.watched and app.train_run.snapshot.step > 0, 30, "followed")
            await wait_for(pilot, lambda: "elsewhere" in screen_text(app) and "in another process" in screen_text(app),
                           10, "the followed run on screen")
            assert not app.training_here()

            await press(pilot, "space")
            await wait_for(pilot, lambda: app.train_run.snapshot.status == "paused", 30, "paused")
            assert acknowledged(run_dir) == ["pause"]
            await press(pilot, "space")
            await wait_for(pilot, lambda: app.train_run.snapshot.status == "training", 30, "training again")

            # s: no longer following it; a run of the app's own starts, and the other trains on.
            await press(pilot, "s")
            await wait_for(pilot, lambda: train.active and not train.watching, 30, "a run of its own")
            assert any("No longer following elsewhere" in note for note in notes(app))
            await wait_for(pilot, lambda: app.train_run.snapshot.status == "training", 60, "its own run training")
            steps = len(records(run_dir, "step"))
            await wait_for(pilot, lambda: len(records(run_dir, "step")) > steps, 30, "the other still training")
            assert process.poll() is None and acknowledged(run_dir) == ["pause", "resume"]
            await press(pilot, "x")
            await wait_for(pilot, lambda: not train.active, 60, "its own run stopped")

            # Followed again from Runs, and stopped from the Train screen (x), with a checkpoint.
            await press(pilot, "5")
            await runs_screen_on(pilot, run_dir)
            await press(pilot, "t")
            # x applies once the watch has caught up with the run (its keys are greyed until its state is known):
            # under a full suite's load that can take a while after the Train screen shows the run's name.
            await wait_for(pilot, lambda: app.train_run.watched and app.train_run.snapshot.run_name == "elsewhere"
                           and app.train_run.snapshot.status == "training" and app.screen.check_action("stop", ()),
                           30, "followed again")
            await press(pilot, "x")
            # Waited for without blocking: the app's loop must go on to handle the key and send the command.
            await wait_for(pilot, lambda: process.poll() is not None, 60, "the run's process to end")
            assert process.returncode == 0
            await wait_for(pilot, lambda: not app.train_run.active and app.train_run.snapshot.status == "stopped",
                           30, "stopped on the Train screen")
    finally:
        if process.poll() is None:
            process.kill()
    assert acknowledged(run_dir) == ["pause", "resume", "stop"]
    stopped = records(run_dir, "stopped")[0]
    assert read_metadata(run_dir / runs.LAST)["progress"]["step"] == stopped["step"]


async def test_a_run_without_the_control_channel_says_so_and_a_refused_command_is_told(tmp_path):
    """A live run started by a version without the channel: the Runs screen greys its keys and says why; followed
    on the Train screen, a key pressed there is refused with the engine's words, and the keys stop applying."""
    from rnn_playground.tui.app.screens.train import TrainScreen
    run_dir = tmp_path / "runs" / "old-timer"
    holder = hold_lock(run_dir, run_id=None)
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await runs_screen_on(pilot, run_dir)
            await wait_for(pilot, lambda: "without a control channel" in screen_text(app), 10, "the why")
            assert screen.check_action("pause", ()) is None and screen.check_action("stop", ()) is None  # greyed
            assert screen.check_action("follow", ()) is True
            await press(pilot, "p", "x")
            assert not (run_dir / runs.CONTROL).exists()  # nothing sent

            await press(pilot, "t")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.train_run.watched, 10, "followed")
            assert app.train_run.can_pause
            await press(pilot, "space")
            await wait_for(pilot, lambda: any("without a control channel" in note for note in notes(app)), 10,
                           "the refusal told")
            assert not app.train_run.can_pause and not app.train_run.can_stop
            assert app.train_run.status != "pausing"  # nothing is on its way
            assert not (run_dir / runs.CONTROL).exists()
    finally:
        holder.kill()
        holder.wait()


async def test_a_run_that_does_not_answer_is_said_to_have_not_acknowledged(tmp_path):
    """A live run that never reads its control channel (stuck in a long step, say): the command is written, and
    after a few seconds without its acknowledgement the Runs screen says so."""
    run_dir = tmp_path / "runs" / "deaf"
    holder = hold_lock(run_dir)
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await runs_screen_on(pilot, run_dir)
            assert screen.check_action("pause", ()) is True
            await press(pilot, "p")
            assert json.loads((run_dir / runs.CONTROL).read_text())["command"] == "pause"
            assert screen.watch_state.pause_requested  # asked, not yet acknowledged
            await wait_for(pilot, lambda: any("has not acknowledged pause within 5 s" in note for note in notes(app)),
                           20, "the silence told")
    finally:
        holder.kill()
        holder.wait()


async def test_an_ended_run_has_no_run_keys_and_t_trains_it_more(tiny_run, tmp_path):
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0.2, list_interval=600, mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await runs_screen_on(pilot, tiny_run)
        assert screen.watch_snapshot.status == "finished" and not screen.controller.active
        assert [screen.check_action(action, ()) for action in ("pause", "resume", "stop", "save", "follow")] == \
            [False] * 5
        assert screen.check_action("train_more", ()) is True
        footer = footer_of(app)
        assert "t Train more" in footer and "Pause" not in footer and "Stop" not in footer, footer
        assert "watch only" not in screen_text(app)  # its state says it: finished


READ_ONLY_APP = """
import asyncio, json, sys
from pathlib import Path
from tests.tui_helpers import make_app, press, screen_text, wait_for

async def main(run_dir: Path) -> None:
    app = make_app(run_dir.parent.parent, runs_dir=run_dir.parent, watch_interval=0.2, list_interval=600,
                   mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen" and app.screen.reach is not None
                       and app.screen.watch_snapshot is not None, 30, "the run")
        screen = app.screen
        await wait_for(pilot, lambda: "watch only" in screen_text(app), 10, "the why")
        text = screen.query_one("#details-info").render().plain
        keys = {action: screen.check_action(action, ()) for action in ("pause", "stop", "save", "follow")}
        await press(pilot, "p", "x", "c")
        print(json.dumps({"text": text, "keys": keys, "controllable": screen.watch_state.controllable}))

asyncio.run(main(Path(sys.argv[1])))
"""


def test_a_run_in_a_folder_this_user_cannot_write_is_watched_only_and_says_why(tmp_path):
    """The folder's permissions decide who controls a run: an app whose user cannot write the folder (for root,
    without the capabilities that override permissions) watches the run, greys its keys and says why."""
    run_dir = tmp_path / "runs" / "theirs"
    holder = hold_lock(run_dir)
    try:
        run_dir.chmod(0o555)
        prefix = as_a_user_who_cannot_write(run_dir)
        result = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_APP, str(run_dir)], cwd=ROOT,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-3000:]
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert "watch only: this user cannot write the run's folder" in " ".join(seen["text"].split())
        assert seen["keys"] == {"pause": None, "stop": None, "save": None, "follow": True}, seen["keys"]
        assert seen["controllable"] is False
        assert not (run_dir / runs.CONTROL).exists()
    finally:
        run_dir.chmod(0o755)
        holder.kill()
        holder.wait()

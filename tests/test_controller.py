"""rnn_playground.tui.viewmodel.controller: one run's control and status words, without Textual, on a real
tiny Trainer; and how its batched snapshots travel through Textual's message queue (RunUpdated)."""

from __future__ import annotations

import threading
import time

import pytest
from textual.app import App
from textual.message import Message

from rnn_playground.core.events import StepEvent
from rnn_playground.core.sampling import SampleSettings
from rnn_playground.core.trainer import TrainControl, Trainer
from rnn_playground.tui.app.messages import RunUpdated
from rnn_playground.tui.viewmodel.controller import (
    POST_INTERVAL_S,
    URGENT_EVENTS,
    InProcessRun,
    RunController,
    RunState,
    RunUpdate,
)
from rnn_playground.tui.viewmodel.monitor import RunSnapshot

from .conftest import tiny_config
from .tui_helpers import Face

pytestmark = pytest.mark.timeout(120)

STEPS = 300


def inline(body) -> None:
    body(lambda: False)


def drive(tiny_corpus, tmp_path, interval: float):
    """Run a real tiny trainer for STEPS steps (one step event each) through a controller, inline."""
    config = tiny_config(tiny_corpus, hidden=16, layers=1, embed=8, steps=STEPS, val_every=100, log_every=1,
                         run_name="batched", runs_dir=str(tmp_path / "runs"))
    posts: list[RunUpdate] = []
    events: list = []
    controller = RunController(inline, posts.append, interval=interval)
    began = time.monotonic()
    controller.start(InProcessRun(lambda control: Trainer(config, control),
                                  on_event=lambda trainer, event: events.append(event)))
    return controller, posts, events, time.monotonic() - began


def check_posts(controller, posts, events):
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len(steps) == STEPS  # log_every=1: one step event per step
    # Exactly one final update, and it is the last; every snapshot's step count only grows.
    assert [p.done for p in posts] == [False] * (len(posts) - 1) + [True]
    counts = [p.snapshot.step for p in posts]
    assert counts == sorted(counts)
    assert posts[0].snapshot.status == "starting"
    final = posts[-1].snapshot
    assert final.status == "finished" and final.step == STEPS and final.train_steps[-1] == STEPS
    assert controller.wait(0)


def test_the_controller_publishes_batched_snapshots_and_one_final_update(tiny_corpus, tmp_path):
    controller, posts, events, elapsed = drive(tiny_corpus, tmp_path, POST_INTERVAL_S)
    check_posts(controller, posts, events)
    urgent = sum(isinstance(e, URGENT_EVENTS) for e in events)
    routine = len(posts) - 2 - urgent  # less the "starting" and the final one
    # At most one routine post per interval (plus one for the partial interval at each end),
    # however many steps ran in it: on a slow machine there are more intervals, never more per one.
    assert routine <= elapsed / POST_INTERVAL_S + 2, (len(posts), urgent, elapsed)


def test_routine_steps_wait_for_the_interval_urgent_events_do_not(tiny_corpus, tmp_path):
    """With an interval longer than the run, only the urgent events (start, validations, samples,
    checkpoints, the end) are posted: the 300 step events are folded in, never posted one by one."""
    controller, posts, events, _ = drive(tiny_corpus, tmp_path, 3600.0)
    check_posts(controller, posts, events)
    urgent = [e for e in events if isinstance(e, URGENT_EVENTS)]
    assert len(posts) == 1 + len(urgent) + 1  # "starting", one per urgent event, the final one
    assert [p.snapshot.step for p in posts[1:-1]] == [getattr(e, "step", 0) for e in urgent]
    # The snapshot posted at a validation already holds every step's loss before it.
    at_validation = next(p.snapshot for p in posts if p.snapshot.val_steps == (100,))
    assert at_validation.train_steps[-1] == 100 and len(at_validation.train_steps) == 100


def test_a_failing_trainer_ends_in_one_error_update(tmp_path):
    posts: list[RunUpdate] = []
    controller = RunController(inline, posts.append)
    missing = tmp_path / "missing.txt"
    controller.start(InProcessRun(lambda control: Trainer(tiny_config(missing), control)))
    assert [p.done for p in posts] == [False, True]
    final = posts[-1].snapshot
    assert final.status == "error" and "neither a file" in final.error
    assert final.log[-1].level == "error" and final.log[-1].text == final.error
    assert controller.wait(0)


def test_updates_are_the_controllers_once_the_face_receives_them(tiny_corpus, tmp_path):
    """The body publishes; the controller's state changes only when the face hands an update back."""
    posts: list[RunUpdate] = []
    states: list[RunState] = []
    controller = RunController(inline, posts.append, on_change=states.append)
    config = tiny_config(tiny_corpus, steps=10, val_every=5, runs_dir=str(tmp_path / "runs"))
    controller.start(InProcessRun(lambda control: Trainer(config, control)))
    assert controller.active and controller.state.status == "starting"  # nothing received yet
    assert [s.status for s in states] == ["starting"]
    for update in posts:
        controller.receive(update)
    assert not controller.active and controller.state.status == "finished"
    assert controller.receive(RunUpdate(RunSnapshot(status="training"), run=controller.run - 1)) is None  # stale
    assert states[-1] == controller.state and controller.snapshot.step == 10


# --------------------------------------------------------------------------- a run in a thread, step by step


def test_start_pause_resume_save_stop_and_the_status_word_of_each(tiny_corpus, tmp_path):
    face = Face()
    controller = face.controller
    assert controller.state.status == "idle" and not controller.state.can_stop
    config = tiny_config(tiny_corpus, steps=100_000, val_every=100_000, runs_dir=str(tmp_path / "runs"))
    assert controller.start(InProcessRun(lambda control: Trainer(config, control)))
    assert controller.state.status == "starting" and controller.state.can_pause
    assert not controller.start(InProcessRun(lambda control: Trainer(config, control)))  # one run at a time

    state = face.until(lambda s: s.snapshot.status == "training" and s.snapshot.step >= 3, what="training")
    assert state.status == "training" and state.can_pause and not state.can_resume and state.can_stop
    first_loss = state.snapshot.train_losses[0]

    controller.pause()
    assert controller.state.status == "pausing"  # asked, not yet confirmed
    assert not controller.state.can_pause and controller.state.can_resume
    state = face.until(lambda s: s.snapshot.status == "paused", what="paused")
    assert state.status == "paused" and state.can_resume
    paused_at = state.snapshot.step

    controller.resume()
    assert controller.state.status == "resuming"
    state = face.until(lambda s: s.snapshot.status == "training" and s.snapshot.step > paused_at + 20,
                       what="training again")
    assert state.status == "training"

    assert controller.save()
    state = face.until(lambda s: s.snapshot.last_checkpoint is not None, what="the requested save")
    assert any("(requested)" in line.text for line in state.snapshot.log)

    model = controller.live_model()
    assert model is not None and model.cell == config.cell and model.hidden == config.hidden
    sampler = model.take_sampler()  # a copy of the weights, taken between two steps
    assert len("".join(sampler.stream(SampleSettings(length=5, seed=1)))) == 5

    controller.stop("user")
    assert controller.state.status == "stopping" and not controller.state.can_stop
    state = face.until(lambda s: not s.active, what="the stop")
    assert state.status == "stopped" and state.stop_reason == "user"
    assert state.snapshot.last_checkpoint_step == state.snapshot.step
    assert controller.live_model() is None and controller.wait(5)
    # the snapshot's loss falls
    assert state.snapshot.loss < first_loss - 0.5, (first_loss, state.snapshot.loss)


def test_a_run_elsewhere_is_watched_and_steered_through_its_folder(tiny_corpus, tmp_path):
    """The trainer here runs in a thread, but the controller reaches it only through its folder (metrics.jsonl
    in, control.json out), as it would a run in another process (tests/test_control.py has that one)."""
    config = tiny_config(tiny_corpus, steps=60, val_every=20, run_name="elsewhere", runs_dir=str(tmp_path / "runs"))
    control = TrainControl()
    control.pause()  # it waits at step 0 until the resume comes through the folder: no race with its end
    trainer = Trainer(config, control)  # holds the run's lock from here: the run is live
    face = Face()
    controller = face.controller
    assert controller.watch(trainer.run_dir, poll_s=0.02)
    threading.Thread(target=lambda: list(trainer.run()), daemon=True).start()
    state = face.until(lambda s: s.snapshot.status == "paused", what="the paused start")
    assert state.controllable and state.can_resume and state.can_stop  # the folder is writable
    assert controller.live_model() is None  # the model is not in the watching process
    controller.resume()
    assert controller.state.status == "resuming"
    state = face.until(lambda s: not s.active, what="the run's end")
    assert state.status == "finished" and state.snapshot.step == 60
    assert state.snapshot.run_name == "elsewhere" and state.snapshot.val_steps == (20, 40, 60)


# --------------------------------------------------------------------------- can_replace


def update(step: int, done: bool = False, run: str = "a", controller=None) -> RunUpdated:
    return RunUpdated(controller or CONTROLLER,
                      RunUpdate(RunSnapshot(run_name=run, step=step, status="finished" if done else "training"),
                                done))


CONTROLLER = RunController(inline, lambda update: None)


class Receiver(App):
    """A bare app that records the RunUpdated messages Textual dispatches to it."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[RunUpdated] = []

    def on_run_updated(self, message: RunUpdated) -> None:
        self.received.append(message)


async def deliver(*updates: RunUpdated) -> list[tuple[str, int, bool]]:
    """Queue the updates in one burst (as a busy worker thread would, faster than the app handles
    them) and return what Textual's message loop actually dispatched."""
    app = Receiver()
    async with app.run_test() as pilot:
        await pilot.pause()
        for message in updates:  # no await between posts: all queued before any is handled
            app.post_message(message)
        await pilot.pause()
        await pilot.pause()
    return [(m.update.snapshot.run_name, m.update.snapshot.step, m.update.done) for m in app.received]


def test_can_replace_in_textuals_terms():
    """Textual asks the queued message `older.can_replace(newer)`; True drops the older one."""
    assert update(1).can_replace(update(2))
    assert update(1).can_replace(update(2, done=True))  # the final snapshot holds all the older one did
    assert not update(1, done=True).can_replace(update(2))  # the final one is never dropped
    assert not update(1).can_replace(Message())  # only another update stands in
    other = RunController(inline, lambda update: None)
    assert not update(1).can_replace(update(2, controller=other))  # nor one of another controller's run


async def test_a_burst_of_updates_reaches_the_app_as_the_newest_and_the_final_one():
    assert await deliver(update(1), update(2), update(3)) == [("a", 3, False)]
    assert await deliver(update(1), update(2), update(3, done=True)) == [("a", 3, True)]


async def test_a_final_update_is_never_dropped_for_a_newer_one():
    assert not update(3, done=True).can_replace(update(0, run="b"))
    assert await deliver(update(3, done=True), update(0, run="b")) == [("a", 3, True), ("b", 0, False)]

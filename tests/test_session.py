"""rnn_playground.tui.viewmodel.session: the training worker's loop, on a real tiny Trainer, and how its batched snapshots
travel through Textual's message queue."""

from __future__ import annotations

import time

import pytest
from textual.app import App
from textual.message import Message

from rnn_playground.core.events import StepEvent
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.viewmodel.monitor import RunSnapshot
from rnn_playground.tui.viewmodel.session import (
    POST_INTERVAL_S,
    URGENT_EVENTS,
    TrainingSession,
    TrainingUpdate,
    run_training,
)

from .conftest import tiny_config

pytestmark = pytest.mark.timeout(120)

STEPS = 300


def drive(tiny_corpus, tmp_path, interval: float):
    """Run a real tiny trainer for STEPS steps (one step event each) through run_training."""
    config = tiny_config(tiny_corpus, hidden=16, layers=1, embed=8, steps=STEPS, val_every=100, log_every=1,
                         run_name="batched", runs_dir=str(tmp_path / "runs"))
    session = TrainingSession(running=True)
    posts: list[TrainingUpdate] = []
    events: list = []
    began = time.monotonic()
    final = run_training(session, lambda control: Trainer(config, control), posts.append, interval=interval,
                         on_event=lambda trainer, event: events.append(event))
    return session, final, posts, events, time.monotonic() - began


def check_posts(session, final, posts, events):
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len(steps) == STEPS  # log_every=1: one step event per step
    # Exactly one final update, and it is the last; every snapshot's step count only grows.
    assert [p.done for p in posts] == [False] * (len(posts) - 1) + [True]
    counts = [p.snapshot.step for p in posts]
    assert counts == sorted(counts)
    assert posts[0].snapshot.status == "starting"
    assert posts[-1].snapshot is final
    assert final.status == "finished" and final.step == STEPS and final.train_steps[-1] == STEPS
    assert session.finished.is_set() and session.trainer is not None


def test_run_training_posts_batched_snapshots_and_one_final_update(tiny_corpus, tmp_path):
    session, final, posts, events, elapsed = drive(tiny_corpus, tmp_path, POST_INTERVAL_S)
    check_posts(session, final, posts, events)
    urgent = sum(isinstance(e, URGENT_EVENTS) for e in events)
    routine = len(posts) - 2 - urgent  # less the "starting" and the final one
    # At most one routine post per interval (plus one for the partial interval at each end),
    # however many steps ran in it: on a slow machine there are more intervals, never more per one.
    assert routine <= elapsed / POST_INTERVAL_S + 2, (len(posts), urgent, elapsed)


def test_routine_steps_wait_for_the_interval_urgent_events_do_not(tiny_corpus, tmp_path):
    """With an interval longer than the run, only the urgent events (start, validations, samples,
    checkpoints, the end) are posted: the 300 step events are folded in, never posted one by one."""
    session, final, posts, events, _ = drive(tiny_corpus, tmp_path, 3600.0)
    check_posts(session, final, posts, events)
    urgent = [e for e in events if isinstance(e, URGENT_EVENTS)]
    assert len(posts) == 1 + len(urgent) + 1  # "starting", one per urgent event, the final one
    assert [p.snapshot.step for p in posts[1:-1]] == [getattr(e, "step", 0) for e in urgent]
    # The snapshot posted at a validation already holds every step's loss before it.
    at_validation = next(p.snapshot for p in posts if p.snapshot.val_steps == (100,))
    assert at_validation.train_steps[-1] == 100 and len(at_validation.train_steps) == 100


def test_a_failing_trainer_ends_in_one_error_update(tmp_path):
    session = TrainingSession(running=True)
    posts: list[TrainingUpdate] = []
    missing = tmp_path / "missing.txt"
    final = run_training(session, lambda control: Trainer(tiny_config(missing), control), posts.append)
    assert [p.done for p in posts] == [False, True]
    assert final.status == "error" and "neither a file" in final.error
    assert final.log[-1].level == "error" and final.log[-1].text == final.error
    assert session.finished.is_set()


# --------------------------------------------------------------------------- can_replace


def update(step: int, done: bool = False, run: str = "a") -> TrainingUpdate:
    return TrainingUpdate(RunSnapshot(run_name=run, step=step, status="finished" if done else "training"), done)


class Receiver(App):
    """A bare app that records the TrainingUpdates Textual dispatches to it."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[TrainingUpdate] = []

    def on_training_update(self, message: TrainingUpdate) -> None:
        self.received.append(message)


async def deliver(*updates: TrainingUpdate) -> list[tuple[str, int, bool]]:
    """Queue the updates in one burst (as a busy worker thread would, faster than the app handles
    them) and return what Textual's message loop actually dispatched."""
    app = Receiver()
    async with app.run_test() as pilot:
        await pilot.pause()
        for message in updates:  # no await between posts: all queued before any is handled
            app.post_message(message)
        await pilot.pause()
        await pilot.pause()
    return [(m.snapshot.run_name, m.snapshot.step, m.done) for m in app.received]


def test_can_replace_in_textuals_terms():
    """Textual asks the queued message `older.can_replace(newer)`; True drops the older one."""
    assert update(1).can_replace(update(2))
    assert update(1).can_replace(update(2, done=True))  # the final snapshot holds all the older one did
    assert not update(1, done=True).can_replace(update(2))  # the final one is never dropped
    assert not update(1).can_replace(Message())  # only another update stands in


async def test_a_burst_of_updates_reaches_the_app_as_the_newest_and_the_final_one():
    assert await deliver(update(1), update(2), update(3)) == [("a", 3, False)]
    assert await deliver(update(1), update(2), update(3, done=True)) == [("a", 3, True)]


async def test_a_final_update_is_never_dropped_for_a_newer_one():
    assert not update(3, done=True).can_replace(update(0, run="b"))
    assert await deliver(update(3, done=True), update(0, run="b")) == [("a", 3, True), ("b", 0, False)]

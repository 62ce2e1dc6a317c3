"""The app's side of a training run: the control, the worker thread's state, and the messages it posts.

The worker iterates `Trainer.run()` in a thread, folds every event into a `core.watch.RunMonitor`
and posts a `TrainingUpdate` (an immutable snapshot) a few times a second, never per step; a newer
update replaces one still queued, so the UI never falls behind however fast the trainer runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from rnn_playground.core.events import (
    CheckpointSaved,
    ErrorEvent,
    Finished,
    Paused,
    Resumed,
    RunStarted,
    SampleEvent,
    Stopped,
    ValidationEvent,
)
from rnn_playground.core.trainer import TrainControl, Trainer
from rnn_playground.tui.viewmodel.format import error_text
from rnn_playground.tui.viewmodel.monitor import RunMonitor, RunSnapshot

POST_INTERVAL_S = 0.2      # at most about five routine updates a second
URGENT_EVENTS = (RunStarted, Paused, Resumed, Stopped, Finished, ErrorEvent, ValidationEvent, SampleEvent,
                 CheckpointSaved)

TrainerFactory = Callable[[TrainControl], Trainer]
EventHook = Callable[[Trainer, object], None]


class TrainingUpdate(Message):
    """A snapshot of the run, posted from the training thread. `done` on the last one."""

    def __init__(self, snapshot: RunSnapshot, done: bool = False) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.done = done

    def can_replace(self, message: Message) -> bool:
        # Textual asks the queued (older) message whether the next one may stand in for it.
        # Snapshots are complete (the log travels as a numbered tail), so a newer one may
        # replace an older one; the final one is never dropped.
        return isinstance(message, TrainingUpdate) and not self.done


@dataclass
class TrainingSession:
    """One run driven by the app. `snapshot` is what the screens render."""
    control: TrainControl = field(default_factory=TrainControl)
    snapshot: RunSnapshot = field(default_factory=RunSnapshot)
    resume_from: Path | None = None
    running: bool = False            # the worker thread has not finished
    stop_requested: str | None = None  # why we asked it to stop: "user", "restart", "quit"
    pause_requested: bool = False
    resume_requested: bool = False
    finished: threading.Event = field(default_factory=threading.Event)  # set when the worker is done
    trainer: Trainer | None = None   # once built: the Sample screen samples a snapshot of its weights

    def __post_init__(self) -> None:
        if not self.running:
            self.finished.set()  # an idle session has nothing to wait for

    @property
    def active(self) -> bool:
        return self.running

    @property
    def paused(self) -> bool:
        return self.snapshot.status == "paused"

    def stop(self, reason: str) -> None:
        if self.running and self.stop_requested is None:
            self.stop_requested = reason
            self.control.stop(reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has finished (for shutdown); True if it has."""
        return self.finished.wait(timeout)


def run_training(session: TrainingSession, make_trainer: TrainerFactory, post: Callable[[TrainingUpdate], None],
                 cancelled: Callable[[], bool] = lambda: False, interval: float = POST_INTERVAL_S,
                 on_event: EventHook | None = None) -> RunSnapshot:
    """The body of the training worker thread: build the trainer (loads the corpus, builds the
    model), iterate its events, post batched snapshots. Errors become an 'error' snapshot and a
    log line; nothing escapes, so the app stays alive and a new run can start.

    `on_event(trainer, event)` runs in this thread between steps, before the snapshot is posted:
    the place to read the model (the Series screen's plots) while nothing updates it."""
    control = session.control
    monitor = RunMonitor()
    monitor.set_status("starting")
    monitor.log("info", "loading the corpus and building the model…")
    post(TrainingUpdate(monitor.snapshot()))
    last_post = time.monotonic()
    try:
        trainer = session.trainer = make_trainer(control)
        for warning in getattr(trainer, "warnings", ()):
            monitor.log("warning", warning)
        for event in trainer.run():
            monitor.add(event)
            if on_event is not None:
                on_event(trainer, event)
            if cancelled() and not control.stopping:  # the app is closing: stop at a step boundary and save
                control.stop("quit")
            now = time.monotonic()
            if isinstance(event, URGENT_EVENTS) or now - last_post >= interval:
                post(TrainingUpdate(monitor.snapshot()))
                last_post = now
    except Exception as exc:  # noqa: BLE001 - any failure is shown, the app carries on
        monitor.set_status("error", error_text(exc))
    finally:
        final = monitor.snapshot()
        if final.status in ("starting", "training", "paused"):  # the loop ended without a closing event
            monitor.set_status("stopped")
            final = monitor.snapshot()
        session.finished.set()
        post(TrainingUpdate(final, done=True))
    return final

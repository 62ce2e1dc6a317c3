"""One run, driven from a face: `RunController` starts, pauses, resumes, saves and stops it, and owns the
status words the screens and the CLI show.

Where the run lives is a backend's business, so the faces never know it: `InProcessRun` iterates a
`Trainer` here (in a thread the face provides); `FolderRun` watches a run another process writes (a
headless `rnn-playground train`) through its folder, and steers it through the folder's control channel
(core.control). A distributed run would be a third backend.

Threads: the run's body goes to the face's `launch` (the app starts a thread worker; the CLI calls it
inline). The body folds every event once, through `RunMonitor`, and calls `publish` with a `RunUpdate` a
few times a second, never per step (urgent events at once). The face brings each update to its own
thread and hands it to `receive`; every other method is called from that thread too, and `on_change`
reports each new `RunState` there.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rnn_playground.core import runs
from rnn_playground.core.control import ACK_TIMEOUT_S, ControlCommand, send_command
from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.events import (
    CheckpointSaved,
    ControlReceived,
    ErrorEvent,
    Event,
    Finished,
    Paused,
    Resumed,
    RunStarted,
    SampleEvent,
    Stopped,
    ValidationEvent,
    event_from_json,
)
from rnn_playground.core.trainer import TrainControl, Trainer

from .monitor import RunMonitor, RunSnapshot

if TYPE_CHECKING:
    from rnn_playground.core.sampling import Sampler

POST_INTERVAL_S = 0.2      # at most about five routine updates a second
# Cores heavy work the app starts (a run, a ranking) leaves to the app when its thread count is automatic:
# with every core training, keys waited for a core (benchmarks/README.md, "App responsiveness": p95 102 ms
# on 2 threads against 43 ms on 1, 2x512 on this 2-core machine).
UI_CORES = 1
URGENT_EVENTS = (RunStarted, Paused, Resumed, Stopped, Finished, ErrorEvent, ValidationEvent, SampleEvent,
                 CheckpointSaved)
WATCH_POLL_S = 0.5         # how often a watched run's metrics.jsonl is read
WATCH_IDLE_S = 1.0         # how often a watch that waits looks whether the interpreter is exiting
SAVING = "Saving a checkpoint at the next step boundary…"
WATCH_ONLY = ("this user cannot write the run's folder, so the run can be watched, not paused, saved or stopped "
              "(the folder's permissions decide who may control a run; stop it where it runs, e.g. Ctrl+C)")

Cancelled = Callable[[], bool]
Body = Callable[[Cancelled], None]
Launcher = Callable[[Body], None]
TrainerFactory = Callable[[TrainControl], Trainer]
EventHook = Callable[[Trainer, Event], None]


# --------------------------------------------------------------------------- what the faces get


@dataclass(frozen=True)
class RunUpdate:
    """A snapshot from the run's thread; `done` on the last one of a run. `run` numbers the controller's runs,
    so an update of an earlier run that arrives late is told apart."""
    snapshot: RunSnapshot
    done: bool = False
    run: int = 0


def status_word(snapshot: RunSnapshot, active: bool, stop_reason: str | None, pause_requested: bool,
                resume_requested: bool) -> str:
    """The one word for a run's state: the snapshot's, or what was asked and not yet confirmed."""
    if active and stop_reason is not None:
        return "stopping"
    if active and pause_requested and snapshot.status == "training":
        return "pausing"
    if active and resume_requested and snapshot.status == "paused":
        return "resuming"
    return snapshot.status


@dataclass(frozen=True)
class RunState:
    """A run as the faces show it: the snapshot, its status word, and what may be asked of it now."""
    snapshot: RunSnapshot = field(default_factory=RunSnapshot)
    status: str = "idle"              # see status_word
    active: bool = False              # the run's body has not finished
    controllable: bool = True         # False: watched only (a run in a folder this user cannot write)
    stop_reason: str | None = None    # why a stop was asked: "user", "restart", "quit", a signal's name
    pause_requested: bool = False
    watched: bool = False             # the run lives in another process: this face watches it (FolderRun)

    @property
    def can_pause(self) -> bool:
        return (self.active and self.controllable and self.stop_reason is None and not self.pause_requested
                and self.snapshot.status in ("training", "starting"))

    @property
    def can_resume(self) -> bool:
        return self.active and self.controllable and self.stop_reason is None and (
            self.pause_requested or self.snapshot.status == "paused")

    @property
    def can_stop(self) -> bool:
        """Also whether a save may be asked."""
        return self.active and self.controllable and self.stop_reason is None

    def line(self) -> str:
        """"training brisk-otter 32%": the word, the run's name, and its progress while it runs."""
        snap = self.snapshot
        name = f" {snap.run_name}" if snap.run_name else ""
        progress = f" {snap.progress:.0%}" if snap.progress is not None and self.active else ""
        return f"{self.status}{name}{progress}"


@dataclass(frozen=True)
class LiveModel:
    """The model a run is training, for sampling from it while it trains: its shape, and `take_sampler`,
    which copies the current weights between two steps (safe from any thread; training waits for the copy)."""
    vocab: object | None     # None for a model without a character vocabulary (a series run)
    cell: str
    hidden: int
    device: object           # the torch.device it trains on
    take_sampler: Callable[[], Sampler]


# --------------------------------------------------------------------------- where a run lives


@dataclass(frozen=True)
class LogNote:
    """A line for the run's log that is not an engine event (a warning before the run starts)."""
    level: str
    text: str


@dataclass(frozen=True)
class CaughtUp:
    """A watching backend has handed over every event written so far (it waits for more now): publish."""


class RunBackend(Protocol):
    controllable: bool   # pause, resume, save and stop reach the run
    opening: str | None  # the log's first line, before any event
    history: bool        # events() first hands over what happened before (folded, then published at CaughtUp)

    def events(self) -> Iterator[Event | LogNote | CaughtUp]: ...  # in the run's thread, until the run ends
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def save(self) -> None: ...
    def stop(self, reason: str) -> None: ...            # also ends events() soon, at a step boundary
    def live_model(self) -> LiveModel | None: ...


class InProcessRun:
    """A Trainer iterated in this process. `make_trainer` builds it in the run's thread (loading the corpus
    and building the model take a while); `on_event(trainer, event)` runs there between steps, after each
    event is folded: the place to read the model while nothing updates it (the Series screen's plots)."""

    controllable = True
    history = False

    def __init__(self, make_trainer: TrainerFactory, control: TrainControl | None = None,
                 on_event: EventHook | None = None,
                 opening: str | None = "loading the corpus and building the model…") -> None:
        self.make_trainer = make_trainer
        self.control = control or TrainControl()
        self.on_event = on_event
        self.opening = opening
        self._trainer: Trainer | None = None  # set once, in the run's thread, when built

    @classmethod
    def of(cls, trainer: Trainer, control: TrainControl) -> InProcessRun:
        """A trainer already built (the CLI builds it first, so a bad setting is an error before any output)."""
        run = cls(lambda _control: trainer, control, opening=None)
        run._trainer = trainer
        return run

    @property
    def trainer(self) -> Trainer | None:
        """The Trainer once built. To look at its settings; its model is read through live_model()."""
        return self._trainer

    def events(self) -> Iterator[Event | LogNote]:
        trainer = self._trainer = self.make_trainer(self.control)
        for warning in getattr(trainer, "warnings", ()):
            yield LogNote("warning", warning)
        for event in trainer.run():
            yield event
            if self.on_event is not None:
                self.on_event(trainer, event)

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def save(self) -> None:
        self.control.request_save()

    def stop(self, reason: str) -> None:
        if not self.control.stopping:
            self.control.stop(reason)

    def live_model(self) -> LiveModel | None:
        trainer = self._trainer
        if trainer is None:
            return None
        return LiveModel(getattr(trainer.task, "vocab", None), trainer.config.cell, trainer.config.hidden,
                         trainer.device, trainer.snapshot_sampler)


class FolderRun:
    """A run another process writes, watched through its folder's metrics.jsonl until it ends. When this user
    may write the folder, pause, resume, save and stop reach the run through its control channel
    (core.control), and the run's acknowledgements come back as events; otherwise it is watched only
    (WATCH_ONLY says why). A stop asked for another reason than the user's (the face closing) ends the
    watching, not the run. `poll_s` None: read what is there, then wait until let go (no polling)."""

    history = True

    def __init__(self, run_dir: Path | str, poll_s: float | None = WATCH_POLL_S) -> None:
        self.run_dir = Path(run_dir)
        self.poll_s = poll_s
        self.controllable = os.access(self.run_dir, os.W_OK | os.X_OK)
        self.opening = f"watching {self.run_dir}" + ("" if self.controllable else f"; {WATCH_ONLY}")
        self._let_go = False
        self._wake = threading.Event()   # set to read at once: let go, or a note to say
        self._notes: list[LogNote] = []  # a command that could not be sent, said in the run's log
        self._unanswered: dict[int, tuple[ControlCommand, float]] = {}  # by seq: sent, and when (monotonic)

    @property
    def let_go(self) -> bool:
        """Whether the watching was ended here (the run itself may train on)."""
        return self._let_go

    def events(self) -> Iterator[Event | LogNote | CaughtUp]:
        offset, ended = 0, False
        while True:
            while self._notes:
                yield self._notes.pop(0)
            live = self._running()  # before reading: a run that ended has written all it will
            records, offset = runs.read_metrics(self.run_dir, offset)
            for record in records:
                try:
                    event = event_from_json(dict(record))
                except (KeyError, TypeError, ValueError):
                    continue  # a record this version does not know
                ended = isinstance(event, (Finished, Stopped, ErrorEvent))  # the last record's says
                if isinstance(event, ControlReceived):
                    self._unanswered.pop(event.seq, None)
                yield event
            yield from self._silence(live and not ended)
            yield CaughtUp()
            if self._let_go or ended or not live:
                return
            self._idle()

    def _running(self) -> bool:
        """Whether the run may still write: its writer holds the folder."""
        return runs.is_live(self.run_dir)

    def _silence(self, live: bool) -> Iterator[LogNote]:
        """A note for each command the run has not acknowledged within ACK_TIMEOUT_S (once each)."""
        now = time.monotonic()
        for seq, (sent, at) in list(self._unanswered.items()):
            if now - at >= ACK_TIMEOUT_S or not live:
                del self._unanswered[seq]
                if live:
                    yield LogNote("warning", f"{self.run_dir.name} has not acknowledged {sent.command} within "
                                             f"{ACK_TIMEOUT_S:g} s: it may be in a long step or validation, or be "
                                             "stuck. The command applies at its next step boundary unless another "
                                             "replaces it.")

    def _idle(self) -> None:
        """Wait for the next read: poll_s, or until woken (let go, a note to say). A watch never holds up the
        interpreter's exit, which waits for the threads the faces run it in: it lets go when the main thread ends."""
        deadline = None if self.poll_s is None else time.monotonic() + self.poll_s
        while threading.main_thread().is_alive():
            wait = WATCH_IDLE_S if deadline is None else min(WATCH_IDLE_S, deadline - time.monotonic())
            if self._wake.wait(max(wait, 0.0)):
                self._wake.clear()
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
        self._let_go = True

    def _send(self, command: str) -> None:
        if not self.controllable:
            return
        try:
            sent = send_command(self.run_dir, command)
            self._unanswered[sent.seq] = (sent, time.monotonic())
        except PlaygroundError as exc:
            # Refused while the run trains (its folder, or a version without the channel): refused again
            # until it ends, so the keys stop applying; the note says why.
            self.controllable = not runs.is_live(self.run_dir)
            self._notes.append(LogNote("error", str(exc)))
            self._wake.set()

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def save(self) -> None:
        self._send("save")

    def stop(self, reason: str) -> None:
        if self.controllable and reason == "user":
            self._send("stop")  # the run's Stopped event ends the watching
        else:
            self._let_go = True
            self._wake.set()

    def live_model(self) -> LiveModel | None:
        return None


# --------------------------------------------------------------------------- the controller


class RunController:
    """One run at a time, from start to end, whatever its backend. See the module's note on threads."""

    def __init__(self, launch: Launcher, publish: Callable[[RunUpdate], None],
                 on_change: Callable[[RunState], None] | None = None, interval: float = POST_INTERVAL_S) -> None:
        self.launch = launch
        self.publish = publish
        self.on_change = on_change
        self.interval = interval
        self.run = 0                          # numbers the runs started; updates carry it
        self._backend: RunBackend | None = None
        self._snapshot = RunSnapshot()
        self._active = False
        self._stop_reason: str | None = None
        self._pause_requested = False
        self._resume_requested = False
        self._finished = threading.Event()
        self._finished.set()                  # nothing to wait for before a run

    # -- reading (the face's thread)

    @property
    def state(self) -> RunState:
        return RunState(self._snapshot, status_word(self._snapshot, self._active, self._stop_reason,
                                                    self._pause_requested, self._resume_requested),
                        self._active, self._backend is None or self._backend.controllable, self._stop_reason,
                        self._pause_requested, isinstance(self._backend, FolderRun))

    @property
    def snapshot(self) -> RunSnapshot:
        return self._snapshot

    @property
    def backend(self) -> RunBackend | None:
        """Where the latest run lives (None before the first)."""
        return self._backend

    @property
    def active(self) -> bool:
        return self._active

    @property
    def watching(self) -> bool:
        """Whether the active run is one another process trains, only watched here: letting go of it (a new
        start, quitting) leaves it training."""
        return self._active and isinstance(self._backend, FolderRun)

    def live_model(self) -> LiveModel | None:
        """The model being trained, while a run in this process trains; None otherwise."""
        return self._backend.live_model() if self._active and self._backend is not None else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run's body has finished (for shutdown, from any thread); True if it has."""
        return self._finished.wait(timeout)

    # -- asking (the face's thread)

    def start(self, backend: RunBackend) -> bool:
        """Start a run; False while one is still active. A run only watched is let go first (it trains on)."""
        if self.watching:
            self._backend.stop("quit")  # ends the watching; its late updates carry an earlier run's number
        elif self._active:
            return False
        self.run += 1
        self._backend = backend
        self._snapshot = RunSnapshot(status="starting")
        self._active = True
        self._stop_reason = None
        self._pause_requested = self._resume_requested = False
        self._finished = threading.Event()
        run, finished = self.run, self._finished
        self._changed()
        self.launch(lambda cancelled: self._body(backend, run, finished, cancelled))
        return True

    def watch(self, run_dir: Path | str, poll_s: float | None = WATCH_POLL_S) -> bool:
        """Follow a run another process trains (see FolderRun)."""
        return self.start(FolderRun(run_dir, poll_s))

    def pause(self) -> None:
        if self.state.can_stop:
            self._backend.pause()
            self._pause_requested = self._backend.controllable  # not when the command was refused
            self._changed()

    def resume(self) -> None:
        if self._active and self.state.controllable:
            self._pause_requested = False
            self._backend.resume()
            self._resume_requested = self._snapshot.status == "paused" and self._backend.controllable
            self._changed()

    def save(self) -> bool:
        """Ask for a checkpoint at the next step boundary; False when there is no run to save."""
        if not self.state.can_stop:
            return False
        self._backend.save()
        return True

    def stop(self, reason: str = "user") -> None:
        """Stop at the next step boundary and save. A watched run is only no longer watched."""
        if not self._active or self._backend is None:
            return
        if not self._backend.controllable:
            self._backend.stop(reason)
            return
        if self._stop_reason is None:
            self._pause_requested = False
            self._backend.stop(reason)
            self._stop_reason = reason if self._backend.controllable else None
            self._changed()

    def receive(self, update: RunUpdate) -> RunState | None:
        """An update the face brought to its thread; None for one of an earlier run (ignored)."""
        if update.run != self.run:
            return None
        snap = self._snapshot = update.snapshot
        if snap.status != "training":
            self._pause_requested = False  # confirmed (paused) or moot (stopped, finished, error)
        if snap.status != "paused":
            self._resume_requested = False
        if update.done:
            self._active = False
        return self._changed()

    def _changed(self) -> RunState:
        state = self.state
        if self.on_change is not None:
            self.on_change(state)
        return state

    # -- the run's thread

    def _body(self, backend: RunBackend, run: int, finished: threading.Event, cancelled: Cancelled) -> None:
        """Fold the backend's events into snapshots and publish them, batched. Errors become an 'error'
        snapshot and a log line; nothing escapes, so the face carries on and a new run can start."""
        monitor = RunMonitor()
        monitor.set_status("starting")
        if backend.opening:
            monitor.log("info", backend.opening)
        # A watched run's history is folded, then published once when caught up: one snapshot, not one per
        # urgent event of a long run's past.
        replaying = backend.history
        if not replaying:
            self.publish(RunUpdate(monitor.snapshot(), run=run))
        last_post, unposted = time.monotonic(), replaying
        try:
            for item in backend.events():
                if isinstance(item, CaughtUp):
                    replaying = False
                    if unposted:
                        self.publish(RunUpdate(monitor.snapshot(), run=run))
                        last_post, unposted = time.monotonic(), False
                    continue
                unposted = True
                if isinstance(item, LogNote):
                    monitor.log(item.level, item.text)
                    continue
                monitor.add(item)
                if cancelled():  # the face is closing: stop at a step boundary and save
                    backend.stop("quit")
                now = time.monotonic()
                if not replaying and (isinstance(item, URGENT_EVENTS) or now - last_post >= self.interval):
                    self.publish(RunUpdate(monitor.snapshot(), run=run))
                    last_post, unposted = now, False
        except Exception as exc:  # noqa: BLE001 - any failure is shown, the face carries on
            message = str(exc) if isinstance(exc, PlaygroundError) else f"{type(exc).__name__}: {exc}"
            monitor.set_status("error", message)
        finally:
            let_go = isinstance(backend, FolderRun) and backend.let_go  # the watching ended, not the run
            if backend.controllable and monitor.snapshot().active and not let_go:  # ended without a closing event
                monitor.set_status("stopped")
            finished.set()
            self.publish(RunUpdate(monitor.snapshot(), done=True, run=run))

"""Every message the app's workers and widgets post, as dataclasses in one place (toolong's habit).

Messages go up (a worker or widget to its screen, a screen to the app); data goes down through attributes.
A worker thread talks to the UI only by posting one of these. A message that carries a complete snapshot
says so in `can_replace`, so a newer one stands in for one still queued and the UI never falls behind its
workers. Each area appends its messages under a comment line naming it.

A dataclass message needs no __init__ of its own: the dataclass's __init__ calls Message.__post_init__,
which sets the message up. (Calling super().__init__() from a __post_init__, as toolong did with older
Textual, recurses: Message.__init__ calls __post_init__.) A message that needs a __post_init__ of its
own calls super().__post_init__() first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from textual.widget import Widget

    from rnn_playground.core.device import DeviceInfo
    from rnn_playground.core.runs import RunDetails, RunInfo
    from rnn_playground.tui.viewmodel.monitor import RunSnapshot, RunWatcher
    from rnn_playground.tui.viewmodel.settings import CorpusCheck


# -- shell


@dataclass
class DevicesFound(Message):
    """The devices this machine has, and the one `auto` picks (found in a worker: CUDA is slow to ask)."""
    devices: list[DeviceInfo]
    auto: str


# -- runs


@dataclass
class RunsListed(Message):
    infos: list[RunInfo]


@dataclass
class DetailsLoaded(Message):
    run_dir: Path
    details: RunDetails | None
    watcher: RunWatcher


@dataclass
class WatchUpdated(Message):
    run_dir: Path
    snapshot: RunSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WatchUpdated) and message.run_dir == self.run_dir


@dataclass
class RunDeleted(Message):
    run_dir: Path


@dataclass
class RunNotDeleted(Message):
    run_dir: Path
    reason: str


# -- train form


@dataclass
class TrainFormChanged(Message):
    """The form's validity may have changed (its fields, or the corpus check)."""
    form: Widget


@dataclass
class TrainFormSubmitted(Message):
    """Enter in a field, or the Start button."""


@dataclass
class CorpusChecked(Message):
    key: tuple
    result: CorpusCheck

"""Every message the app's workers and widgets post, as dataclasses in one place (toolong's habit).

Messages go up (a worker or widget to its screen, a screen to the app); data goes down through attributes.
A message that carries a complete snapshot says so in `can_replace`, so a newer one stands in for one still
queued and the UI never falls behind its workers."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from rnn_playground.tui.viewmodel.controller import RunController, RunUpdate

# -- runs
# (no __post_init__ here: Textual's Message.__post_init__ sets the message up, and a dataclass calls it)


@dataclass
class RunUpdated(Message):
    """A run's snapshot from its thread, for its controller (the Train screen's or the Series screen's)."""
    controller: RunController
    update: RunUpdate

    def can_replace(self, message: Message) -> bool:
        # Textual asks the queued (older) message whether the next one may stand in for it. Snapshots are
        # complete (the log travels as a numbered tail), so a newer one of the same run may; the last never.
        return (isinstance(message, RunUpdated) and message.controller is self.controller
                and message.update.run == self.update.run and not self.update.done)


@dataclass
class SeriesPredicted(Message, bubble=False):
    """The Series screen's plot data, computed in its run's thread between two steps."""
    generation: int      # the screen's run it belongs to
    predictions: object  # core.series.Predictions
    step: int
    final: bool          # the run has ended

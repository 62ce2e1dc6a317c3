"""Every message the app's workers and widgets post, as dataclasses in one place (toolong's habit).

Messages go up (a worker or widget to its screen, a screen to the app); data goes down through attributes.
A message that carries a complete snapshot says so in `can_replace`, so a newer one stands in for one still
queued and the UI never falls behind its workers."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import Saturation, UnitMatch
from rnn_playground.tui.viewmodel.gates_session import AnalysisJob, OpenedText

# -- gates (Message.__post_init__ initialises a dataclass message: no __init__ call of its own)

@dataclass
class GatesLoaded(Message):
    """A text opened on the Gates screen (or why not, with what was loaded before the failure)."""
    generation: int
    opened: OpenedText | None
    error: str | None = None
    tracer: GateTracer | None = None
    meta: dict | None = None
    bubble = False


@dataclass
class TraceExtended(Message):
    """A Gates worker's progress extending the trace, or its end."""
    generation: int
    length: int
    done: bool
    error: str | None = None
    bubble = False

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TraceExtended) and not self.done and message.generation == self.generation


@dataclass
class AnalysisReady(Message):
    """Saturation or a unit search over the whole trace, or its error."""
    job: AnalysisJob
    result: Saturation | list[UnitMatch] | None
    error: str | None = None
    bubble = False

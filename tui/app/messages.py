"""Every message the app's workers and widgets post, as dataclasses in one place (toolong's habit).

Messages go up (a worker or widget to its screen, a screen to the app); data goes down through attributes.
A message that carries a complete snapshot says so in `can_replace`, so a newer one stands in for one still
queued and the UI never falls behind its workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import Saturation, UnitMatch
from rnn_playground.core.sampling import SampleSettings
from rnn_playground.tui.viewmodel.gates_session import AnalysisJob, OpenedText
from rnn_playground.tui.viewmodel.sample_session import SourceInfo
from rnn_playground.tui.viewmodel.sample_view import StreamChunk

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
    """A Gates worker's progress extending the trace (the screen reads how far under the lock), or its end."""
    generation: int
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


# -- sample

@dataclass
class SamplerLoaded(Message):
    """A run's sampler loaded for the Sample screen (source None and an error when it could not be)."""
    run: Path
    source: SourceInfo | None
    error: str | None = None
    bubble = False


@dataclass
class SampleChunkMessage(Message):
    """New text of the stream of generation `generation`."""
    generation: int
    chunk: StreamChunk
    bubble = False


@dataclass
class SampleFailed(Message):
    generation: int
    error: str
    bubble = False


@dataclass
class GhostReady(Message):
    """A complete-as-you-type continuation made with `settings` (or its error)."""
    generation: int
    settings: SampleSettings
    chunk: StreamChunk | None
    error: str | None = None
    bubble = False

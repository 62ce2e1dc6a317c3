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

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from textual.widget import Widget

    from rnn_playground.core.ablation import UnitRanking
    from rnn_playground.core.device import DeviceInfo
    from rnn_playground.core.gates import GateTracer, Trace
    from rnn_playground.core.gates_analysis import Saturation, SpanMatches, UnitMatch
    from rnn_playground.core.runs import RunDetails, RunInfo
    from rnn_playground.core.sampling import SampleSettings
    from rnn_playground.tui.viewmodel.compare_view import RunCurves
    from rnn_playground.tui.viewmodel.controller import RunController, RunUpdate
    from rnn_playground.tui.viewmodel.gates_session import (
        AnalysisJob,
        CompareResult,
        ContinueJob,
        InterveneJob,
        MatchJob,
        OpenedText,
        RankingJob,
    )
    from rnn_playground.tui.viewmodel.runs_view import ControlReach
    from rnn_playground.tui.viewmodel.sample_session import BeamProgress, SourceInfo
    from rnn_playground.tui.viewmodel.sample_view import StreamChunk
    from rnn_playground.tui.viewmodel.series_gates_session import OpenedSeries
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
    sweeps: dict[str, tuple[str, bool]] = field(default_factory=dict)  # run name: (its sweep, is its best)


@dataclass
class DetailsLoaded(Message):
    run_dir: Path
    details: RunDetails | None
    reach: ControlReach


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


# -- training runs (the Train and Series screens' controllers, and the Runs screen's watch)


@dataclass
class RunUpdated(Message):
    """A run's snapshot from its thread, for its controller (the Train screen's, the Series screen's, or the
    Runs screen's watch of the selected run)."""
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


# -- gates: these stay with their screen (bubble=False: the app has nothing to do with them)


@dataclass
class GatesLoaded(Message, bubble=False):
    """A text opened on the Gates screen (or why not, with what was loaded before the failure)."""
    generation: int
    opened: OpenedText | None
    error: str | None = None
    tracer: GateTracer | None = None
    meta: dict | None = None


@dataclass
class TraceExtended(Message, bubble=False):
    """A Gates worker's progress extending the trace (the screen reads how far under the lock), or its end."""
    generation: int
    done: bool
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TraceExtended) and not self.done and message.generation == self.generation


@dataclass
class InterventionReady(Message, bubble=False):
    """The Gates screen's trace recomputed under its interventions (None when cancelled), or why not;
    while it runs (done False), how far it has got."""
    job: InterveneJob
    done: bool
    changed: Trace | None = None
    error: str | None = None
    progress: tuple[int, int] = (0, 0)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, InterventionReady) and not self.done and message.job is self.job


@dataclass
class ContinuationReady(Message, bubble=False):
    """The Gates screen's text continued without and with the interventions, or why not."""
    job: ContinueJob
    texts: tuple[str, str] | None
    error: str | None = None


@dataclass
class RankingReady(Message, bubble=False):
    """The Gates screen's units ranked by the effect of silencing them (None when cancelled), or why not;
    while it runs (done False), the fraction done."""
    job: RankingJob
    done: bool
    result: UnitRanking | None = None
    error: str | None = None
    fraction: float = 0.0

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RankingReady) and not self.done and message.job is self.job


@dataclass
class AnalysisReady(Message, bubble=False):
    """Saturation or a unit search over the whole trace, or its error."""
    job: AnalysisJob
    result: Saturation | list[UnitMatch] | None
    error: str | None = None


@dataclass
class SpanMatchReady(Message, bubble=False):
    """The Gates screen's span match over the whole trace, or its error."""
    job: MatchJob
    result: SpanMatches | None
    error: str | None = None


@dataclass
class CompareReady(Message, bubble=False):
    """The compare view's A-against-B surprisals over the text, or why not."""
    result: CompareResult


@dataclass
class CompareRunsListed(Message, bubble=False):
    """The runs folder's runs, for the compare view's choice of model B."""
    runs: list[RunInfo]


# -- sample


@dataclass
class SamplerLoaded(Message, bubble=False):
    """A run's sampler loaded for the Sample screen (source None and an error when it could not be)."""
    run: Path
    source: SourceInfo | None
    error: str | None = None


@dataclass
class SampleChunkMessage(Message, bubble=False):
    """New text of the stream of generation `generation`."""
    generation: int
    chunk: StreamChunk


@dataclass
class SampleFailed(Message, bubble=False):
    generation: int
    error: str


@dataclass
class BeamProgressed(Message, bubble=False):
    """A snapshot of the beam search of generation `generation` (its beams best first)."""
    generation: int
    progress: BeamProgress

    def can_replace(self, message: Message) -> bool:
        # each snapshot is complete: a newer one of the same search stands in for one still queued; the last never
        return isinstance(message, BeamProgressed) and message.generation == self.generation \
            and not self.progress.done


@dataclass
class GhostReady(Message, bubble=False):
    """A complete-as-you-type continuation made with `settings` (or its error)."""
    generation: int
    settings: SampleSettings
    chunk: StreamChunk | None
    error: str | None = None


# -- runs compared


@dataclass
class CurvesRead(Message, bubble=False):
    """The compared runs' curves, read again in a worker (compare_view.Comparison)."""
    runs: list[RunCurves]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CurvesRead)  # each holds every run's whole curves: the newest stands in


# -- lesson


@dataclass
class LessonSourceReady(Message, bubble=False):
    """The Lesson screen's model, loaded or trained in a worker (or why not, in words)."""
    request: object                 # the viewmodel.lesson.source.SourceRequest it answers
    source: object | None           # a viewmodel.lesson.page.Source
    error: str | None = None


@dataclass
class LessonJobDone(Message, bubble=False):
    """A Lesson page's job finished in a worker: its result for the page, or its error in words."""
    page: object
    result: object
    error: str | None = None
    job: object = None


# -- the Gates screen of a time-series run


@dataclass
class SeriesGatesLoaded(Message, bubble=False):
    """A series run traced over its data for the series Gates screen (or why not)."""
    opened: OpenedSeries | None
    error: str | None = None

"""The Gates screen's state machine in plain Python: the cursor over a text, the layer, unit, quantity
and view selected, play speed, and when to extend the trace (core.gates.Trace.extend, never
recomputed) and when the whole text must be traced first (saturation, unit search, span match).

`GatesSession` does the bookkeeping; what takes long comes out of it as jobs (`Job`: extend, analyse,
compare, match, rank, intervene, continue) holding every input a worker thread needs, so a worker reads
nothing the UI thread writes: it runs the job's `run_...` function (`extend_trace` for an ExtendJob) and
hands the result back to the session on the UI thread, which drops one it no longer wants. The trace itself
is shared, and extended and read under the session's lock.
`gates_frame` builds what the screen draws at the cursor.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rnn_playground.core.ablation import CHUNK, UnitRanking, rank_units
from rnn_playground.core.device import choose_threads, step_work
from rnn_playground.core.errors import CorpusError, PlaygroundError
from rnn_playground.core.gates import Continuation, GateTracer, StepInfo, Trace
from rnn_playground.core.gates_analysis import (
    Saturation,
    SpanMatches,
    UnitMatch,
    match_span_values,
    span_values,
    text_feature,
)
from rnn_playground.core.intervene import Intervention

from .controller import UI_CORES
from .eval_view import BASELINE, CompareChoice, Comparison, Scores, compare, compare_choices, next_jump
from .format import show_char
from .gates_view import (
    DEFAULT_SLICE,
    HeatRow,
    InterventionEffect,
    LayersView,
    NextCharView,
    QuantityLabel,
    TextSource,
    corpus_slice,
    diverging,
    intervention_effect,
    layers_view,
    next_char_view,
    next_word,
    previous_word,
    quantity_labels,
    read_text_file,
    run_corpus,
    unit_page,
    unit_values,
)
from .intervene import parse_intervention

INLINE_STEPS = 64          # a move needing at most this many new steps extends the trace at once
CHUNK_S = 0.02             # a worker holds the trace's lock about this long per chunk of steps
PROGRESS_S = 0.2           # and reports how far it has traced this often
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200)   # auto-step speeds, characters a second
MAX_TICKS = 30             # timer ticks a second at most; faster speeds step several characters a tick
TOP_K = 5
ACTIVE_UNITS = 4
VIEWS = ("cell", "saturation", "search", "compare", "layers", "match", "intervene", "rank")
INLINE_INTERVENE = 256     # an intervention recomputing at most this many steps does so at once, more in a worker
INLINE_COPY_BYTES = 32 << 20  # ... and copying at most this much of the steps before it (a few ms; a long text's
                               # earlier steps are gigabytes for a large model)
CONTINUE_CHARS = 60        # characters continued from the cursor, with and without the interventions
EXACT_CHARS = 20_000       # the comparison reads a text up to this long as one stream, a longer one in chunks
PERCENTILES = (50.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9)   # the span match's thresholds
MATCHES = 20               # spans a match lists
MATCH_AS_TRAINED = "matched on the model as trained, without the interventions"
SELECT_SPAN = "select a span first: x marks the cursor (or shift+←→), move, then m matches it"
NO_RUN = "No run opened: pick one on the Runs screen (5) and press g."


# --------------------------------------------------------------------------- the text to trace

@dataclass(frozen=True)
class TextRequest:
    kind: str           # "corpus", "text" or "file"
    value: str = ""     # the text, the path, or "start length" for a corpus slice


def load_source(request: TextRequest, meta: dict) -> TextSource:
    """The text a request asks for (raises PlaygroundError with the engine's message)."""
    if request.kind == "text":
        if not request.value:
            raise CorpusError("The text is empty: type at least one character.")
        return TextSource(request.value, f"typed text ({len(request.value):,} chars)")
    if request.kind == "file":
        return read_text_file(request.value.strip(), limit=200_000)
    spec, glob, val_fraction = run_corpus(meta)
    parts = request.value.replace(",", " ").split()
    try:
        numbers = [int(p.replace("_", "")) for p in parts]
    except ValueError:
        raise CorpusError(f"A corpus slice is 'start length' in characters (both optional), "
                          f"not {request.value!r}.") from None
    if len(numbers) > 2:
        raise CorpusError("A corpus slice is 'start length': at most two numbers.")
    start = numbers[0] if numbers else None
    length = numbers[1] if len(numbers) > 1 else DEFAULT_SLICE
    return corpus_slice(spec, start, length, glob=glob, val_fraction=val_fraction)


@dataclass(frozen=True)
class OpenedText:
    tracer: GateTracer
    meta: dict
    trace: Trace        # the first character and the one after it traced
    source: TextSource


def load_tracer(run: Path | None) -> tuple[GateTracer, dict]:
    """The tracer of a run's checkpoint and its metadata (slow: for a worker thread)."""
    from rnn_playground.core.checkpoint import read_metadata
    from rnn_playground.core.runs import resolve_checkpoint
    if run is None:
        raise PlaygroundError(NO_RUN)
    path = resolve_checkpoint(run)
    meta = read_metadata(path)
    if meta.get("kind") == "series":
        raise PlaygroundError(f"{run.name} is a time-series run; this screen reads character models. Its gates open "
                              f"with g on it on the Runs screen (5), or headless: rnn-playground gates {run}")
    return GateTracer.from_checkpoint(path), meta


def open_text(tracer: GateTracer, meta: dict, request: TextRequest) -> OpenedText:
    """A trace of the text `request` asks for, its first character and the one after it traced.
    Raises PlaygroundError or OSError with a message for people."""
    source = load_source(request, meta)
    tracer.encode(source.text, "The text")  # characters outside the vocabulary: the engine's message
    trace = tracer.start()
    trace.extend(source.text[:2])
    return OpenedText(tracer, meta, trace, source)


# --------------------------------------------------------------------------- jobs for worker threads

@dataclass(frozen=True)
class ExtendJob:
    """Extend `trace` over `text` until it holds step `target`, under `lock` (the UI reads the trace
    under it too); `cancel` is set when the text is replaced."""
    generation: int
    trace: Trace
    lock: threading.Lock
    text: str
    target: int
    cancel: threading.Event
    # The trace under the interventions as the session holds it now (they may change while this runs),
    # extended alongside.
    changed: Callable[[], Trace | None] = lambda: None


@dataclass(frozen=True)
class InterveneJob:
    """Recompute `trace` under `interventions` (core.intervene) up to its length, a chunk at a time: only
    the reads of the shared trace take its lock; the new trace is the worker's until handed back."""
    token: int
    trace: Trace
    lock: threading.Lock
    text: str
    interventions: tuple[Intervention, ...]
    cancel: threading.Event


def run_intervention(job: InterveneJob, progress: Callable[[int, int], None] | None = None) -> Trace | None:
    """The job's intervened trace, as long as the shared trace when it ends (None when cancelled)."""
    start = min(iv.start for iv in job.interventions)
    with job.lock:
        changed = job.trace.intervened(job.interventions, end=start + 1)
    chunk, reported = 16, time.monotonic()
    while not job.cancel.is_set():
        with job.lock:
            length = len(job.trace)
        done = len(changed)
        if done >= length:
            return changed
        started = time.perf_counter()
        changed.extend(job.text[done:min(length, done + chunk)])
        chunk = max(1, min(4096, int(chunk * CHUNK_S / max(time.perf_counter() - started, 1e-5))))
        if progress is not None and time.monotonic() - reported >= PROGRESS_S:
            progress(len(changed), length)
            reported = time.monotonic()
    return None


@dataclass(frozen=True)
class AnalysisJob:
    """Saturation, or a unit search (`name` a built-in feature or `regex`), over the whole trace."""
    generation: int
    kind: str               # "saturation" or "search"
    trace: Trace
    lock: threading.Lock
    name: str | None = None
    regex: str | None = None
    key: str = "h"

    @property
    def query(self) -> str:
        return f"/{self.regex}/" if self.regex is not None else (self.name or "")


class Scorer:
    """Model A or B of a comparison: a run's model (core.evaluate.char_surprisals) or the n-gram of a
    run's training text (core.baselines). Loaded once in a worker, kept by the session for the next text."""

    def __init__(self, name: str, model=None, vocab=None, baseline=None) -> None:
        self.name, self.model, self.vocab, self.baseline = name, model, vocab, baseline

    def score(self, text: str) -> Scores:
        if self.baseline is not None:
            known = set(self.baseline.vocab)
            unknown = np.array([c not in known for c in text[1:]], dtype=bool)
            return Scores(self.name, np.asarray(self.baseline.surprisals(text), dtype=np.float64), unknown)
        from rnn_playground.core.evaluate import char_surprisals
        # one torch thread, as the tracer uses: the UI's worker never competes with a run training beside it
        scores = char_surprisals(self.model, self.vocab, text, exact=len(text) <= EXACT_CHARS, threads=1)
        return Scores(self.name, scores.nats, scores.unknown)


def load_scorer(choice: CompareChoice, run: Path | None, meta: dict) -> Scorer:
    """B (or A: `choice` of the open run) as a Scorer (slow: for a worker). Raises PlaygroundError."""
    if choice.key == BASELINE:
        from rnn_playground.core.evaluate import baseline_models, run_corpus
        name = run.name if run is not None else "A"
        corpus = run_corpus(meta, name, "The n-gram baseline")
        ngram = baseline_models(corpus)[1]
        return Scorer(f"{ngram.name} of {corpus.label}", baseline=ngram)
    from rnn_playground.core.loading import load_model
    from rnn_playground.core.model import describe_model
    model, vocab, _ = load_model(choice.path, "cpu")
    return Scorer(f"{choice.path.name} {describe_model(model.config)}", model, vocab)


@dataclass(frozen=True)
class CompareJob:
    """Score `text` with A (the open run) and B; `scorers` holds those already loaded (by choice key)."""
    generation: int
    text: str
    run: Path
    meta: dict
    choice: CompareChoice
    scorers: dict


@dataclass(frozen=True)
class CompareResult:
    job: CompareJob
    comparison: Comparison | None
    scorers: dict                   # every scorer loaded, for the next job
    error: str | None = None
    baseline_failed: bool = False   # B, the n-gram, could not be fitted: A's corpus cannot be read


def run_comparison(job: CompareJob) -> CompareResult:
    """A and B's surprisals over the job's text, compared (errors as a result with a message for people)."""
    scorers = dict(job.scorers)
    own = CompareChoice(str(job.run), job.run.name, job.run)
    try:
        if own.key not in scorers:
            scorers[own.key] = load_scorer(own, job.run, job.meta)
        a = scorers[own.key].score(job.text)
    except (PlaygroundError, OSError) as exc:
        return CompareResult(job, None, scorers, f"Cannot score the text with A: {exc}")
    try:
        if job.choice.key not in scorers:
            scorers[job.choice.key] = load_scorer(job.choice, job.run, job.meta)
        b = scorers[job.choice.key].score(job.text)
    except (PlaygroundError, OSError) as exc:
        if job.choice.key == BASELINE:
            return CompareResult(job, None, scorers, f"No n-gram baseline: {exc} Pick a run to compare with.", True)
        return CompareResult(job, None, scorers, f"Cannot score the text with {job.choice.label}: {exc}")
    return CompareResult(job, compare(job.text, a, b), scorers)


@dataclass(frozen=True)
class MatchJob:
    """Span match (core.gates_analysis.match_spans) of steps start..end-1 over the whole trace."""
    generation: int
    trace: Trace
    lock: threading.Lock
    start: int
    end: int
    key: str
    layer: int
    percentile: float


def run_span_match(job: MatchJob) -> SpanMatches:
    """The job's span match (raises PlaygroundError with a message for people). The lock is held only to
    take the values: the trace is complete, so the UI never waits on the match itself."""
    with job.lock:
        key, layer, values = span_values(job.trace, job.key, job.layer)
    return match_span_values(values, job.start, job.end, key, layer, job.percentile, top=MATCHES)


# ----- ranking units by the effect of silencing them (core.ablation), beside the correlation search

@dataclass(frozen=True)
class RankingJob:
    """Silence every unit of every layer in turn over `text` (read after `prefix`) and measure the loss,
    also over the characters a feature (`name`, or `regex`) marks when one is given. Reads only the
    tracer's own copy of the weights, so it needs no lock; `cancel` stops it (a new text, or the user).
    `threads`: torch threads for the passes (the CLI's --threads); None: the free cores less the UI's."""
    generation: int
    tracer: GateTracer
    text: str
    prefix: str
    cancel: threading.Event
    name: str | None = None
    regex: str | None = None
    threads: int | None = None

    @property
    def query(self) -> str:
        return f"/{self.regex}/" if self.regex is not None else (self.name or "")


def run_ranking(job: RankingJob, progress: Callable[[float], None] | None = None) -> UnitRanking | None:
    """The job's ranking (None when cancelled); `progress(fraction)` now and then. Raises PlaygroundError
    for a bad feature or text."""
    feature = None
    if job.name is not None or job.regex is not None:
        feature = text_feature(job.prefix + job.text, job.name, job.regex)[len(job.prefix):]
    # Automatic threads as the app's own training run takes them: the free cores, less those kept for the UI.
    threads = job.threads or choose_threads(None, step_work(CHUNK, job.tracer.recurrence.hidden), reserve=UI_CORES)
    return rank_units(job.tracer, job.text, job.prefix, feature, threads=threads, progress=progress,
                      cancelled=job.cancel.is_set)


@dataclass(frozen=True)
class EffectRow:
    layer: int
    unit: int
    change: float               # loss change when silenced (nats per character), over the text or the feature
    correlation: float | None   # Pearson r with the feature, when the correlation search listed the unit


@dataclass(frozen=True)
class EffectVsCorrelation:
    """The correlation search's units against the units that matter (the top of the effect ranking)."""
    by: str                                  # "feature" (loss over the marked characters) or "text"
    both: tuple[EffectRow, ...]              # found by correlation, and they matter
    correlation_only: tuple[EffectRow, ...]  # found by correlation, but silencing them changes little
    effect_only: tuple[EffectRow, ...]       # they matter, and correlation missed them

    def groups(self) -> tuple[tuple[str, tuple[EffectRow, ...]], ...]:
        """The three groups as both faces label them, in order."""
        return (("found by correlation, and matter", self.both),
                ("found by correlation, change little", self.correlation_only),
                ("matter, missed by correlation", self.effect_only))

    def to_dict(self) -> dict:
        """For JSON: the three groups, each unit with its loss change and correlation (0-based layers)."""
        return {"by": self.by, **{group: [asdict(row) for row in getattr(self, group)]
                                  for group in ("both", "correlation_only", "effect_only")}}


def effect_vs_correlation(ranking: UnitRanking, matches: list[UnitMatch], top: int | None = None
                          ) -> EffectVsCorrelation:
    """Compare the correlation search's `matches` with the `top` units by effect (as many as matches by
    default): by the loss over the feature's characters when the ranking has one, else over the text.
    A unit matters when it is among those top units and silencing it raises the loss."""
    by = "feature" if ranking.feature_loss is not None else "text"
    top = len(matches) if top is None else top
    matter = [e for e in ranking.ranked(by=by, top=top)
              if (e.feature_change if by == "feature" else e.change) > 0]
    change = ranking.feature_change if by == "feature" else ranking.change
    found = {(m.layer, m.unit): m.correlation for m in matches}
    mattering = {(e.layer, e.unit) for e in matter}

    def row(layer: int, unit: int) -> EffectRow:
        return EffectRow(layer, unit, float(change[layer, unit]), found.get((layer, unit)))

    return EffectVsCorrelation(
        by,
        tuple(row(m.layer, m.unit) for m in matches if (m.layer, m.unit) in mattering),
        tuple(row(m.layer, m.unit) for m in matches if (m.layer, m.unit) not in mattering),
        tuple(row(e.layer, e.unit) for e in matter if (e.layer, e.unit) not in found))


@dataclass(frozen=True)
class ContinueJob:
    """Draw the text on from step `at` without and with the interventions (core.gates.Continuation: copied
    from the traces under the lock, drawn without it)."""
    at: int
    without: Continuation
    with_: Continuation
    length: int
    seed: int
    temperature: float


def run_continuation(job: ContinueJob) -> tuple[str, str]:
    """(without, with the interventions) from the job's step, the same seed."""
    return (job.without.draw(job.length, job.seed, job.temperature),
            job.with_.draw(job.length, job.seed, job.temperature))


Job = ExtendJob | AnalysisJob | CompareJob | MatchJob | RankingJob | InterveneJob | ContinueJob


def extend_trace(job: ExtendJob, progress: Callable[[int], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> int:
    """Extend the job's trace a chunk at a time under its lock up to its target, or until it is
    cancelled (or `stop()`); `progress(length)` a few times a second. The length traced."""
    lock = job.lock
    with lock:
        length = len(job.trace)
    chunk, reported = 16, time.monotonic()
    while not job.cancel.is_set() and not (stop is not None and stop()):
        with lock:
            length = len(job.trace)
            target = min(job.target, len(job.text) - 1)
            if length > target:
                break
            started = time.perf_counter()
            job.trace.extend(job.text[length:min(target + 1, length + chunk)])
            changed = job.changed()
            if changed is not None and len(changed) < len(job.trace):
                changed.extend(job.text[len(changed):len(job.trace)])
            elapsed = time.perf_counter() - started
            length = len(job.trace)
        # Size chunks by time, so the UI never waits long for the lock whatever the model's size;
        # the short sleep lets a waiting UI thread take the lock before the next chunk.
        chunk = max(1, min(4096, int(chunk * CHUNK_S / max(elapsed, 1e-5))))
        if progress is not None and time.monotonic() - reported >= PROGRESS_S:
            progress(length)
            reported = time.monotonic()
        time.sleep(0.001)
    return length


def run_analysis(job: AnalysisJob) -> Saturation | list[UnitMatch]:
    """The job's saturation or unit search (raises PlaygroundError for a bad query)."""
    with job.lock:
        if job.kind == "saturation":
            if job.trace.cell == "rnn":
                return job.trace.saturation(low=-0.9, high=0.9, keys=("h",))
            return job.trace.saturation()
        return job.trace.find_units(name=job.name, regex=job.regex, key=job.key, top=10)


# --------------------------------------------------------------------------- the session

class GatesCursor:
    """The play speed and the layer / unit / colour choice both Gates sessions (this one and
    series_gates_session.SeriesGatesSession) change by keys. Needs the fields speed, layer, unit,
    colour_key, tracer (anything with layers and hidden, or None) and the property cell."""
    speed: int
    layer: int
    unit: int
    colour_key: str

    def colour_keys(self) -> list[str]:
        """The quantities the colour key cycles through."""
        return [q.key for q in quantity_labels(self.cell)]

    @property
    def tick_s(self) -> float:
        """Seconds between ticks while playing: steps_per_tick of them make the speed exactly."""
        return self.steps_per_tick / self.speed

    @property
    def steps_per_tick(self) -> int:
        """Steps one tick of play moves: one, or the fewest that keep the ticks at MAX_TICKS a second or
        under at higher speeds."""
        return max(1, math.ceil(self.speed / MAX_TICKS))

    def change_speed(self, delta: int) -> None:
        index = SPEEDS.index(self.speed) if self.speed in SPEEDS else 3
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, index + delta))]

    def change_layer(self, delta: int) -> None:
        if self.tracer is not None:
            self.layer = (self.layer + delta) % self.tracer.layers

    def change_unit(self, delta: int) -> None:
        if self.tracer is not None:
            self.unit = (self.unit + delta) % self.tracer.hidden

    def change_unit_page(self, delta: int, per_page: int) -> None:
        """The same place on the next (previous) page of `per_page` units."""
        if self.tracer is None:
            return
        page, pages, first, _ = unit_page(self.tracer.hidden, per_page, self.unit)
        page = (page + delta) % pages
        self.unit = min(self.tracer.hidden - 1, page * per_page + (self.unit - first))

    def change_colour(self, delta: int) -> None:
        keys = self.colour_keys()
        if keys:
            index = keys.index(self.colour_key) if self.colour_key in keys else 0
            self.colour_key = keys[(index + delta) % len(keys)]


@dataclass
class GatesSession(GatesCursor):
    """Everything the Gates screen knows, changed by its keys and by its workers' results. Methods
    that may need a worker return the jobs to start (an empty list when none)."""
    run: Path | None = None
    tracer: GateTracer | None = None
    meta: dict = field(default_factory=dict)
    trace: Trace | None = None
    source: TextSource | None = None
    text: str = ""
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pos: int = 0
    pending: int | None = None      # where the cursor goes once the trace reaches it
    target: int = 0                 # the trace is being extended up to this step
    extending: bool = False
    layer: int = 0
    unit: int = 0
    colour_key: str = "h"
    view: str = "cell"
    playing: bool = False
    speed: int = 10
    is_loading: bool = False
    error: str | None = None
    saturation: Saturation | None = None
    matches: list[UnitMatch] = field(default_factory=list)
    analysis_note: str = ""
    feature: str = "inside-quotes"  # the unit search's built-in feature, or "regex"
    regex: str = ""
    after_full: list[str] = field(default_factory=list)   # analyses waiting for the whole text
    compare_choice: CompareChoice | None = field(default_factory=lambda: compare_choices([], None)[0])
    compare_choices: list[CompareChoice] = field(default_factory=lambda: compare_choices([], None))
    comparison: Comparison | None = None
    comparing: bool = False
    compare_note: str = ""
    baseline_error: str | None = None    # why A's n-gram cannot be B (its corpus cannot be read)
    mark: int | None = None              # one end of a span being selected (the cursor is the other)
    span: tuple[int, int] | None = None  # the span matched: start, one past its end
    percentile: float = 90.0             # a unit is on above this percentile of its quantity's values
    span_matches: SpanMatches | None = None
    match_note: str = ""
    _match_job: MatchJob | None = None
    interventions: list[Intervention] = field(default_factory=list)
    changed: Trace | None = None         # the trace under the interventions, once computed
    intervening: bool = False            # a worker recomputes it
    intervention_index: int = 0          # the intervention selected in the panel
    intervene_note: str = ""
    recompute_progress: tuple[int, int] = (0, 0)   # (steps, of) the worker has recomputed
    continued: tuple[int, str, str] | None = None   # (from step, without, with the interventions)
    continuing: bool = False             # a worker draws the continuation
    _intervene_token: int = 0
    _intervene_cancel: threading.Event = field(default_factory=threading.Event)
    _continue_wanted: tuple[int, int, float] | None = None   # a continuation waiting for the recomputation
    _continue_job: ContinueJob | None = None
    _scorers: dict = field(default_factory=dict)
    _compare_job: CompareJob | None = None
    _runs: list = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)
    ranking: UnitRanking | None = None   # units ranked by the effect of silencing them
    ranking_progress: float = 0.0
    ranking_note: str = ""
    _ranking_job: RankingJob | None = None

    @property
    def cell(self) -> str:
        return self.tracer.cell if self.tracer is not None else "lstm"

    @property
    def cursor(self) -> int:
        """Where the cursor is, or is going once the trace reaches it."""
        return self.pending if self.pending is not None else self.pos

    def traced(self) -> int:
        with self.lock:
            return len(self.trace) if self.trace is not None else 0

    def label(self, key: str) -> QuantityLabel:
        return next(q for q in quantity_labels(self.cell) if q.key == key)

    # -- loading a checkpoint and a text

    def select_run(self, run: Path) -> bool:
        """Open `run`; whether it must be loaded (not when it is open already)."""
        run = Path(run)
        if run == self.run and self.tracer is not None:
            return False
        self.run = run
        # Forget the previous run's model and everything traced with it before loading the new one:
        # nothing may draw the old trace with a model that is gone (issue 10: the app closed).
        self.tracer = None
        self._forget_trace()
        self._scorers, self.baseline_error, self._compare_job = {}, None, None
        self.compare_choice = compare_choices([], None)[0]
        self.compare_choices = compare_choices(self._runs, run)
        return True

    def _forget_trace(self) -> None:
        self.trace, self.source, self.text = None, None, ""
        self.pos, self.pending, self.target = 0, None, 0
        self.saturation, self.matches, self.analysis_note = None, [], ""
        self.after_full = []
        self.comparison, self.comparing, self.compare_note = None, False, ""
        self.mark, self.span, self.span_matches, self.match_note, self._match_job = None, None, None, "", None
        # an intervention names positions of the text it was made on; a recomputation under way is dropped
        self._intervene_cancel.set()
        self._intervene_token += 1
        self.interventions, self.changed, self.intervening, self.continued = [], None, False, None
        self.continuing, self._continue_wanted, self._continue_job = False, None, None
        self.intervention_index, self.intervene_note = 0, ""
        self.cancel_ranking()
        self.ranking, self.ranking_progress, self.ranking_note = None, 0.0, ""

    def start_load(self) -> int:
        """A new text is being loaded: the generation its result must carry. An extension of the
        previous text stops at its next chunk."""
        self.generation += 1
        self._cancel.set()
        self._cancel = threading.Event()
        self.extending = False
        self.is_loading = True
        self.playing = False
        self.error = None
        return self.generation

    def loaded(self, generation: int, opened: OpenedText | None, error: str | None = None,
               tracer: GateTracer | None = None, meta: dict | None = None) -> list[Job]:
        """A load finished: its text, or its error (with the tracer and metadata it got before failing)."""
        if generation != self.generation:
            return []
        self.is_loading = False
        if opened is not None:
            tracer, meta = opened.tracer, opened.meta
        if tracer is not None and self.tracer is not tracer:
            self.tracer = tracer
            self.layer = tracer.layers - 1
            self.unit = 0
            self.colour_key = "c" if tracer.cell == "lstm" else "h"
        self.meta = meta or self.meta
        if opened is None:
            self.error = error
            return []
        self.error = None
        self._forget_trace()
        self.trace, self.source, self.text = opened.trace, opened.source, opened.source.text
        if self.view in ("saturation", "search"):
            return self.need_full(self.view)
        if self.view == "compare":
            return self.compare()
        if self.view == "rank":  # _forget_trace dropped the old text's ranking: the view ranks this one
            return self.rank_units()
        return []

    # -- the cursor

    def move_to(self, pos: int) -> list[Job]:
        """Put the cursor on character `pos`. The trace reaches one character past the cursor, so
        the true next character is known; a short step forward extends it at once, a long jump in a
        worker (the cursor waits as `pending`)."""
        if self.trace is None or not self.text:
            return []
        pos = max(0, min(len(self.text) - 1, pos))
        need = min(len(self.text), pos + 2)    # steps the trace must have
        length = self.traced()
        if need <= length:
            self.pos, self.pending = pos, None
            return []
        if need - length <= INLINE_STEPS and not self.extending:
            with self.lock:
                self.trace.extend(self.text[length:need])
            self.pos, self.pending = pos, None
            return []
        self.pending = pos
        return self._extend_to(need - 1)

    def step(self, delta: int) -> list[Job]:
        self.playing = False
        return self.move_to(self.cursor + delta)

    def word(self, direction: int) -> list[Job]:
        self.playing = False
        pos = self.cursor
        return self.move_to(next_word(self.text, pos) if direction > 0 else previous_word(self.text, pos))

    def page(self, direction: int, chars: int) -> list[Job]:
        """A page of `chars` characters (what the text view holds) forward or back."""
        self.playing = False
        return self.move_to(self.cursor + direction * max(1, chars))

    def edge(self, direction: int) -> list[Job]:
        self.playing = False
        return self.move_to(len(self.text) - 1 if direction > 0 else 0)

    # -- playing

    def toggle_play(self) -> list[Job]:
        if self.playing:
            self.playing = False
            return []
        jobs = self.move_to(0) if self.pos >= len(self.text) - 1 else []
        self.playing = True
        return jobs

    def tick(self) -> list[Job]:
        """One tick of play: a step (several at high speeds), unless waiting for the trace; the end stops."""
        if not self.playing or self.pending is not None:
            return []
        if self.pos >= len(self.text) - 1:
            self.playing = False
            return []
        return self.move_to(self.pos + self.steps_per_tick)

    # -- what is shown (speed, layer, unit and colour: GatesCursor)

    def select_match(self, match: UnitMatch) -> None:
        self.layer, self.unit, self.colour_key = match.layer, match.unit, match.key

    def set_view(self, view: str) -> list[Job]:
        self.view = view
        if view == "search" and not self.matches:
            return self.need_full("search")
        if view == "saturation":
            return self.need_full("saturation")
        if view == "compare":
            return self.compare()
        if view == "match":
            return self.match()
        return []

    # -- extending the trace

    def _extend_to(self, target: int) -> list[Job]:
        self.target = max(self.target, target)
        if self.extending:
            return []  # the running extension's result asks for the rest
        self.extending = True
        return [ExtendJob(self.generation, self.trace, self.lock, self.text, self.target, self._cancel,
                          lambda: self.changed)]

    def extended(self, generation: int, done: bool, error: str | None = None) -> list[Job]:
        """A worker's report: progress, or its extension finished (or failed)."""
        if generation != self.generation or not done:
            return []
        self.extending = False
        if error is not None:  # nothing waits for the whole text any more: no note may say it does
            self.pending, self.after_full, self.analysis_note, self.match_note = None, [], "", ""
            self.error = error
            return []
        if self.traced() <= min(self.target, len(self.text) - 1):
            return self._extend_to(self.target)  # asked for more while it ran
        if self.pending is not None and min(len(self.text), self.pending + 2) <= self.traced():
            self.pos, self.pending = self.pending, None
        jobs = [job for kind in self.after_full for job in self._analyse(kind)]
        self.after_full = []
        return jobs

    @property
    def goal(self) -> int | None:
        """The step being traced to, while a worker traces."""
        if self.pending is not None:
            return self.pending
        return self.target if self.extending else None

    # -- saturation and unit search

    def need_full(self, kind: str) -> list[Job]:
        """Saturation and unit search look at the whole text: trace it all first."""
        if self.trace is None:
            return []
        if self.traced() >= len(self.text) and not self.extending:
            return self._analyse(kind)
        if kind not in self.after_full:
            self.after_full.append(kind)
        if kind != "match":  # the saturation and search views' note; match() sets its own
            self.analysis_note = "tracing the whole text…"
        return self._extend_to(len(self.text) - 1)

    def _analyse(self, kind: str) -> list[Job]:
        if kind == "saturation":
            if self.saturation is not None:
                return []
            return [AnalysisJob(self.generation, "saturation", self.trace, self.lock)]
        if kind == "match":
            return self.match()
        return self.search()

    def search_key(self) -> str:
        """The quantity a unit search correlates: the one colouring the text if c or h, else the state."""
        return self.colour_key if self.colour_key in ("c", "h") else ("c" if self.cell == "lstm" else "h")

    def search(self) -> list[Job]:
        """Find the units tracking the chosen feature (`feature`, or `regex` when it is "regex")."""
        if self.trace is None:
            return []
        if self.feature == "regex" and not self.regex:
            self.analysis_note = "type a regular expression, then Enter"
            return []
        if self.traced() < len(self.text) or self.extending:
            return self.need_full("search")
        self.analysis_note = "searching…"
        by_regex = self.feature == "regex"
        return [AnalysisJob(self.generation, "search", self.trace, self.lock, name=None if by_regex else self.feature,
                            regex=self.regex if by_regex else None, key=self.search_key())]

    def analysed(self, job: AnalysisJob, result, error: str | None) -> None:
        """A worker's saturation or search result (or error) for `job`."""
        if job.generation != self.generation:
            return
        if job.kind == "saturation":
            self.saturation = result
            self.analysis_note = error or ""
            return
        self.matches = list(result or [])
        self.analysis_note = error or (
            f"units whose {self.label(job.key).symbol} tracks {job.query} best (Pearson r over "
            f"{len(self.text):,} chars); Enter selects")


    # -- comparing A (the open run) with B over the text

    def runs_listed(self, runs: list) -> None:
        """The runs folder's runs (core.runs.RunInfo, newest first): the choices of B."""
        self._runs = list(runs)
        self.compare_choices = compare_choices(self._runs, self.run, baseline=self.baseline_error is None)

    def choose(self, key: str) -> list[Job]:
        """B is the choice with this key (BASELINE or a run's path)."""
        choice = next((c for c in self.compare_choices if c.key == key), None)
        if choice is None or choice == self.compare_choice:
            return []
        self.compare_choice, self.comparison = choice, None
        return self.compare()

    def compare(self) -> list[Job]:
        """Score the text with A and B in a worker, unless done or under way (one job at a time: a
        comparison asked for while another runs starts when that one ends)."""
        if self.trace is None or self.run is None:
            return []
        if self.compare_choice is None:
            self.compare_note = self.baseline_error or "Pick a model B to compare with."
            return []
        if self.comparison is not None:
            return []
        self.comparing = True
        self.compare_note = f"computing: A and {self.compare_choice.label} over {len(self.text):,} chars…"
        if self._compare_job is not None:
            return []
        self._compare_job = CompareJob(self.generation, self.text, self.run, self.meta, self.compare_choice,
                                       dict(self._scorers))
        return [self._compare_job]

    def compared(self, result: CompareResult) -> list[Job]:
        """A worker's comparison. One for another text or another B (changed while it ran) is dropped, the
        scorers it loaded kept, and the comparison the session now wants asked for."""
        job = result.job
        if job is not self._compare_job:
            return []
        self._compare_job = None
        if job.run == self.run:
            self._scorers.update(result.scorers)
        current = job.generation == self.generation and job.text == self.text and job.choice == self.compare_choice
        if not current:
            return self.compare() if self.comparing else []
        self.comparing = False
        self.comparison = result.comparison
        self.compare_note = result.error or ""
        if result.baseline_failed:
            self.baseline_error = result.error
            self.compare_choice = None
            self.compare_choices = compare_choices(self._runs, self.run, baseline=False)
        return []

    # -- interventions (core.intervene): what if a unit were clamped, silenced or a gate forced

    def intervention_prefill(self) -> str:
        """The CLI's syntax for the selected unit at the cursor: silence its c (LSTM) or h."""
        key = "c" if self.cell == "lstm" else "h"
        return f"L{self.layer + 1}:U{self.unit}:{key}=0@{self.cursor}"

    def add_intervention(self, spec: str) -> list[Job]:
        """Add the intervention `spec` (the CLI's syntax); a bad one leaves a note saying what is wrong."""
        if self.trace is None or self.tracer is None:
            return []
        try:
            intervention = parse_intervention(spec, self.cell, self.tracer.layers, self.tracer.hidden, len(self.text))
        except PlaygroundError as exc:
            self.intervene_note = str(exc)
            return []
        traced = self.traced()
        if intervention.start >= traced:  # in the text, but the recomputation starts from the traced state there
            self.intervene_note = (f"Intervention {intervention.describe()}: position {intervention.start:,} is not "
                                   f"traced yet (traced to {traced - 1:,}); move the cursor there first, then add it.")
            return []
        self.interventions.append(intervention)
        self.intervention_index = len(self.interventions) - 1
        return self._recompute()

    def remove_intervention(self, index: int | None = None) -> list[Job]:
        """Remove the selected intervention (or the one at `index`)."""
        index = self.intervention_index if index is None else index
        if not 0 <= index < len(self.interventions):
            return []
        del self.interventions[index]
        self.intervention_index = max(0, min(index, len(self.interventions) - 1))
        return self._recompute()

    def clear_interventions(self) -> list[Job]:
        self.interventions = []
        self.intervention_index = 0
        return self._recompute()

    def select_intervention(self, index: int) -> None:
        if 0 <= index < len(self.interventions):
            self.intervention_index = index

    def _recompute(self) -> list[Job]:
        """The intervened trace for the current interventions: at once when short, else in a worker
        (the screen shows the original until it is back)."""
        self._intervene_cancel.set()
        self._intervene_cancel = threading.Event()
        self._intervene_token += 1
        self.continued, self.changed, self.intervening, self.continuing = None, None, False, False
        self._continue_wanted, self._continue_job = None, None
        self.recompute_progress = (0, 0)
        self.intervene_note = ""
        if not self.interventions or self.trace is None:
            return []
        interventions = tuple(self.interventions)
        start = min(iv.start for iv in interventions)
        if self.traced() - start <= INLINE_INTERVENE and self.trace.copy_bytes(start) <= INLINE_COPY_BYTES:
            with self.lock:
                self.changed = self.trace.intervened(interventions)
            return []
        self.intervening = True
        return [InterveneJob(self._intervene_token, self.trace, self.lock, self.text, interventions,
                             self._intervene_cancel)]

    @property
    def recompute_note(self) -> str:
        """What the screen says while a worker recomputes the trace (the note keeps what went wrong)."""
        if not self.intervening or not self.interventions:
            return ""
        start = min(iv.start for iv in self.interventions)
        return f"recomputing the trace from position {start:,} under the interventions…"

    def intervention_progressed(self, job: InterveneJob, done: int, total: int) -> None:
        """A worker's progress; one from a recomputation replaced since is dropped."""
        if job.token == self._intervene_token:
            self.recompute_progress = (done, total)

    def intervention_done(self, job: InterveneJob, changed: Trace | None, error: str | None = None) -> list[Job]:
        """A worker's intervened trace (or error); one for interventions changed since is dropped. A
        continuation asked for while it ran starts now."""
        if job.token != self._intervene_token:
            return []
        self.intervening = False
        self.changed = changed
        wanted, self._continue_wanted = self._continue_wanted, None
        if error is not None:
            self.intervene_note = error
            self.interventions, self.changed, self.continuing = [], None, False
            return []
        return self.continue_text(*wanted) if wanted is not None else []

    def shown_trace(self) -> Trace | None:
        """The trace the screen draws: the intervened one while interventions hold, caught up with the
        original's length (call under the lock)."""
        changed = self.changed
        if changed is None or self.trace is None:
            return self.trace
        if len(changed) < len(self.trace):
            changed.extend(self.text[len(changed):len(self.trace)])
        return changed

    def continue_text(self, length: int = CONTINUE_CHARS, seed: int = 0, temperature: float = 0.8) -> list[Job]:
        """Continue the text from the cursor without and with the interventions, the same seed (a worker
        draws; `continued_text` takes its result). While the intervened trace is recomputed it waits for it:
        drawn now, both sides would be the original's."""
        if self.trace is None:
            return []
        if not self.interventions:
            self.intervene_note = ("Nothing to compare: add an intervention first (i); t then continues the text "
                                   "with and without the interventions.")
            return []
        if self.intervening:
            self.continued, self.continuing, self._continue_job = None, True, None
            self._continue_wanted = (length, seed, temperature)
            return []
        with self.lock:
            shown = self.shown_trace()
            without = self.trace.continuation_from(self.pos)
            with_ = shown.continuation_from(self.pos) if shown is not self.trace else without
        self.continued, self.continuing = None, True
        self._continue_job = ContinueJob(self.pos, without, with_, length, seed, temperature)
        return [self._continue_job]

    def continued_text(self, job: ContinueJob, texts: tuple[str, str] | None, error: str | None = None) -> None:
        """A worker's continuation; one drawn before the interventions changed, or asked for again since, is
        dropped."""
        if job is not self._continue_job:
            return
        self._continue_job = None
        self.continuing = False
        if texts is None:
            self.intervene_note = error or ""
            return
        self.continued = (job.at, *texts)

    def jump(self, direction: int) -> list[Job]:
        """The cursor to the start of the next (previous) span where A or B wins most."""
        if self.comparison is None:
            return []
        span = next_jump(self.comparison, self.cursor, direction)
        if span is None:
            return []
        self.playing = False
        return self.move_to(span.start)

    # -- span match: select a span (a mark, then move), list the spans elsewhere whose units are on like it

    def selection(self) -> tuple[int, int] | None:
        """The span being selected, mark to cursor (both in), else the span matched: (start, one past end)."""
        if self.mark is not None and self.trace is not None:
            first, last = sorted((self.mark, self.cursor))
            return first, last + 1
        return self.span

    def toggle_mark(self) -> None:
        """A mark at the cursor: the span runs from it to wherever the cursor goes; pressed again, no mark."""
        self.mark = None if self.mark is not None else self.cursor

    def extend_selection(self, delta: int) -> list[Job]:
        """Shift+arrow: a mark where the selection begins (if none yet), and the cursor moves."""
        if self.mark is None:
            self.mark = self.cursor
        return self.step(delta)

    def change_percentile(self, delta: int) -> list[Job]:
        index = PERCENTILES.index(self.percentile) if self.percentile in PERCENTILES else PERCENTILES.index(90.0)
        self.percentile = PERCENTILES[max(0, min(len(PERCENTILES) - 1, index + delta))]
        return self.match() if self.view == "match" else []

    def match(self) -> list[Job]:
        """Match the selection (which becomes the span matched, the mark dropped) or the span matched last,
        with the colour quantity at the selected layer, over the whole text (traced first). Like saturation,
        the unit search and the ranking, it reads the original trace (the model as trained), never the
        intervened one: a whole-text analysis describes the model, the interventions are what-ifs at the cursor."""
        if self.trace is None:
            return []
        if self.mark is not None:
            self.span, self.mark = self.selection(), None
        if self.span is None:
            self.match_note = SELECT_SPAN
            return []
        if self.traced() < len(self.text) or self.extending:
            self.match_note = "tracing the whole text first…"
            return self.need_full("match")
        start, end = self.span
        wanted = (start, end, self.colour_key, self.layer, self.percentile)
        done = self.span_matches
        if done is not None and (done.start, done.end, done.key, done.layer, done.percentile) == wanted:
            return []
        self.match_note = "matching…"
        self._match_job = MatchJob(self.generation, self.trace, self.lock, *wanted)
        return [self._match_job]

    def matched(self, job: MatchJob, result: SpanMatches | None, error: str | None) -> None:
        """A worker's span match (or error); one no longer wanted is dropped."""
        if job is not self._match_job:
            return
        self._match_job = None
        self.span_matches = result
        self.match_note = error or ""

    def jump_to_match(self, index: int) -> list[Job]:
        """The cursor to the start of match `index` (the span matched stays as it was)."""
        matches = self.span_matches.matches if self.span_matches is not None else ()
        if not 0 <= index < len(matches):
            return []
        self.playing = False
        return self.move_to(matches[index].start)

    # -- ranking units by the effect of silencing them (a worker runs run_ranking)

    def rank_units(self) -> list[Job]:
        """Rank every unit by the effect of silencing it over the text, and over the chosen feature's
        characters (the unit search's feature or regex). A ranking already running is cancelled."""
        if self.tracer is None or self.trace is None:
            return []
        self.cancel_ranking()
        by_regex = self.feature == "regex"
        if by_regex and not self.regex:
            name = regex = None
        else:
            name, regex = (None, self.regex) if by_regex else (self.feature, None)
        prefix = self.trace.prefix
        self._ranking_job = RankingJob(self.generation, self.tracer, self.text, prefix, threading.Event(), name, regex)
        self.ranking, self.ranking_progress = None, 0.0
        self.ranking_note = "ranking units by the effect of silencing them…"
        return [self._ranking_job]

    @property
    def ranking_running(self) -> bool:
        return self._ranking_job is not None

    def cancel_ranking(self) -> None:
        if self._ranking_job is not None:
            self._ranking_job.cancel.set()
            self._ranking_job = None
            self.ranking_note = "ranking cancelled"

    def ranking_progressed(self, job: RankingJob, fraction: float) -> None:
        if job is self._ranking_job:
            self.ranking_progress = fraction
            self.ranking_note = f"ranking units by the effect of silencing them… {fraction:.0%}"

    def ranked(self, job: RankingJob, result: UnitRanking | None, error: str | None = None) -> None:
        """A worker's ranking (None when it was cancelled) or error, for `job`."""
        if job is not self._ranking_job or job.generation != self.generation:
            return
        self._ranking_job = None
        if error is not None or result is None:
            self.ranking_note = error or "ranking cancelled"
            return
        self.ranking, self.ranking_progress = result, 1.0
        what = f" and over the characters {job.query} marks" if result.feature_loss is not None else ""
        self.ranking_note = (f"units by how much silencing them raises the loss over {len(job.text):,} chars{what} "
                             f"(baseline {result.baseline:.3f} nats/char"
                             f"{'; bf16 products' if result.precision == 'fast' else ''})")

    def effect_comparison(self) -> EffectVsCorrelation | None:
        """The unit search's matches beside the ranking's top units, once both exist."""
        if self.ranking is None or not self.matches:
            return None
        return effect_vs_correlation(self.ranking, self.matches)


# --------------------------------------------------------------------------- what the screen draws

@dataclass(frozen=True)
class StepLine:
    """The line under the text: where the cursor is and how far the trace reaches."""
    pos: int
    last: int               # the last character's index
    char: str               # the character at the cursor, as one readable cell
    traced: int
    goal: int | None        # being traced up to this step


def step_line(session: GatesSession) -> StepLine | None:
    if session.trace is None:
        return None
    return StepLine(session.pos, len(session.text) - 1, show_char(session.text[session.pos]), session.traced(),
                    session.goal)


@dataclass(frozen=True)
class GatesFrame:
    """Everything the screen draws at the cursor: the step's numbers, the heatmap rows of the view
    (values on the diverging scale, or saturation fractions), the text's colours around the cursor (the
    selected unit's, or in the compare view who predicts each character better),
    the next-character distribution and the most active units."""
    info: StepInfo
    next_chars: NextCharView
    rows: tuple[HeatRow, ...]           # the cell view's quantities, or the saturation's; none for search
    fraction: bool                      # rows are fractions of steps (saturation)
    colours: np.ndarray                 # the selected unit's colour quantity on [-1, 1], from colours_start
    colours_start: int
    active: tuple                       # core's most active units of h here
    update: tuple[float, float, float] | None   # an LSTM's kept, written and c of the selected unit
    layers: LayersView | None = None    # the layers view: every layer's strips around the cursor
    effect: InterventionEffect | None = None    # intervene view: what the interventions change here


def gates_frame(session: GatesSession, span: int, mono: bool = False,
                strips: tuple[int, int] | None = None) -> GatesFrame | None:
    """The frame at the cursor; `span`: characters the text view holds (colours are computed for a
    window of a few spans around the cursor); `mono`: fractions drawn as bar heights, not colours;
    `strips`: (characters, units a strip) the layers view shows. While interventions hold, every number
    at and around the cursor (the layers view's strips too) is the intervened trace's, and `effect`
    compares it with the original."""
    if session.trace is None:
        return None
    pos, layer, unit = session.pos, session.layer, session.unit
    span = max(1, span)
    effect = None
    with session.lock:
        trace = session.shown_trace()
        info = trace.step_info(pos, layer, k=TOP_K)
        if trace is not session.trace and session.view == "intervene":  # drawn only there
            original = session.trace
            continued = session.continued
            effect = intervention_effect(
                original.step_info(pos, layer, k=TOP_K), info, np.exp(original.log_probs[pos]),
                np.exp(trace.log_probs[pos]), trace.tracer.vocab.chars,
                tuple(iv.describe() for iv in session.interventions), session.intervention_index, unit,
                continued[1:] if continued is not None and continued[0] == pos else None)
        start = max(0, pos - 2 * span)
        end = min(len(trace), pos + 3 * span)
        if session.view == "compare":  # who predicts each character better, once the comparison is done
            values = session.comparison.values if session.comparison is not None else np.zeros(0)
            start = min(start, len(values))
            colours = values[start:pos + 3 * span]
        else:
            colours = diverging(unit_values(trace, session.colour_key, layer, unit, start, end),
                                trace.quantity(session.colour_key).kind)
        kinds = {q.key: q.kind for q in trace.quantities}
        active = tuple(trace.most_active(pos, layer, "h", n=ACTIVE_UNITS))
        layers = None
        if session.view == "layers" and strips is not None:
            layers = layers_view(trace, session.text, session.colour_key, pos, strips[0], unit, strips[1])
    rows: list[HeatRow] = []
    if session.view == "cell":
        rows = [HeatRow(q.text, q.short, q.standard, diverging(info.values[q.key], kinds[q.key]),
                        float(info.values[q.key][unit]), q.key) for q in quantity_labels(session.cell)]
    elif session.view == "saturation" and session.saturation is not None:
        sat = session.saturation
        for key in sat.keys:
            label = session.label(key)
            left, right = sat.left[key][layer], sat.right[key][layer]
            symbol = label.quantity.symbol
            # fractions: without colour a bar as tall as the fraction; with colour below in blue and
            # above in red, as deep as the fraction
            shown_left, shown_right = (2 * left - 1, 2 * right - 1) if mono else (-left, right)
            rows.append(HeatRow(f"{label.text} <{sat.low:g}", f"{symbol} <{sat.low:g}", label.standard,
                                shown_left, float(left[unit]), key))
            rows.append(HeatRow(f"{label.text} >{sat.high:g}", f"{symbol} >{sat.high:g}", label.standard,
                                shown_right, float(right[unit]), key))
    elif session.view == "intervene" and effect is not None:
        rows = list(effect.deltas)
    update = None
    if session.cell == "lstm":
        update = tuple(float(info.values[key][unit]) for key in ("kept", "written", "c"))
    return GatesFrame(info, next_char_view(info), tuple(rows), session.view == "saturation", colours, start,
                      active, update, layers, effect)

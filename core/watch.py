"""What front ends show about a run: folding events into a snapshot, tailing metrics.jsonl,
run details, deleting a run folder safely, and checking settings before a run starts.

Every number a screen shows (losses, best values, progress, throughput) is computed here,
from the events the trainer emits or from the metrics.jsonl it wrote, so the live view of a
run in this process and the view of a run watched from another process are the same thing.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from . import runs
from .checkpoint import read_metadata
from .corpus import BUILTIN_STDLIB, Corpus, check_size, load_corpus, minimum_chars
from .download import REMOTE_CORPORA, cache_dir
from .errors import CheckpointError, ConfigError, PlaygroundError
from .events import (CheckpointSaved, ErrorEvent, Event, Finished, Paused, Resumed, RunStarted, SampleEvent,
                     Stopped, StepEvent, ValidationEvent, event_from_json)
from .trainer import TrainConfig

MAX_POINTS = 4000     # points kept per loss series; older ones are merged in pairs beyond this
LOG_LINES = 200       # log lines kept in a snapshot


# --------------------------------------------------------------------------- series


class Series:
    """(step, value) points of a loss curve; finite values only. Beyond `max_points` the oldest
    half is merged in pairs (mean), so memory stays bounded over a long run and the shape holds."""

    def __init__(self, max_points: int = MAX_POINTS):
        self.max_points = max(4, max_points)
        self.steps: list[int] = []
        self.values: list[float] = []

    def add(self, step: int, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        self.steps.append(int(step))
        self.values.append(float(value))
        if len(self.values) > self.max_points:
            half = (len(self.values) // 2) & ~1
            merged_v = [(self.values[i] + self.values[i + 1]) / 2 for i in range(0, half, 2)]
            merged_s = [self.steps[i + 1] for i in range(0, half, 2)]
            self.values[:half] = merged_v
            self.steps[:half] = merged_s
        return True

    def __len__(self) -> int:
        return len(self.values)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def best(self) -> float | None:
        return min(self.values) if self.values else None


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class LogLine:
    seq: int          # increasing over the monitor's life: a front end appends lines with seq > the last it showed
    time: float
    level: str        # "info", "warning" or "error"
    text: str


@dataclass(frozen=True)
class RunSnapshot:
    """Everything a screen shows about one run at one moment. Immutable: safe to hand across threads."""
    run_name: str | None = None
    run_dir: str | None = None
    device: str | None = None
    config: dict = field(default_factory=dict)
    parameters: int | None = None
    vocab_size: int | None = None
    train_chars: int | None = None
    val_chars: int | None = None
    status: str = "idle"      # idle, starting, training, paused, stopped, finished, error
    step: int = 0
    start_step: int = 0
    total_steps: int | None = None
    epoch: float = 0.0
    loss: float | None = None
    best_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    tokens_per_s: float | None = None
    lr: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    progress: float | None = None       # 0..1 of this session's budget, None before the first step
    skipped_steps: int = 0
    next_val_step: int | None = None    # when the next validation comes (see StepEvent)
    next_val_in_s: float | None = None
    train_losses: tuple[float, ...] = ()
    train_steps: tuple[int, ...] = ()
    val_losses: tuple[float, ...] = ()
    val_steps: tuple[int, ...] = ()
    sample: str | None = None
    sample_step: int | None = None
    last_checkpoint: str | None = None
    last_checkpoint_step: int | None = None
    error: str | None = None
    log: tuple[LogLine, ...] = ()
    events: int = 0                     # events folded so far (a change counter)

    @property
    def active(self) -> bool:
        return self.status in ("starting", "training", "paused")


def describe_val_sample(event: RunStarted) -> str:
    """What validations read, when that is a sample of the held-out split ("" when it is all of it)."""
    if event.val_sample is None:
        return ""
    return (f" (each validation reads a fixed sample of {event.val_sample:,}; "
            f"the whole split when the run finishes)")


def describe_validation(event: ValidationEvent) -> str:
    """ " on a sample of N chars" for a validation that read a sample of the held-out split."""
    return f" on a sample of {event.chars:,}" if event.sampled and event.chars else ""


def describe_event(event: Event) -> tuple[str, str] | None:
    """(level, one line of text) for the events worth a line in a run's log; None for the rest."""
    if isinstance(event, RunStarted):
        resumed = f", resumed at step {event.start_step}" if event.start_step else ""
        return "info", (f"started {event.run_name} on {event.device}: {event.parameters:,} parameters, "
                        f"vocab {event.vocab_size}, {event.train_chars:,} train / {event.val_chars:,} "
                        f"validation chars{describe_val_sample(event)}{resumed}")
    if isinstance(event, ValidationEvent):
        best = ", best so far" if event.is_best else ""
        return "info", f"step {event.step:,}: val loss {event.val_loss:.4f}{describe_validation(event)}{best}"
    if isinstance(event, CheckpointSaved):
        if event.reason == "validation":
            return None  # saved at every validation: shown as "saved at step N", not logged each time
        reason = "" if event.reason == "best" else f" ({event.reason})"
        return "info", f"step {event.step:,}: saved {Path(event.path).name}{reason}"
    if isinstance(event, Paused):
        return "info", f"paused at step {event.step:,}"
    if isinstance(event, Resumed):
        return "info", f"resumed at step {event.step:,}"
    if isinstance(event, Finished):
        best = f"{event.best_val_loss:.4f}" if event.best_val_loss is not None else "n/a"
        return "info", f"finished at step {event.step:,}; best validation loss {best}"
    if isinstance(event, Stopped):
        return "info", f"stopped ({event.reason}) at step {event.step:,}"  # asked for, and saved: not a warning
    if isinstance(event, ErrorEvent):
        return "error", event.message
    return None


class RunMonitor:
    """Folds a run's events into a RunSnapshot. Feed it Event objects (a run in this process)
    or metrics.jsonl records (a run in another process); both give the same picture.
    Not thread-safe: one thread feeds it and takes snapshots; the snapshots travel."""

    def __init__(self, max_points: int = MAX_POINTS, log_lines: int = LOG_LINES):
        self.train = Series(max_points)
        self.val = Series(max_points)
        self._log: deque[LogLine] = deque(maxlen=log_lines)
        self._seq = 0
        self._fields: dict = {"status": "idle"}
        self._session_start: float | None = None
        self.events = 0

    # -- feeding

    def add(self, event: Event) -> None:
        self.events += 1
        f = self._fields
        if isinstance(event, RunStarted):
            f.update(run_name=event.run_name, run_dir=event.run_dir, device=event.device, config=event.config,
                     parameters=event.parameters, vocab_size=event.vocab_size, train_chars=event.train_chars,
                     val_chars=event.val_chars, start_step=event.start_step, step=event.start_step,
                     total_steps=event.total_steps, status="training", error=None, eta_s=None, progress=None,
                     next_val_step=None, next_val_in_s=None)
            self._session_start = event.time
        elif isinstance(event, StepEvent):
            self.train.add(event.step, event.loss)
            f.update(step=event.step, total_steps=event.total_steps, epoch=event.epoch, tokens_per_s=event.tokens_per_s,
                     lr=event.lr, elapsed_s=event.elapsed_s, eta_s=event.eta_s, skipped_steps=event.skipped_steps,
                     next_val_step=event.next_val_step, next_val_in_s=event.next_val_in_s)
            if math.isfinite(event.loss):
                f["loss"] = event.loss
            f["progress"] = self._progress(event)
            if f.get("status") not in ("paused",):
                f["status"] = "training"
        elif isinstance(event, ValidationEvent):
            self.val.add(event.step, event.val_loss)
            f.update(val_loss=event.val_loss, best_val_loss=event.best_val_loss)
        elif isinstance(event, SampleEvent):
            f.update(sample=event.text, sample_step=event.step)
        elif isinstance(event, CheckpointSaved):
            f.update(last_checkpoint=event.path, last_checkpoint_step=event.step)
        elif isinstance(event, Paused):
            f.update(status="paused", step=event.step)
        elif isinstance(event, Resumed):
            f.update(status="training", step=event.step)
        elif isinstance(event, Finished):
            f.update(status="finished", step=event.step, eta_s=0.0, progress=1.0)
            if event.best_val_loss is not None:
                f["best_val_loss"] = event.best_val_loss
        elif isinstance(event, Stopped):
            f.update(status="stopped", step=event.step, eta_s=None)
        elif isinstance(event, ErrorEvent):
            f.update(status="error", error=event.message, eta_s=None)
        line = describe_event(event)
        if line is not None:
            self.log(*line, time=event.time)

    def add_record(self, record: Mapping) -> bool:
        """Fold one metrics.jsonl record; records this version does not know are skipped."""
        try:
            event = event_from_json(dict(record))
        except (KeyError, TypeError, ValueError):
            return False
        self.add(event)
        return True

    def log(self, level: str, text: str, time: float | None = None) -> None:
        import time as _time
        self._seq += 1
        self._log.append(LogLine(self._seq, _time.time() if time is None else time, level, text))

    def set_status(self, status: str, error: str | None = None) -> None:
        """For what happens outside the event stream: 'starting' before the trainer exists,
        'error' when it could not be built."""
        self._fields["status"] = status
        if error is not None:
            self._fields["error"] = error
            self.log("error", error)

    def _progress(self, event: StepEvent) -> float | None:
        start = self._fields.get("start_step", 0)
        if event.total_steps:
            span = event.total_steps - start
            return min(1.0, max(0.0, (event.step - start) / span)) if span > 0 else 1.0
        if event.eta_s is None or self._session_start is None:
            return None
        done = max(0.0, event.time - self._session_start)
        return min(1.0, done / max(done + event.eta_s, 1e-9))

    # -- reading

    def snapshot(self) -> RunSnapshot:
        return RunSnapshot(
            **self._fields,
            best_loss=self.train.best,
            train_losses=tuple(self.train.values), train_steps=tuple(self.train.steps),
            val_losses=tuple(self.val.values), val_steps=tuple(self.val.steps),
            log=tuple(self._log), events=self.events)


# --------------------------------------------------------------------------- watching


class RunWatcher:
    """Tails a run folder's metrics.jsonl (written by a run in this or another process) into a
    RunMonitor. Call poll() from a timer or a worker; it reads only what was appended."""

    def __init__(self, run_dir: Path | str, max_points: int = MAX_POINTS):
        self.run_dir = Path(run_dir)
        self.monitor = RunMonitor(max_points)
        self.offset = 0
        self._inode: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def poll(self) -> int:
        """Fold newly appended lines; returns how many records were read. A replaced or
        truncated file is read again from the start."""
        with self._lock:
            path = self.run_dir / runs.METRICS
            try:
                stat = path.stat()
            except OSError:
                return 0
            identity = (stat.st_dev, stat.st_ino)
            if self._inode is not None and (identity != self._inode or stat.st_size < self.offset):
                self.monitor = RunMonitor(self.monitor.train.max_points)
                self.offset = 0
            self._inode = identity
            records, self.offset = runs.read_metrics(self.run_dir, self.offset)
            for record in records:
                self.monitor.add_record(record)
            return len(records)

    def snapshot(self) -> RunSnapshot:
        with self._lock:
            return self.monitor.snapshot()


@dataclass(frozen=True)
class RunDetails:
    """What the Runs screen's details panel shows about one run folder."""
    info: runs.RunInfo
    state: str                    # run.json state: running, stopped, finished, error, or "" if unknown
    config: dict
    vocab_size: int | None
    corpus: str | None
    checkpoints: tuple[str, ...]  # checkpoint file names present
    host: str | None
    series: dict = field(default_factory=dict)  # a series run's own settings (target column, CSV, window...)
    data: dict = field(default_factory=dict)    # a series run's data as read (column names, points, split)

    @property
    def model(self) -> dict:
        return self.config.get("model") or {}


def run_details(run_dir: Path | str) -> RunDetails | None:
    """Details of a run folder, from run.json and the checkpoint headers (tensors are not read)."""
    run_dir = Path(run_dir)
    info = runs.run_info(run_dir) if run_dir.is_dir() else None
    if info is None:
        return None
    status = runs.read_status(run_dir)
    meta: dict = {}
    for name in (runs.LAST, runs.BEST):
        if (run_dir / name).exists():
            try:
                meta = read_metadata(run_dir / name)
                break
            except CheckpointError:
                continue
    if info.problem:  # listed as unreadable, with the reason: the details show no settings from odd metadata
        meta, status = {}, {key: status[key] for key in ("state", "host") if isinstance(status.get(key), str)}

    def mapping(value) -> dict:
        return value if isinstance(value, dict) else {}

    config = mapping(meta.get("config")) or mapping(status.get("config"))
    vocab = meta.get("vocab")
    corpus = mapping(meta.get("corpus"))
    return RunDetails(
        info=info, state=str(status.get("state", "")), config=dict(config),
        vocab_size=len(vocab) if isinstance(vocab, (list, str)) else None,
        corpus=corpus.get("source") or corpus.get("spec") or config.get("corpus"),
        checkpoints=tuple(sorted(p.name for p in run_dir.glob("*.safetensors"))),
        host=status.get("host"), series=mapping(meta.get("series")), data=mapping(meta.get("data")))


# --------------------------------------------------------------------------- deleting


def _is_run_file(name: str) -> bool:
    return (name.endswith(".safetensors") or name in (runs.METRICS, runs.STATUS, runs.LOCK)
            or (name.startswith(".") and name.endswith(".tmp")))  # atomic-write leftovers


def delete_run(run_dir: Path | str, runs_dir: Path | str | None = None) -> list[Path]:
    """Delete a run folder, refusing anything that might not be one: a folder outside `runs_dir`
    (default: the usual runs folder), a folder that is not a run, a run that is training, or a
    folder holding files a run does not write (nothing is deleted then). Returns what was removed."""
    run_dir = Path(run_dir)
    root = Path(runs_dir) if runs_dir is not None else runs.default_runs_dir()
    if run_dir.is_symlink() or not run_dir.is_dir():
        raise PlaygroundError(f"{run_dir} is not a run folder.")
    if run_dir.resolve().parent != root.resolve():
        raise PlaygroundError(f"Refusing to delete {run_dir}: it is not directly inside the runs folder {root}.")
    if runs.run_info(run_dir) is None:
        raise PlaygroundError(f"Refusing to delete {run_dir}: it holds no run (no run.json or checkpoint).")
    if runs.is_live(run_dir):
        raise PlaygroundError(f"Refusing to delete {run_dir.name}: it is training right now. Stop it first.")
    entries = list(run_dir.iterdir())
    foreign = sorted(p.name for p in entries if p.is_symlink() or not p.is_file() or not _is_run_file(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PlaygroundError(f"Refusing to delete {run_dir.name}: it holds files a run does not write "
                              f"({shown}). Move them out first, or delete the folder by hand.")
    removed = []
    for path in entries:
        path.unlink()
        removed.append(path)
    run_dir.rmdir()
    return removed


# --------------------------------------------------------------------------- settings


BUDGET_KINDS = ("minutes", "steps", "epochs")
FORM_FIELDS = ("hidden", "layers", "embed", "dropout", "batch", "seq", "lr", "ema", "val_every", "seed", "threads")
AUTO = "auto"  # a form's text for a setting left to the automatic choice (threads)


def threads_from_text(text: str) -> int | None:
    """A form's threads field: "auto" (or empty) for the automatic choice, else a whole number."""
    text = text.strip().lower()
    if text in ("", AUTO):
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"threads must be auto or a whole number of CPU threads, got '{text}'.") from None


@dataclass(frozen=True)
class SettingsCheck:
    """The outcome of checking a settings form: a config to run when `errors` is empty."""
    config: TrainConfig | None
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors and self.config is not None


def _field_type(name: str) -> type:
    kind = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[name]
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return int if kind.startswith("int") else float if kind.startswith("float") else str


def flag_of(name: str) -> str:
    """The command-line flag of a TrainConfig field: val_every -> --val-every."""
    return "--" + name.replace("_", "-")


_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w-])")


def name_settings(message: str, names: Mapping[str, str]) -> str:
    """An engine message (which names settings by their flags, as the CLI shows them) with each
    setting in `names` (field name -> what a front end calls it) named that way instead: the
    app's form says "hidden must be at least 1" where the CLI says "--hidden must be ...".
    Flags not in `names` stay as they are."""
    return _FLAG.sub(lambda m: names.get(m.group(1).replace("-", "_"), m.group(0)), message)


@dataclass(frozen=True)
class SettingHelp:
    """What a setting means, from its TrainConfig field: `help` is the CLI's --help text (a front
    end's one-line description), `more` the longer explanation."""
    name: str
    flag: str
    help: str
    more: str
    default: object


def setting_help(name: str) -> SettingHelp | None:
    for f in dataclasses.fields(TrainConfig):
        if f.name == name and "help" in f.metadata:
            return SettingHelp(name, flag_of(name), f.metadata["help"], f.metadata.get("more", ""), f.default)
    return None


def _parse(name: str, text: str):
    if name == "threads":
        return threads_from_text(text)
    kind = _field_type(name)
    text = text.strip().replace("_", "")
    if kind is str:
        return text
    if not text:
        raise ConfigError(f"{flag_of(name)} is empty; enter a value.")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{flag_of(name)} must be {'a whole number' if kind is int else 'a number'}, "
                          f"got '{text}'.") from None


def check_settings(values: Mapping[str, str], *, budget_kind: str = "minutes", budget: str = "",
                   base: TrainConfig | None = None, resume_step: int | None = None) -> SettingsCheck:
    """Check form text field by field with the engine's own validation, so each error can be shown
    beside its field. `values` maps TrainConfig field names (hidden, lr, ...) to text; other
    settings (corpus, cell, device) are taken as they are. `resume_step` is the step of a run
    being resumed: a step budget must then go beyond it."""
    base = base or TrainConfig()
    errors: dict[str, str] = {}
    parsed: dict = {}
    for name, text in values.items():
        try:
            value = _parse(name, text) if isinstance(text, str) and _field_type(name) is not str else text
            dataclasses.replace(base, **{name: value}).validate()
            parsed[name] = value
        except (ConfigError, TypeError) as exc:
            errors[name] = str(exc)
    if budget_kind not in BUDGET_KINDS:
        errors["budget"] = f"Budget must be one of {', '.join(BUDGET_KINDS)}."
    else:
        try:
            value = _parse(budget_kind, budget)
            if budget_kind == "steps":
                value = int(value)
            budget_fields = {"steps": None, "epochs": None, "minutes": None, budget_kind: value}
            dataclasses.replace(base, **budget_fields).validate()
            if budget_kind == "steps" and resume_step is not None and value <= resume_step:
                raise ConfigError(f"The run is at step {resume_step}; a step budget (a total) must be above it.")
            parsed.update(budget_fields)
        except ConfigError as exc:
            errors["budget"] = str(exc)
    if errors:
        return SettingsCheck(None, errors)
    config = dataclasses.replace(base, **parsed)
    try:
        config.validate()
    except ConfigError as exc:
        return SettingsCheck(None, {"form": str(exc)})
    return SettingsCheck(config, {})


@dataclass(frozen=True)
class CorpusCheck:
    ok: bool
    message: str           # the engine's error, or a short description of what will be used
    chars: int | None = None
    field: str = "corpus"  # the setting at fault when not ok: corpus, or batch or seq for a text too small


_corpus_cache: dict[tuple, Corpus] = {}
_corpus_lock = threading.Lock()


def _corpus_key(spec: str, glob: str) -> tuple:
    path = Path(spec).expanduser()
    try:
        stat = path.stat()
        return spec, glob, stat.st_mtime_ns, stat.st_size
    except OSError:
        return spec, glob, None, None


def check_corpus(spec: str, *, glob: str = "*", batch: int = 64, seq: int = 100,
                 val_fraction: float = 0.1) -> CorpusCheck:
    """Whether a corpus spec would train with this batch and sequence length, with the engine's
    own errors. Named corpora not yet downloaded are not fetched (they download on start).
    Loaded texts are cached, so checking again as batch or seq change is instant."""
    spec = spec.strip()
    if not spec:
        return CorpusCheck(False, f"Enter a corpus: {BUILTIN_STDLIB}, {', '.join(REMOTE_CORPORA)}, "
                                  "or a path to a UTF-8 text file or folder.")
    remote = REMOTE_CORPORA.get(spec)
    if remote is not None and not Path(spec).exists():
        cached = cache_dir() / remote.filename
        if not (cached.is_file() and cached.stat().st_size == remote.size):
            return CorpusCheck(True, f"{spec}: downloads {remote.size / 1e6:.1f} MB on start", None)
    key = _corpus_key(spec, glob)
    try:
        with _corpus_lock:
            corpus = _corpus_cache.get(key)
        if corpus is None:
            corpus = load_corpus(spec, glob=glob)
            with _corpus_lock:
                if len(_corpus_cache) >= 4:
                    _corpus_cache.pop(next(iter(_corpus_cache)))
                _corpus_cache[key] = corpus
    except PlaygroundError as exc:
        return CorpusCheck(False, str(exc))
    except OSError as exc:
        return CorpusCheck(False, f"Cannot read {spec}: {exc.strerror or exc}.")
    try:
        check_size(corpus, batch, seq, val_fraction)
    except PlaygroundError as exc:
        return CorpusCheck(False, str(exc), corpus.length, _too_small_for(corpus, seq, val_fraction))
    skipped = f"; skipped {len(corpus.warnings)} unreadable folder(s)" if corpus.warnings else ""
    return CorpusCheck(True, f"{corpus.source}: {corpus.length:,} characters{skipped}", corpus.length)


def _too_small_for(corpus: Corpus, seq: int, val_fraction: float) -> str:
    """Which setting to mark when a text is too small for batch x seq: batch when a batch of one
    would fit, else seq when a window of one character would, else the corpus itself."""
    chars = corpus.length
    if chars and chars >= minimum_chars(1, seq, val_fraction):
        return "batch"
    if chars and chars >= minimum_chars(1, 1, val_fraction):
        return "seq"
    return "corpus"


def config_form_values(config: TrainConfig | Mapping) -> dict[str, str]:
    """A config as the text a settings form shows (the inverse of check_settings)."""
    data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    defaults = TrainConfig().to_dict()
    out = {name: _format_value(data.get(name, defaults[name])) for name in FORM_FIELDS}
    if data.get("threads") is None:
        out["threads"] = AUTO
    out["corpus"] = str(data.get("corpus", defaults["corpus"]))
    out["cell"] = str(data.get("cell", defaults["cell"]))
    out["device"] = str(data.get("device", defaults["device"]))
    kind, value = budget_of(data)
    out["budget_kind"], out["budget"] = kind, _format_value(value)
    return out


def budget_of(config: TrainConfig | Mapping) -> tuple[str, float | int]:
    """(kind, value) of a config's budget; the trainer's default (minutes) when none is set."""
    from .trainer import DEFAULT_MINUTES
    data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    for kind in ("steps", "epochs", "minutes"):
        if data.get(kind) is not None:
            return kind, data[kind]
    return "minutes", DEFAULT_MINUTES


def _format_value(value) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value)) if value >= 1 else repr(value)
        return f"{value:g}"
    return str(value)


def runs_for_display(runs_dir: Path | str | None = None) -> list[runs.RunInfo]:
    """runs.list_runs, tolerant of folders vanishing while being listed (a run deleted elsewhere)."""
    for _ in range(3):
        try:
            return runs.list_runs(runs_dir)
        except FileNotFoundError:
            continue
    return []


__all__ = ["Series", "LogLine", "RunSnapshot", "RunMonitor", "RunWatcher", "RunDetails", "run_details",
           "delete_run", "check_settings", "SettingsCheck", "check_corpus", "CorpusCheck", "describe_event",
           "config_form_values", "budget_of", "BUDGET_KINDS", "FORM_FIELDS", "runs_for_display", "flag_of",
           "name_settings", "SettingHelp", "setting_help", "threads_from_text", "AUTO"]

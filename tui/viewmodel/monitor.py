"""A run's events folded into one snapshot (`RunMonitor` -> `RunSnapshot`), live from a trainer in this
process or read from the metrics.jsonl of a run in another (controller.FolderRun), so both views of a run are
the same thing.

Every number a screen shows about a run (losses, best values, progress, throughput) is computed here."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

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
    StepEvent,
    Stopped,
    SystemEvent,
    ValidationEvent,
    event_from_json,
)

from .format import fmt_gb, fmt_loss, fmt_percent, fmt_rate_compact, format_duration, human_size, sparkline

MAX_POINTS = 4000     # points kept per loss series; older ones are merged in pairs beyond this
LOG_LINES = 200       # log lines kept in a snapshot
RANKS_LISTED = 4      # beyond this many ranks, their devices and speeds are summed up, not listed
SYSTEM_HISTORY = 60   # system readings kept per device, for its sparklines
SPARK_CELLS = 8       # readings a device line's sparkline shows


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
    kind: str = ""    # the event's kind ("validation", "stopped", ...); "" for a line no event made


@dataclass(frozen=True)
class DeviceFigures:
    """One device's latest system figures (core.sysmetrics, SystemEvent) and its recent history.
    The cpu: this process's load and resident memory; a GPU: its utilisation and memory (NVML's used, or
    torch's allocated peak where NVML is missing; memory_history follows that figure)."""
    device: str                               # "cpu", "cuda:0"
    load_percent: float | None = None         # the process's CPU (percent of one core) or the GPU's utilisation
    memory_bytes: int | None = None           # resident memory; a GPU's used memory
    memory_total_bytes: int | None = None     # a GPU's memory
    system_cpu_percent: float | None = None   # the cpu: the whole machine's load
    peak_allocated_bytes: int | None = None   # a GPU: torch's allocator peak
    power_w: float | None = None
    temp_c: float | None = None
    name: str | None = None
    load_history: tuple[float, ...] = ()
    memory_history: tuple[float, ...] = ()

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"


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
    unit: str = "characters"  # what train_chars, val_chars and tokens_per_s count
    world_size: int = 1       # processes training together (torch.distributed ranks)
    devices: tuple[str, ...] | None = None           # each rank's device, by rank, when world_size > 1
    rank_tokens_per_s: tuple[float, ...] | None = None  # each rank's own speed, by rank, when world_size > 1
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
    system: tuple[DeviceFigures, ...] = ()   # the latest system figures, the cpu first, then each GPU
    log: tuple[LogLine, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ("starting", "training", "paused")


def describe_ranks(world_size: int, devices) -> str:
    """ "2 ranks (cpu, cpu)" for a distributed run; "" for one process. Many ranks: the first two and the last."""
    if world_size <= 1:
        return ""
    devices = [str(d) for d in devices or ()]
    if len(devices) > RANKS_LISTED:
        devices = [*devices[:2], f"… {devices[-1]}"]
    listed = f" ({', '.join(devices)})" if devices else ""
    return f"{world_size} ranks{listed}"


def rate_unit(unit: str) -> str:
    """The unit of a speed, short: chars/s, points/s."""
    return f"{'chars' if unit == 'characters' else unit}/s"


def describe_rank_speeds(snap: RunSnapshot) -> str:
    """Each rank's speed: "41.2k + 40.9k chars/s"; many ranks: "40.1k-41.3k chars/s per rank"; "" for one."""
    rates = snap.rank_tokens_per_s
    if snap.world_size <= 1 or not rates:
        return ""
    if len(rates) > RANKS_LISTED:
        return f"{fmt_rate_compact(min(rates))}-{fmt_rate_compact(max(rates))} {rate_unit(snap.unit)} per rank"
    return f"{' + '.join(fmt_rate_compact(rate) for rate in rates)} {rate_unit(snap.unit)}"


def rank_phrases(snap: RunSnapshot) -> list[str]:
    """A distributed run's ranks and their speeds, as phrases a face packs to its width (a line may break
    between them): ["2 ranks (cpu, cpu)", "41.2k + 40.9k chars/s"]; [] for a run in one process."""
    if snap.world_size <= 1:
        return []
    speeds = describe_rank_speeds(snap) if snap.status == "training" else ""
    return [describe_ranks(snap.world_size, snap.devices)] + ([speeds] if speeds else [])


def describe_device_figures(figures: DeviceFigures, width: int = 80) -> str:
    """One compact line for a device, fitted to `width`: its sparklines shortened first, then its phrases
    dropped from the end: "cpu    proc 187% ▂▃▅▇ · rss 1.2 GB ▃▃▄▄ · sys 45%",
    "cuda:0 util 97% ▅▇▇ · mem 31.2/80.0 GB ▃▄▅ · 287 W · 71°C · peak 28.1 GB"."""
    head = f"{figures.device:<6} "
    for cells in (SPARK_CELLS, SPARK_CELLS // 2):
        phrases = _figure_phrases(figures, cells)
        line = head + " · ".join(phrases)
        if len(line) <= width:
            return line
    line = head
    for i, phrase in enumerate(phrases):
        more = (" · " if i else "") + phrase
        if len(line) + len(more) > width:
            break
        line += more
    return line.rstrip()[:width]


def _figure_phrases(f: DeviceFigures, cells: int) -> list[str]:
    memory_spark = sparkline(f.memory_history, f.memory_total_bytes or max(f.memory_history, default=0), cells)
    phrases = []
    if f.is_gpu:
        if f.load_percent is not None:
            phrases.append(f"util {fmt_percent(f.load_percent)} {sparkline(f.load_history, 100, cells)}")
        if f.memory_bytes is not None:
            phrases.append(f"mem {fmt_gb(f.memory_bytes, f.memory_total_bytes)} {memory_spark}")
        if f.power_w is not None:
            phrases.append(f"{f.power_w:.0f} W")
        if f.temp_c is not None:
            phrases.append(f"{f.temp_c:.0f}°C")
        if f.peak_allocated_bytes is not None and f.memory_bytes is None:  # no NVML: the allocator's figure
            phrases.append(f"peak {fmt_gb(f.peak_allocated_bytes, f.memory_total_bytes)} {memory_spark}")
        elif f.peak_allocated_bytes is not None:
            phrases.append(f"peak {fmt_gb(f.peak_allocated_bytes)}")
    else:
        if f.load_percent is not None:
            high = max([100.0, *f.load_history])  # percent of one core: several busy cores go past 100
            phrases.append(f"proc {fmt_percent(f.load_percent)} {sparkline(f.load_history, high, cells)}")
        if f.memory_bytes is not None:
            phrases.append(f"rss {human_size(f.memory_bytes)} {memory_spark}")
        if f.system_cpu_percent is not None:
            phrases.append(f"sys {fmt_percent(f.system_cpu_percent)}")
    return [phrase.rstrip() for phrase in phrases]


def system_lines(snap: RunSnapshot, width: int = 80) -> list[str]:
    """The run's system figures, a line per device (describe_device_figures); [] before the first reading."""
    return [describe_device_figures(figures, width) for figures in snap.system]


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
    """(level, one line of text) for the events worth a line in a run's log; None for the rest.
    The app's log and the CLI's output both say it this way."""
    match event:
        case RunStarted():
            vocab = f"vocab {event.vocab_size}, " if event.vocab_size else ""
            resuming = f", resuming at step {event.start_step:,}" if event.start_step else ""
            where = describe_ranks(event.world_size, event.devices) or event.device
            return "info", (f"run {event.run_name} in {event.run_dir} on {where}: {event.parameters:,} "
                            f"parameters, {vocab}{event.train_chars:,} train / {event.val_chars:,} validation "
                            f"{event.unit}{describe_val_sample(event)}{resuming}")
        case ValidationEvent():
            best = ", best so far" if event.is_best else f" (best {fmt_loss(event.best_val_loss)})"
            return "info", (f"step {event.step:,}: val loss {fmt_loss(event.val_loss)}{describe_validation(event)}"
                            f"{best}")
        case CheckpointSaved(reason="validation"):
            return None  # saved at every validation: shown as "saved at step N", not logged each time
        case CheckpointSaved():
            reason = "" if event.reason == "best" else f" ({event.reason})"
            return "info", f"step {event.step:,}: saved {Path(event.path).name}{reason}"
        case Paused():
            return "info", f"paused at step {event.step:,}"
        case Resumed():
            return "info", f"resumed at step {event.step:,}"
        case Finished():
            best = fmt_loss(event.best_val_loss) if event.best_val_loss is not None else "n/a"
            return "info", (f"finished at step {event.step:,} after {format_duration(event.elapsed_s)}; "
                            f"best val loss {best}")
        case Stopped():
            return "info", f"stopped ({event.reason}) at step {event.step:,}"  # asked for, and saved: not a warning
        case ErrorEvent():
            return "error", event.message
        case ControlReceived():
            return "info", f"step {event.step:,}: {event.command} asked through the run's folder"
        case SystemEvent(note=str()):
            return "info", event.note  # figures missing and why ("no NVML: ..."), said once
    return None


class RunMonitor:
    """Folds a run's events into a RunSnapshot: the one fold, for the app and the CLI alike. Feed it Event
    objects (a run in this process) or metrics.jsonl records (a run in another process); both give the
    same picture. Not thread-safe: one thread feeds it and takes snapshots; the snapshots travel."""

    def __init__(self, max_points: int = MAX_POINTS, log_lines: int = LOG_LINES):
        self.train = Series(max_points)
        self.val = Series(max_points)
        self._log: deque[LogLine] = deque(maxlen=log_lines)
        self._seq = 0
        self._fields: dict = {"status": "idle"}
        self._session_start: float | None = None
        self._system: dict[str, DeviceFigures] = {}
        self._system_history: dict[str, tuple[deque, deque]] = {}

    # -- feeding

    def add(self, event: Event) -> None:
        f = self._fields
        match event:
            case RunStarted():
                f.update(run_name=event.run_name, run_dir=event.run_dir, device=event.device, config=event.config,
                         parameters=event.parameters, vocab_size=event.vocab_size, train_chars=event.train_chars,
                         val_chars=event.val_chars, unit=event.unit, start_step=event.start_step,
                         step=event.start_step, total_steps=event.total_steps, status="training", error=None,
                         eta_s=None, progress=None, next_val_step=None, next_val_in_s=None,
                         world_size=max(1, int(event.world_size or 1)),
                         devices=tuple(str(d) for d in event.devices) if event.devices else None,
                         rank_tokens_per_s=None)
                self._session_start = event.time
                self._system.clear()  # a resumed run may train elsewhere
                self._system_history.clear()
            case SystemEvent():
                self._add_system(event)
            case StepEvent():
                self.train.add(event.step, event.loss)
                f.update(step=event.step, total_steps=event.total_steps, epoch=event.epoch,
                         tokens_per_s=event.tokens_per_s, lr=event.lr, elapsed_s=event.elapsed_s, eta_s=event.eta_s,
                         skipped_steps=event.skipped_steps, next_val_step=event.next_val_step,
                         next_val_in_s=event.next_val_in_s,
                         rank_tokens_per_s=tuple(float(r) for r in event.rank_tokens_per_s)
                         if event.rank_tokens_per_s else None)
                if math.isfinite(event.loss):
                    f["loss"] = event.loss
                f["progress"] = self._progress(event)
                if f.get("status") != "paused":
                    f["status"] = "training"
            case ValidationEvent():
                self.val.add(event.step, event.val_loss)
                f.update(val_loss=event.val_loss, best_val_loss=event.best_val_loss)
            case SampleEvent():
                f.update(sample=event.text, sample_step=event.step)
            case CheckpointSaved():
                f.update(last_checkpoint=event.path, last_checkpoint_step=event.step)
            case Paused():
                f.update(status="paused", step=event.step)
            case Resumed():
                f.update(status="training", step=event.step)
            case Finished():
                f.update(status="finished", step=event.step, eta_s=0.0, progress=1.0)
                if event.best_val_loss is not None:
                    f["best_val_loss"] = event.best_val_loss
            case Stopped():
                f.update(status="stopped", step=event.step, eta_s=None)
            case ErrorEvent():
                f.update(status="error", error=event.message, eta_s=None)
        line = describe_event(event)
        if line is not None:
            self.log(*line, time=event.time, kind=event.kind)

    def _add_system(self, event: SystemEvent) -> None:
        if event.process_cpu_percent is not None or event.rss_bytes is not None:
            self._add_figures(DeviceFigures("cpu", event.process_cpu_percent, event.rss_bytes,
                                            system_cpu_percent=event.system_cpu_percent))
        for gpu in event.gpus or ():
            if not isinstance(gpu, Mapping) or not gpu.get("device"):
                continue
            self._add_figures(DeviceFigures(
                str(gpu["device"]), gpu.get("util_percent"), gpu.get("mem_used_bytes"), gpu.get("mem_total_bytes"),
                peak_allocated_bytes=gpu.get("peak_allocated_bytes"), power_w=gpu.get("power_w"),
                temp_c=gpu.get("temp_c"), name=gpu.get("name")))

    def _add_figures(self, figures: DeviceFigures) -> None:
        loads, memory = self._system_history.setdefault(
            figures.device, (deque(maxlen=SYSTEM_HISTORY), deque(maxlen=SYSTEM_HISTORY)))
        if figures.load_percent is not None:
            loads.append(float(figures.load_percent))
        in_use = figures.memory_bytes if figures.memory_bytes is not None else figures.peak_allocated_bytes
        if in_use is not None:  # without NVML, the allocator's peak is the memory trend there is
            memory.append(float(in_use))
        self._system[figures.device] = replace(figures, load_history=tuple(loads), memory_history=tuple(memory))

    def add_record(self, record: Mapping) -> bool:
        """Fold one metrics.jsonl record; records this version does not know are skipped."""
        try:
            event = event_from_json(dict(record))
        except (KeyError, TypeError, ValueError):
            return False
        self.add(event)
        return True

    def log(self, level: str, text: str, time: float | None = None, kind: str = "") -> None:
        import time as _time
        self._seq += 1
        self._log.append(LogLine(self._seq, _time.time() if time is None else time, level, text, kind))

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
            system=tuple(sorted(self._system.values(), key=lambda f: (f.is_gpu, f.device))),
            log=tuple(self._log))

"""Plain events the engine emits; the CLI and the app only render these."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields


@dataclass
class Event:
    time: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        return _KIND_OF[type(self)]

    def to_json(self) -> dict:
        data = asdict(self)
        for f in fields(self):  # optional fields at their default None are left out: shorter lines
            if f.default is None and data[f.name] is None:
                del data[f.name]
        return {"event": self.kind, **data}


@dataclass
class RunStarted(Event):
    run_name: str
    run_dir: str
    device: str
    config: dict
    parameters: int
    vocab_size: int
    train_chars: int
    val_chars: int
    start_step: int
    total_steps: int | None   # None when the budget is time-based
    unit: str = "characters"  # what train_chars/val_chars and tokens count: characters, points
    threads: int = 0          # the torch threads the run trains on (0: not recorded)
    val_sample: int | None = None  # held-out units each validation reads when fewer than val_chars
                                   # (a fixed sample; the whole split is read when the run finishes)
    world_size: int = 1       # processes training together (torch.distributed ranks); 1: one process
    devices: list[str] | None = None  # each rank's device, by rank, when world_size > 1


@dataclass
class StepEvent(Event):
    step: int
    total_steps: int | None
    epoch: float
    loss: float               # mean training loss since the previous step event
    tokens_per_s: float
    lr: float
    elapsed_s: float
    eta_s: float | None
    skipped_steps: int = 0    # steps skipped for a non-finite loss, over the run
    # When the next validation comes, by whichever rule is expected first (--val-every steps or
    # --val-seconds): the step it is due at, or the seconds until it is due; None when not known.
    next_val_step: int | None = None
    next_val_in_s: float | None = None
    rank_tokens_per_s: list[float] | None = None  # each rank's own speed, by rank, when world_size > 1


@dataclass
class ValidationEvent(Event):
    step: int
    val_loss: float
    best_val_loss: float
    is_best: bool
    chars: int | None = None  # held-out units this validation read
    sampled: bool = False     # True when that was a fixed sample of the split, not all of it


@dataclass
class SampleEvent(Event):
    step: int
    text: str


@dataclass
class CheckpointSaved(Event):
    step: int
    path: str
    reason: str               # "validation", "best", "requested", "stop", "finish"


@dataclass
class Paused(Event):
    step: int


@dataclass
class Resumed(Event):
    step: int


@dataclass
class Finished(Event):
    step: int
    best_val_loss: float | None
    elapsed_s: float


@dataclass
class Stopped(Event):
    step: int
    reason: str
    elapsed_s: float


@dataclass
class ControlReceived(Event):
    """A command from the run's control channel (core.control), applied at this step boundary."""
    step: int
    run_id: str
    seq: int
    command: str              # pause, resume, save, stop


@dataclass
class SystemEvent(Event):
    """The machine while the run trains, read every --system-every seconds off the training step
    (core.sysmetrics) and recorded at the next step boundary. A figure that could not be read is None."""
    step: int
    process_cpu_percent: float | None = None  # this process, percent of one core (above 100 on several)
    rss_bytes: int | None = None              # this process's resident memory
    system_cpu_percent: float | None = None   # the whole machine, percent of all its cores
    # Per CUDA device the run uses: a dict with device ("cuda:0"), name, util_percent, mem_used_bytes,
    # mem_total_bytes, power_w, temp_c (NVML) and peak_allocated_bytes (torch's allocator). None on a CPU.
    gpus: list[dict] | None = None
    note: str | None = None                   # once, on the first reading: figures missing and why ("no NVML: ...")


@dataclass
class ErrorEvent(Event):
    step: int
    message: str


_KIND_OF = {RunStarted: "started", StepEvent: "step", ValidationEvent: "validation", SampleEvent: "sample",
            CheckpointSaved: "checkpoint", Paused: "paused", Resumed: "resumed", Finished: "finished",
            Stopped: "stopped", ErrorEvent: "error", ControlReceived: "control", SystemEvent: "system"}
EVENT_TYPES = {kind: cls for cls, kind in _KIND_OF.items()}


def event_from_json(data: dict) -> Event:
    """Rebuild an event from a metrics.jsonl line (for watching runs)."""
    data = dict(data)
    return EVENT_TYPES[data.pop("event")](**data)

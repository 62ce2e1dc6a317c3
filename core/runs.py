"""Run folders: names, metrics.jsonl, status, and listing what is under checkpoints/."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import atomic_write_bytes, read_metadata
from .errors import CheckpointError
from .events import Event

RUNS_ENV = "RNN_PLAYGROUND_RUNS"
LAST, BEST = "last.safetensors", "best.safetensors"
METRICS, STATUS = "metrics.jsonl", "run.json"
LIVE_SECONDS = 120  # a run whose metrics were written this recently counts as live

_ADJECTIVES = ("amber", "brisk", "calm", "dapper", "eager", "fuzzy", "gentle", "hardy", "ivory", "jolly",
               "keen", "lucid", "mellow", "nimble", "olive", "plucky", "quiet", "rustic", "sunny", "tidy",
               "umber", "vivid", "witty", "young", "zesty")
_NOUNS = ("otter", "heron", "lynx", "finch", "badger", "marten", "newt", "puffin", "quokka", "raven",
          "stoat", "tapir", "vole", "wren", "yak", "zebu", "gecko", "ibis", "kiwi", "lemur")


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV) or "checkpoints")


def new_run_name(runs_dir: Path, rng: random.Random | None = None) -> str:
    """A readable name not yet used under runs_dir, e.g. 'brisk-otter'."""
    rng = rng or random.Random()
    for attempt in range(1000):
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        if attempt >= 50:
            name += f"-{rng.randrange(1000, 10000)}"
        if not (runs_dir / name).exists():
            return name
    raise RuntimeError("could not find an unused run name")  # 500 x 9000 names taken: unreachable in practice


class MetricsLog:
    """Appends one JSON object per event; each line is flushed so watchers see it at once."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def write(self, event: Event) -> None:
        self._handle.write(json.dumps(event.to_json()) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def write_status(run_dir: Path, **fields) -> None:
    path = run_dir / STATUS
    status = read_status(run_dir)
    status.update(fields, updated=time.time())
    atomic_write_bytes(path, json.dumps(status, indent=1, sort_keys=True).encode())


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / STATUS).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_metrics(run_dir: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete lines of metrics.jsonl from byte `offset`; returns them and the new offset."""
    path = run_dir / METRICS
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n") + 1  # a line still being written is left for next time
    records = []
    for line in chunk[:end].splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, offset + end


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunInfo:
    name: str
    path: Path
    model: str
    step: int
    best_val_loss: float | None
    device: str
    size_bytes: int
    updated: float
    live: bool
    kind: str


def is_live(run_dir: Path, status: dict | None = None) -> bool:
    status = status if status is not None else read_status(run_dir)
    if status.get("state") != "running":
        return False
    if status.get("host") == socket.gethostname() and status.get("pid"):
        return _pid_alive(int(status["pid"]))
    metrics = run_dir / METRICS
    return metrics.exists() and time.time() - metrics.stat().st_mtime < LIVE_SECONDS


def run_info(run_dir: Path) -> RunInfo | None:
    """What a run folder holds, or None if it is not a run."""
    status = read_status(run_dir)
    ckpt = run_dir / LAST
    meta: dict = {}
    if ckpt.exists():
        try:
            meta = read_metadata(ckpt)
        except CheckpointError:
            meta = {}
    if not meta and not status:
        return None
    config = meta.get("config") or status.get("config") or {}
    progress = meta.get("progress") or {}
    files = [p for p in run_dir.iterdir() if p.is_file()]
    model = config.get("model", {})
    return RunInfo(
        name=run_dir.name, path=run_dir,
        model=f"{model.get('cell', '?').upper()} {model.get('layers', '?')}x{model.get('hidden', '?')}",
        step=int(status.get("step", progress.get("step", 0))),
        best_val_loss=status.get("best_val_loss", meta.get("best_val_loss")),
        device=status.get("device") or meta.get("device") or "?",
        size_bytes=sum(p.stat().st_size for p in files),
        updated=max((p.stat().st_mtime for p in files), default=0.0),
        live=is_live(run_dir, status),
        kind=meta.get("kind") or status.get("kind") or "char",
    )


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Runs under runs_dir, most recently updated first."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    infos = [info for d in runs_dir.iterdir() if d.is_dir() and (info := run_info(d)) is not None]
    return sorted(infos, key=lambda r: r.updated, reverse=True)


def resolve_checkpoint(target: Path | str, prefer: str = LAST) -> Path:
    """A run folder means its last checkpoint; a file is itself."""
    path = Path(target)
    if path.is_dir():
        for name in (prefer, LAST, BEST):
            if (path / name).exists():
                return path / name
        raise CheckpointError(f"Run folder {path} has no checkpoint yet ({LAST} or {BEST}).")
    if not path.exists():
        raise CheckpointError(f"No checkpoint or run folder at {path}.")
    return path

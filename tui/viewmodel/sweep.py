"""Sweeps: a grid of settings trained as normal headless runs, queued onto devices.

Every train flag may take several comma-separated values; the grid is their product. Each grid point is a
run of its own (`rnn-playground train` in a process of its own session, started from `train_command`, as
the app starts a headless run), in the usual runs folder under the name NAME-001, NAME-002, ... The sweep's
own folder, RUNS/sweeps/NAME/, holds sweep.json (the grid, the settings given one value, and each run's
settings, device, state and, for a failed run, its one-line message), rewritten atomically at every change,
and the lock of the process running the sweep. Each device trains at most `per_device` runs at once and
takes the next queued run when one ends.

Stopping (Ctrl+C) sends SIGINT to every running run: its own handler stops it at a step boundary and saves
a checkpoint, as Ctrl+C on a `train` does. Running the same sweep again resumes it: finished runs are kept,
stopped and queued ones train (from their last checkpoint where they have one), failed ones only when asked
(`retry_failed`). This module is plain Python: the CLI's `sweep` command and the app's Train screen drive it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import atomic_writer
from rnn_playground.core.config import TrainConfig, flag_of
from rnn_playground.core.device import device_for_flag
from rnn_playground.core.errors import ConfigError, PlaygroundError

from .launch import CLI_MODULE, process_failure, resume_command, setting_flags, start_detached, train_command
from .settings import field_type, value_parser

SWEEPS = "sweeps"            # RUNS/sweeps/NAME/ is a sweep's own folder
SWEEP_FILE = "sweep.json"
SWEEP_LOCK = ".sweep.lock"   # flock held by the process running the sweep
SWEEP_LOG = "sweep.log"      # the output of a sweep the app started
SWEEP_OWN = ("run_name", "runs_dir", "device")  # --name names the sweep, --devices lists its devices
BUDGETS = ("steps", "epochs", "minutes")
QUEUED, RUNNING, FINISHED, STOPPED, FAILED = "queued", "running", "finished", "stopped", "failed"
POLL_S = 0.2


def sweepable_fields() -> list[dataclasses.Field]:
    """The train settings a sweep takes, each as its train flag: all but the run's name, folder and device."""
    return [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata and f.name not in SWEEP_OWN]


def parse_values(name: str, text) -> list:
    """The values a flag lists ("1e-3,3e-3"), each of the setting's type; a refusal names flag and value."""
    flag = flag_of(name)
    setting = TrainConfig.__dataclass_fields__[name]
    kind, parse = field_type(setting), value_parser(setting)
    if kind is bool or not isinstance(text, str):
        return [text]
    if not text.strip():
        raise ConfigError(f"{flag} is empty. Give it a value, or several separated by commas (such as {flag} a,b).")
    values: list = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ConfigError(f"{flag} {text} has an empty value between commas. List each value once, separated "
                              "by single commas.")
        try:
            value = parse(part)
        except ValueError:
            wanted = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{flag} value {part!r} (in {flag} {text}) is not {wanted}.") from None
        if value in values:
            raise ConfigError(f"{flag} {text} lists {part} twice. List each value once.")
        values.append(value)
    return values


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep trains: the settings given several values (its axes, in the settings' order) and those
    given one. Two sweeps with the same spec are the same sweep."""
    axes: tuple[tuple[str, tuple], ...]
    fixed: tuple[tuple[str, object], ...]

    @classmethod
    def from_given(cls, given: dict) -> SweepSpec:
        """From the flags given (setting name -> the flag's text), refusing a value that does not parse."""
        axes, fixed = [], []
        for f in sweepable_fields():
            if given.get(f.name) is None:
                continue
            values = parse_values(f.name, given[f.name])
            if len(values) > 1:
                axes.append((f.name, tuple(values)))
            else:
                fixed.append((f.name, values[0]))
        return cls(tuple(axes), tuple(fixed))

    @classmethod
    def from_json(cls, data: dict) -> SweepSpec:
        return cls(tuple((k, tuple(v)) for k, v in data["grid"].items()), tuple(data["fixed"].items()))

    def to_json(self) -> dict:
        return {"grid": {k: list(v) for k, v in self.axes}, "fixed": dict(self.fixed)}

    def points(self) -> list[dict]:
        """Each run's own settings (one value per axis), the last axis varying fastest."""
        names = [name for name, _ in self.axes]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in self.axes))]

    def describe(self) -> str:
        """"4 runs: hidden x lr" (the grid's size and axes)."""
        count = len(self.points())
        axes = " x ".join(name for name, _ in self.axes)
        return f"{count} run{'s' if count != 1 else ''}" + (f": {axes}" if axes else "")

    def default_name(self) -> str:
        """sweep- and a hash of the spec: the same command names the same sweep, so running it again resumes it."""
        digest = hashlib.sha1(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()
        return f"sweep-{digest[:6]}"

    def config(self, point: dict, **settings) -> TrainConfig:
        return TrainConfig(**{**dict(self.fixed), **point, **settings})

    def check(self, device: str) -> None:
        """Every grid point through train's own validation (on `device`), before anything starts."""
        for index, point in enumerate(self.points(), 1):
            try:
                self.config(point, device=device).validate()
            except PlaygroundError as exc:
                if not self.axes:
                    raise
                raise ConfigError(f"Grid point {index} ({describe_point(point)}): {exc}") from None


def describe_point(point: dict) -> str:
    return ", ".join(f"{flag_of(name)} {value}" for name, value in point.items())


def parse_devices(text: str | None) -> list[str]:
    """--devices: each device of this machine, listed once (auto is the one torch would pick)."""
    text = "auto" if text is None else text
    if not text.strip():
        raise ConfigError("--devices is empty. List the devices to queue runs onto, such as --devices cpu or "
                          "--devices cuda:0,cuda:1.")
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ConfigError(f"--devices {text} has an empty name between commas. List each device once, separated by "
                          "single commas.")
    devices: dict[str, str] = {}
    for name in names:
        device = str(device_for_flag(name, "--devices"))
        if device in devices:
            same = "" if devices[device] == name else f" (as {devices[device]} and {name})"
            raise ConfigError(f"--devices {text} lists {device} twice{same}. List each device once; --per-device "
                              "sets how many runs a device trains at once.")
        devices[device] = name
    return list(devices)


def check_per_device(value: int) -> int:
    if value < 1:
        raise ConfigError(f"--per-device must be at least 1 (runs a device trains at once), got {value}.")
    return value


# --------------------------------------------------------------------------- the sweep file


@dataclass
class SweepRun:
    name: str
    settings: dict                # its values of the sweep's axes
    state: str = QUEUED
    message: str = ""             # why it failed, in one line
    device: str | None = None
    step: int | None = None
    best_val_loss: float | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Sweep:
    name: str
    spec: SweepSpec
    runs_dir: Path
    runs: list[SweepRun] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def folder(self) -> Path:
        return sweep_folder(self.runs_dir, self.name)

    def run_dir(self, run: SweepRun) -> Path:
        return self.runs_dir / run.name

    def save(self) -> None:
        data = {"name": self.name, **self.spec.to_json(), "created": self.created, "updated": time.time(),
                "runs": [dict(run.to_json(), folder=str(self.run_dir(run).resolve())) for run in self.runs]}
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_writer(self.folder / SWEEP_FILE) as handle:
                handle.write(json.dumps(data, indent=1).encode())
        except OSError as exc:
            raise PlaygroundError(f"Cannot write {self.folder / SWEEP_FILE}: {exc.strerror or exc}.") from None

    def best(self) -> SweepRun | None:
        scored = [run for run in self.runs if run.best_val_loss is not None]
        return min(scored, key=lambda run: run.best_val_loss) if scored else None

    def counts(self) -> dict[str, int]:
        return {state: sum(run.state == state for run in self.runs) for state in
                (QUEUED, RUNNING, FINISHED, STOPPED, FAILED)}


def sweep_folder(runs_dir: Path | str, name: str) -> Path:
    return Path(runs_dir) / SWEEPS / name


def read_sweep(folder: Path) -> Sweep:
    """The sweep in `folder`; a PlaygroundError naming the file when it is not a usable sweep file."""
    path = folder / SWEEP_FILE
    try:
        data = json.loads(path.read_bytes())
        sweep = Sweep(name=str(data["name"]), spec=SweepSpec.from_json(data), runs_dir=folder.parent.parent,
                      runs=[SweepRun(**{k: v for k, v in run.items() if k != "folder"}) for run in data["runs"]],
                      created=float(data.get("created", 0.0)))
    except FileNotFoundError:
        raise PlaygroundError(f"The sweep folder {folder} holds no {SWEEP_FILE}: it is not a sweep's folder. "
                              "Pick another --name.") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PlaygroundError(f"{path} is not a usable sweep file ({exc}). Pick another --name, or remove "
                              f"{folder}.") from None
    return sweep


def differences(old: SweepSpec, new: SweepSpec) -> list[str]:
    """What differs between two specs, a phrase per flag."""
    def settings(spec: SweepSpec) -> dict:
        return {**{k: ",".join(map(str, v)) for k, v in spec.axes}, **{k: str(v) for k, v in spec.fixed}}

    before, after = settings(old), settings(new)
    out = []
    for name in [f.name for f in sweepable_fields()]:
        if before.get(name) != after.get(name):
            there = f"{flag_of(name)} {before[name]}" if name in before else f"no {flag_of(name)}"
            here = f"{flag_of(name)} {after[name]}" if name in after else f"no {flag_of(name)}"
            out.append(f"it has {there}, this command {here}")
    return out


def open_sweep(runs_dir: Path | str, name: str | None, spec: SweepSpec) -> Sweep:
    """The sweep `name` (default: the spec's own name) in runs_dir: read back when it exists, which must be
    the same grid and settings, else a new one with every run queued. Refuses, before anything starts, a
    sweep folder of another sweep and run folders that are not the sweep's."""
    runs_dir = Path(runs_dir)
    name = runs.check_run_name(name if name is not None else spec.default_name())
    folder = sweep_folder(runs_dir, name)
    # A folder holding only the lock is a sweep that stopped before its file was first written: a new one.
    if folder.exists() and {p.name for p in folder.iterdir()} - {SWEEP_LOCK, SWEEP_LOG}:
        sweep = read_sweep(folder)
        changed = differences(sweep.spec, spec)
        if changed:
            raise ConfigError(f"Sweep {name} ({folder / SWEEP_FILE}) was made with other settings: "
                              f"{'; '.join(changed)}. Run its own command again to resume it, or pick another "
                              "--name.")
        return sweep
    sweep = Sweep(name, spec, runs_dir,
                  [SweepRun(f"{name}-{index:03d}", point) for index, point in enumerate(spec.points(), 1)])
    taken = [run.name for run in sweep.runs if sweep.run_dir(run).exists()]
    if taken:
        raise ConfigError(f"Run folder {runs_dir / taken[0]} already exists and is not a run of sweep {name} (which "
                          "has no sweep file yet). Pick another --name.")
    return sweep


class SweepLock:
    """The one process running a sweep: an flock on its folder's .sweep.lock, released when it ends."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(folder / SWEEP_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise PlaygroundError(f"Sweep {name} is already running ({holder}). Wait for it to end, or stop it "
                                  "(Ctrl+C where it runs) and run its command again.") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --------------------------------------------------------------------------- running


class SweepRunner:
    """Trains a sweep's unfinished runs, at most `per_device` at once on each device, each in a process of
    its own session (so a terminal's Ctrl+C reaches them only through `stop`). `on_change(run)` is called,
    in the caller's thread, each time a run starts or ends."""

    def __init__(self, sweep: Sweep, devices: list[str], per_device: int = 1, *, retry_failed: bool = False,
                 on_change: Callable[[SweepRun], None] = lambda run: None, poll_s: float = POLL_S) -> None:
        self.sweep = sweep
        self.devices = devices
        self.per_device = per_device
        self.retry_failed = retry_failed
        self.on_change = on_change
        self.poll_s = poll_s
        self.stopping = False
        self.processes: dict[str, tuple[SweepRun, str, subprocess.Popen]] = {}  # by run name: run, device, process

    def to_train(self) -> list[SweepRun]:
        """The runs this pass trains: all but the finished, and the failed unless retrying them."""
        return [run for run in self.sweep.runs
                if run.state != FINISHED and (run.state != FAILED or self.retry_failed)]

    def stop(self) -> None:
        """Stop every running run at its next step, with a checkpoint; start no more. Safe in a signal handler."""
        self.stopping = True
        for _, _, process in list(self.processes.values()):
            try:
                process.send_signal(signal.SIGINT)
            except (ProcessLookupError, OSError):
                pass

    def run(self) -> None:
        queue = self.to_train()
        live = [run.name for run in queue if runs.is_live(self.sweep.run_dir(run))]
        if live:
            raise PlaygroundError(f"Run {live[0]} of sweep {self.sweep.name} is still training in another process. "
                                  f"Wait for it to end, or stop it (rnn-playground ctl {live[0]} stop), then run the "
                                  "sweep again.")
        for run in queue:
            if run.state != QUEUED:
                run.state, run.message = QUEUED, ""
        self.sweep.save()
        try:
            while self.processes or (queue and not self.stopping):
                for device in self.devices:
                    while (not self.stopping and queue
                           and sum(d == device for _, d, _ in self.processes.values()) < self.per_device):
                        self._start(queue.pop(0), device)
                for name, (run, _, process) in list(self.processes.items()):
                    code = process.poll()
                    if code is not None:
                        del self.processes[name]
                        self._ended(run, code)
                if self.processes:
                    time.sleep(self.poll_s)
        finally:
            for run, _, process in self.processes.values():  # left early (a second Ctrl+C): still record them
                run.state = STOPPED if process.poll() is not None else RUNNING
            self.sweep.save()

    def command(self, run: SweepRun, device: str) -> list[str]:
        """A run's command line: a resume of its last checkpoint, or a new run of its settings."""
        run_dir = self.sweep.run_dir(run)
        settings = {**dict(self.sweep.spec.fixed), **run.settings}
        if (run_dir / runs.LAST).exists():  # its budget again: a total of steps or epochs, minutes from now
            budget = {name: settings.get(name) for name in BUDGETS}
            return resume_command(run_dir.resolve(), device, threads=settings.get("threads"), **budget)
        config = self.sweep.spec.config(run.settings, run_name=run.name, runs_dir=str(self.sweep.runs_dir.resolve()))
        return train_command(config, device)

    def _start(self, run: SweepRun, device: str) -> None:
        run_dir = self.sweep.run_dir(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        command = self.command(run, device)
        process = start_detached(command, run_dir / runs.LAUNCH_LOG)
        self.processes[run.name] = (run, device, process)
        if self.stopping:  # stopped between the start and the line above: this one was not told
            process.send_signal(signal.SIGINT)
        run.state, run.device, run.message = RUNNING, device, ""
        self.sweep.save()
        self.on_change(run)

    def _ended(self, run: SweepRun, code: int) -> None:
        run_dir = self.sweep.run_dir(run)
        status = runs.read_status(run_dir)
        state = status.get("state")
        if isinstance(status.get("step"), int):
            run.step = status["step"]
        if isinstance(status.get("best_val_loss"), (int, float)):
            run.best_val_loss = float(status["best_val_loss"])
        # run.json may still hold an earlier start's state: only a clean exit vouches for it.
        if state == "finished" and code == 0:
            run.state = FINISHED
        elif (state == "stopped" and code == 0) or (self.stopping and state != "error"):
            run.state = STOPPED
        else:
            run.state, run.message = FAILED, process_failure(run_dir, code)
        self.sweep.save()
        self.on_change(run)


def sweep_groups(runs_dir: Path | str) -> dict[str, tuple[str, bool]]:
    """Run name -> (its sweep's name, whether it is the sweep's best), from every sweep file in runs_dir
    (a sweep file that cannot be read groups nothing)."""
    groups: dict[str, tuple[str, bool]] = {}
    root = Path(runs_dir) / SWEEPS
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return groups
    for folder in folders:
        try:
            sweep = read_sweep(folder)
        except PlaygroundError:
            continue
        best = sweep.best()
        for run in sweep.runs:
            groups[run.name] = (sweep.name, best is not None and run.name == best.name)
    return groups


def group_by_sweep(infos: list, groups: dict[str, tuple[str, bool]]) -> list:
    """Runs (most recent first) with each sweep's runs together, in their grid order, where the sweep's most
    recent run would stand; runs of no sweep keep their places."""
    members: dict[str, list] = {}
    for info in infos:
        if info.name in groups:
            members.setdefault(groups[info.name][0], []).append(info)
    out = []
    for info in infos:
        sweep = groups.get(info.name, (None,))[0]
        if sweep is None:
            out.append(info)
        elif sweep in members:
            out += sorted(members.pop(sweep), key=lambda run: run.name)
    return out


# --------------------------------------------------------------------------- a sweep from a settings form


def split_grid(texts: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A settings form's texts where some fields list several values ("256,512"): (those fields' texts,
    every field's text with its first value only, for the form's own checks)."""
    grid = {name: text for name, text in texts.items() if "," in text}
    return grid, {name: text.split(",")[0] if name in grid else text for name, text in texts.items()}


def form_sweep(grid: Mapping[str, str], config: TrainConfig, devices: str) -> tuple[SweepSpec | None, dict[str, str]]:
    """The sweep a form describes: the fields listing several values (`grid`) as its axes, the rest of
    `config` that differs from the defaults as its fixed settings, every point checked on `devices`'s
    first device. Returns (spec, {}) or (None, errors by field)."""
    errors: dict[str, str] = {}
    axes = {}
    for name, text in grid.items():
        try:
            axes[name] = parse_values(name, text)
        except ConfigError as exc:
            errors[name] = str(exc)
    if errors:
        return None, errors
    defaults = TrainConfig()
    fixed = tuple((f.name, getattr(config, f.name)) for f in sweepable_fields()
                  if f.name not in axes and getattr(config, f.name) != getattr(defaults, f.name)
                  and getattr(config, f.name) is not None)
    spec = SweepSpec(tuple((f.name, tuple(axes[f.name])) for f in sweepable_fields() if f.name in axes), fixed)
    try:
        spec.check(parse_devices(devices)[0])
    except PlaygroundError as exc:
        return None, {"form": str(exc)}
    return spec, {}


def sweep_devices(choice: str) -> tuple[str, int]:
    """A device picker's choice as (--devices, --per-device): "cpu,cpu" (two CPU processes) is the CPU
    training two runs at once."""
    names = [name.strip() for name in choice.split(",")]
    unique = list(dict.fromkeys(names))
    return ",".join(unique), max(names.count(name) for name in unique)


def sweep_command(spec: SweepSpec, devices: str, per_device: int, runs_dir: Path | str, name: str) -> list[str]:
    """The `rnn-playground sweep` command line of `spec`."""
    config = spec.config({})
    flags = setting_flags(config, skip=SWEEP_OWN, lists={k: v for k, v in spec.axes})
    return [sys.executable, "-m", CLI_MODULE, "sweep", *flags, "--devices", devices, "--per-device",
            str(per_device), "--runs-dir", str(runs_dir), "--name", name]


def start_sweep(command: list[str], runs_dir: Path | str, name: str) -> subprocess.Popen:
    """Start a sweep as a headless process of its own session (it goes on when the app quits, as a run the
    app launched does), its output in the sweep folder's sweep.log."""
    folder = sweep_folder(runs_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    return start_detached(command, folder / SWEEP_LOG)

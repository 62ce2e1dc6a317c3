"""A headless run the face starts in its own processes, then watches and steers like any other.

A run in several processes (`--devices cuda:0,cuda:1`) cannot train in the app's process: the app starts
`rnn-playground train` with the form's settings, whose torchrun launcher starts the ranks, and follows the
run through its folder (`LaunchedRun`, a FolderRun). The run does not depend on the app: quitting the app
stops watching it, not the run (it goes on headless, as one started over SSH; the Runs screen finds it).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from rnn_playground.core import runs
from rnn_playground.core.config import TrainConfig, flag_of
from rnn_playground.core.events import ErrorEvent, Event

from .controller import WATCH_POLL_S, FolderRun, LogNote

CLI_MODULE = "rnn_playground.tui"
ERROR_LINE = re.compile(r"\s*error(?: \(rank \d+\))?: (.*)")  # the CLI's "error: ..." and "error (rank 1): ..."


def train_command(config: TrainConfig, devices: str) -> list[str]:
    """The command line of a headless run of `config` on `devices` (the --devices list): every setting
    that differs from the default, as its flag."""
    command = [sys.executable, "-m", CLI_MODULE, "train", *setting_flags(config, skip=("device", "run_name"))]
    return command + ["--devices", devices, "--name", str(config.run_name)]


def setting_flags(config: TrainConfig, skip: tuple[str, ...] = (), lists: dict | None = None) -> list[str]:
    """Every setting of `config` that differs from the default, as its flag and value, but those in `skip`;
    a setting in `lists` as its values separated by commas instead (a sweep's axes)."""
    flags: list[str] = []
    defaults = TrainConfig()
    lists = lists or {}
    for field in dataclasses.fields(TrainConfig):
        if field.name in lists:
            flags += [flag_of(field.name), ",".join(map(str, lists[field.name]))]
            continue
        value = getattr(config, field.name)
        if field.name in skip or value == getattr(defaults, field.name) or value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag_of(field.name) if value else "--no-" + flag_of(field.name)[2:])
        else:
            flags += [flag_of(field.name), str(value)]
    return flags


def resume_command(run_dir: Path | str, devices: str, *, threads: int | None = None, steps: int | None = None,
                   epochs: float | None = None, minutes: float | None = None) -> list[str]:
    """The command line that resumes a run on `devices` with a new budget (and thread count)."""
    command = [sys.executable, "-m", CLI_MODULE, "train", "--resume", str(run_dir), "--devices", devices]
    for name, value in (("threads", threads), ("steps", steps), ("epochs", epochs), ("minutes", minutes)):
        if value is not None:
            command += [flag_of(name), str(value)]
    return command


def start_detached(command: list[str], log_path: Path) -> subprocess.Popen:
    """`command` as a headless process of its own session (the terminal's hang-up or Ctrl+C reaches it only
    through what we send it), plain output (no colour, no terminal) written to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"})


class LaunchedRun(FolderRun):
    """`command` started as a process of its own session (so the terminal's hang-up or Ctrl+C reaches the
    run only through its controls), its output kept in the run folder's launch.log, and the run then
    watched through `run_dir` until it ends. A process that exits without ending the run's log (a refused
    setting, a missing corpus) ends it with an ErrorEvent holding the process's own message."""

    def __init__(self, command: list[str], run_dir: Path | str, poll_s: float = WATCH_POLL_S) -> None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(run_dir, poll_s)
        self.command = command
        self.opening = f"started {' '.join(command[2:])}; output in {self.run_dir / runs.LAUNCH_LOG}"
        self.process: subprocess.Popen | None = None

    def events(self) -> Iterator[Event | LogNote]:
        self.process = start_detached(self.command, self.run_dir / runs.LAUNCH_LOG)
        ended = False
        for event in super().events():
            ended = ended or isinstance(event, ErrorEvent)
            yield event
        if self.let_go:
            return  # the face stopped watching; the run goes on
        code = self.process.wait()
        if code not in (0, None) and not ended and not self._log_ended():
            yield ErrorEvent(0, process_failure(self.run_dir, code))

    def _running(self) -> bool:
        return self.process is not None and self.process.poll() is None or super()._running()

    def _log_ended(self) -> bool:
        records, _ = runs.read_metrics(self.run_dir)
        return bool(records) and records[-1].get("event") in ("finished", "stopped", "error")


def process_failure(run_dir: Path, code: int) -> str:
    """Why a headless run's process failed, in one line: its own error lines in the run folder's launch.log
    (the CLI prints them as "error: ..."), else its exit status."""
    try:
        lines = (run_dir / runs.LAUNCH_LOG).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [match.group(1) for match in map(ERROR_LINE.match, lines) if match]
    if errors:
        return " ".join(errors[-2:])
    return f"The run's processes exited with status {code} before training; see {run_dir / runs.LAUNCH_LOG}."

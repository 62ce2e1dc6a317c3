"""The control channel of a run: pause, resume, save and stop sent through the run's folder.

A sender writes `control.json` (run_id, seq, command, sent_at) atomically; the Trainer of the run looks at
it at step boundaries (one os.stat; the file is read only when it changed) and applies a command whose
run_id is its own and whose seq is greater than the last it applied, acknowledging it with a
ControlReceived event in metrics.jsonl. Each training process start draws a fresh run_id (recorded in
run.json), so a control file left by an earlier process, or an earlier run in the same folder, never acts
on a new one. Nothing listens on a network port: the folder's permissions decide who may control a run.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from . import runs
from .checkpoint import atomic_writer
from .errors import PlaygroundError
from .runs import CONTROL

COMMANDS = ("pause", "resume", "save", "stop")
ACK_TIMEOUT_S = 5.0


def new_run_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class ControlCommand:
    run_id: str
    seq: int
    command: str
    sent_at: float


def read_command(run_dir: Path) -> ControlCommand | None:
    """The command in the run's control file; None when there is none or it is not one."""
    try:
        data = json.loads((Path(run_dir) / CONTROL).read_bytes())
        command = ControlCommand(str(data["run_id"]), data["seq"], data["command"], float(data["sent_at"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(command.seq, int) or isinstance(command.seq, bool) or command.command not in COMMANDS:
        return None
    return command


class ControlChannel:
    """The trainer's end: `poll()` at each step boundary returns the new command, if any."""

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.path = Path(run_dir) / CONTROL
        self.run_id = run_id
        self.applied_seq = 0
        self._seen: tuple[int, int, int] | None = None

    def poll(self) -> ControlCommand | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)  # a new file (atomic write) has a new inode
        if seen == self._seen:
            return None
        self._seen = seen
        command = read_command(self.path.parent)
        if command is None or command.run_id != self.run_id or command.seq <= self.applied_seq:
            return None  # another process's (a stale file), or one already applied
        self.applied_seq = command.seq
        return command


# --------------------------------------------------------------------------- the sender's end


def _owner(path: Path) -> str:
    try:
        uid = path.stat().st_uid
    except OSError:
        return "its owner"
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def resolve_run(target: Path | str) -> Path:
    """A run folder given as a path, or as a name under the default runs folder."""
    path = Path(target)
    if not path.exists() and not path.is_absolute() and len(path.parts) == 1:
        named = runs.default_runs_dir() / path
        if named.exists():
            return named
    return path


def next_seq(previous: ControlCommand | None, run_id: str) -> int:
    """The sequence number of the next command: the clock in nanoseconds, so a command sent after control.json
    was deleted still outranks those the run applied; one more than the last, should the clock step back."""
    seq = time.time_ns()
    if previous is not None and previous.run_id == run_id:
        seq = max(seq, previous.seq + 1)
    return seq


def send_command(run_dir: Path | str, command: str) -> ControlCommand:
    """Write `command` for the live run in run_dir. PlaygroundError says, in words, why it cannot be sent:
    not a run, not training, not listening, or a folder this user cannot write."""
    if command not in COMMANDS:
        raise PlaygroundError(f"Unknown command {command!r}: use one of {', '.join(COMMANDS)}.")
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or runs.run_info(run_dir) is None:
        raise PlaygroundError(f"{run_dir} is not a run folder (it holds no {runs.STATUS} or checkpoint). Give the "
                              "folder of a run, as `rnn-playground runs` lists them.")
    status = runs.read_status(run_dir)
    if not runs.is_live(run_dir):
        state = status.get("state")
        ended = f"it has {state}" if state in ("stopped", "finished") else "its process has ended"
        raise PlaygroundError(f"Run {run_dir} is not training ({ended}), so there is nothing to {command}. "
                              f"Continue it with `rnn-playground train --resume {run_dir}`.")
    run_id = status.get("run_id")
    if not isinstance(run_id, str):
        raise PlaygroundError(f"Run {run_dir} is training, but was started by a version without a control "
                              "channel. Control it where it runs (Ctrl+C stops it and saves).")
    previous = read_command(run_dir)
    sent = ControlCommand(run_id, next_seq(previous, run_id), command, time.time())
    try:
        with atomic_writer(run_dir / CONTROL) as handle:
            handle.write(json.dumps(sent.__dict__).encode())
    except PermissionError as exc:
        raise PlaygroundError(f"Cannot {command} run {run_dir}: this user cannot write to its folder "
                              f"({exc.strerror}). The folder's permissions decide who may control a run; it "
                              f"belongs to {_owner(run_dir)}. Run the command as that user, or ask them to.") from None
    except OSError as exc:
        raise PlaygroundError(f"Cannot {command} run {run_dir}: writing {CONTROL} failed "
                              f"({exc.strerror or exc}).") from None
    return sent


def metrics_end(run_dir: Path | str) -> int:
    """Where metrics.jsonl ends now: read acknowledgements from here."""
    try:
        return (Path(run_dir) / runs.METRICS).stat().st_size
    except OSError:
        return 0


def find_ack(run_dir: Path | str, sent: ControlCommand, offset: int) -> tuple[dict | None, int]:
    """The run's acknowledgement of `sent` among metrics.jsonl records from `offset`, and the new offset."""
    records, offset = runs.read_metrics(Path(run_dir), offset)
    for record in records:
        if record.get("event") == "control" and record.get("seq") == sent.seq and record.get("run_id") == sent.run_id:
            return record, offset
    return None, offset


def wait_for_ack(run_dir: Path | str, sent: ControlCommand, offset: int, timeout: float = ACK_TIMEOUT_S,
                 poll_s: float = 0.05) -> dict:
    """Block until the run acknowledges `sent` (its metrics.jsonl record); PlaygroundError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        ack, offset = find_ack(run_dir, sent, offset)
        if ack is not None:
            return ack
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    live = runs.is_live(Path(run_dir))
    why = ("it is training but did not answer: it may be in a long step or validation, or be stuck. The command "
           "stays in its folder and applies at its next step boundary unless another replaces it; check it with "
           "`rnn-playground runs` and try again" if live else "it ended meanwhile")
    raise PlaygroundError(f"Run {run_dir} did not acknowledge {sent.command} within {timeout:g} s: {why}.")

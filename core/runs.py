"""Run folders: names, metrics.jsonl, status, and listing what is under checkpoints/."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from .checkpoint import atomic_writer, read_metadata, temp_file_beside
from .errors import CheckpointError, ConfigError, PlaygroundError, RunBusyError, RunFolderError
from .events import Event
from .model import describe_model

RUNS_ENV = "RNN_PLAYGROUND_RUNS"
LAST, BEST = "last.safetensors", "best.safetensors"
METRICS, STATUS = "metrics.jsonl", "run.json"
CONTROL = "control.json"  # commands for the run's trainer (core.control)
LAUNCH_LOG = "launch.log"  # the output of a headless run the app started in its own processes
LOCK = ".writer.lock"  # held (flock) by the one process writing the run; it also names that process
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# What atomic_writer leaves behind when its process dies mid-save: ".last.safetensors.k3j_x.tmp".
_RUN_TEMPORARY = re.compile(r"\.(?:last\.safetensors|best\.safetensors|run\.json|control\.json)\.[^/]*\.tmp")

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


def new_run_dir(runs_dir: Path | str | None, name: str | None) -> Path:
    """The folder of a new run: runs_dir/name, a generated name when None. Refuses an unsafe name."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    return root / check_run_name(name if name is not None else new_run_name(root))


def check_unused(run_dir: Path) -> None:
    """Refuse to start a new run in a finished run's folder."""
    if any(run_dir.glob("*.safetensors")):
        raise ConfigError(f"Run folder {run_dir} already holds checkpoints. Pick another --name, "
                          f"or continue it with --resume {run_dir}.")


def claim_new_run(runs_dir: Path | str | None, name: str | None) -> RunLock:
    """The lock of a new run's folder (new_run_dir), taken before anything loads. Refuses an unsafe name, a
    folder another process is writing, and a finished run's folder."""
    lock = RunLock.acquire(new_run_dir(runs_dir, name))
    try:
        check_unused(lock.run_dir)
    except ConfigError:
        lock.release()
        raise
    return lock


def check_run_name(name: str) -> str:
    """A run name is one folder name of safe characters, so a run never writes outside its runs folder."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise RunFolderError(f"Run name {name!r} cannot be used: a run name is a single folder name of letters, "
                             "digits, '-', '_' and '.', starting with a letter or digit, at most 100 characters "
                             "(such as 'brisk-otter'). Pick another --name.")
    return name


def describe_write_error(run_dir: Path, exc: OSError) -> str:
    """One sentence for an OSError met while creating or writing a run folder: the path, the cause, what to do."""
    path = Path(exc.filename) if exc.filename else Path(run_dir)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return (f"Cannot create the run folder {run_dir}: {blocker} is a file, not a folder. "
                    "Pick another --runs-dir (or --name).")
    cause = exc.strerror or str(exc)
    if path == Path(run_dir) and not path.exists():
        return (f"Cannot create the run folder {path}: {cause}. Pick a --runs-dir you can write to, or make "
                f"{path.parent} writable.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        if path.is_dir():
            return (f"Cannot write to the run folder {path}: {cause}. Make it writable, or copy the run to a "
                    "folder you can write to and use that copy.")
        return f"Cannot write to {path}: {cause}. Make it writable, or pick a --runs-dir you can write to."
    if exc.errno == errno.ENOSPC:
        return f"Cannot write to {path}: {cause}. Free some space or pick another --runs-dir."
    return f"Cannot write to {path}: {cause}."


@dataclass(frozen=True)
class Writer:
    """The process holding a run's lock, as it recorded itself (fields are None if it had not yet)."""
    pid: int | None = None
    host: str | None = None
    since: float | None = None

    def describe(self) -> str:
        who = f"process {self.pid} on {self.host}" if self.pid is not None else "another process"
        if self.since is not None:
            who += f" (since {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.since))})"
        return who


def _read_writer(fd: int) -> Writer:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid, host, since = data.get("pid"), data.get("host"), data.get("since")
        return Writer(int(pid) if isinstance(pid, int) else None, str(host) if host else None,
                      float(since) if isinstance(since, (int, float)) else None)
    except (OSError, ValueError, AttributeError):
        return Writer()


def busy_message(run_dir: Path, writer: Writer) -> str:
    return (f"Run {run_dir} is being trained by {writer.describe()}, and a run has one writer. Wait for that "
            f"run to end, or stop it (Ctrl+C where it runs, or stop it in the app) and then continue it with "
            f"--resume {run_dir}; or train under another --name.")


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the half-written temporaries a writer killed mid-save left. Only call with the run's lock
    held (or shared: no writer can start meanwhile), so no live writer's temporary is touched."""
    removed = []
    try:
        entries = list(os.scandir(run_dir))
    except OSError:
        return removed
    for entry in entries:
        if _RUN_TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # a read-only folder: they stay, and stay counted
    return removed


class RunLock:
    """The one writer of a run folder: an exclusive flock on its .writer.lock, held for the run's life.

    The OS drops a flock when its process ends, however it ends (kill -9 included), so a crash never
    leaves a run locked and no pid is ever trusted: a stale "running" status with a reused pid does not
    count. flock is per open file, so a second Trainer in the same process is refused too. Whoever writes
    a run takes it (a char run, a series run, and later a distributed run's rank 0 alone)."""

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir = run_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path | str, attempts: int = 10) -> RunLock:
        """Create the folder if needed, take its lock, prove a file can be created in it, and remove
        temporaries of dead writers. RunBusyError names the live writer; RunFolderError any OSError."""
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.filename and Path(exc.filename).name == LOCK:
                exc.filename = str(run_dir)  # the folder is what cannot be written, not a file to know about
            raise RunFolderError(describe_write_error(run_dir, exc)) from None
        try:
            for attempt in range(attempts):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # A lister's probe (writer_of) holds it shared for microseconds; a writer, for the run.
                    if attempt == attempts - 1:
                        raise RunBusyError(busy_message(run_dir, _read_writer(fd))) from None
                    time.sleep(0.02)
            probe_fd, probe = temp_file_beside(run_dir / STATUS)  # the folder takes new files (checkpoints)
            os.close(probe_fd)
            os.unlink(probe)
            me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, me, 0)
        except OSError as exc:
            os.close(fd)
            exc.filename = str(run_dir)
            raise RunFolderError(describe_write_error(run_dir, exc)) from None
        except BaseException:
            os.close(fd)
            raise
        remove_stale_temporaries(run_dir)
        return cls(run_dir, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def writer_of(run_dir: Path | str, *, clean: bool = False) -> Writer | None:
    """The process writing the run now, or None; the lock decides, never a pid. With clean=True and no
    writer, the temporaries a killed writer left are removed (under the shared lock, so none can start)."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # never locked: no writer of this version ever ran here
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_writer(fd)
        except OSError:
            return None
        if clean:
            remove_stale_temporaries(Path(run_dir))
        return None
    finally:
        os.close(fd)


class MetricsLog:
    """Appends one JSON object per event; each line is flushed so watchers see it at once."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._handle = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise RunFolderError(describe_write_error(path.parent, exc)) from None

    def write(self, event: Event) -> None:
        try:
            self._handle.write(json.dumps(event.to_json()) + "\n")
            self._handle.flush()
        except OSError as exc:
            exc.filename = exc.filename or str(self.path)
            raise RunFolderError(describe_write_error(self.path.parent, exc)) from None

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass  # its lines were flushed as written; a failing flush was reported by write()


def write_status(run_dir: Path, **fields) -> None:
    path = run_dir / STATUS
    status = read_status(run_dir)
    status.update(fields, updated=time.time())
    data = json.dumps(status, indent=1, sort_keys=True).encode()
    try:
        with atomic_writer(path) as handle:
            handle.write(data)
    except OSError as exc:
        exc.filename = str(path)  # not the temporary's name
        raise RunFolderError(describe_write_error(run_dir, exc)) from None


def read_status(run_dir: Path) -> dict:
    """run.json as a dict; {} when it is absent or unusable (status_problem says why)."""
    try:
        status = json.loads((run_dir / STATUS).read_bytes())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


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
    problem: str | None = None  # why the folder could not be read fully, e.g. a damaged run.json


def is_live(run_dir: Path, status: dict | None = None) -> bool:
    """Whether a process is writing the run: its lock is held (`status` is not consulted)."""
    return writer_of(run_dir) is not None


def status_problem(run_dir: Path) -> str | None:
    """Why the run's run.json cannot be used (None if it is absent or fine), in words for a listing."""
    path = run_dir / STATUS
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{STATUS} cannot be read ({exc.strerror or exc})"
    try:
        status = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{STATUS} is not valid JSON ({getattr(exc, 'msg', None) or exc.reason})"
    if not isinstance(status, dict):
        return f"{STATUS} holds a JSON {_json_kind(status)}, not an object"
    numbers = {"step": False, "best_val_loss": True, "updated": True}  # field: may be null
    for key, nullable in numbers.items():
        if key in status and not (_is_number(status[key]) or (nullable and status[key] is None)):
            return f"{STATUS} has a {key} that is not a number ({json.dumps(status[key])[:40]})"
    for key in ("state", "device", "kind", "host"):
        if key in status and status[key] is not None and not isinstance(status[key], str):
            return f"{STATUS} has a {key} that is not text ({json.dumps(status[key])[:40]})"
    if "config" in status and not isinstance(status["config"], dict):
        return f"{STATUS} has a config that is not an object"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _json_kind(value) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def _file_sizes(run_dir: Path) -> list[tuple[int, float]]:
    """(size, mtime) of each file in run_dir but the lock. A file replaced or removed between the listing and
    its stat (a writer's temporary, renamed into place) is skipped: the folder is still there."""
    sizes = []
    for path in run_dir.iterdir():
        if path.name == LOCK:  # the lock is bookkeeping
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if S_ISREG(stat.st_mode):
            sizes.append((stat.st_size, stat.st_mtime))
    return sizes


def run_info(run_dir: Path) -> RunInfo | None:
    """What a run folder holds, or None if it is not a run. A run whose run.json is unusable is listed
    with `problem` saying why (and what the checkpoint tells), so one bad folder never hides the others."""
    problem = status_problem(run_dir)
    status = {} if problem else read_status(run_dir)
    meta: dict = {}
    try:
        meta = read_metadata(run_dir / LAST)
    except CheckpointError:
        meta = {}  # none yet, or unreadable: run.json tells the rest
    if not meta and not status and problem is None:
        if not os.access(run_dir, os.R_OK | os.X_OK):  # an unreadable folder may well hold a run: say so
            problem = "the folder cannot be read (Permission denied)"
        else:
            return None
    # The lock decides liveness; with no writer, a killed writer's temporaries go before sizes are summed.
    live = writer_of(run_dir, clean=True) is not None
    try:
        sizes = _file_sizes(run_dir)
    except FileNotFoundError:
        raise  # the folder itself went while being listed: the caller lists again
    except OSError as exc:
        problem = problem or f"the folder cannot be read ({exc.strerror or exc})"
        sizes = []
    try:
        config = meta.get("config") or status.get("config") or {}
        progress = meta.get("progress") or {}
        model = config.get("model", {})
        model_text = describe_model(model)
        step = int(status.get("step", progress.get("step", 0)))
        best = status.get("best_val_loss", meta.get("best_val_loss"))
        best = float(best) if best is not None else None
        device = str(status.get("device") or meta.get("device") or "?")
        kind = str(meta.get("kind") or status.get("kind") or "char")
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:  # a checkpoint with odd metadata
        problem = problem or f"its checkpoint metadata is unusable ({exc})"
        model_text, step, best, device, kind = "?", 0, None, "?", "char"
    return RunInfo(
        name=run_dir.name, path=run_dir, model=model_text, step=step, best_val_loss=best, device=device,
        size_bytes=sum(size for size, _ in sizes),
        updated=max((mtime for _, mtime in sizes), default=0.0),
        live=live, kind=kind, problem=problem,
    )


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Runs under runs_dir, most recently updated first."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    try:
        folders = [d for d in runs_dir.iterdir() if d.is_dir()]
    except OSError as exc:
        raise RunFolderError(f"Cannot list the runs folder {runs_dir}: {exc.strerror or exc}. Make it readable, "
                             "or pick another folder.") from None
    infos = [info for d in folders if (info := run_info(d)) is not None]
    return sorted(infos, key=lambda r: r.updated, reverse=True)


def resolve_checkpoint(target: Path | str, prefer: str = LAST) -> Path:
    """A run folder means its last checkpoint; a file is itself."""
    path = Path(target)
    try:
        if path.is_dir():
            for name in (prefer, LAST, BEST):
                if (path / name).exists():
                    return path / name
            raise CheckpointError(f"Run folder {path} has no checkpoint yet ({LAST} or {BEST}).")
        if not path.exists():
            raise CheckpointError(f"No checkpoint or run folder at {path}.")
    except OSError as exc:  # Path.exists and is_dir raise on a folder that cannot be searched
        raise CheckpointError(f"Cannot read {exc.filename or path}: {exc.strerror or exc}. Make it readable, or "
                              "use a copy you can read.") from None
    return path


# --------------------------------------------------------------------------- details and deleting


@dataclass(frozen=True)
class RunDetails:
    """What the Runs screen's details panel shows about one run folder."""
    info: RunInfo
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
    info = run_info(run_dir) if run_dir.is_dir() else None
    if info is None:
        return None
    status = read_status(run_dir)
    meta: dict = {}
    for name in (LAST, BEST):
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
    return (name.endswith(".safetensors") or name in (METRICS, STATUS, LOCK, CONTROL, LAUNCH_LOG)
            or (name.startswith(".") and name.endswith(".tmp")))  # atomic-write leftovers


def delete_run(run_dir: Path | str, runs_dir: Path | str | None = None) -> list[Path]:
    """Delete a run folder, refusing anything that might not be one: a folder outside `runs_dir`
    (default: the usual runs folder), a folder that is not a run, a run that is training, or a
    folder holding files a run does not write (nothing is deleted then). Returns what was removed."""
    run_dir = Path(run_dir)
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if run_dir.is_symlink() or not run_dir.is_dir():
        raise PlaygroundError(f"{run_dir} is not a run folder.")
    if run_dir.resolve().parent != root.resolve():
        raise PlaygroundError(f"Refusing to delete {run_dir}: it is not directly inside the runs folder {root}.")
    if run_info(run_dir) is None:
        raise PlaygroundError(f"Refusing to delete {run_dir}: it holds no run (no run.json or checkpoint).")
    if is_live(run_dir):
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


def runs_for_display(runs_dir: Path | str | None = None) -> list[RunInfo]:
    """list_runs, tolerant of folders vanishing while being listed (a run deleted elsewhere)."""
    for _ in range(3):
        try:
            return list_runs(runs_dir)
        except FileNotFoundError:
            continue
    return []

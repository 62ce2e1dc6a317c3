"""The training loop: step by step, controllable from another thread, emitting plain events.

One loop serves every kind of model: a `Task` supplies the model, the batches,
the loss and the evaluation; the Trainer owns the device, optimizer, mixed
precision, schedule, budget, control, events, metrics and checkpoints. Its
settings are core.config's; the character task is core.chartask's, the series
task core.series's.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from . import runs
from .chartask import CharTask
from .checkpoint import Checkpoint, checkpoint_from_bytes, read_checkpoint_file, save_checkpoint
from .config import DEFAULT_MINUTES, LoopConfig, TrainConfig
from .control import ControlChannel, new_run_id
from .corpus import Vocab, absolute_spec, load_corpus
from .device import choose_threads, describe_device, resolve_device, step_work, supports_bf16, torch_threads
from .distributed import Solo
from .download import REMOTE_CORPORA
from .errors import CheckpointError, ConfigError, CorpusError, PlaygroundError
from .events import (
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
)
from .loading import checkpoint_model
from .model import detach_state, state_like, state_tensors
from .sampling import Sampler
from .sysmetrics import SystemSampler, environment

MAX_BAD_STEPS = 5  # this many non-finite losses in a row stop the run
# Validation by time is spaced so it takes at most about this share of the run's time.
VALIDATION_TIME_SHARE = 0.1


def learning_rate(config: LoopConfig, step: int) -> float:
    """Linear warm-up, then exponential decay by half-life, floored. Depends on the step alone,
    so a resumed run follows exactly the schedule of an uninterrupted one."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if not config.lr_half_life:
        return config.lr
    # A floor above the peak (a small --lr with the default --min-lr) holds the rate at the peak.
    floor = min(config.min_lr, config.lr)
    return max(floor, config.lr * 0.5 ** ((step - config.warmup) / config.lr_half_life))


class TrainControl:
    """Pause, resume, stop and save-now, from any thread; the trainer checks it every step."""

    def __init__(self):
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._save = threading.Event()
        self.stop_reason = "user"

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self, reason: str = "user") -> None:
        self.stop_reason = reason
        self._stop.set()
        self._running.set()  # wake a paused trainer so it can stop

    def request_save(self) -> None:
        self._save.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def take_save_request(self) -> bool:
        requested = self._save.is_set()
        self._save.clear()
        return requested

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused (up to `timeout` seconds); True once running again."""
        return self._running.wait(timeout)


# --------------------------------------------------------------------------- tasks

class Task(Protocol):
    """What the Trainer needs from a kind of model (core.chartask.CharTask, core.series.SeriesTask).

    model: an nn.Module with a `.config` that has `to_dict()`; windows: optimisation steps per
    epoch; train_chars / val_chars: sizes shown in RunStarted, counted in `unit` (optional,
    default "characters"); tokens_per_step: optional, defaults to batch * seq.
    """
    kind: str
    model: nn.Module
    windows: int
    train_chars: int
    val_chars: int

    def init_state(self): ...                              # state at the start of an epoch
    def loss(self, window: int, state, step: int): ...     # -> (scalar loss tensor, new state)
    def evaluate(self, autocast, whole: bool = False) -> float | None: ...  # validation loss, dropout off;
                                                           # whole: all held-out data, not a sample
    def preview(self, step: int) -> str | None: ...        # text shown at each validation
    def meta(self) -> dict: ...                            # JSON metadata for checkpoints


# --------------------------------------------------------------------------- trainer

@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    window: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    best_val_loss: float | None = None


def _releasing_the_lock_on_error(init):
    """A Trainer that fails to build lets go of its run folder at once (not whenever it is collected)."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except BaseException:
            if getattr(self, "_lock", None) is not None:
                self._lock.release()
            raise
    return wrapper


class Trainer:
    """Runs a task step by step. Iterate `run()` for events; drive it with a TrainControl.

    A Trainer is its run folder's one writer: it holds the folder's runs.RunLock from construction
    to the end of run() (a lock taken earlier, while loading data, may be handed in as `lock`).

    In a run of several processes (`group`, core.distributed), every rank builds a Trainer; rank 0
    alone holds the lock and writes the folder (metrics.jsonl, run.json, checkpoints), the others
    train their share of the streams and take part in each step's agreement."""

    @_releasing_the_lock_on_error
    def __init__(self, config: TrainConfig, control: TrainControl | None = None, *,
                 task=None, resume_from: Checkpoint | None = None, corpus_progress=None,
                 lock: runs.RunLock | None = None, reserve_cores: int = 0, group: Solo | None = None):
        config.validate()
        self.config = config
        self.control = control or TrainControl()
        self.group = group = group or Solo()
        self.device = resolve_device(config.device)
        self.progress = Progress()
        self._resume = resume_from
        self._last_saved: tuple[str, int] | None = None  # (file name, step) of the latest checkpoint of the run
        # Claimed before anything loads: a busy, unwritable or misnamed folder is said at once.
        if lock is None and group.is_main:
            lock = (runs.RunLock.acquire(resume_from.path.parent) if resume_from is not None
                    else runs.claim_new_run(config.runs_dir, config.run_name))
        self._lock = lock
        self.run_dir = Path(group.from_main(lambda: str(lock.run_dir).encode()).decode())
        self.warnings: list[str] = []  # for the user before the run starts (e.g. a skipped corpus subfolder)
        if task is None:
            # Stored absolute, so that --resume from another working folder finds the same file.
            config = replace(config, corpus=absolute_spec(config.corpus))
            corpus = group.main_first(lambda: load_corpus(config.corpus, glob=config.glob, progress=corpus_progress))
            self.warnings.extend(corpus.warnings)
            vocab = Vocab(resume_from.meta["vocab"]) if resume_from else Vocab(corpus.characters)
            if resume_from is None:
                torch.manual_seed(config.seed)
            task = CharTask(config, corpus, vocab, self.device, group)
        elif resume_from is None:
            torch.manual_seed(config.seed)
        if group.distributed and task.kind != "char":
            raise ConfigError("Only character models train in several processes; train this one in one.")
        self.task = task
        self.model: nn.Module = task.model
        # The torch threads this run trains on: the config's, or the automatic choice (core.device).
        # `reserve_cores` stay with the rest of the process (the app's UI) when the choice is automatic;
        # the ranks on one machine share its free cores.
        self.reserve_cores = reserve_cores
        self.threads = choose_threads(config.threads, step_work(config.batch // group.world_size, config.hidden),
                                      self.device.type, reserve_cores, share=group.local_world_size)
        self.amp_dtype = autocast_dtype(config, self.device)
        if self.amp_dtype == torch.float16 and self.device.type == "cpu" and getattr(config, "cell", None) == "lstm":
            raise ConfigError("--amp-dtype fp16 cannot train an LSTM on the CPU: torch's CPU LSTM has no fp16 "
                              "kernel. Use --amp-dtype bf16 or auto, or --no-amp (fp16 is for GPUs without bf16).")
        self.use_amp = self.amp_dtype is not None
        # fp16's narrow range needs the loss scaled up (and the step skipped when gradients overflow).
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        self.optimizer, self._fused = _make_optimizer(self.model, config.lr)
        # The weights as tensors (no autograd), and their running average when config.ema is on.
        self._weights = [w.detach() for w in self.model.parameters()]
        self.averaged: list[torch.Tensor] | None = [w.clone() for w in self._weights] if config.ema else None
        self.state = task.init_state()
        if group.distributed and self.device.type == "cuda" and resume_from is None:
            # Each rank's own CUDA random stream (the fused GPU dropout draws from it); the CPU's dropout
            # masks are keyed by stream and step instead (core.model), the same in any world size.
            torch.cuda.manual_seed(config.seed + group.rank)
        if resume_from is not None:
            self._restore(resume_from)
            self._last_saved = (resume_from.path.name, self.progress.step)
        if group.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # DDP averages the gradients across ranks during backward (its buckets overlap the
            # all-reduce with the rest of the backward pass).
            try:
                task.train_model = DistributedDataParallel(
                    self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            except RuntimeError as exc:  # its first collective: the ranks check the weights' shapes
                raise group.lost(exc, "setting up DDP") from None
        self.devices = group.gather_text(str(self.device)) if group.distributed else [str(self.device)]
        self.config = replace(config, run_name=self.run_dir.name, runs_dir=str(self.run_dir.parent))
        self._step_lock = threading.Lock()
        self._sampler: SystemSampler | None = None  # rank 0's system figures while run() runs (--system-every)

    def snapshot_sampler(self):
        """A Sampler over a copy of the current weights (their average, when kept), taken between
        steps; safe to call from another thread while training runs (training waits only for the copy)."""
        with self._step_lock, self._averaged_weights():
            return Sampler(self.model, self.task.vocab)

    @contextmanager
    def _averaged_weights(self):
        """Within: the model holds the averaged weights (when kept); its own come back after.
        Callers hold the step lock, so no step and no other reader sees the swap."""
        if self.averaged is None:
            yield
            return
        own = [w.clone() for w in self._weights]
        torch._foreach_copy_(self._weights, self.averaged)
        try:
            yield
        finally:
            torch._foreach_copy_(self._weights, own)

    def _average_decay(self) -> float:
        # A short horizon at first (the start is far from where training goes), then config.ema.
        step = self.progress.step
        return min(self.config.ema, (1 + step) / (10 + step))

    # -- construction helpers

    @classmethod
    def resume(cls, target: Path | str, control: TrainControl | None = None, *, reserve_cores: int = 0,
               group: Solo | None = None, **overrides) -> Trainer:
        """Continue a run from its last checkpoint (or a given file). Overrides may change the budget,
        the device, the threads, or the corpus (whose characters must all be in the checkpoint's vocabulary).
        In a run of several ranks, rank 0 reads the file and hands it to the others (no shared disk needed)."""
        group = group or Solo()
        lock = None

        def read() -> bytes:
            nonlocal lock
            path = runs.resolve_checkpoint(target)
            lock = runs.RunLock.acquire(path.parent)  # a live or unwritable run is refused before anything loads
            try:
                return str(path).encode() + b"\0" + read_checkpoint_file(path)
            except BaseException:
                lock.release()
                raise

        name, _, data = group.from_main(read).partition(b"\0")
        try:
            checkpoint = checkpoint_from_bytes(Path(name.decode()), data)
            if checkpoint.meta.get("kind", "char") != "char":
                raise CheckpointError(f"{checkpoint.path} is a {checkpoint.meta.get('kind')} checkpoint, "
                                      "not a character model.")
            checkpoint_model(checkpoint)
            try:
                config = TrainConfig.from_dict(checkpoint.meta["config"])
                config.validate()
            except (KeyError, TypeError, AttributeError, PlaygroundError) as exc:
                raise CheckpointError(f"{checkpoint.path}: its stored settings are unusable ({exc}).") from None
            corpus = Path(config.corpus).expanduser()
            if overrides.get("corpus") is None and not config.corpus.startswith("builtin:") \
                    and not corpus.is_absolute() and not corpus.exists() and config.corpus not in REMOTE_CORPORA:
                raise CorpusError(f"The run's corpus {config.corpus} was stored relative to the folder its training "
                                  f"started in, and is not found from here. Resume from that folder, or pass --corpus "
                                  f"PATH (the same text is recognized by its fingerprint).")
            budget_given = any(overrides.get(k) is not None for k in ("steps", "epochs", "minutes"))
            if budget_given:
                config = replace(config, steps=None, epochs=None, minutes=None)
            # threads=None given is a choice too: the automatic thread count.
            config = replace(config, **{k: v for k, v in overrides.items() if v is not None or k == "threads"})
            return cls(config, control, resume_from=checkpoint, lock=lock, reserve_cores=reserve_cores, group=group)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def _restore(self, checkpoint: Checkpoint) -> None:
        _check_progress(checkpoint)
        # With averaging, "model.*" holds the average (what sampling uses) and "raw.*" the weights.
        saved, raw = checkpoint.group("model"), checkpoint.group("raw")
        checkpoint.load_into(self.model, "raw" if raw else "model")
        if self.averaged is not None:
            names = [name for name, _ in self.model.named_parameters()]
            # A run saved without an average starts one from its weights.
            self.averaged = [(saved[name] if raw else w).to(self.device).clone() for name, w in
                             zip(names, self._weights, strict=True)]
        _load_optimizer(self.optimizer, checkpoint)
        scaler_state = checkpoint.meta.get("grad_scaler")
        if self.scaler is not None and isinstance(scaler_state, dict):
            try:
                self.scaler.load_state_dict(scaler_state)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(f"{checkpoint.path}: its gradient scaler state is unusable ({exc}).") from None
        self._restore_random_streams(checkpoint)
        # The checkpoint holds every stream's state (all ranks'); this rank takes its block of rows.
        rows = getattr(self.task, "streams", slice(None))
        saved_state = [checkpoint.tensors[f"state.{i}"][:, rows] for i in range(len(state_tensors(self.state)))
                       if f"state.{i}" in checkpoint.tensors]
        progress = checkpoint.meta.get("progress", {})
        self.progress = Progress(**{k: v for k, v in progress.items() if k in Progress.__dataclass_fields__})
        self.progress.best_val_loss = checkpoint.meta.get("best_val_loss")
        # The fingerprint, not the path, says whether this is the text the run was on: on another text
        # the saved position and hidden state mean nothing, so it starts that text's next epoch.
        stored, current = _text_fingerprint(checkpoint.meta), _text_fingerprint(self.task.meta())
        other_text = stored is not None and current is not None and stored != current
        if other_text or self.progress.window >= self.task.windows:
            self.progress.epoch, self.progress.window = self.progress.epoch + 1, 0
        elif saved_state and all(s.shape == t.shape
                                 for s, t in zip(saved_state, state_tensors(self.state), strict=False)):
            self.state = state_like(self.state, [s.to(self.device) for s in saved_state])

    def _restore_random_streams(self, checkpoint: Checkpoint) -> None:
        """Each rank's random generators as saved, when the run resumes with the world size it was saved
        with; otherwise rank 0's, and the other ranks' drawn afresh from the seed (said in a warning).
        Dropout on the CPU does not depend on them: its masks are keyed by stream and step."""
        rank, world = self.group.rank, self.group.world_size
        saved_world = checkpoint.meta.get("world_size", 1)
        suffix = f".rank{rank}" if rank else ""
        same_world = saved_world == world and f"rng.torch{suffix}" in checkpoint.tensors
        if same_world:
            torch.set_rng_state(checkpoint.tensors[f"rng.torch{suffix}"])
            if self.device.type == "cuda" and f"rng.cuda{suffix}" in checkpoint.tensors:
                torch.cuda.set_rng_state(checkpoint.tensors[f"rng.cuda{suffix}"], self.device)
            return
        torch.set_rng_state(checkpoint.tensors["rng.torch"])
        if rank:
            torch.manual_seed(self.config.seed + rank)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(self.config.seed + rank + 1_000_003 * self.progress.step)
        if self.group.is_main and world != saved_world:
            self.warnings.append(f"This run was saved by {saved_world} process{'es' if saved_world > 1 else ''} and "
                                 f"resumes in {world}: each rank's random streams were derived again from the seed. "
                                 "The streams, their hidden states and the CPU's dropout masks continue exactly.")

    # -- budget

    def _total_steps(self) -> int | None:
        c = self.config
        candidates = []
        if c.steps is not None:
            candidates.append(c.steps)
        if c.epochs is not None:
            candidates.append(math.ceil(c.epochs * self.task.windows))
        return min(candidates) if candidates else None

    def _minutes(self) -> float | None:
        c = self.config
        if c.minutes is not None:
            return c.minutes
        return None if (c.steps is not None or c.epochs is not None) else DEFAULT_MINUTES

    # -- checkpoints

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.use_amp)

    def save(self, name: str = runs.LAST) -> Path:
        """Write a checkpoint of the run (rank 0 writes; every rank takes part: it holds streams' states
        and random generators the checkpoint keeps)."""
        group = self.group
        full_state = [group.gather_rows(t, 1) for t in state_tensors(self.state)]
        rng_torch = group.gather_tensors(torch.get_rng_state())
        rng_cuda = group.gather_tensors(torch.cuda.get_rng_state(self.device)) if self.device.type == "cuda" else []
        if not group.is_main:
            return self.run_dir / name
        weights = self.model.state_dict()
        tensors = {f"model.{k}": v for k, v in weights.items()}
        if self.averaged is not None:
            tensors.update({f"raw.{k}": v for k, v in weights.items()})
            averaged = zip(self.model.named_parameters(), self.averaged, strict=True)
            tensors.update({f"model.{k}": v for (k, _), v in averaged})
        opt_state = self.optimizer.state_dict()
        for index, state in opt_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        for rank, (cpu_state, cuda_state) in enumerate(itertools.zip_longest(rng_torch, rng_cuda)):
            suffix = f".rank{rank}" if rank else ""
            tensors[f"rng.torch{suffix}"] = cpu_state
            if cuda_state is not None:
                tensors[f"rng.cuda{suffix}"] = cuda_state
        for i, t in enumerate(full_state):
            tensors[f"state.{i}"] = t
        meta: dict[str, Any] = {
            **self.task.meta(),
            "config": {**self.config.to_dict(), "model": self._model_dict()},
            "model": self._model_dict(),
            "progress": {k: v for k, v in asdict(self.progress).items() if k != "best_val_loss"},
            "best_val_loss": self.progress.best_val_loss,
            "optimizer": {"param_groups": opt_state["param_groups"]},
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "device": str(self.device),
            "world_size": group.world_size,
            "devices": self.devices,
            "saved_at": time.time(),
        }
        path = save_checkpoint(self.run_dir / name, tensors, meta)
        self._last_saved = (path.name, self.progress.step)
        return path

    def _model_dict(self) -> dict:
        return self.model.config.to_dict()

    # -- the loop

    def run(self) -> Iterator[Event]:
        try:
            yield from self._run_logged() if self.group.is_main else self._run_unrecorded()
        finally:
            if self._lock is not None:
                self._lock.release()  # the run folder is free for the next writer

    def _run_unrecorded(self) -> Iterator[Event]:
        """A rank other than 0 trains its share of the streams and writes nothing: rank 0 records the run."""
        with torch_threads(self.threads):
            try:
                yield from self._loop()
            except torch.OutOfMemoryError:
                yield ErrorEvent(self.progress.step, f"Out of memory on {self.device} (rank {self.group.rank}) at "
                                 f"step {self.progress.step}. Lower --batch, --seq or --hidden and start again.")
            except PlaygroundError as exc:
                yield ErrorEvent(self.progress.step, str(exc))

    def _run_logged(self) -> Iterator[Event]:
        log = None
        # Fresh for each start of training: a control file written for an earlier start never acts on this one.
        self.run_id = new_run_id()
        self._channel = ControlChannel(self.run_dir, self.run_id)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            log = runs.MetricsLog(self.run_dir / runs.METRICS)
            runs.write_status(self.run_dir, state="running", run_id=self.run_id, pid=os.getpid(),
                              host=socket.gethostname(),
                              device=str(self.device), config={**self.config.to_dict(), "model": self._model_dict()},
                              threads=self.threads, world_size=self.group.world_size, devices=self.devices,
                              kind=self.task.kind, step=self.progress.step, best_val_loss=self.progress.best_val_loss,
                              environment=environment(self.devices))
        except (OSError, PlaygroundError) as exc:
            if log is not None:
                log.close()
            message = runs.describe_write_error(self.run_dir, exc) if isinstance(exc, OSError) else str(exc)
            yield ErrorEvent(self.progress.step, message)
            return

        def emit(event: Event) -> Event:
            log.write(event)
            return event

        def emit_error(message: str) -> Event:
            event = ErrorEvent(self.progress.step, message)
            try:
                log.write(event)
            except PlaygroundError:
                pass  # the metrics file is what failed: the error still reaches the caller
            return event

        final_state = "finished"
        closed = False
        threads = ExitStack()  # the run's thread count while it runs (and in the thread running it)
        threads.enter_context(torch_threads(self.threads))
        try:
            if self.config.system_every > 0:
                self._sampler = SystemSampler(self.config.system_every, self.device).start()
            for event in self._loop():
                if isinstance(event, Stopped):
                    final_state = "stopped"
                elif isinstance(event, ErrorEvent):
                    final_state = "error"
                yield emit(event)
        except torch.OutOfMemoryError:
            final_state = "error"
            yield emit_error(f"Out of memory on {self.device} at step {self.progress.step}. "
                             "Lower --batch, --seq or --hidden and start again.")
        except PlaygroundError as exc:
            final_state = "error"
            yield emit_error(str(exc))
        except BaseException:  # interrupted from outside (a second Ctrl+C, the caller gave up): not finished
            if final_state == "finished":
                final_state = "stopped"
            raise
        else:
            log.close()
            closed = True
            try:
                runs.write_status(self.run_dir, state=final_state, step=self.progress.step,
                                  best_val_loss=self.progress.best_val_loss)
            except PlaygroundError as exc:
                yield ErrorEvent(self.progress.step, str(exc))
        finally:
            threads.close()
            if self._sampler is not None:
                self._sampler.stop()
                self._sampler = None
            if not closed:  # an error, or the caller stopped iterating: record the end as well as we can
                log.close()
                try:
                    runs.write_status(self.run_dir, state=final_state, step=self.progress.step,
                                      best_val_loss=self.progress.best_val_loss)
                except PlaygroundError:
                    pass  # already reported, or nobody is listening any more

    def _loop(self) -> Iterator[Event]:
        c, task, control, p, group = self.config, self.task, self.control, self.progress, self.group
        total = self._total_steps()
        minutes = self._minutes()
        n_params = sum(t.numel() for t in self.model.parameters())
        distributed = group.distributed
        yield RunStarted(self.run_dir.name, str(self.run_dir), describe_device(self.device),
                         {**c.to_dict(), "model": self._model_dict()}, n_params, getattr(task, "vocab_size", 0)
                         or len(getattr(task, "vocab", ())), task.train_chars, task.val_chars, p.step, total,
                         getattr(task, "unit", "characters"), self.threads, self._val_sample(),
                         group.world_size, self.devices if distributed else None)
        tokens_per_step = task.tokens_per_step if hasattr(task, "tokens_per_step") else c.batch * c.seq
        started = time.perf_counter()
        deadline = started + minutes * 60 if minutes else None
        elapsed_before = p.elapsed_s
        session_start_step = p.step
        loss_sum = torch.zeros((), device=self.device)
        loss_count = 0
        bad_streak = torch.zeros((), device=self.device)
        worst_streak = torch.zeros((), device=self.device)
        skipped = torch.zeros((), device=self.device)
        skipped_reported = 0
        last_report_time, last_report_step = started, p.step
        last_val_step = None
        # Validation by time as well as by steps: the first within val_seconds of the start, whatever
        # the speed; then spaced by the last one's cost, so slow steps still give early feedback.
        val_due_time = started + c.val_seconds if c.val_seconds else None
        val_cost = 0.0
        self.model.train()

        def val_spacing(cost: float) -> float:
            """Training time between validations by time: at least val_seconds, and enough that
            validation (which cost `cost` seconds last time) is at most VALIDATION_TIME_SHARE of it."""
            return max(c.val_seconds, cost * (1 - VALIDATION_TIME_SHARE) / VALIDATION_TIME_SHARE)

        def eta() -> float | None:
            done = p.step - session_start_step
            spent = time.perf_counter() - started
            if not done:
                return None
            by_steps = (total - p.step) * spent / done if total is not None else None
            by_time = max(0.0, deadline - time.perf_counter()) if deadline is not None else None
            return min(x for x in (by_steps, by_time) if x is not None)

        def next_validation(now: float, validating: bool) -> tuple[int | None, float | None]:
            """(step, None) when the next validation is expected by the step rule first, (None,
            seconds from now) when by time, (None, None) before there is a pace to tell."""
            by_step = (p.step // c.val_every + 1) * c.val_every
            if total is not None:
                by_step = min(by_step, total)
            due = val_due_time
            if validating and due is not None:  # this step validates now: the next one comes after it
                due = now + val_spacing(val_cost)
            if due is not None and deadline is not None:
                due = min(due, deadline)  # the end of a time budget validates too
            if due is None:
                return by_step, None
            done = p.step - session_start_step
            if not done:
                return None, None
            by_time = max(0.0, due - now)
            by_step_s = (by_step - p.step) * (now - started) / done
            return (by_step, None) if by_step_s <= by_time else (None, by_time)

        def agree(clock: bool = True, commands: bool = True) -> _Decision:
            """What every rank does next, decided before and after each step: rank 0's clock and commands
            (another process's through the control channel, applied here), and a stop asked of any rank."""
            now = time.perf_counter()
            main = group.is_main
            time_up = clock and main and deadline is not None and now >= deadline
            decision = _Decision(*group.agree([
                int(control.stopping), int(main and control.paused),
                int(commands and main and control.take_save_request()),  # taken where it is acted on
                int(time_up), int(clock and main and val_due_time is not None and now >= val_due_time),
                int(clock and main and now - last_report_time >= 0.25)]))
            if decision.stop and not control.stopping:
                control.stop("another rank stopped")
            return decision

        time_up = False
        while not time_up and (total is None or p.step < total):
            yield from self._take_commands()
            decision = agree()
            if decision.time_up:
                break
            if decision.save:
                yield CheckpointSaved(p.step, str(self.save()), "requested")
            if decision.pause and not decision.stop:
                yield Paused(p.step)
                pause_began = time.perf_counter()
                while decision.pause and not decision.stop:
                    if group.is_main:  # the others wait in the agreement for rank 0's next word
                        control.wait_while_paused(0.1)
                    yield from self._take_commands()
                    yield from self._system_events()
                    decision = agree(clock=False)
                    if decision.save:
                        yield CheckpointSaved(p.step, str(self.save()), "requested")
                paused_for = time.perf_counter() - pause_began
                started += paused_for
                last_report_time += paused_for
                if deadline is not None:
                    deadline += paused_for
                if val_due_time is not None:
                    val_due_time += paused_for
                yield Resumed(p.step)
            if decision.stop:
                break

            # one optimisation step (under the lock, so snapshots never see half an update)
            with self._step_lock:
                if p.window == 0:
                    self.state = task.init_state()
                lr = learning_rate(c, p.step)
                for group_ in self.optimizer.param_groups:
                    group_["lr"] = lr
                with self._autocast():
                    loss, self.state = task.loss(p.window, self.state, p.step)
                self.state = detach_state(self.state)
                self.optimizer.zero_grad(set_to_none=True)
                try:
                    grad_norm = self._backward(loss)
                except RuntimeError as exc:  # with several ranks, DDP's all-reduce runs in backward
                    if not distributed:
                        raise
                    raise group.lost(exc, "averaging gradients") from None
                if self.scaler is not None:
                    # fp16: the scaler skips a step whose gradients overflowed and lowers its scale; that is
                    # calibration, not a bad step, so only a non-finite loss counts towards MAX_BAD_STEPS.
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    found_inf = (~torch.isfinite(loss)).float()
                else:
                    # Skip the update on a non-finite loss without a host sync: the fused optimizer reads
                    # found_inf. With several ranks the gradient norm alone decides: it is the same on every
                    # rank (the gradients were averaged), so all skip together; a rank's non-finite loss makes
                    # it non-finite.
                    finite = (torch.isfinite(grad_norm) if distributed
                              else torch.isfinite(loss) & torch.isfinite(grad_norm))
                    found_inf = (~finite).float()
                    if self._fused:
                        self.optimizer.found_inf = found_inf
                        self.optimizer.step()
                    elif not bool(found_inf):  # a device without the fused kernel pays a sync here
                        self.optimizer.step()
                if self.averaged is not None:  # a skipped step left the weights as they were: harmless
                    torch._foreach_lerp_(self.averaged, self._weights, 1 - self._average_decay())
                bad_streak = (bad_streak + 1) * found_inf
                worst_streak = torch.maximum(worst_streak, bad_streak)
                skipped += found_inf
                loss_sum += torch.where(found_inf > 0, torch.zeros_like(loss), loss.detach())
                loss_count += 1
                p.step += 1
                p.tokens += tokens_per_step
                p.window += 1
                if p.window >= task.windows:
                    p.epoch, p.window = p.epoch + 1, 0

            clock = agree(commands=False)
            now = time.perf_counter()
            time_up = bool(clock.time_up)
            last_step = time_up or (total is not None and p.step >= total)
            validate = p.step % c.val_every == 0 or last_step or clock.validation_due
            report = (p.step % c.log_every == 0) if c.log_every else clock.report_due
            if report or validate:
                if int(worst_streak) >= MAX_BAD_STEPS:
                    yield ErrorEvent(p.step, self._non_finite_message())
                    return
                skipped_now = int(skipped)
                good_steps = loss_count - (skipped_now - skipped_reported)
                step_loss = float(loss_sum)
                rank_speeds = None
                if distributed:  # each rank's mean loss is over its equal share of the streams
                    step_loss = group.sum([step_loss])[0] / group.world_size
                    own_speed = (p.step - last_report_step) * tokens_per_step / group.world_size / max(
                        now - last_report_time, 1e-9)
                    rank_speeds = [float(x) for x in group.gather_tensors(torch.tensor([own_speed]))]
                mean_loss = step_loss / good_steps if good_steps else float("nan")
                skipped_reported = skipped_now
                p.elapsed_s = elapsed_before + now - started
                yield StepEvent(p.step, total, p.epoch + p.window / task.windows, mean_loss,
                                (p.step - last_report_step) * tokens_per_step / max(now - last_report_time, 1e-9),
                                lr, p.elapsed_s, eta(), skipped_now, *next_validation(now, validate),
                                rank_tokens_per_s=rank_speeds)
                loss_sum.zero_()
                loss_count = 0
                last_report_time, last_report_step = now, p.step
            if self._sampler is not None:  # a reading the sampler's thread took since the last step
                yield from self._system_events()
            if validate:
                val_began = time.perf_counter()
                yield from self._validate(whole=last_step)  # a run that finishes reads the whole split
                last_val_step = p.step
                if val_due_time is not None:
                    val_ended = time.perf_counter()
                    val_cost = val_ended - val_began
                    val_due_time = val_ended + val_spacing(val_cost)

        p.elapsed_s = elapsed_before + time.perf_counter() - started
        if agree(clock=False).stop:  # every rank ends the same way (a stop asked during the last step counts)
            # No validation pass here: a stop (a key, Ctrl+C, a closed terminal) must be quick.
            yield CheckpointSaved(p.step, str(self.save()), "stop")
            yield Stopped(p.step, control.stop_reason, p.elapsed_s)
        else:
            if last_val_step != p.step:
                yield CheckpointSaved(p.step, str(self.save()), "finish")
            yield Finished(p.step, p.best_val_loss, p.elapsed_s)

    def _backward(self, loss: torch.Tensor) -> torch.Tensor:
        """Gradients of `loss` (unscaled, with fp16's scaler), clipped; returns their norm before clipping."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)

    def _system_events(self) -> Iterator[Event]:
        """The system figures read since the last step boundary, if any (core.sysmetrics)."""
        reading = self._sampler.take() if self._sampler is not None else None
        if reading is not None:
            yield SystemEvent(self.progress.step, **reading)

    def _take_commands(self) -> Iterator[Event]:
        """Apply a new command from the run's control channel (another process's pause, save, stop), if any."""
        command = self._channel.poll() if self.group.is_main else None
        if command is None:
            return
        yield ControlReceived(self.progress.step, command.run_id, command.seq, command.command)
        if command.command == "pause":
            self.control.pause()
        elif command.command == "resume":
            self.control.resume()
        elif command.command == "save":
            self.control.request_save()
        elif command.command == "stop" and not self.control.stopping:
            self.control.stop("user")

    def _non_finite_message(self) -> str:
        step = self.progress.step
        message = (f"Stopped: the loss was NaN or infinite for {MAX_BAD_STEPS} steps in a row (step {step}). "
                   "Lower --lr, or check the data; ")
        if self._last_saved is None:
            return message + (f"no checkpoint was saved in this run yet (one is saved every --val-every steps, "
                              f"{self.config.val_every:,} here), so there is nothing to resume from.")
        name, saved_step = self._last_saved
        return message + f"the last checkpoint, {name} from step {saved_step:,}, was kept in {self.run_dir}."

    def _val_sample(self) -> int | None:
        """Held-out units each validation reads when that is a sample (None: the whole split)."""
        sample = getattr(self.task, "val_sample_chars", None)
        return sample if sample is not None and sample < self.task.val_chars else None

    def _validate(self, whole: bool = False) -> Iterator[Event]:
        p = self.progress
        with self._step_lock, self._averaged_weights():
            val_loss = self.task.evaluate(self._autocast, whole=whole)
            text = self.task.preview(p.step)
        if val_loss is not None:
            is_best = p.best_val_loss is None or val_loss < p.best_val_loss
            if is_best:
                p.best_val_loss = val_loss
            sample = None if whole else self._val_sample()
            yield ValidationEvent(p.step, val_loss, p.best_val_loss, is_best,
                                  chars=sample or self.task.val_chars, sampled=sample is not None)
            if is_best:
                yield CheckpointSaved(p.step, str(self.save(runs.BEST)), "best")
        yield CheckpointSaved(p.step, str(self.save()), "validation")
        if self.group.is_main:  # rank 0 alone writes the run's folder
            runs.write_status(self.run_dir, step=p.step, best_val_loss=p.best_val_loss)
        if text is not None:
            yield SampleEvent(p.step, text)


@dataclass
class _Decision:
    """What every rank of a run does at a step boundary (core.distributed's Solo.agree)."""
    stop: int
    pause: int
    save: int
    time_up: int
    validation_due: int
    report_due: int


def autocast_dtype(config: LoopConfig, device: torch.device) -> torch.dtype | None:
    """The type mixed precision computes in on `device` (None: full precision), by --amp and --amp-dtype."""
    if not config.amp:
        return None
    if config.amp_dtype == "bf16" or (config.amp_dtype == "auto" and supports_bf16(device)):
        return torch.bfloat16
    if config.amp_dtype == "fp16" or (config.amp_dtype == "auto" and device.type == "cuda"):
        return torch.float16
    return None


def _make_optimizer(model: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, bool]:
    """Adam, fused where the device has the kernel. The fused Adam reads `found_inf` and skips
    the update in-kernel, so skipping a non-finite step needs no host sync."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True), True
    except RuntimeError:
        return torch.optim.Adam(model.parameters(), lr=lr), False


def _load_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    groups = checkpoint.meta.get("optimizer", {}).get("param_groups")
    if not groups:
        raise CheckpointError(f"{checkpoint.path} has no optimizer state, so training cannot resume from it.")
    state: dict[int, dict] = {}
    try:
        for name, tensor in checkpoint.group("optim").items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = tensor
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"{checkpoint.path}: optimizer state does not fit this model ({exc}).") from None


def _text_fingerprint(meta: dict) -> str | None:
    """The fingerprint of the text a run trains on (a character corpus or series data), where recorded."""
    source = meta.get("corpus") or meta.get("data")
    return source.get("fingerprint") if isinstance(source, dict) else None


def _check_progress(checkpoint: Checkpoint) -> None:
    """A resumed run's counters: whole numbers, not negative; a finite best loss."""
    progress = checkpoint.meta.get("progress", {})
    best = checkpoint.meta.get("best_val_loss")
    counters = ("step", "epoch", "window", "tokens")
    ok = isinstance(progress, dict) and all(
        isinstance(progress.get(k, 0), int) and not isinstance(progress.get(k, 0), bool) and progress.get(k, 0) >= 0
        for k in counters)
    elapsed = progress.get("elapsed_s", 0.0) if isinstance(progress, dict) else None
    ok = ok and isinstance(elapsed, (int, float)) and 0 <= elapsed < math.inf
    ok = ok and (best is None or (isinstance(best, (int, float)) and math.isfinite(best)))
    if not ok:
        raise CheckpointError(f"{checkpoint.path}: its progress counters are not whole numbers of steps (or its best "
                              "validation loss is not a number); the file was changed or written by other code.")

"""The training loop: step by step, controllable from another thread, emitting plain events.

One loop serves every kind of model: a `Task` supplies the model, the batches,
the loss and the evaluation; the Trainer owns the device, optimizer, mixed
precision, schedule, budget, control, events, metrics and checkpoints.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
import math
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from . import runs
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .corpus import (DEFAULT_CORPUS, Corpus, Vocab, check_size, describe_chars, load_corpus, split_ids,
                     validation_spans)
from .device import describe_device, resolve_device, supports_bf16
from .errors import CheckpointError, ConfigError, CorpusError, PlaygroundError
from .events import (CheckpointSaved, ErrorEvent, Event, Finished, Paused, Resumed, RunStarted, SampleEvent,
                     Stopped, StepEvent, ValidationEvent)
from .model import CharRNN, ModelConfig, StreamBatches, detach_state, state_like, state_tensors

DEFAULT_MINUTES = 10.0
MAX_BAD_STEPS = 5  # this many non-finite losses in a row stop the run


def option(default, help: str):
    """A config field with its help text, so the CLI documents every flag from one place."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything that defines a run. Each field's help is the CLI's help text."""
    corpus: str = option(DEFAULT_CORPUS, "corpus: builtin:python-stdlib, tinyshakespeare, anna, a file or a folder")
    glob: str = option("*", "file pattern when the corpus is a folder")
    cell: str = option("lstm", "recurrent cell: lstm, gru or rnn")
    hidden: int = option(512, "hidden units per layer")
    layers: int = option(2, "recurrent layers")
    embed: int = option(64, "embedding size (the one-hot input times a learned matrix)")
    dropout: float = option(0.3, "dropout between layers and before the output layer")
    batch: int = option(128, "parallel streams per step")
    seq: int = option(100, "characters per window (backprop through time)")
    lr: float = option(3e-3, "peak Adam learning rate")
    warmup: int = option(50, "steps of linear learning-rate warm-up")
    lr_half_life: int = option(350, "steps for the learning rate to halve after warm-up (0 = constant)")
    min_lr: float = option(1e-4, "floor the learning rate decays to (at most --lr: a higher floor holds it at --lr)")
    clip: float = option(5.0, "gradient-norm clipping")
    ema: float = option(0.99, "keep an exponential moving average of the weights with this decay (about the "
                              "last 1/(1-ema) steps); validation, samples and saved models use it (0 = off)")
    steps: int | None = option(None, "stop at this total step count")
    epochs: float | None = option(None, "stop at this many passes over the training text")
    minutes: float | None = option(None, "stop after this many minutes (default when no budget is given: 10)")
    val_fraction: float = option(0.1, "fraction held out (from the end) for validation")
    val_every: int = option(200, "validate, sample and save every this many steps")
    val_streams: int = option(32, "validation reads the split as this many parallel streams (1 = one stream)")
    val_sample: int = option(500_000, "held-out characters each validation reads: a fixed sample spread over the "
                                      "split when it is longer; the whole split is read when a run finishes "
                                      "(0 = the whole split every time)")
    sample_chars: int = option(200, "length of the sample shown at each validation (0 = none)")
    seed: int = option(1234, "seed for weights, dropout and samples")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    amp: bool = option(True, "bf16 mixed precision where the device has fast bf16")
    log_every: int = option(0, "steps between step events (0 = about four a second)")
    run_name: str | None = option(None, "run folder name (default: generated)")
    runs_dir: str | None = option(None, "where runs live (default: $RNN_PLAYGROUND_RUNS or ./checkpoints)")

    def validate(self) -> None:
        positive = ("hidden", "layers", "embed", "batch", "seq", "val_every", "val_streams")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}.")
        if not 0 < self.lr < 10:
            raise ConfigError(f"--lr must be positive (and sane), got {self.lr}.")
        if not 0 <= self.min_lr < 10:  # also refuses NaN
            raise ConfigError(f"--min-lr (the floor the learning rate decays to) must be zero or positive (and "
                              f"sane), got {self.min_lr:g}. Set --min-lr between 0 and --lr ({self.lr:g}).")
        if self.val_sample < 0:
            raise ConfigError(f"--val-sample must be 0 (the whole held-out split) or a number of characters, "
                              f"got {self.val_sample}.")
        if not 0 <= self.val_fraction < 0.9:
            raise ConfigError(f"--val-fraction must be in [0, 0.9), got {self.val_fraction}.")
        for name in ("steps", "epochs", "minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"--{name} must be positive, got {value}.")
        if self.clip <= 0:
            raise ConfigError(f"--clip must be positive, got {self.clip}.")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema must be in [0, 1) (0 = no weight averaging), got {self.ema}.")
        ModelConfig(vocab_size=1, cell=self.cell, hidden=self.hidden, layers=self.layers, embed=self.embed,
                    dropout=self.dropout)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, cell=self.cell, hidden=self.hidden, layers=self.layers,
                           embed=self.embed, dropout=self.dropout)


def learning_rate(config: TrainConfig, step: int) -> float:
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
    """What the Trainer needs from a kind of model (see CharTask; core.series has another).

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
    def loss(self, window: int, state): ...                # -> (scalar loss tensor, new state)
    def evaluate(self, autocast, whole: bool = False) -> float | None: ...  # validation loss, dropout off;
                                                           # whole: all held-out data, not a sample
    def preview(self, step: int) -> str | None: ...        # text shown at each validation
    def meta(self) -> dict: ...                            # JSON metadata for checkpoints


class CharTask:
    """Character-level language modelling on a corpus."""

    kind = "char"

    def __init__(self, config: TrainConfig, corpus: Corpus, vocab: Vocab, device: torch.device):
        check_size(corpus, config.batch, config.seq, config.val_fraction)
        self.config, self.corpus, self.vocab, self.device = config, corpus, vocab, device
        lacking = vocab.missing(corpus.characters)
        if lacking:
            raise CorpusError(f"Corpus {corpus.source} has characters the checkpoint's vocabulary lacks: "
                              f"{describe_chars(lacking)}. Resume with the original corpus, or start a new run.")
        ids = corpus.ids(vocab)  # compact: 1 byte a character for up to 256 characters
        train_ids, self.val_ids = split_ids(ids, config.val_fraction)
        self.batches = StreamBatches(train_ids, config.batch, config.seq).to(device)
        self.val_ids = self.val_ids.to(device)
        self.train_chars, self.val_chars = len(train_ids), len(self.val_ids)
        # A held-out split longer than --val-sample is validated on a fixed sample of it; a shorter
        # one whole, exactly as always.
        sampled = config.val_sample and len(self.val_ids) > config.val_sample
        self.val_sample = validation_spans(self.val_ids, config.val_sample, config.val_streams) if sampled else None
        self.val_sample_chars = self.val_sample[0].numel() if sampled else self.val_chars
        self.model = CharRNN(config.model_config(len(vocab))).to(device)

    @property
    def windows(self) -> int:
        return len(self.batches)

    def init_state(self):
        return self.model.init_state(self.config.batch, self.device)

    def loss(self, window: int, state):
        inputs, targets = self.batches.window(window)
        logits, state = self.model(inputs, state)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()), state

    def evaluate(self, autocast, whole: bool = False) -> float | None:
        if len(self.val_ids) < 2:
            return None
        if self.val_sample is not None and not whole:
            return evaluate_streams(self.model, *self.val_sample, autocast=autocast)
        return evaluate_char_model(self.model, self.val_ids, self.config.val_streams, autocast=autocast)

    def preview(self, step: int) -> str | None:
        if not self.config.sample_chars:
            return None
        from .sampling import SampleSettings, Sampler
        settings = SampleSettings(temperature=0.8, length=self.config.sample_chars, seed=self.config.seed + step)
        return Sampler(self.model, self.vocab).generate(settings)

    def meta(self) -> dict:
        return {"kind": self.kind, "vocab": list(self.vocab.chars),
                "corpus": {"spec": self.corpus.spec, "source": self.corpus.source,
                           "fingerprint": self.corpus.fingerprint, "chars": self.corpus.length}}


def evaluate_char_model(model: CharRNN, ids: torch.Tensor, streams: int = 1, chunk: int = 1000,
                        autocast=None) -> float:
    """Mean cross-entropy (nats) over `ids`, dropout off, read as `streams` contiguous streams
    whose hidden state is carried from chunk to chunk (streams=1 reads it as one stream)."""
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    length = (len(ids) - 1) // streams
    inputs = ids[:streams * length].view(streams, length)
    targets = ids[1:streams * length + 1].view(streams, length)
    return evaluate_streams(model, inputs, targets, chunk, autocast)


def evaluate_streams(model: CharRNN, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 1000,
                     autocast=None) -> float:
    """Mean cross-entropy (nats) of `targets` given `inputs`, both (streams, length) of ids of any
    integer type, each row read as one stream whose hidden state is carried from chunk to chunk."""
    streams, length = inputs.shape
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    state = None
    try:
        with torch.inference_mode(), (autocast() if autocast else nullcontext()):
            for start in range(0, length, chunk):
                logits, state = model(inputs[:, start:start + chunk].long(), state)
                total += F.cross_entropy(logits.float().flatten(0, 1),
                                         targets[:, start:start + chunk].long().flatten(), reduction="sum").double()
    finally:
        model.train(was_training)
    return float(total) / (streams * length)


# --------------------------------------------------------------------------- trainer

@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    window: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0
    best_val_loss: float | None = None


class Trainer:
    """Runs a task step by step. Iterate `run()` for events; drive it with a TrainControl."""

    def __init__(self, config: TrainConfig, control: TrainControl | None = None, *,
                 task=None, resume_from: Checkpoint | None = None, corpus_progress=None):
        config.validate()
        self.config = config
        self.control = control or TrainControl()
        self.device = resolve_device(config.device)
        self.progress = Progress()
        self._resume = resume_from
        self._last_saved: tuple[str, int] | None = None  # (file name, step) of the latest checkpoint of the run
        if task is None:
            corpus = load_corpus(config.corpus, glob=config.glob, progress=corpus_progress)
            vocab = Vocab(resume_from.meta["vocab"]) if resume_from else Vocab(corpus.characters)
            if resume_from is None:
                torch.manual_seed(config.seed)
            task = CharTask(config, corpus, vocab, self.device)
        elif resume_from is None:
            torch.manual_seed(config.seed)
        self.task = task
        self.model: nn.Module = task.model
        self.use_amp = bool(config.amp) and supports_bf16(self.device)
        self.optimizer, self._fused = _make_optimizer(self.model, config.lr)
        # The weights as tensors (no autograd), and their running average when config.ema is on.
        self._weights = [w.detach() for w in self.model.parameters()]
        self.averaged: list[torch.Tensor] | None = [w.clone() for w in self._weights] if config.ema else None
        self.state = task.init_state()
        runs_dir = Path(config.runs_dir) if config.runs_dir else runs.default_runs_dir()
        if resume_from is not None:
            self.run_dir = resume_from.path.parent
            self._restore(resume_from)
            self._last_saved = (resume_from.path.name, self.progress.step)
        else:
            name = config.run_name or runs.new_run_name(runs_dir)
            self.run_dir = runs_dir / name
            if self.run_dir.exists() and any(self.run_dir.glob("*.safetensors")):
                raise ConfigError(f"Run folder {self.run_dir} already holds checkpoints. Pick another --name, "
                                  f"or continue it with --resume {self.run_dir}.")
        self.config = replace(config, run_name=self.run_dir.name, runs_dir=str(self.run_dir.parent))
        self._step_lock = threading.Lock()

    def snapshot_sampler(self):
        """A Sampler over a copy of the current weights (their average, when kept), taken between
        steps; safe to call from another thread while training runs (training waits only for the copy)."""
        from .sampling import Sampler
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
    def resume(cls, target: Path | str, control: TrainControl | None = None, **overrides) -> "Trainer":
        """Continue a run from its last checkpoint (or a given file). Overrides may change the budget,
        the device, or the corpus (whose characters must all be in the checkpoint's vocabulary)."""
        checkpoint = load_checkpoint(runs.resolve_checkpoint(target))
        if checkpoint.meta.get("kind", "char") != "char":
            raise CheckpointError(f"{checkpoint.path} is a {checkpoint.meta.get('kind')} checkpoint, "
                                  "not a character model.")
        config = TrainConfig.from_dict(checkpoint.meta["config"])
        budget_given = any(overrides.get(k) is not None for k in ("steps", "epochs", "minutes"))
        if budget_given:
            config = replace(config, steps=None, epochs=None, minutes=None)
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        return cls(config, control, resume_from=checkpoint)

    def _restore(self, checkpoint: Checkpoint) -> None:
        # With averaging, "model.*" holds the average (what sampling uses) and "raw.*" the weights.
        saved, raw = checkpoint.group("model"), checkpoint.group("raw")
        checkpoint.load_into(self.model, "raw" if raw else "model")
        if self.averaged is not None:
            names = [name for name, _ in self.model.named_parameters()]
            # A run saved without an average starts one from its weights.
            self.averaged = [(saved[name] if raw else w).to(self.device).clone() for name, w in
                             zip(names, self._weights)]
        _load_optimizer(self.optimizer, checkpoint)
        torch.set_rng_state(checkpoint.tensors["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in checkpoint.tensors:
            torch.cuda.set_rng_state(checkpoint.tensors["rng.cuda"], self.device)
        saved_state = [checkpoint.tensors[f"state.{i}"] for i in range(len(state_tensors(self.state)))
                       if f"state.{i}" in checkpoint.tensors]
        progress = checkpoint.meta.get("progress", {})
        self.progress = Progress(**{k: v for k, v in progress.items() if k in Progress.__dataclass_fields__})
        self.progress.best_val_loss = checkpoint.meta.get("best_val_loss")
        if self.progress.window >= self.task.windows:  # a different corpus: start its next epoch
            self.progress.epoch, self.progress.window = self.progress.epoch + 1, 0
        elif saved_state and all(s.shape == t.shape for s, t in zip(saved_state, state_tensors(self.state))):
            self.state = state_like(self.state, [s.to(self.device) for s in saved_state])

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
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp)

    def save(self, name: str = runs.LAST) -> Path:
        weights = self.model.state_dict()
        tensors = {f"model.{k}": v for k, v in weights.items()}
        if self.averaged is not None:
            tensors.update({f"raw.{k}": v for k, v in weights.items()})
            tensors.update({f"model.{k}": v for (k, _), v in zip(self.model.named_parameters(), self.averaged)})
        opt_state = self.optimizer.state_dict()
        for index, state in opt_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        for i, t in enumerate(state_tensors(self.state)):
            tensors[f"state.{i}"] = t
        meta: dict[str, Any] = {
            **self.task.meta(),
            "config": {**self.config.to_dict(), "model": self._model_dict()},
            "model": self._model_dict(),
            "progress": {k: v for k, v in asdict(self.progress).items() if k != "best_val_loss"},
            "best_val_loss": self.progress.best_val_loss,
            "optimizer": {"param_groups": opt_state["param_groups"]},
            "device": str(self.device),
            "saved_at": time.time(),
        }
        path = save_checkpoint(self.run_dir / name, tensors, meta)
        self._last_saved = (path.name, self.progress.step)
        return path

    def _model_dict(self) -> dict:
        return self.model.config.to_dict()

    # -- the loop

    def run(self) -> Iterator[Event]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = runs.MetricsLog(self.run_dir / runs.METRICS)
        runs.write_status(self.run_dir, state="running", pid=os.getpid(), host=socket.gethostname(),
                          device=str(self.device), config={**self.config.to_dict(), "model": self._model_dict()},
                          kind=self.task.kind, step=self.progress.step, best_val_loss=self.progress.best_val_loss)

        def emit(event: Event) -> Event:
            log.write(event)
            return event

        final_state = "finished"
        try:
            for event in self._loop():
                if isinstance(event, Stopped):
                    final_state = "stopped"
                elif isinstance(event, ErrorEvent):
                    final_state = "error"
                yield emit(event)
        except torch.OutOfMemoryError:
            final_state = "error"
            yield emit(ErrorEvent(self.progress.step, f"Out of memory on {self.device} at step "
                                  f"{self.progress.step}. Lower --batch, --seq or --hidden and start again."))
        except PlaygroundError as exc:
            final_state = "error"
            yield emit(ErrorEvent(self.progress.step, str(exc)))
        finally:
            log.close()
            runs.write_status(self.run_dir, state=final_state, step=self.progress.step,
                              best_val_loss=self.progress.best_val_loss)

    def _loop(self) -> Iterator[Event]:
        c, task, control, p = self.config, self.task, self.control, self.progress
        total = self._total_steps()
        minutes = self._minutes()
        n_params = sum(t.numel() for t in self.model.parameters())
        yield RunStarted(self.run_dir.name, str(self.run_dir), describe_device(self.device),
                         {**c.to_dict(), "model": self._model_dict()}, n_params, getattr(task, "vocab_size", 0)
                         or len(getattr(task, "vocab", ())), task.train_chars, task.val_chars, p.step, total,
                         getattr(task, "unit", "characters"), self._val_sample())
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
        self.model.train()

        def budget_left() -> bool:
            if total is not None and p.step >= total:
                return False
            return deadline is None or time.perf_counter() < deadline

        def eta() -> float | None:
            done = p.step - session_start_step
            spent = time.perf_counter() - started
            if not done:
                return None
            by_steps = (total - p.step) * spent / done if total is not None else None
            by_time = max(0.0, deadline - time.perf_counter()) if deadline is not None else None
            return min(x for x in (by_steps, by_time) if x is not None)

        while budget_left():
            if control.paused and not control.stopping:
                yield Paused(p.step)
                pause_began = time.perf_counter()
                while control.paused and not control.stopping:
                    control.wait_while_paused(0.1)
                    if control.take_save_request():
                        yield CheckpointSaved(p.step, str(self.save()), "requested")
                paused_for = time.perf_counter() - pause_began
                started += paused_for
                last_report_time += paused_for
                if deadline is not None:
                    deadline += paused_for
                yield Resumed(p.step)
            if control.take_save_request():
                yield CheckpointSaved(p.step, str(self.save()), "requested")
            if control.stopping:
                break

            # one optimisation step (under the lock, so snapshots never see half an update)
            with self._step_lock:
                if p.window == 0:
                    self.state = task.init_state()
                lr = learning_rate(c, p.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with self._autocast():
                    loss, self.state = task.loss(p.window, self.state)
                self.state = detach_state(self.state)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip)
                # Skip the update on a non-finite loss without a host sync: the fused optimizer reads found_inf.
                found_inf = (~(torch.isfinite(loss) & torch.isfinite(grad_norm))).float()
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

            now = time.perf_counter()
            last_step = not budget_left()
            report = (p.step % c.log_every == 0) if c.log_every else (now - last_report_time >= 0.25)
            if report or last_step or p.step % c.val_every == 0:
                if int(worst_streak) >= MAX_BAD_STEPS:
                    yield ErrorEvent(p.step, self._non_finite_message())
                    return
                skipped_now = int(skipped)
                good_steps = loss_count - (skipped_now - skipped_reported)
                mean_loss = float(loss_sum) / good_steps if good_steps else float("nan")
                skipped_reported = skipped_now
                p.elapsed_s = elapsed_before + now - started
                yield StepEvent(p.step, total, p.epoch + p.window / task.windows, mean_loss,
                                (p.step - last_report_step) * tokens_per_step / max(now - last_report_time, 1e-9),
                                lr, p.elapsed_s, eta(), skipped_now)
                loss_sum.zero_()
                loss_count = 0
                last_report_time, last_report_step = now, p.step
            if p.step % c.val_every == 0 or last_step:
                yield from self._validate(whole=last_step)  # a run that finishes reads the whole split
                last_val_step = p.step

        p.elapsed_s = elapsed_before + time.perf_counter() - started
        if control.stopping:
            # No validation pass here: a stop (a key, Ctrl+C, a closed terminal) must be quick.
            yield CheckpointSaved(p.step, str(self.save()), "stop")
            yield Stopped(p.step, control.stop_reason, p.elapsed_s)
        else:
            if last_val_step != p.step:
                yield CheckpointSaved(p.step, str(self.save()), "finish")
            yield Finished(p.step, p.best_val_loss, p.elapsed_s)

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
        runs.write_status(self.run_dir, step=p.step, best_val_loss=p.best_val_loss)
        if text is not None:
            yield SampleEvent(p.step, text)


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
    for name, tensor in checkpoint.group("optim").items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{checkpoint.path}: optimizer state does not fit this model ({exc}).") from None


def load_model(target: Path | str, device: str = "auto") -> tuple[CharRNN, Vocab, Checkpoint]:
    """A character model and its vocabulary from a run folder or checkpoint file, on any device."""
    checkpoint = load_checkpoint(runs.resolve_checkpoint(target))
    if checkpoint.meta.get("kind", "char") != "char":
        raise CheckpointError(f"{checkpoint.path} holds a {checkpoint.meta.get('kind')} model, not a character model.")
    try:
        vocab = Vocab(checkpoint.meta["vocab"])
        config = ModelConfig.from_dict(checkpoint.meta["model"])
    except (KeyError, TypeError, PlaygroundError) as exc:
        raise CheckpointError(f"{checkpoint.path} lacks a usable model description ({exc}).") from None
    model = CharRNN(config)
    checkpoint.load_into(model)
    return model.to(resolve_device(device)).eval(), vocab, checkpoint

"""Where a Lesson page's model comes from: the run open in the app, the run it is training, or a demo.

In that order: the run the Runs screen opened (app.selected_run), else the run this app is training (its
last checkpoint, with `live` from the training snapshot), else a small demo model trained in seconds on a
slice of the built-in corpus. Loading and training are slow: the screen calls these from a worker thread.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnn_playground.core.checkpoint import read_metadata
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.corpus import DEFAULT_CORPUS, load_corpus
from rnn_playground.core.errors import CorpusError, PlaygroundError
from rnn_playground.core.loading import load_model
from rnn_playground.core.runs import resolve_checkpoint

from ..gates_view import run_corpus
from .page import Source

TEXT_CHARS = 200_000     # the part of a run's corpus a page may read (its start)
DEMO_TEXT_CHARS = 40_000  # the demo model's corpus: the start of the built-in one
# Small enough to train in a few seconds on a busy 2-core CPU, big enough to show two layers and real gates.
DEMO_SETTINGS = dict(cell="lstm", hidden=64, layers=2, embed=16, dropout=0.1, batch=16, seq=32, steps=150,
                     lr=1e-2, warmup=10, lr_half_life=0, val_every=150, val_seconds=0, val_sample=4_000,
                     sample_chars=0, log_every=10, amp=False, device="cpu", threads=1, seed=1234)


@dataclass(frozen=True)
class SourceRequest:
    """Which model the screen wants: a run folder (`run_dir`, with `live` when it is training), or the demo."""
    run_dir: Path | None = None
    origin: str = "demo model"
    live: tuple[tuple[str, object], ...] = ()

    @property
    def is_demo(self) -> bool:
        return self.run_dir is None


def choose_source(selected_run: Path | None, training: object | None) -> SourceRequest:
    """The run open in the app, else the run training (a RunState whose run has a checkpoint), else the demo."""
    if selected_run is not None:
        return SourceRequest(Path(selected_run), f"run {Path(selected_run).name} (opened on Runs)")
    snapshot = getattr(training, "snapshot", None)
    if snapshot is not None and snapshot.run_dir and snapshot.last_checkpoint:
        live = live_figures(snapshot)
        return SourceRequest(Path(snapshot.run_dir), f"run {snapshot.run_name} (training, checkpoint of step "
                                                     f"{snapshot.last_checkpoint_step or 0:,})",
                             tuple(sorted(live.items())))
    return SourceRequest()


def live_figures(snapshot) -> dict:
    """What a training run is doing now, from its RunSnapshot: step, epoch, batch, seq, windows per epoch and
    the window the trainer is on (the trainer walks the windows in order, one a step)."""
    config = snapshot.config or {}
    batch, seq = int(config.get("batch") or 0), int(config.get("seq") or 0)
    live = {"step": snapshot.step, "epoch": snapshot.epoch, "batch": batch, "seq": seq, "status": snapshot.status}
    if batch and seq and snapshot.train_chars:
        windows = max(1, (snapshot.train_chars - 1) // (batch * seq))
        live.update(windows_per_epoch=windows, window=snapshot.step % windows)
    return live


def source_from_run(run_dir: Path, origin: str = "", live: dict | None = None,
                    text_chars: int = TEXT_CHARS) -> Source:
    """The run's last checkpoint on the CPU, its settings and the start of its corpus. Raises PlaygroundError
    (or OSError) with a message for people."""
    run_dir = Path(run_dir)
    path = resolve_checkpoint(run_dir)
    model, vocab, _ = load_model(path, "cpu")
    meta = read_metadata(path)
    config = TrainConfig.from_dict(meta.get("config") or {})
    try:
        spec, glob, _ = run_corpus(meta)
        text = load_corpus(spec, glob=glob).text[:text_chars]
    except (CorpusError, OSError) as exc:
        raise CorpusError(f"The model of {run_dir.name} loaded, but not its corpus: {exc}") from None
    text = "".join(ch for ch in text if ch in vocab.index) if vocab.missing(text) else text
    return Source(model, vocab, config, text, name=run_dir.name, origin=origin or f"run {run_dir.name}",
                  run_dir=run_dir, live=dict(live or {}))


def train_demo(progress: Callable[[float], None] = lambda fraction: None,
               stop: Callable[[], bool] = lambda: False, steps: int | None = None) -> Source:
    """A small LSTM trained for a few seconds on the start of the built-in corpus, kept in memory only: the
    trainer writes to a temporary folder, removed once the model is loaded back. `progress` gets 0..1."""
    from rnn_playground.core.events import StepEvent
    from rnn_playground.core.trainer import Trainer
    settings = dict(DEMO_SETTINGS, steps=steps or DEMO_SETTINGS["steps"])
    text = load_corpus(DEFAULT_CORPUS).text[:DEMO_TEXT_CHARS]
    with tempfile.TemporaryDirectory(prefix="rnn-playground-lesson-") as folder:
        corpus = Path(folder) / "demo.txt"
        corpus.write_text(text, encoding="utf-8")
        config = TrainConfig(corpus=str(corpus), runs_dir=str(Path(folder) / "runs"), run_name="demo", **settings)
        trainer = Trainer(config)
        for event in trainer.run():
            if isinstance(event, StepEvent):
                progress(event.step / settings["steps"])
            if stop():
                trainer.control.stop("user")
        model, vocab, _ = load_model(trainer.run_dir, "cpu")
    if not len(vocab):
        raise PlaygroundError("The demo model did not train: its corpus was empty.")
    config = TrainConfig.from_dict({**config.to_dict(), "corpus": DEFAULT_CORPUS})
    return Source(model, vocab, config, text, name="demo",
                  origin=f"demo model ({settings['steps']} steps on the built-in corpus; open a run for yours)")


def load_source(request: SourceRequest, progress: Callable[[float], None] = lambda fraction: None,
                stop: Callable[[], bool] = lambda: False) -> Source:
    """The Source a request names (slow: for a worker thread)."""
    if request.is_demo:
        return train_demo(progress, stop)
    return source_from_run(request.run_dir, request.origin, dict(request.live))

"""Shared fixtures: small real corpora and tiny real models, trained on the CPU in a second or two."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_TEXT = (
    "The quick brown fox jumps over the lazy dog. \"Quoted words\" (and parens) follow.\n"
    "def f(x):\n    return [x, (x + 1), {'k': x}]\n"
) * 60


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test gets its own runs folder and download cache, and a fixed thread count."""
    monkeypatch.setenv("RNN_PLAYGROUND_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("RNN_PLAYGROUND_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


def tiny_config(corpus: Path, **overrides):
    from core.trainer import TrainConfig
    settings = dict(corpus=str(corpus), hidden=32, layers=2, embed=16, batch=8, seq=16, steps=40,
                    val_every=20, log_every=1, sample_chars=20, lr=1e-2, warmup=5, amp=False,
                    device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def run_to_end(trainer) -> list:
    return list(trainer.run())


@pytest.fixture
def tiny_run(tiny_corpus, tmp_path) -> Path:
    """A finished tiny LSTM run folder (last and best checkpoints, metrics.jsonl)."""
    from core.trainer import Trainer
    trainer = Trainer(tiny_config(tiny_corpus, run_name="tiny", runs_dir=str(tmp_path / "runs")))
    run_to_end(trainer)
    return trainer.run_dir

"""Where a Lesson page's model comes from: the run open, else the run training, else the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.tui.viewmodel.controller import RunState
from rnn_playground.tui.viewmodel.lesson.source import (
    SourceRequest,
    choose_source,
    live_figures,
    load_source,
    source_from_run,
    train_demo,
)
from rnn_playground.tui.viewmodel.monitor import RunSnapshot


def training(run_dir: Path | None, checkpoint: str | None = "last.safetensors") -> RunState:
    snapshot = RunSnapshot(run_name="busy", run_dir=str(run_dir) if run_dir else None, status="training",
                           step=130, epoch=1.3, train_chars=8 * 16 * 50 + 1, config={"batch": 8, "seq": 16},
                           last_checkpoint=checkpoint, last_checkpoint_step=100)
    return RunState(snapshot, "training", active=True)


def test_the_open_run_comes_first_then_the_training_run_then_the_demo(tmp_path):
    opened, busy = tmp_path / "opened", tmp_path / "busy"
    request = choose_source(opened, training(busy))
    assert request.run_dir == opened and "opened" in request.origin and not request.live
    request = choose_source(None, training(busy))
    assert request.run_dir == busy and "training" in request.origin and "100" in request.origin
    live = dict(request.live)
    assert live["step"] == 130 and live["batch"] == 8 and live["seq"] == 16
    assert live["windows_per_epoch"] == 50 and live["window"] == 130 % 50
    # a run with no checkpoint yet, or none at all: the demo
    assert choose_source(None, training(busy, checkpoint=None)).is_demo
    assert choose_source(None, RunState()).is_demo and choose_source(None, None).is_demo


def test_live_figures_without_the_corpus_size_leave_out_the_window():
    snapshot = RunSnapshot(step=7, config={"batch": 4, "seq": 8})
    assert live_figures(snapshot) == {"step": 7, "epoch": 0.0, "batch": 4, "seq": 8, "status": "idle"}


def test_a_run_loads_on_the_cpu_in_eval_mode_with_its_settings_and_corpus(tiny_run, tiny_corpus):
    source = source_from_run(tiny_run, "run tiny", {"step": 3})
    assert source.run_dir == tiny_run and source.name == tiny_run.name and source.live == {"step": 3}
    assert not source.model.training and next(source.model.parameters()).device.type == "cpu"
    assert source.config.hidden == 32 and source.config.layers == 2
    assert source.text == tiny_corpus.read_text(encoding="utf-8")
    assert load_source(SourceRequest(tiny_run, "run tiny")).text == source.text


def test_a_run_whose_corpus_is_gone_says_so(tiny_run, tiny_corpus):
    tiny_corpus.unlink()
    with pytest.raises(PlaygroundError, match="loaded, but not its corpus"):
        source_from_run(tiny_run)


def test_the_demo_model_trains_in_memory_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    seen = []
    source = train_demo(seen.append, steps=6)
    assert source.run_dir is None and source.origin.startswith("demo model (6 steps")
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    assert not source.model.training and source.config.cell == "lstm" and source.config.layers == 2
    assert set(source.text) <= set(source.vocab.chars) and len(source.text) > 1000
    with torch.no_grad():
        logits, _ = source.model(torch.tensor([[source.vocab.index[source.text[0]]]]))
    assert logits.shape[-1] == len(source.vocab)
    assert list(tmp_path.iterdir()) == []

"""Mixed precision: fp16 with a gradient scaler (for GPUs without bf16, as T4 and V100), tried on the CPU
with a plain RNN (torch's CPU LSTM has no fp16 kernel)."""

from __future__ import annotations

import pytest
import torch

from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.events import StepEvent
from rnn_playground.core.trainer import Trainer, autocast_dtype

from .conftest import run_to_end, tiny_config


def fp16_config(tiny_corpus, **overrides):
    return tiny_config(tiny_corpus, cell="rnn", amp=True, amp_dtype="fp16", **overrides)


def test_fp16_trains_with_a_scaler_and_resumes_it_exactly(tiny_corpus, tmp_path):
    through = Trainer(fp16_config(tiny_corpus, steps=40, run_name="through"))
    assert through.scaler is not None and through.amp_dtype == torch.float16
    losses = {e.step: e.loss for e in run_to_end(through) if isinstance(e, StepEvent)}
    assert losses[40] < losses[1] - 0.5
    saved = load_checkpoint(through.run_dir / "last.safetensors").meta["grad_scaler"]
    assert saved["scale"] == through.scaler.get_scale() and saved["_growth_tracker"] == 40

    first = Trainer(fp16_config(tiny_corpus, steps=20, run_name="halves"))
    run_to_end(first)
    second = Trainer.resume(first.run_dir, steps=40)
    assert second.scaler.get_scale() == first.scaler.get_scale()
    resumed = {e.step: e.loss for e in run_to_end(second) if isinstance(e, StepEvent)}
    assert [resumed[s] for s in range(21, 41)] == [losses[s] for s in range(21, 41)]
    assert second.scaler.state_dict() == through.scaler.state_dict()


def test_an_overflow_skips_the_step_and_lowers_the_scale_without_stopping_the_run(tiny_corpus):
    trainer = Trainer(fp16_config(tiny_corpus, steps=30))
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # every gradient overflows fp16 at first
    before = [w.clone() for w in trainer.model.parameters()]
    events = trainer.run()
    first = next(e for e in events if isinstance(e, StepEvent))
    assert first.step == 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))  # skipped
    rest = [e for e in events if isinstance(e, StepEvent)]
    assert rest[-1].step == 30 and rest[-1].skipped_steps == 0  # calibration, not bad steps
    assert trainer.scaler.get_scale() < 2.0**25
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_fp16_lstm_on_the_cpu_is_refused_with_a_way_out(tiny_corpus):
    with pytest.raises(ConfigError, match="no fp16 kernel.*--no-amp"):
        Trainer(tiny_config(tiny_corpus, amp=True, amp_dtype="fp16"))


def test_the_amp_type_follows_the_flags(tiny_corpus):
    cpu = torch.device("cpu")
    assert autocast_dtype(tiny_config(tiny_corpus, amp=False, amp_dtype="fp16"), cpu) is None
    assert autocast_dtype(tiny_config(tiny_corpus, amp=True, amp_dtype="bf16"), cpu) == torch.bfloat16
    assert autocast_dtype(tiny_config(tiny_corpus, amp=True, amp_dtype="fp16"), cpu) == torch.float16
    with pytest.raises(ConfigError, match="--amp-dtype must be one of auto, bf16, fp16"):
        tiny_config(tiny_corpus, amp_dtype="fp8").validate()

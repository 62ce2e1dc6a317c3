"""The training loop on real tiny models: learning, exact resume, control, non-finite steps, budgets."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
import torch

from rnn_playground.core.chartask import CharTask
from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.errors import CorpusError
from rnn_playground.core.events import (
    CheckpointSaved,
    ErrorEvent,
    Finished,
    Paused,
    Resumed,
    RunStarted,
    SampleEvent,
    StepEvent,
    Stopped,
    ValidationEvent,
    event_from_json,
)
from rnn_playground.core.runs import read_status
from rnn_playground.core.trainer import TrainControl, Trainer, learning_rate

from .conftest import run_to_end, tiny_config


def step_losses(events) -> dict[int, float]:
    return {e.step: e.loss for e in events if isinstance(e, StepEvent)}


def test_training_loss_falls(tiny_corpus, tmp_path):
    events = run_to_end(Trainer(tiny_config(tiny_corpus, steps=80, val_every=40)))
    losses = [e.loss for e in events if isinstance(e, StepEvent)]
    vals = [e.val_loss for e in events if isinstance(e, ValidationEvent)]
    assert len(losses) == 80
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 1.0
    assert vals[-1] < vals[0] and vals[-1] < math.log(40) - 1.0


def test_event_stream_and_run_folder(tiny_corpus):
    trainer = Trainer(tiny_config(tiny_corpus, run_name="events"))
    events = run_to_end(trainer)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    assert events[0].total_steps == 40 and events[-1].step == 40
    assert [e.step for e in events if isinstance(e, ValidationEvent)] == [20, 40]
    assert sum(isinstance(e, SampleEvent) and len(e.text) == 20 for e in events) == 2
    saved = {e.reason for e in events if isinstance(e, CheckpointSaved)}
    assert {"best", "validation"} <= saved
    run_dir = trainer.run_dir
    assert (run_dir / "last.safetensors").exists() and (run_dir / "best.safetensors").exists()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [event_from_json(json.loads(line)) for line in lines] == events
    status = read_status(run_dir)
    assert status["state"] == "finished" and status["step"] == 40
    meta = load_checkpoint(run_dir / "last.safetensors").meta
    assert meta["progress"]["step"] == 40 and meta["best_val_loss"] == events[-1].best_val_loss
    assert "".join(meta["vocab"]) == "".join(sorted(set(tiny_corpus.read_text())))
    assert len(meta["corpus"]["fingerprint"]) == 64


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_resume_continues_exactly(tiny_corpus, cell):
    # 9 windows per epoch, so the resumed part crosses epoch boundaries; dropout checks the RNG restore.
    config = tiny_config(tiny_corpus, cell=cell, dropout=0.3, batch=4, seq=32, steps=50, val_every=7)
    whole_trainer = Trainer(config)
    whole = step_losses(run_to_end(whole_trainer))
    first = Trainer(tiny_config(tiny_corpus, cell=cell, dropout=0.3, batch=4, seq=32, steps=23, val_every=7,
                                run_name="split"))
    run_to_end(first)
    resumed_events = run_to_end(Trainer.resume(first.run_dir, steps=50))
    assert resumed_events[0].start_step == 23
    resumed = step_losses(resumed_events)
    assert sorted(resumed) == list(range(24, 51))
    assert all(resumed[s] == whole[s] for s in resumed), [(s, resumed[s], whole[s]) for s in resumed]
    # the weights and their running average come out the same too, bit for bit
    assert_same_tensors(load_checkpoint(whole_trainer.run_dir / "last.safetensors"),
                        load_checkpoint(first.run_dir / "last.safetensors"), prefixes=("model.", "raw."))


def assert_same_tensors(a, b, prefixes) -> None:
    names = {k for k in a.tensors if k.startswith(prefixes)}
    assert names and names == {k for k in b.tensors if k.startswith(prefixes)}
    for name in names:
        assert torch.equal(a.tensors[name], b.tensors[name]), name


# --------------------------------------------------------------------------- weight averaging

def test_averaged_weights_follow_the_moving_average(tiny_corpus):
    trainer = Trainer(tiny_config(tiny_corpus, steps=30, val_every=1000, ema=0.9, log_every=1))
    expected = [w.clone() for w in trainer.model.parameters()]
    for event in trainer.run():
        if isinstance(event, StepEvent):  # yielded right after step `event.step`
            decay = min(0.9, event.step / (9 + event.step))  # (1 + s) / (10 + s) for the step s just taken
            for average, weight in zip(expected, trainer.model.parameters(), strict=True):
                average.mul_(decay).add_(weight.detach(), alpha=1 - decay)
    assert all(torch.allclose(a, e, atol=1e-6) for a, e in zip(trainer.averaged, expected, strict=True))
    assert not all(torch.equal(a, w) for a, w in zip(trainer.averaged, trainer.model.parameters(), strict=True))


def test_validation_samples_and_saved_models_use_the_average(tiny_corpus):
    from rnn_playground.core.chartask import evaluate_char_model
    from rnn_playground.core.loading import load_model
    trainer = Trainer(tiny_config(tiny_corpus, steps=40, val_every=40, ema=0.9))
    events = run_to_end(trainer)
    val_loss = [e.val_loss for e in events if isinstance(e, ValidationEvent)][-1]
    checkpoint = load_checkpoint(trainer.run_dir / "last.safetensors")
    for (name, weight), average in zip(trainer.model.named_parameters(), trainer.averaged, strict=True):
        assert torch.equal(checkpoint.tensors[f"model.{name}"], average)   # what sampling loads
        assert torch.equal(checkpoint.tensors[f"raw.{name}"], weight)      # what resuming continues
    model, _, _ = load_model(trainer.run_dir, "cpu")
    val_ids = trainer.task.val_ids
    assert evaluate_char_model(model, val_ids, trainer.config.val_streams) == pytest.approx(val_loss, abs=1e-6)
    assert evaluate_char_model(trainer.model, val_ids, trainer.config.val_streams) != pytest.approx(val_loss, abs=1e-6)
    # the live model's sampler sees the average too; the training weights are untouched by the swap
    before = [w.clone() for w in trainer.model.parameters()]
    sampler = trainer.snapshot_sampler()
    assert all(torch.equal(s, a) for s, a in zip(sampler._model.parameters(), trainer.averaged, strict=True))
    assert all(torch.equal(w, b) for w, b in zip(trainer.model.parameters(), before, strict=True))


def test_no_averaging_saves_the_weights_alone(tiny_corpus):
    trainer = Trainer(tiny_config(tiny_corpus, steps=10, val_every=10, ema=0.0))
    run_to_end(trainer)
    assert trainer.averaged is None
    checkpoint = load_checkpoint(trainer.run_dir / "last.safetensors")
    assert not checkpoint.group("raw")
    for name, weight in trainer.model.named_parameters():
        assert torch.equal(checkpoint.tensors[f"model.{name}"], weight)
    # resuming it with averaging on starts the average from its weights
    resumed = Trainer.resume(trainer.run_dir, steps=12, ema=0.5)
    assert all(torch.equal(a, w) for a, w in zip(resumed.averaged, resumed.model.parameters(), strict=True))


def test_resume_refuses_corpus_with_unknown_characters(tiny_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("zebra quokka jackal §§§ ¤\n" * 200, encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        Trainer.resume(tiny_run, corpus=str(other), steps=60)
    assert "'§'" in str(info.value) and "'¤'" in str(info.value)


def test_pause_resume_stop_and_save_now(tiny_corpus):
    control = TrainControl()
    trainer = Trainer(tiny_config(tiny_corpus, steps=100_000, val_every=1000), control)
    seen: list = []
    paused_at = threading.Event()

    def consume():
        for event in trainer.run():
            seen.append(event)
            if isinstance(event, Paused):
                paused_at.set()

    thread = threading.Thread(target=consume)
    thread.start()
    while not any(isinstance(e, StepEvent) and e.step >= 5 for e in seen):
        thread.join(0.01)
    control.pause()
    assert paused_at.wait(10)
    frozen = trainer.progress.step
    thread.join(0.3)
    assert trainer.progress.step == frozen  # nothing moves while paused
    control.request_save()  # saving works while paused
    while not any(isinstance(e, CheckpointSaved) and e.reason == "requested" for e in seen):
        thread.join(0.01)
    control.resume()
    while trainer.progress.step < frozen + 5:
        thread.join(0.01)
    control.stop()
    thread.join(10)
    assert not thread.is_alive()
    kinds = [type(e) for e in seen]
    assert kinds.index(Paused) < kinds.index(Resumed) < kinds.index(Stopped)
    requested = [e for e in seen if isinstance(e, CheckpointSaved) and e.reason == "requested"]
    assert requested and requested[0].step == frozen
    stop = seen[-1]
    assert isinstance(stop, Stopped) and stop.reason == "user"
    assert load_checkpoint(trainer.run_dir / "last.safetensors").meta["progress"]["step"] == stop.step
    assert read_status(trainer.run_dir)["state"] == "stopped"


class FlakyTask(CharTask):
    """Fault injection: the loss is NaN on chosen steps, as after a bad batch."""

    bad_calls: set[int] = set()

    def loss(self, window, state, step):
        self.calls = getattr(self, "calls", 0) + 1
        loss, state = super().loss(window, state, step)
        return (loss * float("nan") if self.calls in self.bad_calls else loss), state


def test_non_finite_steps_are_skipped_without_touching_weights(tiny_corpus):
    from rnn_playground.core.corpus import Vocab, load_corpus
    config = tiny_config(tiny_corpus, steps=6, val_every=100)
    corpus = load_corpus(config.corpus)
    torch.manual_seed(config.seed)
    task = FlakyTask(config, corpus, Vocab.from_text(corpus.text), torch.device("cpu"))
    task.bad_calls = {3, 4}
    trainer = Trainer(config, task=task)
    snapshots = []
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, StepEvent):
            snapshots.append((event.step, trainer.model.head.weight.detach().clone()))
    weights = dict(snapshots)
    assert torch.equal(weights[2], weights[3]) and torch.equal(weights[3], weights[4])
    assert not torch.equal(weights[4], weights[5])
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [math.isnan(e.loss) for e in steps] == [False, False, True, True, False, False]
    assert steps[-1].skipped_steps == 2
    assert isinstance(events[-1], Finished)


def test_persistent_non_finite_loss_stops_and_saves_nothing(tiny_corpus):
    from rnn_playground.core.trainer import MAX_BAD_STEPS
    trainer = Trainer(tiny_config(tiny_corpus, steps=50, val_every=100))
    with torch.no_grad():
        trainer.model.head.bias[0] = float("nan")
    events = run_to_end(trainer)
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.step == MAX_BAD_STEPS
    assert error.message == (f"Stopped: the loss was NaN or infinite for {MAX_BAD_STEPS} steps in a row (step "
                             f"{MAX_BAD_STEPS}). Lower --lr, or check the data; no checkpoint was saved in this "
                             "run yet (one is saved every --val-every steps, 100 here), so there is nothing to "
                             "resume from.")
    assert "kept" not in error.message
    assert not list(trainer.run_dir.glob("*.safetensors"))
    assert read_status(trainer.run_dir)["state"] == "error"


def test_non_finite_loss_after_a_checkpoint_names_the_checkpoint_kept(tiny_corpus):
    """The loss turns NaN from the 13th step on: the validation at step 10 saved a checkpoint, and the
    error names it (file and step); the file on disk is still step 10's. Resuming from it, a run that
    goes bad at once names the checkpoint it resumed from."""
    from rnn_playground.core.corpus import Vocab, load_corpus
    from rnn_playground.core.trainer import MAX_BAD_STEPS
    config = tiny_config(tiny_corpus, steps=50, val_every=10)
    corpus = load_corpus(config.corpus)
    torch.manual_seed(config.seed)
    task = FlakyTask(config, corpus, Vocab.from_text(corpus.text), torch.device("cpu"))
    task.bad_calls = set(range(13, 51))
    trainer = Trainer(config, task=task)
    events = run_to_end(trainer)
    error = events[-1]
    bad_from = 13
    assert isinstance(error, ErrorEvent) and error.step == bad_from + MAX_BAD_STEPS - 1
    assert error.message == (f"Stopped: the loss was NaN or infinite for {MAX_BAD_STEPS} steps in a row (step "
                             f"{error.step}). Lower --lr, or check the data; the last checkpoint, "
                             f"last.safetensors from step 10, was kept in {trainer.run_dir}.")
    assert load_checkpoint(trainer.run_dir / "last.safetensors").meta["progress"]["step"] == 10
    assert read_status(trainer.run_dir)["state"] == "error"

    resumed = Trainer.resume(trainer.run_dir, steps=60)
    with torch.no_grad():
        resumed.model.head.bias[0] = float("nan")
    error = run_to_end(resumed)[-1]
    assert isinstance(error, ErrorEvent) and error.step == 10 + MAX_BAD_STEPS
    assert error.message.endswith(f"the last checkpoint, last.safetensors from step 10, was kept in "
                                  f"{trainer.run_dir}.")


@pytest.mark.parametrize("min_lr, shown", [(-1e-4, "-0.0001"), (float("nan"), "nan"), (1e38, "1e+38")])
def test_min_lr_outside_zero_to_sane_is_refused(tiny_corpus, min_lr, shown):
    from rnn_playground.core.errors import ConfigError
    with pytest.raises(ConfigError) as refused:
        Trainer(tiny_config(tiny_corpus, lr=1e-2, min_lr=min_lr))
    assert str(refused.value) == (f"--min-lr (the floor the learning rate decays to) must be zero or positive "
                                  f"(and sane), got {shown}. Set --min-lr between 0 and --lr (0.01).")
    tiny_config(tiny_corpus, lr=1e-2, min_lr=0.0).validate()


def test_a_floor_above_the_peak_holds_the_rate_at_the_peak(tiny_corpus):
    """A small --lr with the default --min-lr (1e-4): after warm-up the rate stays at --lr; it never
    jumps above it to the floor."""
    from rnn_playground.core.trainer import learning_rate
    config = tiny_config(tiny_corpus, lr=5e-5, warmup=10, lr_half_life=100)
    assert config.min_lr > config.lr
    config.validate()
    rates = [learning_rate(config, step) for step in range(500)]
    assert max(rates) == pytest.approx(5e-5) and rates[10:] == [pytest.approx(5e-5)] * 490
    assert rates[:10] == sorted(rates[:10])  # warm-up still rises to the peak
    decaying = tiny_config(tiny_corpus, lr=1e-3, warmup=10, lr_half_life=100)
    assert learning_rate(decaying, 10 + 100) == pytest.approx(5e-4)
    assert learning_rate(decaying, 10_000) == pytest.approx(decaying.min_lr)


def test_out_of_memory_ends_the_run_with_advice_and_keeps_the_last_checkpoint(tiny_corpus, monkeypatch):
    """Fault injection (a real out-of-memory needs a GPU): the 15th step's forward pass raises
    torch.OutOfMemoryError, as CUDA's allocator does."""
    from rnn_playground.core.runs import is_live, read_metrics
    trainer = Trainer(tiny_config(tiny_corpus, steps=50, val_every=10))
    real_loss, calls = trainer.task.loss, []

    def loss(window, state, step):
        calls.append(window)
        if len(calls) == 15:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_loss(window, state, step)

    monkeypatch.setattr(trainer.task, "loss", loss)
    events = run_to_end(trainer)
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.step == 14
    assert error.message == ("Out of memory on cpu at step 14. Lower --batch, --seq or --hidden and start again.")
    assert not any(isinstance(e, (Finished, Stopped)) for e in events)
    status = read_status(trainer.run_dir)
    assert status["state"] == "error" and status["step"] == 14
    assert not is_live(trainer.run_dir)
    records, _ = read_metrics(trainer.run_dir)
    assert records[-1]["event"] == "error" and records[-1]["message"] == error.message
    # What was saved before (the validation at step 10) is kept.
    assert load_checkpoint(trainer.run_dir / "last.safetensors").meta["progress"]["step"] == 10


def test_epoch_budget_and_schedule(tiny_corpus):
    trainer = Trainer(tiny_config(tiny_corpus, steps=None, epochs=2, val_every=1000))
    events = run_to_end(trainer)
    assert events[-1].step == 2 * trainer.task.windows
    config = tiny_config(tiny_corpus, lr=1e-2, warmup=10, lr_half_life=100, min_lr=1e-3)
    assert learning_rate(config, 0) == pytest.approx(1e-3)
    assert learning_rate(config, 9) == pytest.approx(1e-2)
    assert learning_rate(config, 110) == pytest.approx(5e-3)
    assert learning_rate(config, 10_000) == pytest.approx(1e-3)


def test_minutes_budget_stops(tiny_corpus):
    events = run_to_end(Trainer(tiny_config(tiny_corpus, steps=None, minutes=0.02, val_every=100000)))
    assert isinstance(events[-1], Finished)
    assert 0 < events[-1].step and events[-1].elapsed_s < 10


def test_a_used_run_name_is_refused(tiny_run, tiny_corpus, tmp_path):
    from rnn_playground.core.errors import ConfigError
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        Trainer(tiny_config(tiny_corpus, run_name="tiny", runs_dir=str(tmp_path / "runs")))


def test_snapshots_sample_without_disturbing_training(tiny_corpus):
    from rnn_playground.core.sampling import SampleSettings
    plain = step_losses(run_to_end(Trainer(tiny_config(tiny_corpus, steps=30, dropout=0.2))))
    trainer = Trainer(tiny_config(tiny_corpus, steps=30, dropout=0.2))
    texts, losses = [], {}
    done = threading.Event()

    def snapshot_often():
        while not done.is_set():
            sampler = trainer.snapshot_sampler()
            texts.append(sampler.generate(SampleSettings(length=20, seed=1)))

    thread = threading.Thread(target=snapshot_often)
    thread.start()
    try:
        for event in trainer.run():
            if isinstance(event, StepEvent):
                losses[event.step] = event.loss
    finally:
        done.set()
        thread.join()
    assert texts and all(len(t) == 20 for t in texts)
    assert losses == plain
    final = trainer.snapshot_sampler()  # the averaged weights, what the run's checkpoints hold
    for sampled, average in zip(final._model.parameters(), trainer.averaged, strict=True):
        assert torch.equal(sampled, average)


# --------------------------------------------------------------------------- validation by time

class SlowTask(CharTask):
    """The tiny character task with each step (and validation) made slower by a real pause, as
    a large model on a busy CPU would be."""

    def __init__(self, config, step_s: float = 0.0, validation_s: float = 0.0):
        from rnn_playground.core.corpus import Vocab, load_corpus
        corpus = load_corpus(config.corpus)
        torch.manual_seed(config.seed)
        super().__init__(config, corpus, Vocab.from_text(corpus.text), torch.device("cpu"))
        self.step_s, self.validation_s = step_s, validation_s

    def loss(self, window, state, step):
        time.sleep(self.step_s)
        return super().loss(window, state, step)

    def evaluate(self, autocast, whole=False):
        time.sleep(self.validation_s)
        return super().evaluate(autocast, whole)


def test_slow_steps_validate_by_time_before_the_step_interval(tiny_corpus):
    # Every step takes at least 20 ms and validation at least 50 ms; the time rule (first after
    # 10 ms, then spaced so validation is at most a tenth of the time) must validate long before
    # step 1000, and space later validations by at least 9 x 50 ms of run time.
    config = tiny_config(tiny_corpus, steps=60, val_every=1000, val_seconds=0.01, dropout=0.2)
    events = run_to_end(Trainer(config, task=SlowTask(config, step_s=0.02, validation_s=0.05)))
    validated = [e.step for e in events if isinstance(e, ValidationEvent)]
    assert validated[0] == 1  # the first step already took longer than val_seconds
    assert validated[-1] == 60 and len(validated) >= 3
    assert [e.step for e in events if isinstance(e, SampleEvent)] == validated
    elapsed = {e.step: e.elapsed_s for e in events if isinstance(e, StepEvent)}
    by_time = validated[:-1]  # the last one is the end of the budget
    gaps = [elapsed[b] - elapsed[a] for a, b in zip(by_time, by_time[1:], strict=False)]
    assert gaps and min(gaps) >= 9 * 0.05, gaps
    # each step event says when the next validation comes: by time here (the step rule is far off)
    after_first = [e for e in events if isinstance(e, StepEvent) and 1 < e.step < by_time[1]]
    assert after_first and all(e.next_val_step is None and 0 <= e.next_val_in_s for e in after_first)


def test_validation_by_time_leaves_the_training_losses_alone(tiny_corpus):
    # Validation and its sample must not draw on the training RNG (dropout) or touch the weights.
    plain_config = tiny_config(tiny_corpus, steps=30, val_every=1000, dropout=0.3)
    plain = step_losses(run_to_end(Trainer(plain_config, task=SlowTask(plain_config))))
    timed_config = tiny_config(tiny_corpus, steps=30, val_every=1000, dropout=0.3, val_seconds=0.005)
    timed_events = run_to_end(Trainer(timed_config, task=SlowTask(timed_config, step_s=0.01)))
    assert len([e for e in timed_events if isinstance(e, ValidationEvent)]) >= 2
    assert step_losses(timed_events) == plain


def test_step_events_say_the_next_validation_by_steps_when_steps_are_quick(tiny_corpus):
    config = tiny_config(tiny_corpus, steps=30, val_every=10, val_seconds=3600)
    steps = [e for e in run_to_end(Trainer(config, task=SlowTask(config))) if isinstance(e, StepEvent)]
    assert [(e.step, e.next_val_step) for e in steps if e.step in (1, 9, 10, 11, 29)] == \
        [(1, 10), (9, 10), (10, 20), (11, 20), (29, 30)]
    assert all(e.next_val_in_s is None for e in steps)


def test_val_seconds_is_checked(tiny_corpus):
    from rnn_playground.core.errors import ConfigError
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="--val-seconds must be zero"):
            Trainer(tiny_config(tiny_corpus, val_seconds=bad))

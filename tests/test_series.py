"""The time-series model on real tiny runs: windows, learning, predictions, forecasts, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnn_playground.core.checkpoint import load_checkpoint, save_checkpoint
from rnn_playground.core.errors import CheckpointError, ConfigError
from rnn_playground.core.events import (
    CheckpointSaved,
    Finished,
    Paused,
    RunStarted,
    SampleEvent,
    StepEvent,
    Stopped,
    ValidationEvent,
)
from rnn_playground.core.loading import load_model
from rnn_playground.core.runs import list_runs, read_status
from rnn_playground.core.series import (
    FREE_RUN,
    LAST_VALUE,
    MODEL,
    PRESETS,
    SEASONAL,
    SeriesConfig,
    SeriesData,
    SeriesRNN,
    SeriesTask,
    load_data,
    load_series,
    make_config,
    new_series_trainer,
    predict,
    resume_series,
    teacher_forced,
)
from rnn_playground.core.series_data import SeriesError, generate_signal
from rnn_playground.core.trainer import TrainControl, Trainer


def tiny(**overrides) -> SeriesConfig:
    settings = dict(signal="sine", length=600, hidden=12, batch=4, seq=20, steps=40, val_every=20, log_every=1,
                    device="cpu", warmup=5)
    settings.update(overrides)
    if settings.get("csv"):
        del settings["length"]  # a built-in signal's setting, refused with a CSV file
    return make_config(**settings)


def csv_file(tmp_path, rows: int = 400):
    t = np.arange(rows)
    x = np.cos(t * np.pi / 20)
    value = 10 + 3 * np.sin(t * np.pi / 20) + 0.5 * x
    lines = ["day,value,x"] + [f"{i},{v:.6f},{c:.6f}" for i, v, c in zip(t, value, x, strict=True)]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- settings

def test_config_defaults_preset_and_validation():
    config = make_config()
    assert config.source == "signal:sine" and config.val_fraction == 0.2
    train = config.train_config()
    assert train.steps == SeriesConfig.DEFAULT_STEPS and train.corpus == "signal:sine" and train.seq == 20
    course = make_config(preset="course")
    assert (course.cell, course.hidden, course.layers, course.lr, course.batch, course.seq, course.steps) == \
        ("rnn", 32, 1, 0.01, 1, 20, 75)
    assert course.warmup == 0 and course.lr_half_life == 0  # constant lr 0.01, as in the course
    assert make_config(preset="course", minutes=1.0).steps is None  # a given budget replaces the preset's
    assert make_config(preset="course", cell="gru").cell == "gru"    # given settings win over the preset
    assert set(PRESETS) == {"course"}
    with pytest.raises(ConfigError, match="either --signal or --csv"):
        make_config(signal="sine", csv="x.csv")
    with pytest.raises(ConfigError, match="--signal must be a built-in signal .*got 'saw'"):
        make_config(signal="saw")
    with pytest.raises(ConfigError, match="--preset must be one of: course"):
        make_config(preset="fast")
    with pytest.raises(ConfigError, match="--cell must be one of lstm, gru, rnn"):
        make_config(cell="transformer")
    with pytest.raises(ConfigError, match="--hidden must be at least 1"):
        make_config(hidden=0)
    with pytest.raises(ConfigError, match="--period"):
        make_config(period=-1)


def test_settings_for_the_other_data_source_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"--column, --inputs and --drop-bad-rows apply to a CSV file, but the data "
                                          r"here is the built-in signal 'sine', so they would be ignored\. Leave "
                                          r"them out, or read a file with --csv FILE\."):
        make_config(signal="sine", column="foo", inputs="bar", drop_bad_rows=True)
    with pytest.raises(ConfigError, match=r"--header applies to a CSV file, but the data here is the built-in "
                                          r"signal 'sine'"):
        make_config(header="yes")  # no --signal: the default sine
    path = str(csv_file(tmp_path))
    with pytest.raises(ConfigError, match=rf"--length, --noise and --freqs set up a built-in signal, but the data "
                                          rf"here is the CSV file {path}, so they would be ignored\. Leave them "
                                          r"out, or use --signal NAME instead of --csv\."):
        make_config(csv=path, freqs="2", noise=0.3, length=50)
    # A setting given counts even at its default value; one left out does not.
    with pytest.raises(ConfigError, match="--data-seed sets up a built-in signal"):
        make_config(csv=path, data_seed=0)
    assert make_config(csv=path, column="value", header="auto", drop_bad_rows=False).length == 2000
    assert make_config(signal="noisy-sine", length=100, noise=0.3, freqs="2", data_seed=4).csv is None
    # Without a list of what was given, settings that differ from their defaults count.
    SeriesConfig(csv=path).validate()
    with pytest.raises(ConfigError, match="--noise sets up a built-in signal"):
        SeriesConfig(csv=path, noise=0.1).validate()


def test_freqs_a_signal_would_ignore_are_refused():
    with pytest.raises(SeriesError, match=r"--freqs gives 2 frequencies, but the 'sine' signal has one\. .*"
                                          r"use --signal sines"):
        make_config(freqs="1,2")
    with pytest.raises(SeriesError, match="'random-walk' signal has no frequency, so it takes no --freqs"):
        make_config(signal="random-walk", freqs="1")
    assert make_config(signal="sines", freqs="1,2,3").freqs == "1,2,3"


# --------------------------------------------------------------------------- windows

def test_windows_are_contiguous_streams_with_next_value_targets():
    values = np.arange(203, dtype=np.float64)
    data = SeriesData(values, ("ramp",), "ramp")
    config = make_config(batch=3, seq=10, val_fraction=0.2, device="cpu")
    task = SeriesTask(config, data, "cpu")
    assert task.split == 162 and task.train_chars == 162 and task.val_chars == 41
    # 161 input/target pairs -> 3 streams of 50 columns (5 windows of 10)
    assert task.windows == 5 and task.tokens_per_step == 30
    norm = task.normalizer
    assert np.isclose(norm.mean[0], values[:162].mean())  # fitted on the training part only
    for w in range(task.windows):
        start = w * 10
        inputs = task.inputs[:, start:start + 10]
        targets = task.targets[:, start:start + 10]
        assert inputs.shape == (3, 10, 1) and targets.shape == (3, 10, 1)
        raw_in = norm.inverse_target(inputs[..., 0].double().numpy())
        raw_out = norm.inverse_target(targets[..., 0].double().numpy())
        expected = np.arange(3)[:, None] * 50 + start + np.arange(10)
        np.testing.assert_allclose(raw_in, expected, atol=1e-4)
        np.testing.assert_allclose(raw_out, expected + 1, atol=1e-4)
    assert raw_out.max() < 162  # no target from the validation part


def test_too_little_data_for_the_windows_is_a_clear_error():
    data = SeriesData(np.arange(50.0), ("short",), "short.csv")
    with pytest.raises(SeriesError, match=r"short\.csv: 40 training points are too few for --batch 8 x --seq 20"
                                          r".*lower --batch to at most 1"):
        SeriesTask(make_config(batch=8, seq=20), data, "cpu")
    with pytest.raises(SeriesError, match=r"--period 45 is longer than the training part of short.csv \(40 points\)"):
        SeriesTask(make_config(batch=1, seq=5, period=45), data, "cpu")
    with pytest.raises(SeriesError, match="lower --seq to at most 9"):
        SeriesTask(make_config(batch=1, seq=20, val_fraction=0.8), SeriesData(np.arange(50.0), ("s",), "s"), "cpu")


def test_an_automatic_period_longer_than_the_training_part_drops_the_seasonal_baseline():
    config = make_config(signal="sine", length=30, batch=1, seq=5)
    task = SeriesTask(config, load_data(config), "cpu")
    assert task.split == 24 and task.period is None
    [note] = task.notes
    assert "no seasonal-naive baseline: signal sine repeats every 40 points, more than its 24-point" in note
    assert "--length" in note and "--val-fraction" in note and "--period" not in note
    result = predict(task.model, task.data, task.normalizer, config.val_fraction, period=task.period)
    assert result.seasonal is None and SEASONAL not in [m.name for m in result.metrics]
    assert SeriesTask(make_config(signal="sine", length=100, batch=1, seq=5), load_data(
        make_config(signal="sine", length=100)), "cpu").notes == []


def test_multivariate_inputs_shape(tmp_path):
    config = tiny(signal=None, csv=str(csv_file(tmp_path)), column="value", inputs="x")
    task = SeriesTask(config, load_data(config), "cpu")
    assert task.inputs.shape[-1] == 2 and task.targets.shape[-1] == 1
    assert task.model.rnn.input_size == 2 and task.model.head.out_features == 1
    out, state = task.model(task.inputs[:, :20], task.init_state())
    assert out.shape == (4, 20, 1) and state[0].shape == (1, 4, 12)


# --------------------------------------------------------------------------- training

def test_training_beats_the_last_value_baseline_on_sine():
    trainer = new_series_trainer(tiny(length=800, hidden=16, batch=8, steps=150, val_every=75, lr_half_life=100))
    events = list(trainer.run())
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    vals = [e.val_loss for e in events if isinstance(e, ValidationEvent)]
    assert len(vals) == 2 and vals[-1] < vals[0]
    task = trainer.task
    result = predict(task.model, task.data, task.normalizer, 0.2, period=task.period)
    model, last = result.metric(MODEL), result.metric(LAST_VALUE)
    assert model.mse < 0.02 * last.mse and model.mae < 0.15 * last.mae  # about 0.2% and 4% here
    assert result.metric(SEASONAL).mse < 1e-20  # a pure sine repeats exactly every 40 points
    # the validation loss is the same one-step MSE, in standardized units
    assert np.isclose(vals[-1], model.mse / task.normalizer.std[0] ** 2, rtol=1e-3)
    samples = [e.text for e in events if isinstance(e, SampleEvent)]
    assert samples and samples[-1].startswith("validation MSE: model (one step)")


def test_run_folder_checkpoint_and_metadata():
    trainer = new_series_trainer(tiny(run_name="sine-run"))
    events = list(trainer.run())
    run_dir = trainer.run_dir
    assert run_dir.name == "sine-run" and (run_dir / "last.safetensors").exists()
    assert (run_dir / "best.safetensors").exists() and read_status(run_dir)["state"] == "finished"
    saved = {e.reason for e in events if isinstance(e, CheckpointSaved)}
    assert {"best", "validation"} <= saved
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["event"] == "started" and lines[-1]["event"] == "finished"
    meta = load_checkpoint(run_dir / "last.safetensors").meta
    assert meta["kind"] == "series" and meta["series"]["signal"] == "sine"
    assert meta["model"] == {"inputs": 1, "cell": "lstm", "hidden": 12, "layers": 1, "dropout": 0.0, "outputs": 1}
    assert meta["data"]["split"] == 480 and meta["data"]["period"] == 40
    assert np.isclose(meta["normalizer"]["mean"][0], generate_signal("sine", 600)[:480].mean())
    [info] = list_runs(run_dir.parent)
    assert info.kind == "series" and info.model == "LSTM 1x12" and info.step == 40
    # a character-model loader refuses it, and vice versa
    with pytest.raises(CheckpointError, match="series"):
        load_model(run_dir)
    with pytest.raises(CheckpointError, match="series"):
        Trainer.resume(run_dir)


def test_standardization_is_fitted_on_the_training_part_only():
    # A random walk drifts: its training part and the whole series have different means and spreads.
    trainer = new_series_trainer(tiny(signal="random-walk", noise=1.0, data_seed=3, length=400, steps=2,
                                      run_name="walk"))
    list(trainer.run())
    values = trainer.task.data.target
    train, whole = values[:320], values
    assert abs(train.mean() - whole.mean()) > 1.0 and abs(train.std() - whole.std()) > 0.1
    stored = load_checkpoint(trainer.run_dir / "last.safetensors").meta["normalizer"]
    assert stored["mean"][0] == pytest.approx(train.mean(), abs=1e-9)
    assert stored["std"][0] == pytest.approx(train.std(), abs=1e-9)
    assert load_series(trainer.run_dir).normalizer.mean[0] == pytest.approx(train.mean(), abs=1e-9)


def test_pause_then_stop_a_series_run_saves_a_checkpoint():
    control = TrainControl()
    trainer = new_series_trainer(tiny(steps=100_000, val_every=100_000, run_name="paused"), control)
    events = []
    for event in trainer.run():  # one thread: pause after step 3, stop once the pause is seen
        events.append(event)
        if isinstance(event, StepEvent) and event.step == 3:
            control.pause()
        elif isinstance(event, Paused):
            assert trainer.progress.step == 3
            control.stop()
    kinds = [type(e) for e in events]
    assert Paused in kinds and kinds.index(Paused) < kinds.index(Stopped) == len(events) - 1
    assert max(e.step for e in events if isinstance(e, StepEvent)) == 3  # no step after the pause
    stopped = events[-1]
    assert stopped.step == 3 and stopped.reason == "user"
    [saved] = [e for e in events if isinstance(e, CheckpointSaved) and e.reason == "stop"]
    meta = load_checkpoint(saved.path).meta
    assert meta["kind"] == "series" and meta["progress"]["step"] == 3
    assert read_status(trainer.run_dir)["state"] == "stopped"
    assert resume_series(trainer.run_dir, steps=5).progress.step == 3


def test_checkpoint_round_trip_gives_the_same_predictions():
    trainer = new_series_trainer(tiny(cell="gru"))
    list(trainer.run())
    task = trainer.task
    direct = predict(task.model, task.data, task.normalizer, 0.2, steps=15, period=task.period)
    loaded = load_series(trainer.run_dir, device="cpu")
    assert isinstance(loaded.model, SeriesRNN) and loaded.model.config.cell == "gru"
    assert loaded.normalizer == task.normalizer and loaded.config == task.config
    again = loaded.predict(15)
    for name in ("series", "target", "one_step", "free_run", "last_value", "seasonal", "forecast"):
        np.testing.assert_array_equal(getattr(again, name), getattr(direct, name))
    assert [m.mse for m in again.metrics] == [m.mse for m in direct.metrics]
    best = load_series(trainer.run_dir, device="cpu", prefer="best.safetensors")
    assert best.checkpoint.path.name == "best.safetensors"


def test_load_series_refuses_other_checkpoints(tmp_path):
    path = save_checkpoint(tmp_path / "char.safetensors", {"model.w": torch.zeros(2)}, {"kind": "char"})
    with pytest.raises(CheckpointError, match="is a char checkpoint, not a time-series model"):
        load_series(path)
    with pytest.raises(CheckpointError, match="No checkpoint or run folder"):
        load_series(tmp_path / "missing")


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_resume_continues_exactly(cell):
    # 3 windows per epoch, so the resumed part crosses epoch boundaries; dropout checks the RNG restore.
    settings = dict(cell=cell, layers=2, dropout=0.2, length=300, batch=3, seq=20, steps=16, val_every=5)
    whole = list(new_series_trainer(tiny(run_name="whole", **settings)).run())
    first = new_series_trainer(tiny(run_name="split", **{**settings, "steps": 7}))
    list(first.run())
    assert first.task.windows == 3
    resumed = resume_series(first.run_dir, steps=16)
    assert resumed.progress.step == 7 and resumed.run_dir == first.run_dir
    rest = list(resumed.run())
    losses = {e.step: e.loss for e in whole if isinstance(e, StepEvent)}
    for e in rest:
        if isinstance(e, StepEvent):
            assert e.loss == pytest.approx(losses[e.step], rel=1e-5, abs=1e-7), e.step
    assert rest[-1].step == 16
    char = save_checkpoint(first.run_dir.parent / "char.safetensors", {"model.w": torch.zeros(1)}, {"kind": "char"})
    with pytest.raises(CheckpointError, match="not a time-series model"):
        resume_series(char)


def test_resume_on_new_data_keeps_the_standardization(tmp_path):
    trainer = new_series_trainer(tiny(signal=None, csv=str(csv_file(tmp_path)), column="value", steps=10))
    list(trainer.run())
    stored = trainer.task.normalizer
    (tmp_path / "more").mkdir()
    longer = csv_file(tmp_path / "more", rows=500)
    resumed = resume_series(trainer.run_dir, csv=str(longer), steps=12)
    assert resumed.task.normalizer == stored and resumed.task.data.points == 500
    assert list(resumed.run())[-1].step == 12
    with pytest.raises(SeriesError, match="trained on 1 feature"):
        resume_series(trainer.run_dir, inputs="x")
    with pytest.raises(ConfigError, match="--noise sets up a built-in signal"):
        resume_series(trainer.run_dir, noise=0.5)
    # Switching to a built-in signal drops the CSV's settings (its --column), so nothing stale is refused.
    assert resume_series(trainer.run_dir, signal="sine", length=400, steps=12).task.data.source == "signal sine"


def test_a_moved_training_csv_is_named_with_the_fix(tmp_path):
    path = csv_file(tmp_path)
    trainer = new_series_trainer(tiny(signal=None, csv=str(path), column="value", steps=2))
    list(trainer.run())
    moved = path.rename(tmp_path / "moved.csv")
    message = rf"The run's data file {path} \(the path stored with .*last\.safetensors\) is not there any more\. " \
              r"If it has moved, give its new path with --csv NEWPATH\."
    with pytest.raises(SeriesError, match=message):
        load_series(trainer.run_dir).data()
    with pytest.raises(SeriesError, match=message):
        resume_series(trainer.run_dir, steps=4)
    assert load_series(trainer.run_dir).data(str(moved)).points == 400
    assert resume_series(trainer.run_dir, csv=str(moved), steps=4).task.data.source == str(moved)


# --------------------------------------------------------------------------- predictions

def test_forecast_length_and_feedback():
    trainer = new_series_trainer(tiny(steps=30))
    list(trainer.run())
    task = trainer.task
    result = predict(task.model, task.data, task.normalizer, 0.2, steps=25, period=40)
    n = task.data.points
    assert result.forecast.shape == (25,) and result.forecast_index.tolist() == list(range(n, n + 25))
    assert result.val_index.tolist() == list(range(480, 600)) and result.split == 480
    for name in ("target", "one_step", "free_run", "last_value", "seasonal"):
        assert getattr(result, name).shape == (120,), name
    np.testing.assert_array_equal(result.last_value, task.data.target[479:599])
    np.testing.assert_array_equal(result.seasonal, task.data.target[440:560])
    # Feeding predictions back equals teacher forcing on the series extended by those predictions.
    norm = task.normalizer
    extended = np.concatenate([task.data.target, result.forecast[:-1]])[:, None]
    forced, _ = teacher_forced(task.model, torch.tensor(norm.transform(extended), dtype=torch.float32))
    np.testing.assert_allclose(norm.inverse_target(forced[n - 1:].double().numpy()), result.forecast, atol=1e-5)
    # The free run across the validation range feeds back its own predictions from the split on.
    head = np.concatenate([task.data.target[:480], result.free_run[:-1]])[:, None]
    forced, _ = teacher_forced(task.model, torch.tensor(norm.transform(head), dtype=torch.float32))
    np.testing.assert_allclose(norm.inverse_target(forced[479:].double().numpy()), result.free_run, atol=1e-5)
    # ... whereas one-step predictions read the true values.
    np.testing.assert_allclose(result.one_step[0], result.free_run[0], atol=1e-6)
    assert not np.allclose(result.one_step, result.free_run)
    names = [m.name for m in result.metrics]
    assert names == [MODEL, LAST_VALUE, SEASONAL, FREE_RUN]
    m = result.metric(LAST_VALUE)
    diff = result.last_value - result.target
    assert m.mse == pytest.approx(np.mean(diff ** 2)) and m.mae == pytest.approx(np.mean(np.abs(diff)))
    assert predict(task.model, task.data, task.normalizer, 0.2).forecast.shape == (0,)
    assert predict(task.model, task.data, task.normalizer, 0.2, period=None).seasonal is None
    with pytest.raises(SeriesError, match="--period 500 is longer than the training part"):
        predict(task.model, task.data, task.normalizer, 0.2, period=500)
    with pytest.raises(SeriesError, match="--steps must be zero or positive"):
        predict(task.model, task.data, task.normalizer, 0.2, steps=-1)
    with pytest.raises(SeriesError, match="--period must be 0 .* or a positive number of points, got -2"):
        predict(task.model, task.data, task.normalizer, 0.2, period=-2)
    assert predict(task.model, task.data, task.normalizer, 0.2, period=0).seasonal is None


def test_predictions_are_in_original_units(tmp_path):
    config = tiny(signal=None, csv=str(csv_file(tmp_path)), column="value", steps=60, hidden=16)
    trainer = new_series_trainer(config)
    list(trainer.run())
    task = trainer.task
    result = predict(task.model, task.data, task.normalizer, 0.2, steps=10)
    assert result.period is None and result.seasonal is None and len(result.metrics) == 3
    assert 5 < result.one_step.mean() < 15 and 5 < result.forecast.mean() < 15  # around the data's level of 10
    assert result.metric(MODEL).mse < result.metric(LAST_VALUE).mse


def test_extra_inputs_predict_but_cannot_forecast_past_the_end(tmp_path):
    config = tiny(signal=None, csv=str(csv_file(tmp_path)), column="value", inputs="x", steps=10)
    trainer = new_series_trainer(config)
    list(trainer.run())
    task = trainer.task
    result = predict(task.model, task.data, task.normalizer, 0.2)
    assert result.one_step.shape == result.free_run.shape == (80,)
    with pytest.raises(SeriesError, match=r"future values of the extra input columns \(x\)"):
        predict(task.model, task.data, task.normalizer, 0.2, steps=5)
    loaded = load_series(trainer.run_dir)
    assert loaded.model.config.inputs == 2 and loaded.predict(0).metrics


def test_no_validation_range():
    trainer = new_series_trainer(tiny(val_fraction=0.0, steps=5))
    events = list(trainer.run())
    assert not [e for e in events if isinstance(e, ValidationEvent)]
    result = predict(trainer.task.model, trainer.task.data, trainer.task.normalizer, 0.0, steps=3)
    assert result.metrics == [] and result.target.shape == (0,) and result.forecast.shape == (3,)

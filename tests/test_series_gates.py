"""The series gate tracer (core.series_gates) equals the SeriesRNN module's own forward."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnn_playground.core.errors import TraceError
from rnn_playground.core.series import SeriesModelConfig, SeriesRNN, predict, teacher_forced
from rnn_playground.core.series_data import Normalizer, SeriesData
from rnn_playground.core.series_gates import SeriesTracer

from .tui_helpers import series_run, write_char_checkpoint

CASES = [(cell, layers) for cell in ("lstm", "gru", "rnn") for layers in (1, 2)]


def double_model(cell: str, layers: int, inputs: int = 1, hidden: int = 6, seed: int = 0) -> SeriesRNN:
    torch.manual_seed(seed)
    model = SeriesRNN(SeriesModelConfig(inputs=inputs, cell=cell, hidden=hidden, layers=layers)).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2.0)  # livelier than a fresh initialisation: gates leave the middle
    return model


@pytest.mark.parametrize("cell,layers", CASES)
def test_series_trace_equals_the_module_forward_in_float64(cell, layers):
    model = double_model(cell, layers, inputs=2)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(40, 2))
    normalizer = Normalizer((3.0, -1.0), (0.5, 2.0))
    trace = SeriesTracer(model, normalizer).trace(values)
    x = torch.from_numpy(values)[None]
    with torch.no_grad():
        out, state = model.rnn(x)
        predictions, _ = model(x)
        # every layer's hidden state, run layer by layer through the module's own weights
        per_layer, below = [], x
        for layer in range(layers):
            single = type(model.rnn)(below.shape[-1], model.config.hidden, 1, batch_first=True).double()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(single, f"{name}_l0").copy_(getattr(model.rnn, f"{name}_l{layer}"))
            below, _ = single(below)
            per_layer.append(below[0])
    assert trace.values("h").dtype == np.float64
    np.testing.assert_allclose(trace.values("h")[:, -1], out[0].numpy(), rtol=0, atol=1e-10)
    for layer in range(layers):
        np.testing.assert_allclose(trace.values("h")[:, layer], per_layer[layer].numpy(), rtol=0, atol=1e-10)
    h_n = state[0] if cell == "lstm" else state
    np.testing.assert_allclose(trace.final_state.h, h_n[:, 0].numpy(), rtol=0, atol=1e-10)
    if cell == "lstm":
        np.testing.assert_allclose(trace.final_state.c, state[1][:, 0].numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(trace.values("kept") + trace.values("written"), trace.values("c"), atol=1e-12)
    np.testing.assert_allclose(trace.prediction_normalised, predictions[0, :, 0].numpy(), rtol=0, atol=1e-10)
    # the data's units: the run's standardization undone, the target the next point
    np.testing.assert_allclose(trace.prediction, predictions[0, :, 0].numpy() * 0.5 + 3.0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(trace.target[:-1], values[1:, 0] * 0.5 + 3.0, atol=1e-12)
    np.testing.assert_allclose(trace.inputs[:, 1], values[:, 1] * 2.0 - 1.0, atol=1e-12)
    assert np.isnan(trace.target[-1]) and np.isnan(trace.target_normalised[-1])
    # the prediction equals series.teacher_forced's (which hands back float32)
    forced, _ = teacher_forced(model, torch.from_numpy(values), chunk=16)
    np.testing.assert_allclose(trace.prediction_normalised, forced.double().numpy(), rtol=1e-6, atol=1e-6)
    info = trace.step_info(5, layer=0)
    assert info.prediction == pytest.approx(float(trace.prediction[5]))
    assert info.target == pytest.approx(values[6, 0] * 0.5 + 3.0)
    assert info.error == pytest.approx(info.prediction - info.target)
    assert set(info.values) == {q.key for q in trace.quantities}
    assert trace.step_info(-1).target is None


def test_a_real_run_traced_on_its_data_matches_predict_and_exports_json(tmp_path):
    run = series_run(tmp_path / "runs", "mellow-newt")
    tracer, loaded = SeriesTracer.from_checkpoint(run)
    data = loaded.data()
    trace = tracer.trace(data)
    assert len(trace) == data.points and trace.names == ("temperature", "humidity")
    result = predict(loaded.model, data, loaded.normalizer, loaded.config.val_fraction)
    # one_step[i] predicts point split + i: the trace's prediction at step split + i - 1
    np.testing.assert_allclose(trace.prediction[result.split - 1:-1], result.one_step, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(trace.target[result.split - 1:-1], result.target, atol=1e-9)
    out = trace.write_json(tmp_path / "trace.json")
    stored = json.loads(out.read_text())
    assert stored["format"] == "rnn-playground/series-gate-trace/1"
    assert len(stored["steps"]) == data.points and stored["steps"][-1]["target"] is None
    assert np.allclose(stored["values"]["h"], trace.values("h"))
    assert stored["steps"][3]["prediction"] == pytest.approx(float(trace.prediction[3]))


def test_data_that_does_not_fit_the_model_is_refused_clearly():
    model = double_model("gru", 1, inputs=2)
    tracer = SeriesTracer(model, Normalizer((0.0, 0.0), (1.0, 1.0)))
    one_column = SeriesData(np.arange(10.0), ("value",), "signal sine")
    with pytest.raises(TraceError, match=r"reads 2 feature\(s\).*signal sine gives 1 \(value\)"):
        tracer.trace(one_column)
    with pytest.raises(TraceError, match="applies to character models only"):
        tracer.trace(np.zeros((3, 2))).find_units("inside-quotes")
    with pytest.raises(TraceError, match="NaN"):
        tracer.trace(np.full((3, 2), np.nan))


def test_the_gates_command_traces_a_series_run(tmp_path, capsys):
    from rnn_playground.tui.cli.main import main
    run = series_run(tmp_path / "runs", "mellow-newt")
    out_json = tmp_path / "series.json"
    assert main(["gates", str(run), "--rows", "5", "--json", str(out_json), "--layer", "1"]) == 0
    out = capsys.readouterr().out
    assert "temperature read" in out and "prediction of next" in out and "humidity read" in out, out
    assert "showing steps 0-4 of 300" in out
    stored = json.loads(out_json.read_text())
    tracer, loaded = SeriesTracer.from_checkpoint(run)
    trace = tracer.trace(loaded.data())
    assert np.allclose(stored["values"]["h"], trace.values("h"))
    assert f"{trace.prediction[0]:.6g}" in out


def test_the_gates_command_reads_other_series_data_and_refuses_what_does_not_fit(tmp_path, capsys, monkeypatch):
    from rnn_playground.tui.cli.main import main
    monkeypatch.chdir(tmp_path)  # the character checkpoint's corpus is written beside it
    run = series_run(tmp_path / "runs", "mellow-newt")
    other = tmp_path / "other.csv"
    other.write_text("t,temperature,humidity\n" + "".join(f"{i},{10 + i % 7},{40 + i % 3}\n" for i in range(30)))
    assert main(["gates", str(run), "--csv", str(other), "--rows", "0"]) == 0
    out = capsys.readouterr()
    assert "differs from the data the model was trained on" in out.err
    assert "showing steps" not in out.out and "29" in out.out
    # one column where the model reads two: the counts named, and what to do
    code = main(["gates", str(run), "--signal", "sine"])
    err = capsys.readouterr().err
    assert code != 0 and "reads 2 feature(s)" in err and "gives 1" in err, err
    code = main(["gates", str(run), "--text", "abc"])
    err = capsys.readouterr().err
    assert code != 0 and "time-series model" in err and "--text" in err, err
    char_run = write_char_checkpoint(tmp_path / "runs" / "brisk-otter")
    code = main(["gates", str(char_run), "--signal", "sine", "--text", "ab"])
    err = capsys.readouterr().err
    assert code != 0 and "--signal pick the data of a time-series run" in err, err
    code = main(["gates", str(char_run)])
    err = capsys.readouterr().err
    assert code != 0 and "--text TEXT or --file FILE" in err, err


@pytest.mark.parametrize("cell,points", [("gru", 50), ("rnn", 1)])
def test_the_series_gates_frame_draws_the_tracer_values(cell, points):
    from rnn_playground.tui.viewmodel.series_gates_session import (
        OpenedSeries,
        SeriesGatesSession,
        plot_span,
        series_gates_frame,
    )
    model = double_model(cell, 2, inputs=1, hidden=5).float()
    tracer = SeriesTracer(model, Normalizer((10.0,), (2.0,)))
    values = np.sin(np.arange(points) / 3.0)
    trace = tracer.trace(SeriesData(values * 2.0 + 10.0, ("load",), "signal test"))
    session = SeriesGatesSession()
    session.loaded(OpenedSeries(tracer, trace, "signal test"))
    assert session.layer == 1 and session.colour_key == "h"
    session.step(min(points - 1, 30))
    session.change_unit(3)
    session.change_layer(1)
    frame = series_gates_frame(session, span=20)
    start, end = frame.window
    assert (start, end) == plot_span(points, session.pos, 20) and 0 <= start <= session.pos < end <= points
    assert [row.key for row in frame.rows] == [q.key for q in session.labels]
    for row in frame.rows:
        assert row.raw == pytest.approx(float(trace.at(session.pos, 0, row.key)[3]))
    signal, prediction = frame.lines
    assert np.allclose(signal.y, trace.signal[start:end]) and np.array_equal(signal.x, np.arange(start, end))
    # each prediction is drawn at the point it predicts, under the true value there
    assert np.allclose(prediction.y, trace.prediction[prediction.x.astype(int) - 1])
    assert len(frame.strip) == end - start
    assert frame.info.index == session.pos and frame.info.layer == 0
    session.edge(1)
    assert session.pos == points - 1 and series_gates_frame(session, 20).info.target is None

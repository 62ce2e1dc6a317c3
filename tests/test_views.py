"""The view data of the middle floor: what the Sample, Gates and Series screens show, checked against the engine."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rnn_playground.core.errors import CorpusError
from rnn_playground.tui.viewmodel.gates_view import (
    corpus_slice,
    diverging,
    heatmap_keys,
    next_char_view,
    next_word,
    previous_word,
    quantity_labels,
    read_text_file,
    run_corpus,
    unit_page,
    unit_values,
)
from rnn_playground.tui.viewmodel.sample_view import (
    LENGTH_CHOICES,
    PACE_CHOICES,
    TOP_K_CHOICES,
    chunked_stream,
    step_choice,
    step_temperature,
)
from rnn_playground.tui.viewmodel.series_view import metric_rows, plot_bounds, series_plot


class FakeClock:
    """A clock that advances a fixed amount each time it is read."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


# --------------------------------------------------------------------------- sampling

def test_chunked_stream_keeps_every_character_in_few_chunks():
    text = "abcdefghij" * 100
    chunks = list(chunked_stream(iter(text), interval=0.1, clock=FakeClock(0.001)))
    assert "".join(c.text for c in chunks) == text
    assert chunks[-1].done and not chunks[-1].stopped and chunks[-1].chars == len(text)
    assert all(not c.done for c in chunks[:-1])
    # a chunk every 0.1 s of a clock that moves 1 ms per read: about 2 reads per char -> ~20 chunks, not 1,000
    assert 5 <= len(chunks) <= 30
    assert chunks[-1].chars_per_s == pytest.approx(len(text) / chunks[-1].elapsed_s)


def test_chunked_stream_stops_when_asked():
    stop = threading.Event()

    def chars():
        for n in range(10_000):
            if n == 123:
                stop.set()
            yield "x"

    chunks = list(chunked_stream(chars(), stop=stop, interval=1.0))
    assert chunks[-1].done and chunks[-1].stopped
    assert chunks[-1].chars == 124  # the character read as the stop came is kept; nothing after it


def test_chunked_stream_paces_to_the_typewriter_speed():
    import time
    start = time.perf_counter()
    chunks = list(chunked_stream(iter("y" * 20), pace=200.0))
    elapsed = time.perf_counter() - start
    assert "".join(c.text for c in chunks) == "y" * 20
    assert elapsed >= 20 / 200 * 0.9
    assert len(chunks) >= 3  # paced streams flush often enough to look like typing


def test_setting_steps():
    assert step_temperature(0.8, 1) == 0.9 and step_temperature(0.1, -1) == 0.0 and step_temperature(0.0, -1) == 0.0
    assert step_temperature(2.95, 1) == 3.0
    assert step_choice(TOP_K_CHOICES, 0, 1) == 1 and step_choice(TOP_K_CHOICES, 0, -1) == 0
    assert step_choice(TOP_K_CHOICES, 4, 1) == 5  # from a value between choices
    assert step_choice(LENGTH_CHOICES, 500, 1) == 1000 and step_choice(LENGTH_CHOICES, 20000, 1) == 20000
    assert step_choice(PACE_CHOICES, None, 1) == 1000.0 and step_choice(PACE_CHOICES, 1000.0, -1) is None


# --------------------------------------------------------------------------- gates

@pytest.fixture
def lstm_trace(tiny_run):
    from rnn_playground.core.gates import GateTracer
    from tests.conftest import TINY_TEXT
    tracer = GateTracer.from_checkpoint(tiny_run)
    return tracer.trace(TINY_TEXT[:300])


def test_labels_carry_the_lesson_and_standard_names():
    lstm = {q.key: q for q in quantity_labels("lstm")}
    assert lstm["g"].lesson == "Learn gate" and "N_t" in lstm["g"].symbol and "g_t" in lstm["g"].symbol
    assert lstm["i"].lesson == "Learn gate" and lstm["i"].symbol == "i_t"
    assert lstm["f"].lesson == "Forget gate" and lstm["c"].symbol == "LTM_t = c_t"
    assert lstm["o"].lesson == "Use gate" and "h_t" in lstm["h"].symbol
    assert heatmap_keys("lstm") == ("g", "i", "f", "c", "o", "h")
    assert heatmap_keys("gru") == ("r", "z", "n", "h") and heatmap_keys("rnn_relu") == ("h",)


def test_labels_are_the_engines_quantities_in_the_lessons_order():
    from rnn_playground.core.gates import QUANTITIES
    for cell, quantities in QUANTITIES.items():
        labels = quantity_labels(cell)
        assert {q.key for q in labels} == {q.key for q in quantities}
        assert sorted((label.quantity for label in labels), key=quantities.index) == list(quantities)
        assert all(label.short and label.text and label.standard for label in labels)
    assert [q.key for q in quantity_labels("lstm")] == ["g", "i", "f", "c", "o", "h", "kept", "written"]
    assert [q.short for q in quantity_labels("gru")] == ["reset r_t", "update z_t", "candidate n_t", "hidden h_t"]
    assert quantity_labels("rnn_relu")[0].symbol == "STM_t = h_t"


def test_diverging_scale():
    assert diverging(np.array([0.0, 0.5, 1.0]), "gate").tolist() == [-1.0, 0.0, 1.0]
    assert diverging(np.array([-0.3, 0.7]), "tanh").tolist() == pytest.approx([-0.3, 0.7])
    assert diverging(np.array([-50.0, 0.0, 2.0, np.nan]), "state").tolist() == \
        pytest.approx([-1.0, 0.0, np.tanh(2.0), 0.0])


def test_unit_pages():
    assert unit_page(256, 100, 0) == (0, 3, 0, 100)
    assert unit_page(256, 100, 255) == (2, 3, 200, 256)
    assert unit_page(32, 100, 5) == (0, 1, 0, 32)


def test_word_jumps():
    text = "def f(x):\n    return x"
    assert next_word(text, 0) == 4 and next_word(text, 4) == 6 and next_word(text, 6) == 14
    assert previous_word(text, 14) == 6 and previous_word(text, 8) == 6 and previous_word(text, 6) == 4
    assert previous_word(text, 0) == 0 and next_word(text, len(text) - 1) == len(text) - 1


def test_next_char_view_marks_the_true_character(lstm_trace):
    for step in range(len(lstm_trace) - 1):
        info = lstm_trace.step_info(step, k=3)
        view = next_char_view(info)
        true_rows = [r for r in view.rows if r.is_true]
        assert len(true_rows) == 1 and true_rows[0].char == info.next_char
        assert true_rows[0].rank == info.next_rank and true_rows[0].prob == pytest.approx(info.next_prob)
        assert [r.char for r in view.rows[:3]] == [p.char for p in info.top]
        if info.next_rank > 3:
            assert view.rows[-1].is_true and len(view.rows) == 4
    last = next_char_view(lstm_trace.step_info(len(lstm_trace) - 1))
    assert last.true_char is None and not any(r.is_true for r in last.rows)


def test_unit_values_match_the_trace(lstm_trace):
    for key in ("c", "h", "i", "kept", "written"):
        full = np.array([lstm_trace.at(t, 1, key)[3] for t in range(len(lstm_trace))])
        assert unit_values(lstm_trace, key, 1, 3) == pytest.approx(full, abs=1e-6)
        assert unit_values(lstm_trace, key, 1, 3, 40, 90) == pytest.approx(full[40:90], abs=1e-6)


def test_text_sources(tmp_path, tiny_corpus):
    from tests.conftest import TINY_TEXT
    path = tmp_path / "t.txt"
    path.write_text("héllo", encoding="utf-8")
    assert read_text_file(path).text == "héllo"
    with pytest.raises(CorpusError, match="Cannot read"):
        read_text_file(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(CorpusError):
        read_text_file(tmp_path / "bad.txt")
    source = corpus_slice(str(tiny_corpus), length=100)
    start = len(TINY_TEXT) - int(len(TINY_TEXT) * 0.1)
    assert source.text == TINY_TEXT[start:start + 100]
    assert corpus_slice(str(tiny_corpus), 10, 5).text == TINY_TEXT[10:15]
    with pytest.raises(CorpusError, match="must start between"):
        corpus_slice(str(tiny_corpus), 10**9, 5)


def test_run_corpus_reads_the_checkpoint(tiny_run, tiny_corpus):
    from rnn_playground.core.checkpoint import read_metadata
    spec, glob, fraction = run_corpus(read_metadata(tiny_run / "last.safetensors"))
    assert spec == str(tiny_corpus) and glob == "*" and fraction == pytest.approx(0.1)
    with pytest.raises(CorpusError):
        run_corpus({})


# --------------------------------------------------------------------------- series

def test_series_plot_and_metrics():
    from rnn_playground.core.series import make_config, new_series_trainer, predict
    config = make_config(signal="sine", length=300, steps=20, hidden=8, device="cpu", val_every=20)
    trainer = new_series_trainer(config)
    list(trainer.run())
    task = trainer.task
    pred = predict(task.model, task.data, task.normalizer, config.val_fraction, steps=30, period=task.period)
    lines = {line.role: line for line in series_plot(pred, context=10)}
    assert lines["target"].x[0] == pred.split - 10 and lines["target"].x[-1] == len(pred.series) - 1
    assert np.array_equal(lines["one-step"].x, pred.val_index) and np.array_equal(lines["one-step"].y, pred.one_step)
    assert lines["forecast"].x[0] == len(pred.series) - 1 and len(lines["forecast"].x) == 31
    assert np.array_equal(lines["forecast"].y[1:], pred.forecast)
    x0, x1, y0, y1 = plot_bounds(lines.values())
    assert x0 == pred.split - 10 and x1 == len(pred.series) + 29 and y0 < pred.series.min() and y1 > pred.series.max()
    rows = {row.name: row for row in metric_rows(pred)}
    last = pred.metric("last value")
    assert rows["last value"].vs_last == pytest.approx(1.0)
    assert rows["model (one step)"].vs_last == pytest.approx(pred.metric("model (one step)").mse / last.mse)

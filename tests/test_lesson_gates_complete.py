"""Lesson pages 7 and 8 against the engine: the Gates map's numbers are the tracer's, the Complete page's
completions are sample_many's; and the page registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.corpus import Vocab
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.model import CharRNN
from rnn_playground.core.sampling import Sampler, SampleSettings
from rnn_playground.tui.viewmodel.lesson import PAGE_NAMES, make_pages, page_class
from rnn_playground.tui.viewmodel.lesson.complete import CompletePage
from rnn_playground.tui.viewmodel.lesson.gates_map import GatesMapPage
from rnn_playground.tui.viewmodel.lesson.page import Source, line_text

TEXT = "def f(x):\n    return [x, (x + 1)]\n" * 20


def source(cell: str = "lstm", layers: int = 2, hidden: int = 12) -> Source:
    vocab = Vocab.from_text(TEXT)
    config = TrainConfig(cell=cell, hidden=hidden, layers=layers, embed=8, dropout=0.0)
    torch.manual_seed(5)
    model = CharRNN(config.model_config(len(vocab))).eval()
    return Source(model, vocab, config, TEXT)


def test_registry_lists_the_pages_in_the_lessons_order():
    assert PAGE_NAMES == ("encoding", "batching", "shapes", "train_eval", "sampling", "memory", "gates_map",
                          "complete")
    names = [page.name for page in make_pages()]
    assert names == [name for name in PAGE_NAMES if page_class(name) is not None]
    assert {"gates_map", "complete"} <= set(names)
    assert page_class("gates_map") is GatesMapPage and page_class("complete") is CompletePage


def test_gates_map_keeps_its_place_over_a_newer_checkpoint_of_the_same_text():
    """A run training in the app hands the pages each new checkpoint: the learner's character, unit and
    layer stay (as far as the new model has them); another text starts over."""
    page = GatesMapPage()
    page.set_source(source())
    for action in ("move(1)",) * 5 + ("unit(1)",) * 9 + ("layer(1)",):
        page.handle(action)
    newer = source()     # the same settings, another model object: a newer checkpoint
    page.set_source(newer)
    assert (page.pos, page.unit, page.layer) == (5, 9, 1)
    trace = GateTracer(newer.model, newer.vocab).trace(TEXT[:6])
    assert page.values()["h"] == pytest.approx(float(trace.at(5, 1, "h")[9]), abs=1e-6)
    page.set_source(source(layers=1, hidden=8))    # a smaller model: what it lacks starts over
    assert (page.pos, page.unit, page.layer) == (5, 0, 0)
    other = source()
    page.set_source(Source(other.model, other.vocab, other.config, TEXT[3:]))
    assert (page.pos, page.unit, page.layer) == (0, 0, 0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gates_map_values_are_the_tracers(cell):
    src = source(cell)
    page = GatesMapPage()
    page.set_source(src)
    for action in ("move(1)",) * 7 + ("unit(1)",) * 3 + ("layer(1)",):
        page.handle(action)
    assert (page.pos, page.unit, page.layer) == (7, 3, 1)
    trace = GateTracer(src.model, src.vocab).trace(TEXT[:8])
    values = page.values()
    for quantity in trace.quantities:
        assert values[quantity.key] == pytest.approx(float(trace.at(7, 1, quantity.key)[3]), abs=1e-6)
    assert values["h_prev"] == pytest.approx(float(trace.at(6, 1, "h")[3]), abs=1e-6)
    assert values["x"] == pytest.approx(float(np.linalg.norm(trace.at(7, 0, "h"))), abs=1e-5)
    if cell == "lstm":
        c_prev = float(trace.at(6, 1, "c")[3])
        assert values["c_prev"] == pytest.approx(c_prev, abs=1e-6)
        # PyTorch's Use gate is h_t itself; the lesson's form is computed from the same f_t, o_t
        assert values["use_pytorch"] == pytest.approx(values["h"], abs=1e-5)
        assert values["use_lesson"] == pytest.approx(values["o"] * math.tanh(values["f"] * c_prev), abs=1e-6)
    view = page.view(80, 17)
    assert all(len(line_text(row)) <= 80 for row in view.lines) and len(view.lines) <= 17
    shown = "\n".join(line_text(row) for row in view.lines)
    assert f"{values['h']:+.3f}" in shown
    assert view.deeper == "gates" and view.caption[0] and view.caption[1]
    if cell == "lstm":
        for name in ("Learn gate", "Forget gate", "Remember gate", "Use gate", "LTM_t", "STM_t", "E_t"):
            assert name in shown
    elif cell == "gru":
        assert "reset r_t" in shown and "update z_t" in shown


def test_gates_map_moves_stay_inside_the_text_and_wrap_units():
    page = GatesMapPage()
    page.set_source(source(hidden=4))
    page.handle("move(-1)")
    assert page.pos == 0
    page.handle("unit(-1)")
    assert page.unit == 3
    page.handle("layer(1)")
    page.handle("layer(1)")
    assert page.layer == 0


def test_complete_draws_sample_manys_completions_with_its_seed():
    src = source()
    page = CompletePage()
    page.set_source(src)
    page.handle("type", "def ")
    draw = page.job()
    assert page.job() is None  # asked once
    page.finished(draw())
    got = page.completions
    assert got.prefix == "def " and len(got.results) >= 4
    expected = Sampler(src.model, src.vocab).sample_many(
        SampleSettings(prime="def ", temperature=page.temperature, length=page.length, seed=page.seed,
                       samples=page.samples))
    assert [r.text for r in got.results] == [r.text for r in expected]
    assert [r.total for r in got.results] == pytest.approx([r.total for r in expected])
    shown = "\n".join(line_text(row) for row in page.view(80, 17).lines)
    assert shown.count("log p") == page.samples
    assert f"{expected[0].total:+.1f}" in shown
    for width in (80, 120):
        assert all(len(line_text(row)) <= width for row in page.view(width, 30).lines)


def test_complete_drops_an_older_result_and_names_unknown_characters():
    page = CompletePage()
    page.set_source(source())
    page.handle("type", "d")
    old = page.job()
    page.handle("type", "de")
    new = page.job()
    page.finished(new())
    page.finished(old())
    assert page.completions.prefix == "de"
    page.handle("type", "dé")
    assert page.job() is None
    assert "é" in page.view(80, 17).error and "vocabulary" in page.view(80, 17).error
    page.handle("more")
    page.handle("type", "d")
    page.finished(page.job()())
    assert len(page.completions.results) == 6

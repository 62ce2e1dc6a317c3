"""Span match (LSTMVis's Match View, core.gates_analysis.match_spans): the units on over a selected span,
the threshold as a percentile of the quantity's values, and the spans elsewhere whose units match best."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import TraceError
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import match_spans, match_values, percentile_threshold
from rnn_playground.core.model import CharRNN, ModelConfig


def planted_values(steps: int = 200, units: int = 12, seed: int = 0) -> np.ndarray:
    """Noise below 0.5 everywhere; units 1, 4 and 7 high over the selection 20-25 and the planted span
    120-125; units 1 and 4 only over 60-65 (a weaker match); unit 9 high over 120-125 as well."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1.0, 0.5, size=(steps, units))
    values[20:25, [1, 4, 7]] = 0.9
    values[120:125, [1, 4, 7]] = 0.9
    values[120:125, 9] = 0.9
    values[60:65, [1, 4]] = 0.9
    return values


def test_the_planted_span_comes_first_and_the_weaker_one_after():
    values = planted_values()
    selected, matches = match_values(values, 20, 25, threshold=0.6)
    assert selected.tolist() == [1, 4, 7]
    best = matches[0]
    assert (best.start, best.end) == (120, 125)
    # Jaccard: 3 shared of the 4 units on over 120-125 (9 is on there but not selected)
    assert (best.shared, best.active) == (3, 4) and best.score == pytest.approx(3 / 4)
    assert best.mean == pytest.approx(0.9)
    second = matches[1]
    assert (second.start, second.end, second.shared, second.active) == (60, 65, 2, 2)
    assert second.score == pytest.approx(2 / 3)
    # only spans sharing a selected unit are listed, and every match has the selection's length
    assert all(m.shared > 0 and m.end - m.start == 5 for m in matches)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_no_match_overlaps_the_selection_or_another_match():
    values = planted_values()
    values[22:40, [1, 4, 7]] = 0.9   # the selected units stay on past the selection: windows overlapping it match
    _, matches = match_values(values, 20, 25, threshold=0.6, top=50)
    spans = [(m.start, m.end) for m in matches]
    assert (120, 125) in spans
    for start, end in spans:
        assert end <= 20 or start >= 25, (start, end)
    ordered = sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ordered, ordered[1:], strict=False))
    # the best non-overlapping spans right after the selection: 25-30, 30-35, 35-40 all score 1
    assert spans[:3] == [(25, 30), (30, 35), (35, 40)] and matches[0].score == 1.0


def test_the_threshold_is_the_percentile_of_the_values_over_the_text():
    values = np.arange(100, dtype=np.float64).reshape(20, 5)   # 0..99
    assert percentile_threshold(values, 90) == pytest.approx(89.1)  # linear interpolation between 89 and 90
    assert percentile_threshold(values, 50) == pytest.approx(49.5)
    assert percentile_threshold(values, 0) == 0.0 and percentile_threshold(values, 100) == 99.0
    with_nan = values.copy()
    with_nan[0, 0] = np.nan
    assert percentile_threshold(with_nan, 100) == 99.0   # non-finite values are left out
    for bad in (-1, 101, float("nan")):
        with pytest.raises(TraceError, match="between 0 and 100"):
            percentile_threshold(values, bad)


def test_a_span_with_no_room_beside_it_or_outside_the_text_is_refused():
    values = planted_values(steps=10)
    with pytest.raises(TraceError, match="no other span of its length fits"):
        match_values(values, 2, 8, threshold=0.6)
    with pytest.raises(TraceError, match="not inside the text"):
        match_values(values, 5, 12, threshold=0.6)
    with pytest.raises(TraceError, match="not inside the text"):
        match_values(values, 4, 4, threshold=0.6)


def planted_model(text: str) -> tuple[CharRNN, Vocab]:
    """A tanh RNN whose units 2 and 5 fire on 'x' and 'y', unit 6 on 'x' only; the rest stay at 0."""
    vocab = Vocab.from_text(text)
    config = ModelConfig(vocab_size=len(vocab), cell="rnn", hidden=8, layers=1, embed=len(vocab))
    model = CharRNN(config).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.embed.weight.copy_(torch.eye(len(vocab), dtype=torch.float64))   # one-hot inputs
        w = model.rnn.weight_ih_l0
        x, y = vocab.index["x"], vocab.index["y"]
        for unit in (2, 5, 6):
            w[unit, :] = -1.0
        w[[2, 5], x] = 2.0
        w[[2, 5], y] = 2.0
        w[6, x] = 2.0
    return model, vocab


def test_a_model_with_planted_units_matches_the_other_xy():
    text = "ab xy cd xx ef ay gh xa ij xy kl yb mn op qr st uv"
    model, vocab = planted_model(text)
    trace = GateTracer(model, vocab).trace(text)
    first = text.index("xy")
    result = match_spans(trace, first, first + 2, key="h", percentile=90)
    h = trace.values("h")[:, 0]
    assert result.threshold == pytest.approx(float(np.percentile(h, 90)))
    assert result.units == (2, 5) and result.key == "h" and result.layer is None
    best = result.matches[0]
    assert (best.start, text[best.start:best.end], best.score) == (text.index("xy", first + 1), "xy", 1.0)
    # "xx" turns on unit 6 too: a weaker match; spans with only one of x, y share no unit over both steps
    assert [(text[m.start:m.end], round(m.score, 3)) for m in result.matches[1:]] == [("xx", round(2 / 3, 3))]
    # one layer: the same units, numbered within it
    assert match_spans(trace, first, first + 2, key="h", layer=0, percentile=90).units == (2, 5)


def test_the_cell_update_and_all_layers_are_matched_too():
    text = "ab xy cd xx ef ay gh xa ij xy kl yb mn op qr st uv"
    vocab = Vocab.from_text(text)
    torch.manual_seed(1)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", hidden=6, layers=2, embed=4)).double().eval()
    trace = GateTracer(model, vocab).trace(text)
    kept = trace.cell_update("kept", layer=1)
    result = match_spans(trace, 3, 5, key="kept", layer=1, percentile=60)
    assert result.threshold == pytest.approx(float(np.percentile(kept, 60)))
    selected, matches = match_values(kept, 3, 5, result.threshold, top=10)
    assert result.units == tuple(selected.tolist()) and result.matches == tuple(matches)
    # every layer side by side: unit numbers run layer * hidden + unit
    both = match_spans(trace, 3, 5, key="c", percentile=60)
    c = trace.values("c")
    flat = np.concatenate([c[:, 0], c[:, 1]], axis=1)
    selected, matches = match_values(flat, 3, 5, both.threshold, top=10)
    assert both.layer is None and both.units == tuple(selected.tolist()) and both.matches == tuple(matches)
    assert both.threshold == pytest.approx(float(np.percentile(flat, 60)))
    with pytest.raises(TraceError, match="no quantity 'f'"):
        match_spans(GateTracer(planted_model(text)[0], vocab).trace(text), 3, 5, key="f")

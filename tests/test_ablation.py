"""Units ranked by the effect of silencing them: a planted unit comes first, and the batched passes
equal silencing units one at a time (and the tracer's own interventions)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_playground.core.ablation import FAST_MIN_HIDDEN, rank_units
from rnn_playground.core.device import supports_bf16
from rnn_playground.core.errors import TraceError
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import text_feature
from rnn_playground.core.intervene import Intervention
from rnn_playground.tui.viewmodel.gates_session import GatesSession, RankingJob, run_ranking

from .conftest import ABLATION_TEXT as TEXT
from .conftest import PLANT_TEXT, ablation_vocab, planted_quote_model
from .conftest import ablation_model as model_of

VOCAB = ablation_vocab()


def test_ranking_puts_a_planted_unit_first():
    model = planted_quote_model(unit=3)
    tracer = GateTracer(model, VOCAB)
    inside = tracer.trace(PLANT_TEXT).values("c")[:, 0, 3]
    feature = text_feature(PLANT_TEXT, "inside-quotes")
    assert np.corrcoef(inside, feature)[0, 1] > 0.9  # the plant works
    ranking = rank_units(tracer, PLANT_TEXT, feature=feature)
    first = ranking.ranked(top=2)
    assert (first[0].layer, first[0].unit) == (0, 3)
    assert first[0].change > 5 * max(first[1].change, 1e-3)
    assert ranking.ranked(by="feature", top=1)[0].unit == 3
    assert ranking.marked == int((feature[1:] > 0).sum())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_batched_ablation_equals_silencing_one_unit_at_a_time(cell):
    tracer = GateTracer(model_of(cell, 2), VOCAB)
    feature = text_feature(TEXT, regex="b+")
    batched = rank_units(tracer, TEXT, feature=feature, chunk=4)
    single = rank_units(tracer, TEXT, feature=feature, chunk=1)
    assert np.abs(batched.loss - single.loss).max() < 1e-12
    assert np.abs(batched.feature_loss - single.feature_loss).max() < 1e-12
    trace = tracer.trace(TEXT)
    ids = VOCAB.encode(TEXT)[1:].numpy()
    steps = np.arange(len(TEXT) - 1)
    assert abs(batched.baseline - (-trace.log_probs[steps, ids]).mean()) < 1e-12
    marked = feature[1:] > 0
    for layer, unit in ((0, 0), (0, 5), (1, 2)):  # the tracer's interventions agree
        quantities = ("h", "c") if cell == "lstm" else ("h",)
        silenced = trace.intervened([Intervention(layer, (unit,), q, 0.0) for q in quantities])
        nll = -silenced.log_probs[steps, ids]
        assert abs(batched.loss[layer, unit] - nll.mean()) < 1e-10
        assert abs(batched.feature_loss[layer, unit] - nll[marked].mean()) < 1e-10


def test_float32_ranking_and_progress_and_cancel():
    tracer = GateTracer(model_of("lstm", 2).float(), VOCAB)
    seen = []
    ranking = rank_units(tracer, TEXT, chunk=4, progress=seen.append)
    exact = rank_units(GateTracer(model_of("lstm", 2), VOCAB), TEXT)
    assert np.abs(ranking.loss - exact.loss).max() < 1e-4
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert rank_units(tracer, TEXT, cancelled=lambda: True) is None
    only_top = rank_units(tracer, TEXT, layers=[1])
    assert np.isnan(only_top.loss[0]).all() and np.abs(only_top.loss[1] - ranking.loss[1]).max() < 1e-4


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fast_ranking_with_bf16_products_stays_close_to_the_exact_one(cell):
    """bf16 products, each change measured against the in-pass reference copy: every change within a
    tenth of the spread of the exact float32 changes (measured: 0.3-2%), over the text and the feature."""
    tracer = GateTracer(model_of(cell, 2, hidden=16).float(), VOCAB)
    feature = text_feature(TEXT, regex="b+")
    fast = rank_units(tracer, TEXT, feature=feature, precision="fast")
    exact = rank_units(tracer, TEXT, feature=feature, precision="exact")
    assert (fast.precision, exact.precision) == ("fast", "exact")
    assert fast.baseline == exact.baseline  # the unablated trace's own loss, not a bf16 one
    assert np.abs(fast.change - exact.change).max() < 0.1 * exact.change.std()
    assert np.abs(fast.feature_change - exact.feature_change).max() < 0.1 * exact.feature_change.std()
    [fast_first], [exact_first] = fast.ranked(top=1), exact.ranked(top=1)
    assert (fast_first.layer, fast_first.unit) == (exact_first.layer, exact_first.unit)


def test_fast_ranking_finds_the_planted_unit():
    tracer = GateTracer(planted_quote_model(unit=3).float(), VOCAB)
    ranking = rank_units(tracer, PLANT_TEXT, feature=text_feature(PLANT_TEXT, "inside-quotes"), precision="fast")
    assert ranking.ranked(top=1)[0].unit == 3 and ranking.ranked(by="feature", top=1)[0].unit == 3


def test_auto_precision_is_fast_only_for_a_large_float32_model_on_a_cpu_with_bf16_units():
    text = TEXT[:12]
    large = GateTracer(model_of("lstm", 1, hidden=FAST_MIN_HIDDEN).float(), VOCAB)
    expected = "fast" if supports_bf16(torch.device("cpu")) else "exact"
    assert rank_units(large, text).precision == expected
    assert rank_units(GateTracer(model_of("lstm", 1, hidden=FAST_MIN_HIDDEN), VOCAB), text).precision == "exact"
    assert rank_units(GateTracer(model_of("lstm", 1).float(), VOCAB), text).precision == "exact"
    with pytest.raises(TraceError, match="Unknown precision 'half': use one of auto, fast, exact"):
        rank_units(large, text, precision="half")


def test_bad_requests_get_clear_errors():
    tracer = GateTracer(model_of("lstm", 1), VOCAB)
    with pytest.raises(TraceError, match="at least 2 characters"):
        rank_units(tracer, "a")
    with pytest.raises(TraceError, match="marks none of the characters"):
        rank_units(tracer, "abab", feature=np.zeros(4))
    with pytest.raises(TraceError, match="has 3 values but the text has 4"):
        rank_units(tracer, "abab", feature=np.zeros(3))
    with pytest.raises(TraceError, match="Layer 3 does not exist"):
        rank_units(tracer, "abab", layers=[2])
    with pytest.raises(TraceError, match="vocabulary lacks"):
        rank_units(tracer, "abz")


# --------------------------------------------------------------------------- the Gates session's job

def test_the_ranking_job_runs_in_a_worker_and_meets_the_correlation_search():
    tracer = GateTracer(planted_quote_model(unit=3), VOCAB)
    trace = tracer.trace(PLANT_TEXT)
    session = GatesSession(tracer=tracer, trace=trace, text=PLANT_TEXT, feature="inside-quotes")
    [job] = session.rank_units()
    assert isinstance(job, RankingJob) and job.name == "inside-quotes" and job.text == PLANT_TEXT
    seen: list[float] = []
    result: list = []
    worker = threading.Thread(target=lambda: result.append(run_ranking(job, seen.append)))
    worker.start()
    worker.join()
    session.ranking_progressed(job, seen[-1])
    session.ranked(job, result[0])
    assert session.ranking is result[0] and session.ranking.ranked(by="feature", top=1)[0].unit == 3
    assert "inside-quotes" in session.ranking_note and session.ranking_progress == 1.0
    assert "bf16" not in session.ranking_note  # a small float64 model ranks exactly
    assert session.effect_comparison() is None  # no unit search yet

    session.matches = trace.find_units("inside-quotes", top=3)
    assert (session.matches[0].layer, session.matches[0].unit) == (0, 3)
    comparison = session.effect_comparison()
    assert comparison.by == "feature"
    assert [(row.layer, row.unit) for row in comparison.both][:1] == [(0, 3)]
    assert comparison.both[0].correlation == session.matches[0].correlation
    listed = {(m.layer, m.unit) for m in session.matches}
    assert all((row.layer, row.unit) in listed for row in comparison.correlation_only)
    assert all((row.layer, row.unit) not in listed and row.correlation is None and row.change > 0
               for row in comparison.effect_only)
    mattering = {(e.layer, e.unit) for e in session.ranking.ranked(by="feature", top=3) if e.feature_change > 0}
    assert {(r.layer, r.unit) for r in comparison.both + comparison.effect_only} == mattering


def test_a_replaced_or_cancelled_ranking_is_dropped():
    tracer = GateTracer(model_of("gru", 1), VOCAB)
    session = GatesSession(tracer=tracer, trace=tracer.trace(TEXT), text=TEXT, feature="regex", regex="")
    [first] = session.rank_units()
    assert first.name is None and first.regex is None  # no regex typed: the loss over the text only
    [second] = session.rank_units()
    assert first.cancel.is_set() and not second.cancel.is_set()
    assert run_ranking(first) is None  # cancelled before it began
    session.ranked(first, rank_units(tracer, TEXT))  # a stale result is dropped
    assert session.ranking is None
    session.cancel_ranking()
    assert second.cancel.is_set() and session.ranking_note == "ranking cancelled"
    session.ranked(second, None)
    assert session.ranking is None
    [third] = session.rank_units()
    session.select_run(Path("another-run"))  # a new run (or text) cancels the ranking and forgets the last one
    assert third.cancel.is_set() and session.ranking is None and session.ranking_note == ""


def test_the_session_says_when_a_ranking_took_bf16_products():
    tracer = GateTracer(model_of("lstm", 1).float(), VOCAB)
    session = GatesSession(tracer=tracer, trace=tracer.trace(TEXT), text=TEXT)
    [job] = session.rank_units()
    session.ranked(job, rank_units(tracer, TEXT, precision="fast"))
    assert session.ranking_note.endswith("; bf16 products)")

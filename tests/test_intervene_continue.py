"""The continuation under interventions (core.gates.Trace.continuation) is what the intervened trace predicts
along its own text; Trace.intervened(..., end=) followed by extend() equals the whole recomputation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import TraceError
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.intervene import Intervention
from rnn_playground.core.model import CharRNN, ModelConfig

TEXT = 'She said "run (fast)" and [then {left}].\nHe asked "why?" - no answer.\n'
VOCAB = Vocab.from_text(TEXT)


def tracer_of(cell: str) -> GateTracer:
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, hidden=12, layers=2, embed=5, dropout=0.0))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return GateTracer(model.double().eval(), VOCAB)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_greedy_continuation_is_the_intervened_traces_argmax_along_its_own_text(cell):
    tracer = tracer_of(cell)
    trace = tracer.trace(TEXT[:30])
    edits = [Intervention(0, (1, 4), "h", 0.0, 10), Intervention(1, (2,), "h", 0.5, 28)]
    changed = trace.intervened(edits)
    at = 25
    for source, ivs in ((trace, []), (changed, edits)):
        more = source.continuation(at, 20, temperature=0)
        assert len(more) == 20
        retraced = tracer.trace(TEXT[:at + 1] + more).intervened(ivs)
        chars = VOCAB.chars
        predicted = [chars[int(np.argmax(retraced.log_probs[at + n]))] for n in range(20)]
        assert "".join(predicted) == more
    assert trace.continuation(at, 20, temperature=0) != changed.continuation(at, 20, temperature=0)


def test_sampled_continuation_draws_from_the_intervened_distribution_with_the_seed():
    tracer = tracer_of("lstm")
    changed = tracer.trace(TEXT).intervened([Intervention(1, tuple(range(12)), "f", 0.0, 5)])
    at = 40
    more = changed.continuation(at, 25, seed=7, temperature=0.8)
    assert more == changed.continuation(at, 25, seed=7, temperature=0.8)  # the seed fixes the draws
    retraced = tracer.trace(TEXT[:at + 1] + more).intervened(changed.interventions)
    rng = random.Random(7)
    for n, ch in enumerate(more):
        probs = np.exp(retraced.log_probs[at + n] / 0.8)
        cumulative = np.cumsum(probs / probs.sum())
        index = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1])), len(probs) - 1)
        assert VOCAB.chars[index] == ch
    with pytest.raises(TraceError, match="temperature"):
        changed.continuation(at, 5, temperature=-1)


def test_recomputing_up_to_an_end_then_extending_equals_the_whole_recomputation():
    tracer = tracer_of("lstm")
    trace = tracer.trace(TEXT)
    edits = [Intervention(0, (3,), "c", 0.0, 12)]
    whole = trace.intervened(edits)
    part = trace.intervened(edits, end=20)
    assert len(part) == 20
    part.extend(TEXT[20:40]).extend(TEXT[40:])
    for key in ("i", "f", "g", "o", "c", "h"):
        assert np.array_equal(part.values(key), whole.values(key))
    assert np.array_equal(part.log_probs, whole.log_probs)
    assert len(trace.intervened(edits, end=3)) == 13  # never short of the first intervened step

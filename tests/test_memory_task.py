"""The memory experiment (core.memory_task): gated cells recall across delays a vanilla RNN cannot, the
gradient reach equals a finite-difference derivative, and results are cached per settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rnn_playground.core.errors import ConfigError
from rnn_playground.core.memory_task import (
    MemoryCancelled,
    MemoryResult,
    MemorySettings,
    cache_path,
    cached_result,
    estimate_seconds,
    gradient_reach,
    reach_summary,
    run_memory_experiment,
    store_result,
)
from rnn_playground.core.model import CharRNN, ModelConfig

TINY = MemorySettings(delays=(1, 3), hidden=8, steps=5, batch=8)


def test_lstm_beats_the_vanilla_rnn_at_a_long_delay():
    # the default experiment's longest delay (seed 0: the RNN near chance, 1/8, the LSTM above 80%)
    settings = MemorySettings(delays=(32,), cells=("rnn", "lstm"), seed=0)
    result = run_memory_experiment(settings)
    rnn, lstm = result.accuracy("rnn", 32), result.accuracy("lstm", 32)
    assert rnn < 0.3 and lstm > rnn + 0.3, result.accuracy_table
    # the trained LSTM's gradient still reaches the first step; the RNN's has faded by orders of magnitude
    lstm_reach, rnn_reach = result.reach["lstm"], result.reach["rnn"]
    assert lstm_reach[32] / lstm_reach[0] > 100 * rnn_reach[32] / rnn_reach[0], result.reach


def test_experiment_reports_progress_and_is_deterministic():
    seen = []
    first = run_memory_experiment(TINY, progress=lambda fraction, words: seen.append((fraction, words)))
    second = run_memory_experiment(TINY)
    assert first.accuracy_table == second.accuracy_table
    assert set(first.accuracy_table) == {"rnn", "gru", "lstm"}
    assert all(0.0 <= a <= 1.0 for table in first.accuracy_table.values() for a in table.values())
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("LSTM at delay 3" in words for _, words in seen)
    assert [len(v) for v in first.reach.values()] == [4, 4, 4]   # k = 0 .. 3 at the longest delay


def test_cancel_stops_the_experiment():
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(MemoryCancelled, match="cancelled"):
        run_memory_experiment(MemorySettings(delays=(1,), hidden=8, steps=1000, batch=8), cancel=cancel)


def test_time_cap_cuts_training_short():
    result = run_memory_experiment(MemorySettings(delays=(1,), hidden=8, steps=100_000, batch=8, seconds=0.5))
    assert result.cut_short
    assert result.seconds < 30


def test_cache_round_trip_under_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_PLAYGROUND_CACHE", str(tmp_path / "cache"))
    assert cached_result(TINY) is None
    result = run_memory_experiment(TINY)
    path = store_result(result)
    assert path == cache_path(TINY) and path.parent == tmp_path / "cache" / "memory"
    assert not list(path.parent.glob("*.tmp"))
    again = cached_result(TINY)
    assert again is not None and again.from_cache
    assert again.accuracy_table == result.accuracy_table and again.reach == result.reach
    assert again.settings == TINY
    # other settings, another key; a damaged file is as good as none
    assert cached_result(MemorySettings(delays=(1, 3), hidden=8, steps=5, batch=8, seed=1)) is None
    path.write_text("{not json", encoding="utf-8")
    assert cached_result(TINY) is None


def test_cache_key_includes_the_torch_version(tmp_path):
    result = run_memory_experiment(TINY)
    path = store_result(result, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["torch"] == torch.__version__
    data["torch"] = "0.0.1"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert cached_result(TINY, tmp_path) is None
    assert MemoryResult.from_dict(result.to_dict()).accuracy_table == result.accuracy_table


@pytest.mark.parametrize("bad, words", [
    (dict(delays=()), "--delays"), (dict(delays=(0, 2)), "--delays"), (dict(delays=(100,)), "1 to 64"),
    (dict(hidden=0), "--hidden must be a whole number from 1 to 1,024"), (dict(task="brackets"), "Unknown memory task"),
    (dict(cells=("tcn",)), "cells"),
    (dict(seconds=-1), "--seconds"), (dict(seed=10**30), "--seed"),
])
def test_bad_settings_say_what_to_change(bad, words):
    with pytest.raises(ConfigError, match=words):
        MemorySettings(**bad)


def test_estimate_scales_with_the_work():
    default = estimate_seconds(MemorySettings())
    assert estimate_seconds(MemorySettings(steps=400)) == pytest.approx(2 * default)
    assert estimate_seconds(MemorySettings(delays=(1, 2))) < default / 5
    assert estimate_seconds(MemorySettings(seconds=3)) <= 3


def _tiny_model(cell: str) -> CharRNN:
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=5, cell=cell, hidden=4, layers=2, embed=3, dropout=0.2)).double()
    return model.eval()


def _loss_with_nudge(model: CharRNN, ids: torch.Tensor, t: int, step: int, unit: int, eps: float) -> float:
    """loss_t, hand-unrolled, with h after step `step` (flattened over layers) moved by eps in `unit`."""
    state = model.init_state(1)
    state = tuple(s.double() for s in state) if isinstance(state, tuple) else state.double()
    embedded = model.embed(ids[:t + 1].reshape(1, -1))
    logits = None
    for s in range(t + 1):
        _, state = model.rnn(embedded[:, s:s + 1], state)
        h = state[0] if isinstance(state, tuple) else state
        if s == step:
            h = h.clone()
            h.view(-1)[unit] += eps
            state = (h, state[1]) if isinstance(state, tuple) else h
        logits = model.head(h[-1])
    return F.cross_entropy(logits, ids[t + 1:t + 2]).item()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gradient_reach_equals_finite_differences(cell):
    model = _tiny_model(cell)
    ids = torch.tensor([1, 4, 0, 2, 3, 3, 1, 0])
    t = 6
    with torch.no_grad():
        reach = gradient_reach(model, ids, positions=(t,))
    assert model.training is False
    assert len(reach) == t + 1 and np.all(np.isfinite(reach)) and reach[0] > 0
    units = model.config.layers * model.config.hidden
    eps = 1e-6
    for k in range(t + 1):
        grad = [(_loss_with_nudge(model, ids, t, t - k, u, eps) - _loss_with_nudge(model, ids, t, t - k, u, -eps))
                / (2 * eps) for u in range(units)]
        assert reach[k] == pytest.approx(np.linalg.norm(grad), rel=1e-5, abs=1e-12), k


def test_gradient_reach_keeps_the_mode_and_averages_positions():
    model = _tiny_model("lstm").train()
    ids = torch.tensor([1, 4, 0, 2, 3, 3, 1, 0])
    both = gradient_reach(model, ids, positions=(5, 6), max_k=3)
    assert model.training
    one, other = gradient_reach(model, ids, positions=(5,), max_k=3), gradient_reach(model, ids, positions=(6,),
                                                                                      max_k=3)
    assert both == pytest.approx((one + other) / 2)
    with pytest.raises(ConfigError, match="positions"):
        gradient_reach(model, ids, positions=(9,))


def test_reach_summary():
    assert reach_summary([1.0, 0.1, 0.01, 0.0001]) == 2
    assert reach_summary([]) == 0 and reach_summary([0.0, 1.0]) == 0


def test_experiment_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_memory_experiment(MemorySettings(delays=(1,), hidden=8, steps=2, batch=8))
    assert torch.equal(torch.rand(3), expected)

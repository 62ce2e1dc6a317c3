"""The course's stream batching (wrap-around fixed) and CharRNN shapes, on real tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.model import (
    CELLS,
    CharRNN,
    ModelConfig,
    StreamBatches,
    describe_model,
    detach_state,
    fast_dropout,
    state_like,
    state_tensors,
)

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness.\n") * 8


@pytest.mark.parametrize("n, batch, seq", [(1001, 4, 10), (1000, 4, 10), (1005, 3, 7), (41, 4, 10), (64, 1, 63)])
def test_shapes(n, batch, seq):
    ids = torch.arange(n)
    batches = StreamBatches(ids, batch, seq)
    columns = (n - 1) // batch // seq * seq
    assert batches.inputs.shape == batches.targets.shape == (batch, columns)
    assert len(batches) == columns // seq >= 1
    for w in range(len(batches)):
        x, y = batches.window(w)
        assert x.shape == y.shape == (batch, seq)
        assert x.dtype == y.dtype == torch.long


def test_streams_are_contiguous_slices_of_the_text():
    ids = torch.arange(1001)  # id == position, so every value says where it came from
    batches = StreamBatches(ids, 4, 10)
    columns = batches.inputs.shape[1]
    for b in range(4):
        assert torch.equal(batches.inputs[b], ids[b * columns:(b + 1) * columns])
        assert torch.equal(batches.targets[b], ids[b * columns + 1:(b + 1) * columns + 1])


def test_every_target_is_the_true_next_character_including_the_last_window():
    vocab = Vocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    batch, seq = 5, 13
    batches = StreamBatches(ids, batch, seq)
    columns = batches.inputs.shape[1]
    raw = ids.tolist()
    for w in range(len(batches)):
        x, y = batches.window(w)
        for b in range(batch):
            for t in range(seq):
                position = b * columns + w * seq + t
                assert x[b, t] == raw[position]
                assert y[b, t] == raw[position + 1], f"window {w} stream {b} step {t}"
    # the very last target of the last window: the character after the last input, not a wrap-around
    x, y = batches.window(len(batches) - 1)
    last = (batch - 1) * columns + columns - 1
    assert y[-1, -1] == raw[last + 1] and x[-1, -1] == raw[last]


def test_last_window_does_not_wrap_around_to_the_start():
    ids = torch.arange(1, 101)  # 100 distinct ids
    batches = StreamBatches(ids, 3, 11)
    _, y = batches.window(len(batches) - 1)
    assert y[-1, -1] != ids[0]
    assert int(y.max()) <= int(ids[-1])


def test_each_window_continues_its_stream():
    ids = torch.arange(2000)
    batches = StreamBatches(ids, 6, 17)
    for w in range(1, len(batches)):
        previous_x, previous_y = batches.window(w - 1)
        x, _ = batches.window(w)
        for b in range(6):
            assert x[b, 0] == previous_x[b, -1] + 1          # picks up right after the last input
            assert x[b, 0] == previous_y[b, -1]              # which was the last target


def test_windows_are_views_not_copies():
    batches = StreamBatches(torch.arange(500), 2, 10)
    x, y = batches.window(3)
    assert x.data_ptr() == batches.inputs[:, 30:].data_ptr()


def test_too_few_characters():
    with pytest.raises(ConfigError, match="too few"):
        StreamBatches(torch.arange(40), 4, 10)  # needs 4 * 10 + 1


# --------------------------------------------------------------------------- model

def tiny(cell: str, layers: int = 2, **overrides) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=11, cell=cell, hidden=12, layers=layers, embed=5, **overrides))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 3])
def test_forward_shapes(cell, layers):
    model = tiny(cell, layers)
    assert isinstance(model.rnn, CELLS[cell]) and model.rnn.num_layers == layers
    assert model.rnn.batch_first
    ids = torch.randint(0, 11, (4, 9))
    logits, state = model(ids)
    assert logits.shape == (4, 9, 11)
    for tensor in state_tensors(state):
        assert tensor.shape == (layers, 4, 12)
    logits2, _ = model(ids, state)  # a carried state is accepted
    assert logits2.shape == (4, 9, 11)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_init_state_shape(cell):
    model = tiny(cell, 3)
    state = model.init_state(7)
    parts = state_tensors(state)
    assert len(parts) == (2 if cell == "lstm" else 1)
    for tensor in parts:
        assert tensor.shape == (3, 7, 12)  # (layers, batch, hidden), although inputs are batch-first
        assert not tensor.any()
    if cell == "lstm":
        assert parts[0].data_ptr() != parts[1].data_ptr()
    logits, _ = model(torch.zeros(7, 2, dtype=torch.long), state)
    assert logits.shape == (7, 2, 11)


def test_zero_state_equals_no_state():
    model = tiny("lstm").eval()
    ids = torch.randint(0, 11, (3, 6))
    a, _ = model(ids)
    b, _ = model(ids, model.init_state(3))
    assert torch.equal(a, b)


def test_carrying_state_equals_one_long_pass():
    """Windowed forward with a carried (detached) state computes the same as reading the stream at once."""
    model = tiny("gru").eval()
    ids = torch.randint(0, 11, (2, 20))
    whole, _ = model(ids)
    state = model.init_state(2)
    parts = []
    for start in range(0, 20, 5):
        logits, state = model(ids[:, start:start + 5], state)
        state = detach_state(state)
        parts.append(logits)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-6)


def test_state_helpers():
    model = tiny("lstm")
    _, state = model(torch.zeros(2, 3, dtype=torch.long))
    detached = detach_state(state)
    assert all(not t.requires_grad for t in detached) and isinstance(detached, tuple)
    rebuilt = state_like(state, state_tensors(detached))
    assert isinstance(rebuilt, tuple) and len(rebuilt) == 2
    gru_state = model.init_state(2)[0]
    assert state_like(gru_state, [gru_state]) is gru_state


def test_dropout_between_layers_only_with_several_layers():
    assert tiny("lstm", 2, dropout=0.3).rnn.dropout == 0.3
    assert tiny("lstm", 1, dropout=0.3).rnn.dropout == 0.0
    assert isinstance(tiny("lstm").drop, nn.Dropout)


def test_embedding_is_a_one_hot_times_a_matrix():
    model = tiny("rnn")
    ids = torch.tensor([[3, 0, 10]])
    one_hot = nn.functional.one_hot(ids, 11).float()
    assert torch.allclose(model.embed(ids), one_hot @ model.embed.weight)


@pytest.mark.parametrize("bad, match", [
    (dict(cell="transformer"), "Unknown cell type"),
    (dict(hidden=0), "hidden"),
    (dict(layers=0), "layers"),
    (dict(dropout=1.0), "Dropout"),
    (dict(vocab_size=0), "vocab_size"),
])
def test_config_errors(bad, match):
    settings = dict(vocab_size=5)
    settings.update(bad)
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**settings)


def test_config_round_trip():
    config = ModelConfig(vocab_size=9, cell="gru", hidden=33, layers=3, embed=7, dropout=0.1)
    assert ModelConfig.from_dict({**config.to_dict(), "unknown": 1}) == config
    assert describe_model(config) == "GRU 3x33"


# --------------------------------------------------------------------------- training-mode dropout on a CPU

@pytest.mark.parametrize("p", [0.3, 0.5])
def test_fast_dropout_statistics(p):
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, p)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - p) < 0.005
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-4)  # the mean is kept
    assert abs(float(y.mean()) - 1) < 0.01
    # and the gradient flows through the kept elements only, scaled alike
    x = torch.ones(1000, requires_grad=True)
    y = fast_dropout(x, p)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_training_forward_runs_the_modules_layers(cell, layers):
    # In training mode on a CPU the layers run one call each with fast_dropout between them.
    # At a drop probability that rounds to zero every mask keeps everything: the result must
    # then be exactly the module's own forward, outputs and final states.
    torch.manual_seed(layers)
    model = CharRNN(ModelConfig(vocab_size=12, cell=cell, hidden=16, layers=layers, embed=8, dropout=1e-6))
    ids = torch.randint(0, 12, (3, 9))
    state = model.init_state(3)
    state = state_like(state, [torch.randn_like(t) for t in state_tensors(state)])
    logits, new_state = model.train()(ids, state)
    expected, expected_state = model.eval()(ids, state)
    assert torch.equal(logits, expected)
    for got, want in zip(state_tensors(new_state), state_tensors(expected_state), strict=True):
        assert got.shape == want.shape and torch.equal(got, want)


def test_training_forward_draws_fresh_masks():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=12, hidden=16, layers=2, embed=8, dropout=0.5)).train()
    ids = torch.randint(0, 12, (3, 9))
    first, _ = model(ids)
    second, _ = model(ids)
    assert not torch.equal(first, second)  # fresh masks each call
    eval_logits, _ = model.eval()(ids)
    assert not torch.equal(first, eval_logits)

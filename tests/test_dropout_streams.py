"""Dropout masks keyed by stream: a function of (seed, step, global stream, site), whatever split of
the batch draws them, so that W processes carrying B/W streams each do the mathematics of one."""

from __future__ import annotations

import threading

import pytest
import torch
from torch.nn import functional

from rnn_playground.core.model import CharRNN, DropoutKey, ModelConfig, stream_dropout_mask

SHAPE = (8, 20, 32)  # streams x time x hidden


@pytest.mark.parametrize("shape", [SHAPE, (5, 7, 3)])  # 3 x 7 = 21 levels a row: not whole int64 words
@pytest.mark.parametrize("split", [1, 4])
def test_a_split_batch_draws_the_same_masks_bit_for_bit(shape, split):
    key = DropoutKey(seed=1234, step=17)
    whole = stream_dropout_mask(shape, 0.3, key, site=0)
    first = stream_dropout_mask((split, *shape[1:]), 0.3, DropoutKey(1234, 17, first_stream=0), site=0)
    rest = stream_dropout_mask((shape[0] - split, *shape[1:]), 0.3, DropoutKey(1234, 17, first_stream=split), site=0)
    assert whole.dtype == torch.bool and whole.shape == shape
    assert torch.equal(whole, torch.cat([first, rest]))


def test_a_row_is_its_stream_s_mask_wherever_it_sits():
    # Global stream 5 is row 5 of a batch from 0 and row 0 of a batch from 5, and also of a single row.
    key = DropoutKey(seed=3, step=2)
    whole = stream_dropout_mask(SHAPE, 0.5, key, site=1)
    alone = stream_dropout_mask((1, *SHAPE[1:]), 0.5, DropoutKey(3, 2, first_stream=5), site=1)
    assert torch.equal(whole[5], alone[0])


def test_masks_do_not_depend_on_the_global_rng():
    key = DropoutKey(seed=9, step=4)
    torch.manual_seed(0)
    first = stream_dropout_mask(SHAPE, 0.3, key, site=0)
    torch.manual_seed(1)
    torch.rand(1000)
    second = stream_dropout_mask(SHAPE, 0.3, key, site=0)
    assert torch.equal(first, second)


def test_another_seed_step_site_or_stream_gives_another_mask():
    base = stream_dropout_mask(SHAPE, 0.3, DropoutKey(seed=1, step=1), site=0)
    for other in (stream_dropout_mask(SHAPE, 0.3, DropoutKey(seed=2, step=1), site=0),
                  stream_dropout_mask(SHAPE, 0.3, DropoutKey(seed=1, step=2), site=0),
                  stream_dropout_mask(SHAPE, 0.3, DropoutKey(seed=1, step=1), site=1),
                  stream_dropout_mask(SHAPE, 0.3, DropoutKey(seed=1, step=1, first_stream=1), site=0)):
        # independent masks agree where both keep or both drop: 0.7^2 + 0.3^2 = 58% of elements
        agreement = float((base == other).float().mean())
        assert 0.55 < agreement < 0.61
    rows = base.flatten(1)
    for i in range(len(rows)):
        for j in range(i):
            assert not torch.equal(rows[i], rows[j])  # every stream has its own mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_the_keep_rate_is_one_minus_p(p):
    keep = stream_dropout_mask((64, 100, 64), p, DropoutKey(seed=7, step=0), site=0)
    assert abs(float(keep.float().mean()) - (1 - p)) < 0.005
    per_stream = keep.flatten(1).float().mean(1)
    spread = (p * (1 - p) / (100 * 64)) ** 0.5  # the standard error of one stream's keep rate
    assert float((per_stream - (1 - p)).abs().max()) < 5 * spread  # each stream's own draw keeps about 1-p
    # Four levels come from each random int64: every lane position keeps 1-p (the top one too, whose
    # word has a bit fewer).
    lanes = keep.flatten(1).unflatten(1, (-1, 4)).float().mean((0, 1))
    assert float((lanes - (1 - p)).abs().max()) < 0.005


def test_each_thread_draws_the_same_masks():
    key = DropoutKey(seed=5, step=6)
    expected = stream_dropout_mask(SHAPE, 0.3, key, site=0)
    results = []

    def draw():
        results.extend(stream_dropout_mask(SHAPE, 0.3, key, site=0) for _ in range(20))

    threads = [threading.Thread(target=draw) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 60 and all(torch.equal(mask, expected) for mask in results)


def test_a_key_must_be_non_negative_integers():
    for bad in (dict(seed=-1, step=0), dict(seed=0, step=-2), dict(seed=0, step=0, first_stream=-1),
                dict(seed=1.5, step=0), dict(seed=0, step=True)):
        with pytest.raises(ValueError, match="DropoutKey"):
            DropoutKey(**bad)


# --------------------------------------------------------------------------- the model with a key

def small_model(layers: int = 2, cell: str = "lstm") -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=11, cell=cell, hidden=24, layers=layers, embed=8, dropout=0.3)).train()


def loss_and_gradients(model: CharRNN, ids, targets, state, key: DropoutKey):
    model.zero_grad(set_to_none=True)
    logits, new_state = model(ids, state, dropout_key=key)
    loss = functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    return loss.detach(), logits.detach(), new_state, {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_step_over_all_streams_equals_its_two_halves(cell):
    model = small_model(cell=cell)
    batch, seq = 6, 15
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 11, (batch, seq), generator=generator)
    targets = torch.randint(0, 11, (batch, seq), generator=generator)
    state = model.init_state(batch)
    parts = [torch.randn(t.shape, generator=generator) for t in (state if cell == "lstm" else (state,))]
    state = tuple(parts) if cell == "lstm" else parts[0]
    halves = (slice(0, batch // 2), slice(batch // 2, batch))

    loss, logits, new_state, grads = loss_and_gradients(model, ids, targets, state, DropoutKey(1234, 3))
    results = []
    for half in halves:
        half_state = tuple(t[:, half] for t in state) if cell == "lstm" else state[:, half]
        results.append(loss_and_gradients(model, ids[half], targets[half], half_state,
                                          DropoutKey(1234, 3, first_stream=half.start)))

    assert torch.allclose(torch.cat([r[1] for r in results]), logits, rtol=0, atol=1e-6)
    assert abs(float(sum(r[0] for r in results) / 2 - loss)) < 1e-6
    for name, grad in grads.items():
        averaged = (results[0][3][name] + results[1][3][name]) / 2  # what DDP's all-reduce gives
        assert torch.allclose(averaged, grad, rtol=0, atol=1e-6), name
    split_states = [r[2] for r in results]
    if cell == "lstm":
        for i in range(2):
            assert torch.allclose(torch.cat([s[i] for s in split_states], dim=1), new_state[i], rtol=0, atol=1e-6)
    else:
        assert torch.allclose(torch.cat(split_states, dim=1), new_state, rtol=0, atol=1e-6)
    # and dropout was really on: the eval-mode logits differ
    assert not torch.allclose(model.eval()(ids, state)[0], logits, atol=1e-3)


def test_the_same_key_gives_the_same_output_and_another_step_or_seed_another():
    model = small_model(layers=3)
    ids = torch.randint(0, 11, (4, 12), generator=torch.Generator().manual_seed(2))
    first, _ = model(ids, dropout_key=DropoutKey(seed=1, step=10))
    torch.manual_seed(99)  # the global RNG plays no part
    again, _ = model(ids, dropout_key=DropoutKey(seed=1, step=10))
    assert torch.equal(first, again)
    assert not torch.allclose(model(ids, dropout_key=DropoutKey(seed=1, step=11))[0], first, atol=1e-3)
    assert not torch.allclose(model(ids, dropout_key=DropoutKey(seed=2, step=10))[0], first, atol=1e-3)


def test_every_site_is_keyed_between_layers_and_before_the_head():
    # Masks drawn with the site numbers the model uses reproduce its forward by hand.
    model = small_model(layers=2)
    ids = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(4))
    key = DropoutKey(seed=8, step=0, first_stream=2)
    logits, _ = model(ids, dropout_key=key)
    scale = 1 / (1 - round(0.3 * 32768) / 32768)
    x = model.embed(ids)
    for layer in range(2):
        params = [getattr(model.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        zeros = torch.zeros(1, 3, 24)
        x = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, False, False, True)[0]
        x = x * stream_dropout_mask(x.shape, 0.3, key, site=layer).float() * scale
    assert torch.allclose(model.head(x), logits, rtol=0, atol=1e-6)


def test_eval_mode_ignores_the_key():
    model = small_model().eval()
    ids = torch.randint(0, 11, (4, 12), generator=torch.Generator().manual_seed(3))
    keyed, keyed_state = model(ids, dropout_key=DropoutKey(seed=1, step=1))
    plain, plain_state = model(ids)
    assert torch.equal(keyed, plain)
    for got, want in zip(keyed_state, plain_state, strict=True):
        assert torch.equal(got, want)


def test_without_a_key_training_still_draws_from_the_global_rng():
    model = small_model()
    ids = torch.randint(0, 11, (4, 12), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    first, _ = model(ids)
    torch.manual_seed(5)
    again, _ = model(ids)
    different, _ = model(ids)
    assert torch.equal(first, again) and not torch.equal(first, different)

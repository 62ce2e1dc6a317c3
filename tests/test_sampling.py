"""The streaming sampler on real (tiny) models: determinism, argmax, top-k, top-p, penalty, stops, several
streams at once, log-probabilities, the fast path, errors."""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from dataclasses import replace

import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.device import supports_bf16
from rnn_playground.core.errors import SamplingError
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.core.sampling import (
    INT8_MIN_HIDDEN,
    PENALTY_WINDOW,
    Int8Matrix,
    Sampler,
    SampleSettings,
    next_distribution,
    resolve_weights,
    stream_seed,
)
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli.main import main

from .conftest import TINY_TEXT, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny LSTM trained for this module (the per-test `tiny_run` fixture trains afresh each time)."""
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test isolation sets this
    folder = tmp_path_factory.mktemp("sampling")
    corpus = folder / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    trainer = Trainer(tiny_config(corpus, run_name="tiny", runs_dir=str(folder / "runs")))
    list(trainer.run())
    model, vocab, _ = load_model(trainer.run_dir, "cpu")
    return model, vocab


@pytest.fixture
def sampler(trained) -> Sampler:
    model, vocab = trained
    return Sampler(model, vocab)


def reference_next_logits(model: CharRNN, vocab: Vocab, text: str) -> torch.Tensor:
    """The model's own forward (nn.LSTM) over the whole text so far, dropout off."""
    model.eval()
    with torch.no_grad():
        logits, _ = model(vocab.encode(text).unsqueeze(0))
    return logits[0, -1]


# --------------------------------------------------------------------------- determinism

def test_same_seed_same_text(trained):
    model, vocab = trained
    settings = SampleSettings(prime="The ", temperature=1.0, length=120, seed=42)
    first = Sampler(model, vocab).generate(settings)
    assert len(first) == 120
    assert Sampler(model, vocab).generate(settings) == first
    assert Sampler(model, vocab).generate(settings) == first


def test_different_seeds_differ(sampler):
    texts = {sampler.generate(SampleSettings(prime="The ", temperature=1.0, length=120, seed=s)) for s in range(4)}
    assert len(texts) == 4


def test_with_seed_picks_and_keeps_a_seed():
    settings = SampleSettings().with_seed()
    assert settings.seed is not None and settings.with_seed() is settings


# --------------------------------------------------------------------------- argmax and top-k

@pytest.mark.parametrize("prime", ["The quick", "d", ""])
def test_temperature_zero_is_the_argmax_of_the_full_forward(trained, prime):
    model, vocab = trained
    generated = Sampler(model, vocab, "fp32").generate(SampleSettings(prime=prime, temperature=0, length=60, seed=1))
    text = prime or "\n"  # with no prime, sampling starts after a newline
    expected = ""
    for _ in range(60):
        char = vocab.chars[int(reference_next_logits(model, vocab, text + expected).argmax())]
        expected += char
    assert generated == expected


def test_temperature_zero_ignores_the_seed(sampler):
    texts = {sampler.generate(SampleSettings(prime="def ", temperature=0, length=40, seed=s)) for s in range(3)}
    assert len(texts) == 1


def test_top_k_restricts_to_the_k_likeliest(trained):
    model, vocab = trained
    k = 3
    sampler = Sampler(model, vocab, "fp32")
    prime = "The "
    text = prime
    for char in sampler.stream(SampleSettings(prime=prime, temperature=1.5, top_k=k, length=80, seed=7)):
        allowed = {vocab.chars[i] for i in reference_next_logits(model, vocab, text).topk(k).indices.tolist()}
        assert char in allowed, (text, char, allowed)
        text += char
    # at a high temperature, plain sampling does leave the top 3 now and then
    text, outside = prime, 0
    for char in sampler.stream(SampleSettings(prime=prime, temperature=1.5, length=80, seed=7)):
        allowed = {vocab.chars[i] for i in reference_next_logits(model, vocab, text).topk(k).indices.tolist()}
        outside += char not in allowed
        text += char
    assert outside > 0


def test_a_temperature_that_overflows_the_logits_is_argmax(sampler):
    """Below about 1e-38 the float32 logits divided by the temperature overflow; that is argmax,
    not the last character of the vocabulary over and over (the softmax of infinities is NaN)."""
    greedy = sampler.generate(SampleSettings(prime="def ", temperature=0, length=40))
    for top_k in (0, 5):
        for temperature in (1e-40, 1e-300, 5e-324):
            text = sampler.generate(SampleSettings(prime="def ", temperature=temperature, top_k=top_k, length=40,
                                                   seed=3))
            assert text == greedy, (temperature, top_k)


def test_top_1_is_argmax(sampler):
    greedy = sampler.generate(SampleSettings(prime="return ", temperature=0, length=50))
    for seed in (1, 2):
        assert sampler.generate(SampleSettings(prime="return ", temperature=2.0, top_k=1, length=50,
                                               seed=seed)) == greedy


def test_top_k_at_least_the_vocab_is_plain_sampling(sampler, trained):
    _, vocab = trained
    plain = SampleSettings(prime="x", temperature=1.0, length=50, seed=3)
    wide = SampleSettings(prime="x", temperature=1.0, top_k=len(vocab), length=50, seed=3)
    assert sampler.generate(plain) == sampler.generate(wide)


# --------------------------------------------------------------------------- the fast single-step path

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_single_step_logits_match_the_full_forward(cell, layers):
    text = f"the fast path must agree with nn.{cell.upper()}, step after step."
    vocab = Vocab.from_text(text)
    torch.manual_seed(11)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, hidden=24, layers=layers, embed=6, dropout=0.3))
    with torch.no_grad():  # larger weights than the default init, so that differences would show
        for parameter in model.parameters():
            parameter.mul_(3)
    sampler = Sampler(model, vocab, "fp32")
    assert model.training, "the sampler must not switch the caller's model to eval mode"
    with torch.inference_mode():
        for cut in (1, 2, 5):
            state, token = sampler.prime_state(text[:cut])
            for end in range(cut, len(text)):
                fast = sampler.step(token, state)[0]
                full = reference_next_logits(model, vocab, text[:end])
                assert fast.shape == full.shape == (len(vocab),)
                assert torch.allclose(fast, full, atol=1e-5, rtol=0), (cell, layers, cut, end,
                                                                      float((fast - full).abs().max()))
                token = vocab.index[text[end]]


# --------------------------------------------------------------------------- int8 weights

def nll(probs: torch.Tensor, vocab: Vocab, text: str) -> float:
    """Mean negative log-likelihood of `text`'s characters after the first."""
    return float(-probs.gather(1, vocab.encode(text)[1:, None]).log().mean())


def test_int8_weights_keep_the_trained_models_predictions(trained):
    model, vocab = trained
    text = TINY_TEXT[:600]
    exact_probs = Sampler(model, vocab, "fp32").teacher_forced(text)
    int8 = Sampler(model, vocab, "int8")
    assert int8.weights == "int8"
    int8_probs = int8.teacher_forced(text)
    assert exact_probs.shape == int8_probs.shape == (len(text) - 1, len(vocab))
    exact_nll, int8_nll = nll(exact_probs, vocab, text), nll(int8_probs, vocab, text)
    total_variation = 0.5 * (exact_probs - int8_probs).abs().sum(-1)
    assert abs(int8_nll - exact_nll) < 0.005 * exact_nll, (exact_nll, int8_nll)
    assert float(total_variation.mean()) < 0.01 and float(total_variation.max()) < 0.1
    assert float(total_variation.max()) > 0  # a different computation, not the fp32 path under another name


def test_teacher_forced_fp32_is_the_models_forward(trained):
    model, vocab = trained
    text = TINY_TEXT[:200]
    probs = Sampler(model, vocab, "fp32").teacher_forced(text)
    model.eval()
    with torch.no_grad():
        logits, _ = model(vocab.encode(text[:-1]).unsqueeze(0))
    assert torch.allclose(probs, logits[0].softmax(-1), atol=1e-6)
    with pytest.raises(SamplingError, match="'Ω'"):
        Sampler(model, vocab, "fp32").teacher_forced("Ωmega")


@pytest.mark.parametrize("width", [7, 40, 64, 100])
def test_int8_matrix_product(width):
    # Any width, including those the kernel cannot take unpadded (not a multiple of 16).
    torch.manual_seed(width)
    weight, vector = torch.randn(96, width), torch.randn(1, width)
    exact = vector @ weight.t()
    for _ in range(3):  # the unpadded kernel's garbage came and went between calls
        assert float((Int8Matrix(weight)(vector) - exact).abs().max()) < 0.02 * float(exact.abs().max())


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_int8_step_follows_every_layer(layers):
    # Layers above the first take [x, h] through one int8 matrix: a wrong split or gate order
    # would put the logits far off, well outside int8's rounding.
    text = "int8 weights must track nn.LSTM through every layer, step after step."
    vocab = Vocab.from_text(text)
    torch.manual_seed(5)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=40, layers=layers, embed=8, dropout=0.0))
    with torch.no_grad():  # livelier than the default init: logits of a few units, saturating gates
        for parameter in model.parameters():
            parameter.mul_(3)
    exact, int8 = Sampler(model, vocab, "fp32"), Sampler(model, vocab, "int8")
    with torch.inference_mode():
        exact_state, token = exact.prime_state(text[:3])
        int8_state, _ = int8.prime_state(text[:3])
        for end in range(3, len(text)):
            a, b = exact.step(token, exact_state)[0], int8.step(token, int8_state)[0]
            assert float((a - b).abs().max()) < 0.05 * float(a.abs().max()), end
            token = vocab.index[text[end]]


def test_int8_sampling_is_reproducible_and_greedy_on_its_own_logits(trained):
    model, vocab = trained
    settings = SampleSettings(prime="The ", temperature=1.0, top_k=5, length=80, seed=3)
    assert Sampler(model, vocab, "int8").generate(settings) == Sampler(model, vocab, "int8").generate(settings)
    sampler = Sampler(model, vocab, "int8")
    greedy = sampler.generate(SampleSettings(prime="The ", temperature=0, length=30))
    with torch.inference_mode():
        state, token = sampler.prime_state("The ")
        expected = ""
        for _ in range(30):
            token = int(sampler.step(token, state).argmax())
            expected += vocab.chars[token]
    assert greedy == expected


def test_weights_choice():
    cpu = torch.device("cpu")
    assert resolve_weights("fp32", "lstm", 512, cpu) == "fp32"
    assert resolve_weights("int8", "lstm", 32, cpu) == "int8"
    # auto: int8 only where weight traffic is what a step costs, on a CPU with bf16 units
    assert resolve_weights("auto", "lstm", INT8_MIN_HIDDEN - 1, cpu) == "fp32"
    assert resolve_weights("auto", "gru", 1024, cpu) == "fp32"
    assert resolve_weights("auto", "lstm", 512, cpu) == ("int8" if supports_bf16(cpu) else "fp32")
    assert resolve_weights("auto", "lstm", 512, torch.device("meta")) == "fp32"
    with pytest.raises(SamplingError, match="GRU.*fp32"):
        resolve_weights("int8", "gru", 512, cpu)
    with pytest.raises(SamplingError, match="auto, fp32, int8"):
        resolve_weights("fp16", "lstm", 512, cpu)


def test_sampler_keeps_a_frozen_copy(trained):
    model, vocab = trained
    settings = SampleSettings(prime="The ", temperature=0.8, length=60, seed=9)
    sampler = Sampler(model, vocab)
    before = sampler.generate(settings)
    copy = CharRNN(model.config)
    copy.load_state_dict(model.state_dict())
    sampler_of_copy = Sampler(copy, vocab)
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.zero_()
    assert sampler_of_copy.generate(settings) == before


# --------------------------------------------------------------------------- streaming

def test_stream_yields_exactly_length_characters_one_at_a_time(sampler, trained):
    _, vocab = trained
    settings = SampleSettings(prime="def f", temperature=0.9, length=37, seed=5)
    pieces = list(sampler.stream(settings))
    assert len(pieces) == 37
    assert all(isinstance(p, str) and len(p) == 1 and p in vocab.index for p in pieces)
    assert "".join(pieces) == sampler.generate(settings)


def test_stream_is_lazy(sampler):
    started = time.monotonic()
    first = list(itertools.islice(sampler.stream(SampleSettings(length=10**9, seed=1)), 5))
    assert len(first) == 5 and time.monotonic() - started < 5


def test_a_stream_dropped_midway_leaves_inference_mode_at_once(sampler):
    stream = sampler.stream(SampleSettings(length=100, seed=1))
    assert len([next(stream) for _ in range(3)]) == 3 and torch.is_inference_mode_enabled()
    del stream  # no reference cycle keeps it suspended inside inference mode until a garbage collection
    assert not torch.is_inference_mode_enabled()
    run = sampler.start(SampleSettings(length=100, seed=1, samples=2))
    next(iter(run))
    del run
    assert not torch.is_inference_mode_enabled()
    run = sampler.start(SampleSettings(length=100, seed=1, samples=2))
    first = next(iter(run))
    run.close()
    assert not torch.is_inference_mode_enabled()
    assert [(r.text, len(r.logprobs)) for r in run.results] == [(first[0], 1), (first[1], 1)]


def test_length_zero(sampler):
    assert sampler.generate(SampleSettings(prime="The", length=0, seed=1)) == ""


# --------------------------------------------------------------------------- errors

def test_prime_outside_the_vocab_lists_the_characters(sampler):
    with pytest.raises(SamplingError) as info:
        list(sampler.stream(SampleSettings(prime="Ωmega ☃ The", length=5)))
    message = str(info.value)
    assert "'Ω'" in message and "'☃'" in message and "'T'" not in message
    with pytest.raises(SamplingError, match="Ω"):
        sampler.generate(SampleSettings(prime="Ω"))


@pytest.mark.parametrize("settings, match", [
    (dict(temperature=-0.5), "--temperature must be"),
    (dict(temperature=float("nan")), "--temperature must be"),
    (dict(temperature=float("inf")), "--temperature must be"),
    (dict(top_k=-1), "--top-k must be"),
    (dict(length=-3), "--length must be from 0"),
])
def test_bad_settings(sampler, settings, match):
    with pytest.raises(SamplingError, match=match):
        sampler.generate(SampleSettings(seed=1, **settings))


def test_vocab_that_does_not_fit_the_model(trained):
    model, _ = trained
    with pytest.raises(SamplingError, match="vocabulary"):
        Sampler(model, Vocab("ab"))


# --------------------------------------------------------------------------- checkpoints and devices

def test_checkpoint_sampled_on_cpu(tiny_run):
    sampler = Sampler.from_checkpoint(tiny_run, device="cpu")
    assert sampler.device == torch.device("cpu")
    text = sampler.generate(SampleSettings(prime="The ", length=40, seed=2))
    assert len(text) == 40
    from_file = Sampler.from_checkpoint(tiny_run / "last.safetensors", device="cpu")
    assert from_file.generate(SampleSettings(prime="The ", length=40, seed=2)) == text
    model, vocab, checkpoint = load_model(tiny_run, "cpu")
    assert Sampler(model, vocab).generate(SampleSettings(prime="The ", length=40, seed=2)) == text



# --------------------------------------------------------------------------- the distribution transform

LOGITS = [2.0, 1.0, 0.5, -1.0]


def softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def distribution(settings: SampleSettings, seen: set[int] = frozenset()) -> dict[int, float]:
    """next_distribution on LOGITS as {character index: probability}, zeros left out."""
    mask = torch.tensor([[i in seen for i in range(len(LOGITS))]])
    probs, indices = next_distribution(torch.tensor([LOGITS]), settings, mask)
    indices = indices[0].tolist() if indices is not None else range(len(LOGITS))
    return {i: p for i, p in zip(indices, probs[0].tolist(), strict=True) if p > 0}


def assert_close(got: dict[int, float], expected: dict[int, float]) -> None:
    assert got.keys() == expected.keys(), (got, expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), (key, got, expected)


def test_each_step_of_the_distribution_against_a_hand_computation():
    plain = softmax(LOGITS)  # 0.6095, 0.2242, 0.1360, 0.0303
    assert_close(distribution(SampleSettings(temperature=1.0)), dict(enumerate(plain)))
    # temperature 0.5: the logits doubled
    assert_close(distribution(SampleSettings(temperature=0.5)), dict(enumerate(softmax([4.0, 2.0, 1.0, -2.0]))))
    # penalty 2 on characters 0 and 3: 2.0 / 2 (positive: divided), -1.0 * 2 (negative: multiplied)
    assert_close(distribution(SampleSettings(temperature=1.0, repetition_penalty=2.0), {0, 3}),
                 dict(enumerate(softmax([1.0, 1.0, 0.5, -2.0]))))
    # top-k 2: the two likeliest, renormalised
    assert_close(distribution(SampleSettings(temperature=1.0, top_k=2)), dict(enumerate(softmax([2.0, 1.0]))))
    # top-p 0.7: 0.6095 is short of 0.7, 0.6095 + 0.2242 reaches it: those two, renormalised
    assert_close(distribution(SampleSettings(temperature=1.0, top_p=0.7)),
                 {0: plain[0] / (plain[0] + plain[1]), 1: plain[1] / (plain[0] + plain[1])})
    assert_close(distribution(SampleSettings(temperature=1.0, top_p=0.5)), {0: 1.0})
    # temperature 0: the argmax, after the penalty (2.0 / 4 = 0.5 falls behind 1.0)
    assert_close(distribution(SampleSettings(temperature=0)), {0: 1.0})
    assert_close(distribution(SampleSettings(temperature=0, repetition_penalty=4.0), {0}), {1: 1.0})


def test_all_steps_together_in_their_documented_order():
    # temperature 0.5: [4, 2, 1, -2]; penalty 2 on {0, 3}: [2, 2, 1, -4]; top-k 3: [2, 2, 1] -> 0.4223,
    # 0.4223, 0.1554; top-p 0.6: 0.4223 short, 0.8446 reaches it: characters 0 and 1, half each.
    settings = SampleSettings(temperature=0.5, repetition_penalty=2.0, top_k=3, top_p=0.6)
    assert_close(distribution(settings, {0, 3}), {0: 0.5, 1: 0.5})
    # the same with top-p off: the three of top-k
    assert_close(distribution(replace(settings, top_p=1.0), {0, 3}), dict(enumerate(softmax([2.0, 2.0, 1.0]))))


def test_top_p_restricts_to_the_nucleus(trained):
    model, vocab = trained
    sampler, prime, p = Sampler(model, vocab, "fp32"), "The ", 0.5
    text = prime
    for char in sampler.stream(SampleSettings(prime=prime, temperature=1.0, top_p=p, length=80, seed=7)):
        probs, order = reference_next_logits(model, vocab, text).softmax(-1).sort(descending=True)
        nucleus = {vocab.chars[i] for i, before in zip(order.tolist(), (probs.cumsum(0) - probs).tolist(),
                                                       strict=True) if before < p}
        assert char in nucleus, (text, char, nucleus)
        text += char


def test_repetition_penalty_at_temperature_zero_follows_the_ctrl_rule(trained):
    model, vocab = trained
    prime, penalty = "The ", 1.6
    generated = Sampler(model, vocab, "fp32").generate(
        SampleSettings(prime=prime, temperature=0, repetition_penalty=penalty, length=60))
    text = prime
    for _ in range(60):
        logits = reference_next_logits(model, vocab, text)
        for index in {vocab.index[c] for c in text[-PENALTY_WINDOW:]}:
            logits[index] = logits[index] / penalty if logits[index] > 0 else logits[index] * penalty
        text += vocab.chars[int(logits.argmax())]
    assert generated == text[len(prime):]
    assert generated != Sampler(model, vocab, "fp32").generate(SampleSettings(prime=prime, temperature=0, length=60))


# --------------------------------------------------------------------------- log-probabilities

def test_log_probs_are_the_models_own(trained):
    model, vocab = trained
    prime = "The "
    [result] = Sampler(model, vocab, "fp32").sample_many(
        SampleSettings(prime=prime, temperature=1.4, top_k=4, top_p=0.9, repetition_penalty=1.3, length=50, seed=3))
    assert len(result.text) == len(result.logprobs) == result.length == 50 and result.stop_reason == "length"
    for position, (char, logprob) in enumerate(zip(result.text, result.logprobs, strict=True)):
        # at temperature 1, before penalty, top-k and top-p: the unmodified model
        expected = reference_next_logits(model, vocab, prime + result.text[:position]).log_softmax(-1)
        assert logprob == pytest.approx(float(expected[vocab.index[char]]), abs=1e-5), position
    assert result.total == pytest.approx(math.fsum(result.logprobs))
    assert result.bits_per_char == pytest.approx(-result.total / 50 / math.log(2))


# --------------------------------------------------------------------------- stop texts

def test_stop_text_ends_the_stream(trained):
    model, vocab = trained
    sampler = Sampler(model, vocab, "fp32")
    base = SampleSettings(prime="The ", temperature=1.0, length=300, seed=4)
    [full] = sampler.sample_many(base)
    stop = "e "
    at = full.text.index(stop)
    [cut] = sampler.sample_many(replace(base, stop=stop))
    assert cut.text == full.text[:at] and cut.stop_reason == "stop"
    assert cut.logprobs == full.logprobs[:at] and cut.total == pytest.approx(math.fsum(full.logprobs[:at]))
    assert "".join(sampler.stream(replace(base, stop=stop))) == cut.text  # held back, never taken back
    [kept] = sampler.sample_many(replace(base, stop=stop, include_stop=True))
    assert kept.text == full.text[:at + 2] and kept.logprobs == full.logprobs[:at + 2]
    # min_length: a match ending before it is passed over
    later = full.text.index(stop, at + 1)
    [long] = sampler.sample_many(replace(base, stop=stop, include_stop=True, min_length=at + 3))
    assert long.text == full.text[:later + 2]
    # a regular expression, and one that never matches
    [regex] = sampler.sample_many(replace(base, stop=r"[aeiou] ", stop_regex=True))
    match = re.search(r"[aeiou] ", full.text)
    assert regex.text == full.text[:match.start()] and regex.stop_reason == "stop"
    [never] = sampler.sample_many(replace(base, stop="Ω", include_stop=False))
    assert never.text == full.text and never.stop_reason == "length"
    assert "".join(sampler.stream(replace(base, stop="zq!", stop_regex=True))) == full.text


# --------------------------------------------------------------------------- several streams at once

def test_stream_seeds():
    assert stream_seed(5, 0) == 5 and stream_seed(5, 1) == stream_seed(5, 1) != stream_seed(6, 1)
    assert len({stream_seed(5, i) for i in range(100)}) == 100


def random_model(cell: str, layers: int, text: str) -> tuple[CharRNN, Vocab]:
    vocab = Vocab.from_text(text)
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, hidden=32, layers=layers, embed=8))
    with torch.no_grad():  # livelier than the default init, so that the streams differ (not so far as to
        for parameter in model.parameters():  # saturate: equal logits would leave top-k's order to rounding)
            parameter.mul_(2)
    return model, vocab


def assert_streams_are_single_runs(sampler: Sampler, settings: SampleSettings) -> list:
    results = sampler.sample_many(settings)
    assert [r.index for r in results] == list(range(settings.samples))
    for result in results:
        [alone] = sampler.sample_many(replace(settings, samples=1, seed=result.seed))
        assert alone.text == result.text and alone.stop_reason == result.stop_reason, result.index
        assert alone.logprobs == pytest.approx(result.logprobs, abs=1e-5)
    return results


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_several_streams_equal_single_runs_of_their_seeds(cell, layers):
    text = "several streams at once, each its own: the quick brown fox jumps over the lazy dog."
    sampler = Sampler(*random_model(cell, layers, text), "fp32")
    settings = SampleSettings(prime="the ", temperature=1.0, length=60, seed=11, samples=5)
    results = assert_streams_are_single_runs(sampler, settings)
    assert len({r.text for r in results}) == 5 and results[0].seed == 11
    # with stops, streams end apart: the finished stay finished while the rest go on
    stops = assert_streams_are_single_runs(sampler, replace(settings, stop="[eo]", stop_regex=True, top_k=6,
                                                                   repetition_penalty=1.2))
    assert len({r.length for r in stops}) > 1 and any(r.stop_reason == "stop" for r in stops)
    # stream i is the same whatever the number of streams
    second = sampler.sample_many(replace(settings, samples=2))[1]
    assert second.text == results[1].text and second.logprobs == pytest.approx(results[1].logprobs, abs=1e-5)


@pytest.mark.skipif(not hasattr(torch, "_weight_int8pack_mm"), reason="this torch lacks the int8 weight kernel")
def test_several_int8_streams_equal_single_runs():
    text = "int8 weights, several streams at once: the quick brown fox jumps over the lazy dog."
    sampler = Sampler(*random_model("lstm", 2, text), "int8")
    assert_streams_are_single_runs(sampler, SampleSettings(prime="the ", temperature=1.0, length=60, seed=2,
                                                           samples=4, stop="o"))


def test_updates_carry_each_streams_new_text(trained):
    model, vocab = trained
    sampler = Sampler(model, vocab)
    run = sampler.start(SampleSettings(prime="The ", temperature=1.0, length=40, seed=8, samples=3, stop="e"))
    texts = {}
    for update in run:
        assert update and all(text for text in update.values())
        for index, text in update.items():
            texts[index] = texts.get(index, "") + text
    assert [texts.get(r.index, "") for r in run.results] == [r.text for r in run.results]
    assert sampler.generate(SampleSettings(prime="The ", temperature=1.0, length=40, seed=8, stop="e")) == \
        run.results[0].text


@pytest.mark.parametrize("settings, match", [
    (dict(top_p=0), "--top-p must be above 0 and at most 1"),
    (dict(top_p=1.5), "--top-p must be"),
    (dict(top_p=float("nan")), "--top-p must be"),
    (dict(repetition_penalty=0), "--repetition-penalty must be a positive number"),
    (dict(repetition_penalty=-1.2), "--repetition-penalty must be"),
    (dict(stop="(ab", stop_regex=True), r"--stop '\(ab' is not a regular expression: missing \), unterminated"),
    (dict(stop="x*", stop_regex=True), "--stop 'x\\*' matches empty text"),
    (dict(stop="(" * 2000 + "a" + ")" * 2000, stop_regex=True), r"is nested too deeply .*\(2000 brackets\)"),
    (dict(min_length=-1), "--min-length must be from 0 to --length"),
    (dict(min_length=501), r"--min-length must be from 0 to --length \(500\), got 501"),
    (dict(samples=0), "--samples must be from 1"),
])
def test_bad_decoding_settings(settings, match):
    with pytest.raises(SamplingError, match=match) as info:
        SampleSettings(**settings).validate()
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- the sample command

def test_sample_command_json_and_score_line(tiny_run, capsys):
    assert main(["sample", str(tiny_run), "--prime", "The ", "--length", "40", "--seed", "3", "--device", "cpu",
                 "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    [result] = Sampler.from_checkpoint(tiny_run, "cpu").sample_many(
        SampleSettings(prime="The ", length=40, seed=3))
    assert record["text"] == result.text and record["prime"] == "The " and record["stop_reason"] == "length"
    assert record["settings"]["seed"] == 3 and record["settings"]["top_p"] == 1.0 and record["seed"] == 3
    assert len(record["logprobs"]) == 40 and record["logprobs"] == pytest.approx(list(result.logprobs))
    assert record["total_nats"] == pytest.approx(math.fsum(record["logprobs"]))
    assert record["bits_per_char"] == pytest.approx(-record["total_nats"] / 40 / math.log(2))
    assert f"log-prob {result.total:.1f} nats, {result.bits_per_char:.2f} bits/char" in captured.err
    # streamed, the same text and the same score
    assert main(["sample", str(tiny_run), "--prime", "The ", "--length", "40", "--seed", "3", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "The " + result.text + "\n"
    assert f"log-prob {result.total:.1f} nats, {result.bits_per_char:.2f} bits/char" in captured.err


def test_sample_command_several_samples_and_a_stop(tiny_run, capsys):
    common = ["sample", str(tiny_run), "--prime", "The ", "--length", "60", "--seed", "5", "--device", "cpu",
              "--samples", "3", "--stop", "e", "--min-length", "2"]
    assert main([*common, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    results = Sampler.from_checkpoint(tiny_run, "cpu").sample_many(
        SampleSettings(prime="The ", length=60, seed=5, samples=3, stop="e", min_length=2))
    assert [r["text"] for r in records] == [r.text for r in results]
    assert [r["seed"] for r in records] == [stream_seed(5, i) for i in range(3)]
    assert [r["stop_reason"] for r in records] == [r.stop_reason for r in results]
    assert main(common) == 0
    out = capsys.readouterr().out
    for result in results:
        assert (f"--- sample {result.index + 1}: log-prob {result.total:.1f} nats, {result.bits_per_char:.2f} "
                f"bits/char, seed {result.seed}\nThe {result.text}\n") in out
    assert main(["sample", str(tiny_run), "--prime", "The ", "--length", "60", "--seed", "5", "--device", "cpu",
                 "--stop", "e", "--min-length", "2"]) == 0
    assert capsys.readouterr().out == "The " + results[0].text + "\n"


@pytest.mark.parametrize("flags, message", [
    (["--top-p", "0"], "--top-p must be above 0 and at most 1"),
    (["--repetition-penalty", "-1"], "--repetition-penalty must be a positive number"),
    (["--stop", "(", "--stop-regex"], "--stop '(' is not a regular expression: missing ), unterminated"),
    (["--samples", "0"], "--samples must be from 1"),
    (["--min-length", "20", "--length", "10"], "--min-length must be from 0 to --length (10), got 20"),
])
def test_sample_command_refuses_bad_decoding_flags(tiny_run, capsys, flags, message):
    assert main(["sample", str(tiny_run), "--device", "cpu", *flags]) == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert message in err and "Traceback" not in err and captured.out == ""

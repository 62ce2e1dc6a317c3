"""The evaluation baselines: Witten-Bell n-grams against hand computations, sums, entropy and order choice."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from rnn_playground.core.baselines import fit_ngram, ngram, unigram, unigram_entropy
from rnn_playground.core.errors import CorpusError

ABRA = "abracadabra"


def order2_process(seed: int = 16, symbols: str = "abcdef") -> tuple[np.ndarray, str, str, float]:
    """A seeded order-2 Markov source (each character drawn given the two before it): its transition
    table, a training and a validation text drawn from it, and its entropy rate in bits."""
    rng = np.random.default_rng(seed)
    k = len(symbols)
    table = rng.dirichlet(np.full(k, 0.3), size=(k, k))
    cumulative = np.cumsum(table, axis=2)

    def draw(n: int) -> str:
        codes = [0, 1]
        for u in rng.random(n - 2):
            codes.append(min(int(np.searchsorted(cumulative[codes[-2], codes[-1]], u)), k - 1))
        return "".join(symbols[code] for code in codes)

    pairs = np.zeros((k * k, k * k))  # the chain over (previous, current) pairs
    for a, b, c in itertools.product(range(k), repeat=3):
        pairs[a * k + b, b * k + c] = table[a, b, c]
    stationary = np.full(k * k, 1 / (k * k))
    for _ in range(2000):
        stationary = stationary @ pairs
    rate = sum(stationary[a * k + b] * -(table[a, b] * np.log2(table[a, b])).sum()
               for a, b in itertools.product(range(k), repeat=2))
    return table, draw(60_000), draw(20_000), float(rate)


@pytest.fixture(scope="module")
def order2():
    return order2_process()


# -- hand computations --------------------------------------------------------------------------------------

def _abra_hand() -> dict[str, Fraction]:
    """Interpolated Witten-Bell on "abracadabra" by hand: V = 5 (a b c d r), N = 11, base 1/6.
    Followers: a -> b b c d (C = 4, T = 3); b -> r r; r -> a a; c -> a; d -> a;
    ab -> r r; br -> a a; ra -> c (its second "ra" ends the text); ac -> a; ca -> d; ad -> a; da -> b."""
    v, n, base = 5, 11, Fraction(1, 6)
    counts = {"a": 5, "b": 2, "c": 1, "d": 1, "r": 2}
    p1 = {c: (counts[c] + v * base) / (n + v) for c in counts}
    p1["?"] = v * base / (n + v)
    p2 = {"b|a": (2 + 3 * p1["b"]) / 7, "c|a": (1 + 3 * p1["c"]) / 7, "r|b": (2 + p1["r"]) / 3,
          "a|r": (2 + p1["a"]) / 3, "?|a": (0 + 3 * p1["?"]) / 7}
    p3 = {"r|ab": (2 + p2["r|b"]) / 3, "a|br": (2 + p2["a|r"]) / 3, "c|ra": (1 + p2["c|a"]) / 2,
          "b|ra": (0 + (2 + 3 * p1["b"]) / 7) / 2}
    return {**{f"{c}|": p for c, p in p1.items()}, **p2, **p3}


def test_the_unigram_and_the_bigram_and_trigram_match_a_hand_computation():
    hand = _abra_hand()
    one = unigram(ABRA)
    assert one.name == "unigram" and one.order == 1 and one.vocab == "abcdr"
    for code, char in enumerate("abcdr?"):
        assert one.distribution("")[code] == pytest.approx(float(hand[f"{char}|"]), abs=1e-12)

    tri = ngram(ABRA, 3)
    assert tri.order == 3 and tri.name == "3-gram Witten-Bell"
    # "abrac": b after "a" (only one character of context: the bigram), then r|ab, a|br, c|ra.
    expected = [hand["b|a"], hand["r|ab"], hand["a|br"], hand["c|ra"]]
    np.testing.assert_allclose(tri.surprisals("abrac"), [-math.log(p) for p in expected], rtol=0, atol=1e-12)
    assert tri.distribution("ra")[tri.vocab.index("b")] == pytest.approx(float(hand["b|ra"]), abs=1e-12)
    # An unknown character after "a": the bigram's escape mass times the base's unknown share.
    assert ngram(ABRA, 2).surprisals("az")[0] == pytest.approx(-math.log(hand["?|a"]), abs=1e-12)
    # A context never seen ("bb", "zz") passes the lower order through.
    np.testing.assert_allclose(tri.distribution("bb"), tri.distribution("b"), rtol=0, atol=1e-15)
    np.testing.assert_allclose(tri.distribution("zz"), one.distribution(""), rtol=0, atol=1e-15)


def test_every_distribution_sums_to_one_over_the_vocabulary_and_the_unknown_symbol():
    model = ngram(ABRA, 3)
    symbols = model.vocab + "z"  # z: outside the training vocabulary
    contexts = [""] + ["".join(p) for k in (1, 2, 3) for p in itertools.product(symbols, repeat=k)]
    for context in contexts:
        distribution = model.distribution(context)
        assert len(distribution) == model.vocab_size + 1
        assert distribution.sum() == pytest.approx(1.0, abs=1e-12), context
        assert (distribution > 0).all()
        if context:  # the same figures, one character at a time, through surprisals
            through_text = [math.exp(-model.surprisals(context + c)[-1]) for c in symbols]
            np.testing.assert_allclose(distribution, through_text, rtol=1e-12, atol=0)


def test_a_character_outside_the_vocabulary_is_named_and_costs_at_least_log_v_plus_one():
    model = ngram(ABRA, 3)
    assert model.unknown_chars("abXracYX") == {"X": 2, "Y": 1}
    assert model.unknown_chars("abra") == {}
    # A lone surrogate (from surrogateescape decoding) is one more character, not an encoding error.
    assert model.unknown_chars("a\udcffb") == {"\udcff": 1} and model.surprisals("a\udcffb").shape == (2,)
    surprisals = model.surprisals("abXra")
    assert surprisals[1] >= math.log(model.vocab_size + 1)
    # After the unknown character the context is unseen at every order: r is scored by the unigram.
    assert surprisals[2] == pytest.approx(-math.log(model.distribution("")[model.vocab.index("r")]), abs=1e-12)


# -- the unigram and the empirical entropy ---------------------------------------------------------------

def test_unigram_entropy_is_the_empirical_entropy():
    counts = {"a": 5, "b": 2, "c": 1, "d": 1, "r": 2}
    expected = -sum(c / 11 * math.log2(c / 11) for c in counts.values())
    assert unigram_entropy(ABRA) == pytest.approx(expected, abs=1e-12)
    assert unigram_entropy("aaaa") == 0.0


def test_the_unigram_on_its_own_training_text_is_its_entropy_within_the_smoothing_bound(order2):
    """The unigram gives c at least C(c) / (N + V), so over the whole text its cross-entropy lies
    between the entropy H (Gibbs) and H + log2(1 + V / N); surprisals skip the first character."""
    _, text, _, _ = order2
    model, n, v = unigram(text), len(text), 6
    entropy = unigram_entropy(text)
    first = -math.log2(model.distribution("")[model.vocab.index(text[0])])
    total_bits = model.bits_per_char(text) * (n - 1)
    assert n * entropy - first <= total_bits <= n * (entropy + math.log2(1 + v / n))
    assert model.bits_per_char(text) == pytest.approx(entropy, abs=1e-3)
    assert ngram(text, 1).distribution("").tolist() == model.distribution("").tolist()


# -- choosing the order --------------------------------------------------------------------------------

def test_the_order_chosen_on_validation_fits_an_order_2_source(order2):
    _, train, val, rate = order2
    model = fit_ngram(train, val, max_order=6)
    assert model.order == 3 and model.name == "3-gram Witten-Bell"  # two characters of context, as drawn
    assert sorted(model.val_bits_per_char) == [1, 2, 3, 4, 5, 6]
    assert model.val_bits_per_char[3] == min(model.val_bits_per_char.values())
    assert model.val_bits_per_char[3] < model.val_bits_per_char[1] - 0.5
    assert model.bits_per_char(val) == pytest.approx(model.val_bits_per_char[3], abs=1e-12)
    assert model.bits_per_char(val) < unigram(train).bits_per_char(val)
    assert abs(model.bits_per_char(val) - rate) < 0.02  # near the source's entropy rate
    again = fit_ngram(train, val, max_order=6)
    assert (again.order, again.val_bits_per_char) == (model.order, model.val_bits_per_char)
    np.testing.assert_array_equal(again.surprisals(val[:500]), model.surprisals(val[:500]))


def test_higher_orders_fit_the_training_text_at_least_as_well_here(order2):
    """Not a theorem for interpolated Witten-Bell, but true of this text: training bits per
    character fall with the order while validation ones turn back up past the source's order."""
    _, train, val, _ = order2
    on_train = [ngram(train, order).bits_per_char(train) for order in range(1, 7)]
    assert on_train == sorted(on_train, reverse=True)
    model = fit_ngram(train, val, max_order=6)
    assert model.val_bits_per_char[6] > model.val_bits_per_char[3]
    assert on_train[5] < model.val_bits_per_char[6]


def test_a_text_shorter_than_the_order_gives_the_orders_it_has():
    model = fit_ngram("ab", "abab", max_order=5)
    assert sorted(model.val_bits_per_char) == [1, 2]
    assert ngram("abc", 10).order == 3


def test_unusable_texts_are_clear_errors():
    with pytest.raises(CorpusError, match="training text; this one is empty"):
        fit_ngram("", "abc")
    with pytest.raises(CorpusError, match="validation text of 2 characters or more; this one has 1"):
        fit_ngram("abc", "a")
    with pytest.raises(CorpusError, match="order must be 1 or more, not 0"):
        fit_ngram("abc", "abc", max_order=0)
    with pytest.raises(CorpusError, match="2 characters or more; this one has 0"):
        unigram("abc").bits_per_char("")
    assert unigram("abc").surprisals("a").shape == (0,)

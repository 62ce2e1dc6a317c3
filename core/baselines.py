"""Baselines a trained run is judged against: a unigram and an interpolated n-gram character model.

Karpathy, Johnson and Fei-Fei (2015) compared their LSTMs with n-gram models fitted on the same
training text; `rnn-playground eval` reports these beside each run. Both are one class,
`CharBaseline`, with interpolated Witten-Bell smoothing (Witten and Bell 1991; the interpolated
form as Chen and Goodman 1999, section 2.6, write it):

    P_k(c | h) = (C(h c) + T(h) * P_(k-1)(c | h')) / (C(h) + T(h))

for the order-k model with context h (the last k-1 characters), h' being h without its oldest
character, C(h c) the count of h followed by c in the training text, C(h) = sum over c of C(h c),
and T(h) the number of distinct characters seen after h. A context never seen in training
(C(h) = 0) passes the lower order through unchanged. Under order 1 stands the uniform
distribution over the training vocabulary plus one "unknown" symbol, 1 / (V + 1), so every
character, seen in training or not, has a probability above zero and every distribution sums to
one over the V + 1 symbols. A character outside the training vocabulary is scored as the unknown
symbol: it costs at least log(V + 1) nats (the unknown mass is shrunk at every order), and
`unknown_chars` names such characters so a report can say how many there were.

Witten-Bell rather than Kneser-Ney: it needs no discount estimated from counts of counts (which
tiny texts make degenerate), and a context's escape mass T(h) is never zero. The unigram is the
order-1 member of the same family: P(c) = (C(c) + V / (V + 1)) / (N + V).

Counting is numpy throughout: the k-grams of the training text are numbered level by level (a
k-gram's key is its (k-1)-gram prefix's number times (V + 1) plus its last character), so keys
stay small at any order and each level is one `np.unique`; scoring looks keys up with
`np.searchsorted`. Numpy and the standard library only: the engine takes no further dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import CorpusError

DEFAULT_MAX_ORDER = 10
LN2 = math.log(2.0)


@dataclass(frozen=True)
class _Level:
    """The counts of one order k >= 2: the k-grams seen in training, and per (k-1)-gram context
    the total C(h) and the distinct followers T(h) (arrays indexed by the context's number)."""

    keys: np.ndarray           # sorted int64: context number * base + last character
    counts: np.ndarray         # C(h c) for each key
    context_total: np.ndarray  # C(h) per context number
    context_types: np.ndarray  # T(h) per context number


@dataclass
class CharBaseline:
    """A fitted character model: `surprisals(text)` in nats, one per character of text[1:].

    `order` is the n of the n-gram (1 for the unigram); `val_bits_per_char` maps each order tried
    to its bits per character on the validation text it was chosen on (empty for the unigram)."""

    name: str
    order: int
    vocab: str                               # the training characters, sorted; code V is "unknown"
    unigram_counts: np.ndarray               # C(c) per training character
    levels: tuple[_Level, ...] = ()          # orders 2..order
    val_bits_per_char: dict[int, float] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def smoothing(self) -> str:
        return "Witten-Bell, interpolated, over a uniform base of the training vocabulary plus one unknown symbol"

    def unknown_chars(self, text: str) -> dict[str, int]:
        """The characters of `text` outside the training vocabulary, with their counts, in order of
        first appearance: each is scored as the one unknown symbol."""
        known = set(self.vocab)
        unknown: dict[str, int] = {}
        for char in text:
            if char not in known:
                unknown[char] = unknown.get(char, 0) + 1
        return unknown

    def surprisals(self, text: str) -> np.ndarray:
        """-ln P(text[i] | text[:i]) for i = 1 .. len(text) - 1, float64 nats; the model reads the
        last `order - 1` characters before each (fewer at the start of the text)."""
        codes = self._encode(text)
        if len(codes) < 2:
            return np.zeros(0, dtype=np.float64)
        context_numbers = self._context_numbers(codes[:-1])
        return -np.log(self._probabilities(context_numbers, codes[1:])[-1])

    def bits_per_char(self, text: str) -> float:
        """Mean surprisal over text[1:] in bits."""
        if len(text) < 2:
            raise CorpusError(f"bits per character need a text of 2 characters or more; this one has {len(text)}")
        return float(self.surprisals(text).mean() / LN2)

    def distribution(self, context: str) -> np.ndarray:
        """P(next character | context) over the training vocabulary (sorted, as `vocab`) and, last,
        the unknown symbol: V + 1 probabilities summing to one."""
        targets = np.arange(self.vocab_size + 1, dtype=np.int64)
        codes = self._encode(context)
        if len(codes) == 0:
            numbers = [np.full(len(targets), -1, dtype=np.int64) for _ in self.levels]
        else:
            numbers = [np.full(len(targets), level_numbers[-1]) for level_numbers in self._context_numbers(codes)]
        return self._probabilities(numbers, targets)[-1]

    # -- internals -------------------------------------------------------------------------------------

    def _encode(self, text: str) -> np.ndarray:
        # Sorted str order is code point order, so a binary search over the vocabulary's code points encodes.
        points, vocab_points = _code_points(text), _code_points(self.vocab)
        if len(vocab_points) == 0:
            return np.zeros(len(points), dtype=np.int64)
        index = np.minimum(np.searchsorted(vocab_points, points), len(vocab_points) - 1)
        return np.where(vocab_points[index] == points, index, self.vocab_size).astype(np.int64)

    def _context_numbers(self, codes: np.ndarray) -> list[np.ndarray]:
        """For each level k = 2..order, the number of the (k-1)-gram of `codes` ending at each
        position (-1 where it was never seen in training or the text is too short for it)."""
        base = self.vocab_size + 1
        numbers = [np.where(codes < self.vocab_size, codes, -1)]  # unigrams: their code
        for level in self.levels[:-1]:
            previous = numbers[-1]
            keys = np.full(len(codes), -1, dtype=np.int64)
            has_prefix = np.zeros(len(codes), dtype=bool)
            has_prefix[1:] = previous[:-1] >= 0
            keys[has_prefix] = previous[:-1][has_prefix[1:]] * base + codes[has_prefix]
            numbers.append(_lookup(level.keys, keys))
        return numbers[:len(self.levels)]

    def _probabilities(self, context_numbers: list[np.ndarray], targets: np.ndarray) -> list[np.ndarray]:
        """P_k(target | context) for k = 1..order, each an array over the queries; context_numbers[k-2]
        numbers each query's (k-1)-character context (-1: unseen, so order k passes order k-1 on)."""
        vocab_size, base = self.vocab_size, self.vocab_size + 1
        total = float(self.unigram_counts.sum())
        counts = np.where(targets < vocab_size, self.unigram_counts[np.minimum(targets, vocab_size - 1)], 0)
        probability = (counts + vocab_size / base) / (total + vocab_size)
        per_order = [probability]
        for level, numbers in zip(self.levels, context_numbers, strict=True):
            known = numbers >= 0
            found = np.where(known, _lookup(level.keys, np.where(known, numbers * base + targets, -1)), -1)
            gram_counts = np.where(found >= 0, level.counts[np.maximum(found, 0)], 0)
            context_total = np.where(known, level.context_total[np.maximum(numbers, 0)], 0)
            types = np.where(known, level.context_types[np.maximum(numbers, 0)], 0)
            seen = context_total > 0
            probability = np.where(
                seen, (gram_counts + types * probability) / np.maximum(context_total + types, 1), probability)
            per_order.append(probability)
        return per_order


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The index of each key in `sorted_keys`, -1 where it is absent (or the key is -1)."""
    if len(sorted_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    index = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where((sorted_keys[index] == keys) & (keys >= 0), index, -1).astype(np.int64)


def _fit(train_text: str, max_order: int) -> CharBaseline:
    if not train_text:
        raise CorpusError("the baselines need a training text; this one is empty")
    if max_order < 1:
        raise CorpusError(f"the n-gram order must be 1 or more, not {max_order}")
    vocab = "".join(sorted(set(train_text)))
    model = CharBaseline(name="unigram", order=1, vocab=vocab, unigram_counts=np.zeros(len(vocab), dtype=np.int64))
    codes = model._encode(train_text)
    model.unigram_counts = np.bincount(codes, minlength=len(vocab)).astype(np.int64)
    base = len(vocab) + 1
    levels: list[_Level] = []
    contexts_before = len(vocab)                            # unigram numbers are their codes
    previous_numbers = codes                               # number of the gram ending at each position
    for _ in range(2, max_order + 1):
        keys = previous_numbers[:-1] * base + codes[len(codes) - len(previous_numbers) + 1:]
        if len(keys) == 0:
            break  # the text is shorter than this order
        unique, numbers, counts = np.unique(keys, return_inverse=True, return_counts=True)
        contexts = unique // base
        context_total = np.bincount(contexts, weights=counts, minlength=contexts_before).astype(np.int64)
        context_types = np.bincount(contexts, minlength=contexts_before).astype(np.int64)
        levels.append(_Level(unique, counts.astype(np.int64), context_total, context_types))
        contexts_before, previous_numbers = len(unique), numbers.astype(np.int64)
    model.levels = tuple(levels)
    model.order = 1 + len(levels)
    return model


def unigram(train_text: str) -> CharBaseline:
    """The order-1 model of `train_text`: P(c) = (C(c) + V / (V + 1)) / (N + V)."""
    return _fit(train_text, 1)


def ngram(train_text: str, order: int) -> CharBaseline:
    """The interpolated Witten-Bell model of `train_text` at this order (lower if the text is shorter)."""
    model = _fit(train_text, order)
    if model.order > 1:
        model.name = f"{model.order}-gram Witten-Bell"
    return model


def fit_ngram(train_text: str, val_text: str, max_order: int = DEFAULT_MAX_ORDER) -> CharBaseline:
    """An interpolated Witten-Bell n-gram of `train_text`, its order the one among 1..max_order
    with the lowest bits per character on `val_text` (the lowest such order on a tie). The figure
    of every order tried is kept in `val_bits_per_char`."""
    if len(val_text) < 2:
        raise CorpusError(
            f"choosing the n-gram order needs a validation text of 2 characters or more; this one has {len(val_text)}")
    full = _fit(train_text, max_order)
    codes = full._encode(val_text)
    per_order = full._probabilities(full._context_numbers(codes[:-1]), codes[1:])
    bits = {order: float(-np.log(probability).mean() / LN2) for order, probability in enumerate(per_order, start=1)}
    best = min(bits, key=lambda order: (bits[order], order))
    return CharBaseline(name=f"{best}-gram Witten-Bell" if best > 1 else "unigram", order=best, vocab=full.vocab,
                        unigram_counts=full.unigram_counts, levels=full.levels[:best - 1], val_bits_per_char=bits)


def unigram_entropy(text: str) -> float:
    """Bits per character of the empirical character distribution of `text` (maximum likelihood,
    no smoothing): -sum p log2 p."""
    if not text:
        raise CorpusError("the unigram entropy needs a text; this one is empty")
    _, counts = np.unique(_code_points(text), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())

"""Beam search: the most likely continuation of a prime under a CharRNN, W beams batched.

The prime runs through the model's own nn module in one call. Then each step runs ONE batched step
of the sampler (core.sampling.Sampler, the step its several streams share: a call of the module for
one time step costs about 4x as much on a CPU) over all live beams, a batch of up to W rows, one
character each; reorders the hidden state by the chosen parents and expands with the best W of the
W x vocab candidates. Given a model, the search samples with its fp32 weights (exact logits); given a
Sampler, with the Sampler's weights. Scores are log-probabilities in nats, computed in float32 on
the model's device.

Ranking. A beam's score is its total log-probability, or with `length_norm` = alpha > 0 that total
divided by len**alpha (the simple form of GNMT's length penalty, Wu et al. 2016; len counts the
characters the beam generated). Live beams all have the same length, so alpha changes nothing
among them; it matters only when beams finish at different lengths, which a stop condition does.
Ties: equal scores go to the candidate from the higher-ranked parent beam, then to the lower
vocabulary index (a stable sort of the flattened (parent, character) scores); among finished beams
of equal score, the one found first (the shorter) wins. Width 1 is greedy (argmax) decoding.

The search ends at `length` characters, or earlier once no live beam can beat the best finished
one: further characters only lower a total (log-probabilities are <= 0), so a live beam's best
possible score is its total now / length**alpha, an exact bound. With no length limit and
alpha > 0 there is no such bound; the search then ends when W beams have finished and the best of
them beats every live beam's score now (a heuristic, as in most beam search libraries).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .corpus import Vocab, describe_chars
from .errors import SamplingError
from .model import CharRNN
from .sampling import MAX_SAMPLE_LENGTH, Sampler

# Wider searches cost memory and time in proportion (W x vocabulary candidates a step) and gain
# nothing here: a character model's best continuation is settled by far fewer beams.
MAX_BEAM_WIDTH = 1000
MAX_LENGTH_NORM = 10.0  # beyond this, len**alpha ranks by length alone (GNMT used alpha 0.6 to 1)

# Returns the end index of the text to keep when a stop condition matched the generated text, else None.
StopFn = Callable[[str], int | None]


class _Trail:
    """One character's log-probability, linked to the beam it extended: the beams share their
    common history, so a step costs W new links, not W copies of every log-probability."""

    __slots__ = ("logprob", "parent")

    def __init__(self, parent: _Trail | None, logprob: float):
        self.parent, self.logprob = parent, logprob

    def logprobs(self) -> list[float]:
        values, link = [], self
        while link is not None:
            values.append(link.logprob)
            link = link.parent
        return values[::-1]


@dataclass(frozen=True)
class Beam:
    """One hypothesis. `generated` is every character the beam produced after the prime; `text` is
    the continuation to show: `generated` cut at the stop condition's end index when one matched."""

    generated: str
    logprob: float        # total log-probability of `generated` given the prime, nats
    score: float          # what beams are ranked by: logprob / len(generated)**alpha
    finished: bool        # a stop condition matched, or the length was reached
    end: int              # len(text)
    _trail: _Trail | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.generated[:self.end]

    def char_logprobs(self) -> list[float]:
        """The log-probability (nats) of each character of `generated`, in order."""
        return self._trail.logprobs() if self._trail is not None else []

    def bits_per_char(self) -> float:
        return -self.logprob / len(self.generated) / _LN2 if self.generated else 0.0


_LN2 = 0.6931471805599453


@dataclass(frozen=True)
class BeamStep:
    """The search after `step` characters: its beams best first (live and finished together, at most
    W of each), and whether it is over. The last BeamStep of a search is its result."""

    step: int
    width: int
    beams: tuple[Beam, ...]
    done: bool

    @property
    def best(self) -> Beam:
        """The best beam: when the search is done, the best finished one."""
        return self.beams[0]

    @property
    def runners_up(self) -> int:
        return len(self.beams) - 1


def check_beam(width: int, length: int, vocab_size: int, length_norm: float = 0.0, has_stop: bool = False) -> None:
    """Refuse unusable beam settings, naming the flag."""
    if not 1 <= width <= MAX_BEAM_WIDTH:
        raise SamplingError(f"--beam must be a width from 1 to {MAX_BEAM_WIDTH:,}, got {width}.")
    if not 0 <= length <= MAX_SAMPLE_LENGTH:
        raise SamplingError(f"--length must be from 0 to {MAX_SAMPLE_LENGTH:,} characters, got {length}.")
    if length == 0 and width > vocab_size:
        raise SamplingError(f"--beam {width} is wider than the vocabulary ({vocab_size} characters) with no "
                            f"--length: give a --length, or a --beam of at most {vocab_size}.")
    if length == 0 and not has_stop:
        raise SamplingError("--beam with --length 0 searches up to a stop string, and none was given: "
                            "give a --length of at least 1.")
    if not 0 <= length_norm <= MAX_LENGTH_NORM:  # NaN fails too
        raise SamplingError(f"--length-norm must be from 0 (off) to {MAX_LENGTH_NORM:g}, got {length_norm}.")


def _sampler(model_or_sampler: CharRNN | Sampler, vocab: Vocab) -> Sampler:
    """A Sampler to search with: the one given, or one of the model's own weights (its own frozen copy
    in eval mode, so the model can go on training while the search runs)."""
    if isinstance(model_or_sampler, Sampler):
        return model_or_sampler
    return Sampler(model_or_sampler, vocab, weights="fp32")


def iter_beams(model_or_sampler: CharRNN | Sampler, vocab: Vocab, prime: str, width: int, length: int, *,
               length_norm: float = 0.0, stop: StopFn | None = None) -> Iterator[BeamStep]:
    """Beam search, one BeamStep per generated character (the last has done=True and is the result).

    `length`: characters to generate; 0 = no limit (then `stop` must end the beams). `stop(generated)`
    returns the end index of the text to keep if a stop condition matched, else None; a beam it matches
    is finished. See the module's note for the ranking, the tie rule and when the search ends."""
    sampler = _sampler(model_or_sampler, vocab)  # refuses a vocabulary of another size
    check_beam(width, length, len(vocab), length_norm, stop is not None)
    lacking = vocab.missing(prime)
    if lacking:
        raise SamplingError(f"The prime text (--prime) has characters the model's vocabulary lacks: "
                            f"{describe_chars(lacking)}. Remove them or use another checkpoint.")
    limit = length or MAX_SAMPLE_LENGTH
    with torch.inference_mode():
        yield from _search(sampler, prime, width, limit, length_norm, stop, bounded=length > 0)


def beam_search(model_or_sampler: CharRNN | Sampler, vocab: Vocab, prime: str, width: int, length: int, *,
                length_norm: float = 0.0, stop: StopFn | None = None) -> BeamStep:
    """The finished search: `.best` is the best continuation (text, logprob in nats, char_logprobs()),
    `.beams` the final beams best first. The last value of iter_beams (same arguments)."""
    steps = iter_beams(model_or_sampler, vocab, prime, width, length, length_norm=length_norm, stop=stop)
    return deque(steps, maxlen=1)[0]


def _reorder(layer_state, parents: torch.Tensor):
    """One layer's state (an LSTM's (h, c), or h) with its rows taken from the chosen parents."""
    if isinstance(layer_state, tuple):
        return tuple(part.index_select(0, parents) for part in layer_state)
    return layer_state.index_select(0, parents)


def _search(sampler: Sampler, prime: str, width: int, limit: int, alpha: float,
            stop: StopFn | None, bounded: bool) -> Iterator[BeamStep]:
    device, chars, size = sampler.device, sampler.vocab.chars, len(sampler.vocab)
    state, last = sampler.prime_state(prime)
    tokens = [last]                                    # each live beam's last character
    totals = torch.zeros(1, device=device)             # (beams,): each live beam's log-probability
    texts: list[str] = [""]
    trails: list[_Trail | None] = [None]
    finished: list[Beam] = []                          # best first, at most `width`

    def norm(logprob: float, chars_count: int) -> float:
        return logprob / chars_count ** alpha if alpha and chars_count else logprob

    for step in range(1, limit + 1):
        logits = sampler.step(tokens, state)
        logprobs = torch.log_softmax(logits, dim=-1)                         # (beams, vocab)
        candidates = (totals[:, None] + logprobs).flatten()
        ranked_totals, order = torch.sort(candidates, descending=True, stable=True)
        live: list[tuple[int, int, float, float]] = []   # (flat index, parent, char logprob, total)
        seen = 0
        # Take candidates best first until `width` live ones: those a stop condition matches are
        # finished on the way. Read from the device in blocks, usually one.
        while len(live) < width and seen < len(order):
            block = slice(seen, min(len(order), seen + 2 * width))
            block_order = order[block]
            values = torch.stack([ranked_totals[block], logprobs.flatten()[block_order]]).tolist()
            for flat, total, char_logprob in zip(block_order.tolist(), *values, strict=True):
                parent, token = divmod(flat, size)
                text = texts[parent] + chars[token]
                end = stop(text) if stop is not None else None
                if end is None:
                    live.append((flat, parent, char_logprob, total))
                    if len(live) == width:
                        break
                else:
                    trail = _Trail(trails[parent], char_logprob)
                    finished.append(Beam(text, total, norm(total, step), True, end, trail))
            seen = block.stop
        finished.sort(key=lambda beam: -beam.score)  # stable: the earlier found wins a tie
        del finished[width:]
        if not live:
            yield BeamStep(step, width, tuple(finished), True)
            return
        flat_ids = torch.tensor([entry[0] for entry in live], device=device)
        parents = flat_ids // size
        tokens = [flat % size for flat, _, _, _ in live]
        totals = candidates[flat_ids]
        state = [_reorder(layer, parents) for layer in state]
        trails = [_Trail(trails[parent], char_logprob) for _, parent, char_logprob, _ in live]
        texts = [texts[parent] + chars[flat % size] for flat, parent, _, _ in live]
        at_limit = step == limit
        beams = [Beam(text, total, norm(total, step), at_limit, len(text), trail)
                 for text, (_, _, _, total), trail in zip(texts, live, trails, strict=True)]
        best_live = beams[0].logprob  # live beams are in rank order
        if bounded:  # the exact bound: no live beam can score above best_live / limit**alpha
            over = bool(finished) and finished[0].score >= best_live / limit ** alpha
        else:
            over = bool(finished) and (not alpha or len(finished) == width) and finished[0].score >= beams[0].score
        done = at_limit or over
        merged = sorted(finished + beams, key=lambda beam: -beam.score)  # stable: finished first on a tie
        if done:
            # The best is a finished beam: live beams the bound ended are listed after it.
            merged = sorted(merged, key=lambda beam: not beam.finished)
        yield BeamStep(step, width, tuple(merged), done)
        if done:
            return

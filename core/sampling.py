"""Streaming sampler: one token per step, hidden state kept, constant work per token.

nn.LSTM pays a large fixed cost per call, so generation runs its own single step: for an
LSTM, gate rows reordered to i, f, o, g (one sigmoid, one tanh) and read through transposed
views (contiguous rows, the fast layout for a batch-1 product); GRU and vanilla RNN use
torch's fused cells. The first layer's input projection (embedding @ W_ih + biases) is folded
into a (vocab, gates) table. The prime goes through the model's own nn.LSTM in a single call.

At batch 1 a step costs what it takes to stream the recurrent weights from memory (12 MB of
float32 per character at 2x512), so on a CPU with bf16 matrix units a large LSTM samples with
int8 copies of them (one scale per row, bf16 activations in the product): a quarter of the
bytes. `weights="fp32"` keeps the model's own weights, whose logits match its forward exactly.

Decoding: `next_distribution` is the one transform from logits to what is drawn (temperature,
repetition penalty, top-k, top-p); the draw happens on the host. `SampleRun` draws several
streams in one pass: the step takes a batch of tokens and (n, hidden) states, so each layer is one
product for all of them; each stream has its own seed (`stream_seed`), stop and log-probabilities.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .config import MAX_SEED
from .corpus import Vocab, describe_chars
from .device import choose_threads, step_work, supports_bf16, torch_threads
from .errors import SamplingError
from .loading import load_model
from .model import CharRNN, state_tensors

SAMPLER_WEIGHTS = ("auto", "fp32", "int8")
# Below this size a step costs its per-op overhead, not its weight traffic: int8 gains nothing.
INT8_MIN_HIDDEN = 256

MAX_SAMPLE_LENGTH = 10**9  # characters in one sample (about a gigabyte of text)
MAX_SAMPLES = 1024         # streams drawn together in one batched pass

# A repetition penalty looks back over this many characters (the prime's included). Over the whole
# text so far, a character model would soon penalise every common letter alike, which changes little
# but the temperature; 32 characters is a few words: enough to see a loop such as "the the the".
PENALTY_WINDOW = 32
# A stop match may span at most this many characters: the stream searches only its last ones.
STOP_LOOKBACK = 256
# Below this temperature sampling is argmax: its limit, and logits / T would overflow float32 (NaN softmax).
TINY_TEMPERATURE = 1e-20
# Log-probabilities are computed for this many steps at once (one softmax over them all, not one a step).
SCORE_CHUNK = 64
STOP_REASONS = ("length", "stop")

_CELL_STEP = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


@dataclass(frozen=True)
class SampleSettings:
    prime: str = ""
    temperature: float = 0.8
    top_k: int = 0            # 0 = off
    length: int = 500
    seed: int | None = None   # None = a new random seed each time
    top_p: float = 1.0        # nucleus: the likeliest characters holding this much probability; 1 = off
    repetition_penalty: float = 1.0  # CTRL's rule over the last PENALTY_WINDOW characters; 1 = off
    stop: str = ""            # end a stream where this text (or regex) appears in it; "" = none
    stop_regex: bool = False  # `stop` is a regular expression
    include_stop: bool = False  # keep the stop text at the end of the sample
    min_length: int = 0       # characters before a stop match counts
    samples: int = 1          # streams drawn together (one batched pass)

    def validate(self, vocab: Vocab | None = None) -> None:
        """Refuse unusable settings, naming the flag; the prime is checked against `vocab` when given."""
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise SamplingError(f"--temperature must be 0 (argmax) or a positive number, got {self.temperature}.")
        if self.top_k < 0:
            raise SamplingError(f"--top-k must be 0 (off) or positive, got {self.top_k}.")
        if not 0 < self.top_p <= 1:  # NaN fails too
            raise SamplingError(f"--top-p must be above 0 and at most 1 (1 = off), got {self.top_p}.")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise SamplingError(f"--repetition-penalty must be a positive number (1 = off, above 1 discourages "
                                f"repeats), got {self.repetition_penalty}.")
        if not 0 <= self.length <= MAX_SAMPLE_LENGTH:
            raise SamplingError(f"--length must be from 0 to {MAX_SAMPLE_LENGTH:,} characters, got {self.length}.")
        if not 0 <= self.min_length <= self.length:
            raise SamplingError(f"--min-length must be from 0 to --length ({self.length}), got {self.min_length}.")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise SamplingError(f"--samples must be from 1 to {MAX_SAMPLES}, got {self.samples}.")
        self.stop_pattern()
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise SamplingError(f"--seed must be from 0 to {MAX_SEED:,}, got {self.seed}.")
        lacking = vocab.missing(self.prime) if vocab is not None else None
        if lacking:
            raise SamplingError(f"The prime text (--prime) has characters the model's vocabulary lacks: "
                                f"{describe_chars(lacking)}. Remove them or use another checkpoint.")

    def with_seed(self) -> SampleSettings:
        """A copy with a concrete seed, so the result can be reproduced."""
        return self if self.seed is not None else replace(self, seed=random.SystemRandom().randrange(2**31))

    def stop_pattern(self) -> re.Pattern | None:
        """The compiled stop text (escaped unless `stop_regex`), or None without one."""
        if not self.stop:
            return None
        if len(self.stop) > STOP_LOOKBACK and not self.stop_regex:
            raise SamplingError(f"--stop must be at most {STOP_LOOKBACK} characters, got {len(self.stop)}.")
        try:
            pattern = re.compile(self.stop if self.stop_regex else re.escape(self.stop))
        except re.error as exc:
            raise SamplingError(f"--stop {self.stop!r} is not a regular expression: {exc}.") from None
        except RecursionError:  # re raises it, not re.error, for brackets nested a few hundred deep
            raise SamplingError(f"--stop {self.stop[:40]!r}… is nested too deeply for Python's 're' "
                                f"({self.stop.count('(')} brackets): simplify it.") from None
        if pattern.fullmatch(""):
            raise SamplingError(f"--stop {self.stop!r} matches empty text, so every sample would stop at once: "
                                f"make it match at least one character.")
        return pattern


def stop_rule(settings: SampleSettings) -> Callable[[str], int | None] | None:
    """The stop rule of `settings` as a function of a whole generated text: where that text ends (the end
    of the first stop match ending at or after min_length, or its start without include_stop), or None
    if it does not stop. For callers holding whole texts (beam search); the sampler's streams search only
    their new tail (Sampler._find_stop). None when there is no stop text."""
    pattern = settings.stop_pattern()
    if pattern is None:
        return None

    def end_of(text: str) -> int | None:
        for match in pattern.finditer(text):
            if match.end() > match.start() and match.end() >= settings.min_length:
                return match.end() if settings.include_stop else match.start()
        return None
    return end_of


def stream_seed(seed: int, index: int) -> int:
    """Stream `index`'s own seed among several drawn with `seed`: the seed itself for stream 0 (one
    sample is what it always was), a seed derived from both for the others. Stream i of a seed is the
    same whatever the number of streams, and a single-sample run with its seed draws it alone."""
    return seed if index == 0 else random.Random(f"{seed}:{index}").randrange(MAX_SEED + 1)


def next_distribution(logits: torch.Tensor, settings: SampleSettings,
                      seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The distribution the next character is drawn from, for each row of (n, vocab) `logits`:
    (probs, indices), probs (n, m) summing to 1 per row and indices (n, m) the characters they belong
    to, or None when they are the whole vocabulary in its order. The one transform every sampler uses.

    In this order: temperature (logits / T), repetition penalty (CTRL: a logit of a character `seen`,
    a (n, vocab) bool mask, is divided by the penalty when positive and multiplied when negative),
    top-k (the k likeliest), top-p (the fewest likeliest whose probability reaches p, ties at the cut
    by order). Temperature 0 (or below TINY_TEMPERATURE) is the argmax of the penalised logits: one
    index with probability 1.
    Dividing by T > 0 commutes with the penalty and keeps the order, so the code divides last."""
    penalty = settings.repetition_penalty
    if penalty != 1 and seen is not None:
        logits = torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)
    if settings.temperature < TINY_TEMPERATURE:
        indices = logits.argmax(-1, keepdim=True)
        return torch.ones(indices.shape, dtype=logits.dtype, device=logits.device), indices
    indices = None
    if 0 < settings.top_k < logits.shape[-1]:
        logits, indices = logits.topk(settings.top_k)
    probs = (logits / settings.temperature).softmax(-1)
    if settings.top_p < 1:
        if indices is None:
            probs, indices = probs.sort(-1, descending=True)
        # topk's values come sorted, likeliest first: keep each whose predecessors hold less than p.
        probs = probs * (probs.cumsum(-1) - probs < settings.top_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs, indices


@dataclass(frozen=True)
class SampleResult:
    """One stream of a sampling pass. `logprobs` are, per character of `text`, the natural log of the
    probability the model itself gave it: the softmax of its logits at temperature 1, before any
    penalty, top-k or top-p. That is the text's likelihood under the model, comparable across
    settings (the sampling distribution's own would reward a low temperature for being sure).
    A stop text cut from the end takes its characters' log-probabilities with it."""
    index: int                 # the stream's number, 0 to samples - 1
    seed: int                  # its own seed (stream_seed): a single-sample run with it draws this text
    text: str                  # generated, the prime not included ("" when the pass did not keep text)
    length: int                # characters generated (kept or not)
    total: float               # nats: the sum of the log-probabilities
    stop_reason: str           # "length" or "stop"
    logprobs: tuple[float, ...] = ()  # nats per character (empty when the pass did not keep them)

    @property
    def bits_per_char(self) -> float:
        return -self.total / self.length / math.log(2) if self.length else 0.0


@dataclass(eq=False, slots=True)
class _Stream:
    """One stream's running state in a pass."""
    index: int
    seed: int
    rng: random.Random
    keep: bool
    count: int = 0                    # characters generated
    emitted: int = 0                  # characters handed out in updates
    tail: str = ""                    # the last STOP_LOOKBACK characters, for the stop search
    search_from: int = 0              # where the next stop search starts (absolute)
    chars: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    recent_logprobs: deque = field(default_factory=lambda: deque(maxlen=STOP_LOOKBACK))
    total: float = 0.0
    cut: int | None = None            # where the text ends, once stopped
    window: deque = field(default_factory=deque)  # the penalty's window of tokens

    def result(self) -> SampleResult:
        length = self.count if self.cut is None else self.cut
        return SampleResult(self.index, self.seed, "".join(self.chars[:length]), length, self.total,
                            "length" if self.cut is None else "stop", tuple(self.logprobs[:length]))


class SampleRun:
    """One sampling pass of `settings.samples` streams, drawn together. Iterate it for updates,
    {stream index: new text} (only the streams that have some, in order); `results` then holds each
    stream's SampleResult, by index (filled when the iteration ends or `close()` ends it). A stream
    that meets its stop text stays finished while the rest go on. With a stop text cut from the end
    (include_stop off), text is handed out only once no match can take it back: up to len(stop) - 1
    characters late, STOP_LOOKBACK - 1 for a regex.
    `keep=False` keeps no text or per-character log-probabilities (constant memory, for endless
    streams); totals and stop reasons stay. `score=False` skips the log-probabilities (totals 0):
    for `Sampler.stream`, which hands out characters only."""

    def __init__(self, sampler: Sampler, settings: SampleSettings, keep: bool = True, score: bool = True):
        settings.validate(sampler.vocab)
        self.settings = settings.with_seed()
        self.results: list[SampleResult] = []
        # The body gets the list, not this object: no reference cycle, so a pass dropped midway is closed
        # at once (leaving inference mode then, not whenever the garbage collector comes by).
        self._updates = sampler._updates(self.settings, self.results, keep, score)

    def __iter__(self) -> Iterator[dict[int, str]]:
        return self._updates

    def close(self) -> None:
        """End the pass here (results hold what was drawn)."""
        self._updates.close()


class Int8Matrix:
    """A weight matrix stored as int8 with one bf16 scale per row: `self(v)` is `v @ W^T` in
    float32, from a quarter of the float32 bytes (torch's weight-only int8 kernel)."""

    # The CPU kernel reads the inner dimension in blocks: at a width that is not a multiple of 16
    # it returns garbage (torch 2.13), so inputs and columns are zero-padded to a whole block.
    BLOCK = 64

    def __init__(self, weight: torch.Tensor):
        self.padding = -weight.shape[1] % self.BLOCK
        weight = torch.nn.functional.pad(weight, (0, self.padding))
        self.scales = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127).to(torch.bfloat16)
        self.values = torch.round(weight / self.scales.float()[:, None]).clamp_(-127, 127).to(torch.int8)

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        if self.padding:
            vector = torch.nn.functional.pad(vector, (0, self.padding))
        return torch._weight_int8pack_mm(vector.to(torch.bfloat16), self.values, self.scales).float()


def resolve_weights(weights: str, cell: str, hidden: int, device: torch.device) -> str:
    """'auto' is int8 for an LSTM large enough to be bound by weight traffic, on a CPU with bf16
    matrix units; fp32 elsewhere (a GPU step is bound by launches, not bytes)."""
    if weights not in SAMPLER_WEIGHTS:
        raise SamplingError(f"Unknown sampler weights {weights!r}: choose one of {', '.join(SAMPLER_WEIGHTS)}.")
    if weights == "int8" and cell != "lstm":
        raise SamplingError(f"int8 sampling weights are for LSTM models; this checkpoint is a {cell.upper()}. "
                            f"Use weights fp32 (or auto).")
    has_kernel = hasattr(torch, "_weight_int8pack_mm")
    if weights == "int8" and not has_kernel:
        raise SamplingError(f"This torch ({torch.__version__}) lacks the int8 weight kernel. "
                            "Use weights fp32 (or auto).")
    if weights != "auto":
        return weights
    fast = cell == "lstm" and hidden >= INT8_MIN_HIDDEN and device.type == "cpu" and supports_bf16(device)
    return "int8" if fast and has_kernel else "fp32"


class Sampler:
    """Generates text from a CharRNN. Keeps its own frozen copy of the model, so the
    original can go on training while this one samples.

    `weights`: "fp32" (the model's own), "int8" (LSTM only; see the module's note) or "auto".
    `threads`: torch threads while streaming; None: the automatic choice, which is 1 (one character
    at a time is too little work to share, and the sampler then never competes with a training run)."""

    def __init__(self, model: CharRNN, vocab: Vocab, weights: str = "auto", threads: int | None = None):
        if model.config.vocab_size != len(vocab):
            raise SamplingError(f"Model expects {model.config.vocab_size} characters but the vocabulary has "
                                f"{len(vocab)}.")
        self.vocab = vocab
        self.config = model.config
        self.device = model.head.weight.device
        self.weights = resolve_weights(weights, self.config.cell, self.config.hidden, self.device)
        self.threads = choose_threads(threads, step_work(1, self.config.hidden), self.device.type)
        model = self._model = copy.deepcopy(model).eval()
        with torch.inference_mode():
            rnn = model.rnn
            self._layers = []
            for layer in range(self.config.layers):
                w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}").detach(), getattr(rnn, f"weight_hh_l{layer}").detach()
                b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}").detach(), getattr(rnn, f"bias_hh_l{layer}").detach()
                self._layers.append([w_ih, w_hh, b_ih, b_hh])
            w_ih, _, b_ih, b_hh = self._layers[0]
            table = model.embed.weight.detach() @ w_ih.t() + b_ih
            if self.config.cell == "lstm":
                # LSTM adds both biases; GRU must keep b_hh apart (it sits inside r * (W_hn h + b_hn)).
                table = table + b_hh
            self._input_table = table.contiguous()
            self._empty_w = w_ih.new_empty(w_ih.shape[0], 0)
            self._empty_x = w_ih.new_empty(1, 0)
            self._head_w = model.head.weight.detach().t()
            self._head_b = model.head.bias.detach().unsqueeze(0)
            if self.config.cell == "lstm":
                self._lstm = self._lean_lstm_weights()

    def _lean_lstm_weights(self) -> list[tuple]:
        """Per layer: (W_ih^T, W_hh^T, bias) with the gate blocks reordered from PyTorch's
        i, f, g, o to i, f, o, g, so one sigmoid covers the three gates and one tanh the
        candidate: half the ops of torch.lstm_cell, which is what a batch-1 step costs.
        With int8 weights: (None, Int8Matrix of W_hh, or of [W_ih W_hh] above the first layer, bias)."""
        hidden = self.config.hidden
        order = torch.cat([torch.arange(0, 2 * hidden), torch.arange(3 * hidden, 4 * hidden),
                           torch.arange(2 * hidden, 3 * hidden)]).to(self.device)
        self._input_table = self._input_table[:, order].contiguous()
        lean = []
        for w_ih, w_hh, b_ih, b_hh in self._layers:
            # (gates, inputs) row-major, used through a transposed view: a batch-1 product then reads
            # each gate's weights as one contiguous row, the fast layout for a matrix-vector product.
            w_ih, w_hh, bias = w_ih[order], w_hh[order], (b_ih + b_hh)[order][None]
            if self.weights == "int8":
                # Layers above the first take [x, h] through one matrix: one product, not two.
                recurrent = w_hh if not lean else torch.cat([w_ih, w_hh], dim=1)
                lean.append((None, Int8Matrix(recurrent), bias))
            else:
                lean.append((w_ih.contiguous().t(), w_hh.contiguous().t(), bias))
        return lean

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", weights: str = "auto",
                        threads: int | None = None) -> Sampler:
        model, vocab, _ = load_model(path, device)
        return cls(model, vocab, weights, threads)

    def _inputs(self, token: int | list[int]) -> torch.Tensor:
        """The first layer's input rows, (n, gates): one per character."""
        if isinstance(token, list):
            if len(token) > 1:
                return self._input_table[torch.tensor(token, device=self.device)]
            token = token[0]
        return self._input_table[token:token + 1]  # a slice: cheaper than an index op at batch 1

    def step(self, token: int | list[int], state: list) -> torch.Tensor:
        """One character per stream through every layer: `token` for a batch of 1, or a list of one
        per row of the state, (n, hidden) per layer. All n go through each product together. Updates
        `state` in place, returns (n, vocab) logits."""
        inputs = self._inputs(token)
        if self.config.cell == "lstm":
            return self._lstm_step(inputs, state)
        step = _CELL_STEP[self.config.cell]
        empty_x = self._empty_x if len(inputs) == 1 else inputs.new_empty(len(inputs), 0)
        x = None
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self._layers):
            if layer == 0:  # the table rows are the input projection: passed as the input bias
                x = step(empty_x, state[0], self._empty_w, w_hh, inputs, b_hh)
            else:
                x = step(x, state[layer], w_ih, w_hh, b_ih, b_hh)
            state[layer] = x
        return torch.addmm(self._head_b, x, self._head_w)

    def _lstm_step(self, inputs: torch.Tensor, state: list) -> torch.Tensor:
        hidden = self.config.hidden
        x = None
        for layer, (w_ih_t, w_hh_t, bias) in enumerate(self._lstm):
            h, c = state[layer]
            if w_ih_t is None:  # int8: w_hh_t is an Int8Matrix, over [x, h] above the first layer
                gates = inputs + w_hh_t(h) if layer == 0 else w_hh_t(torch.cat([x, h], dim=1)).add_(bias)
            elif layer == 0:
                gates = torch.addmm(inputs, h, w_hh_t)
            else:
                gates = torch.addmm(bias, x, w_ih_t).addmm_(h, w_hh_t)
            sig = gates[:, :3 * hidden].sigmoid()
            c = torch.addcmul(sig[:, hidden:2 * hidden] * c, sig[:, :hidden], gates[:, 3 * hidden:].tanh())
            x = sig[:, 2 * hidden:] * c.tanh()
            state[layer] = (x, c)
        return torch.addmm(self._head_b, x, self._head_w)

    @staticmethod
    def draw_char(probs: list[float], indices: list[int] | None, rng: random.Random) -> int:
        """One character from a row of next_distribution. The draw happens on the host from a seeded
        random.Random: a handful of floats, cheaper than a multinomial kernel, the same on every device."""
        if len(probs) == 1:
            return indices[0] if indices is not None else 0
        mass = sum(probs)
        point, total = rng.random() * mass, 0.0
        for index, prob in enumerate(probs):  # noqa: B007 (the index where the loop stops is the choice)
            total += prob
            if point < total:
                break
        else:  # rounding put the point at the very end: the last character with any probability
            index = max(i for i, prob in enumerate(probs) if prob > 0) if mass > 0 else 0
        return indices[index] if indices is not None else index

    def start(self, settings: SampleSettings, keep: bool = True) -> SampleRun:
        """A sampling pass of `settings.samples` streams, to iterate (see SampleRun). Checks the settings now."""
        return SampleRun(self, settings, keep)

    def sample_many(self, settings: SampleSettings) -> list[SampleResult]:
        """`settings.samples` streams drawn together, each with its text, log-probabilities and stop reason."""
        run = self.start(settings)
        for _ in run:
            pass
        return run.results

    def stream(self, settings: SampleSettings) -> Iterator[str]:
        """Yield generated characters one at a time (the prime itself is not yielded): one stream,
        whatever `settings.samples`, in constant memory.

        Settings must carry a seed to be reproducible; call `settings.with_seed()` first
        to pick one and keep it.
        """
        run = SampleRun(self, replace(settings, samples=1), keep=False, score=False)
        try:
            for update in run:
                text = update[0]
                if len(text) == 1:
                    yield text
                else:  # characters held back for a stop text, released together
                    yield from text
        finally:
            run.close()

    def _updates(self, settings: SampleSettings, results: list[SampleResult], keep: bool,
                 score: bool) -> Iterator[dict[int, str]]:
        """SampleRun's body: every stream steps together, one batched product per layer a step; fills
        `results` when it ends."""
        streams = []
        for index in range(settings.samples):
            seed = stream_seed(settings.seed, index)
            streams.append(_Stream(index, seed, random.Random(seed), keep))
        pattern = settings.stop_pattern()
        holdback = 0
        if pattern is not None and not settings.include_stop:
            holdback = STOP_LOOKBACK - 1 if settings.stop_regex else len(settings.stop) - 1
        reach = STOP_LOOKBACK if settings.stop_regex else len(settings.stop)  # the longest match
        penalised = settings.repetition_penalty != 1
        chars, vocab_size, draw = self.vocab.chars, len(self.vocab), self.draw_char
        active, pending = list(streams), []
        try:
            with torch.inference_mode(), torch_threads(self.threads):
                state, token = self.prime_state(settings.prime)
                if len(active) > 1:
                    state = [tuple(t.expand(len(active), -1).contiguous() for t in layer) if isinstance(layer, tuple)
                             else layer.expand(len(active), -1).contiguous() for layer in state]
                tokens = [token] * len(active)
                if penalised:
                    for stream in streams:
                        stream.window.extend(self.vocab.index[ch] for ch in settings.prime[-PENALTY_WINDOW:])
                for _ in range(settings.length):
                    seen = None
                    if penalised:
                        seen = torch.zeros(len(active), vocab_size, dtype=torch.bool, device=self.device)
                        pairs = [(row, col) for row, stream in enumerate(active) for col in set(stream.window)]
                        if pairs:
                            rows, cols = zip(*pairs, strict=True)
                            seen[torch.tensor(rows), torch.tensor(cols)] = True
                    logits = self.step(tokens, state)
                    probs, indices = next_distribution(logits, settings, seen)
                    probs = probs.tolist()
                    indices = indices.tolist() if indices is not None else None
                    if len(active) == 1:  # the single stream's path, kept lean
                        tokens = [draw(probs[0], indices[0] if indices is not None else None, active[0].rng)]
                    else:
                        tokens = [draw(probs[row], indices[row] if indices is not None else None, stream.rng)
                                  for row, stream in enumerate(active)]
                    if score:
                        pending.append((logits, tokens))
                        if len(pending) == SCORE_CHUNK:
                            self._score(active, pending)
                    update, stopped = {}, False
                    for stream, token in zip(active, tokens, strict=True):
                        char = chars[token]
                        stream.count += 1
                        if keep:
                            stream.chars.append(char)
                        if penalised:
                            stream.window.append(token)
                            if len(stream.window) > PENALTY_WINDOW:
                                stream.window.popleft()
                        if pattern is None:  # nothing to hold back or search: the character goes out now
                            update[stream.index] = char
                            stream.emitted = stream.count
                            continue
                        stream.tail = (stream.tail + char)[-STOP_LOOKBACK:]
                        if stream.count >= settings.min_length:
                            stopped |= self._find_stop(stream, pattern, reach, settings)
                        release = stream.count - holdback if stream.cut is None else stream.cut
                        if release > stream.emitted:
                            offset = stream.count - len(stream.tail)
                            update[stream.index] = stream.tail[stream.emitted - offset:release - offset]
                            stream.emitted = release
                    if stopped:
                        self._score(active, pending)
                        rows = [row for row, stream in enumerate(active) if stream.cut is None]
                        for stream in active:
                            if stream.cut is not None and stream.cut < stream.count:
                                cut_off = list(stream.recent_logprobs)[stream.cut - stream.count:]
                                stream.total -= math.fsum(cut_off)
                        if rows and len(rows) < len(active):
                            kept = torch.tensor(rows, device=self.device)
                            state = [tuple(t[kept] for t in layer) if isinstance(layer, tuple) else layer[kept]
                                     for layer in state]
                        active = [active[row] for row in rows]
                        tokens = [tokens[row] for row in rows]
                    if update:
                        yield update
                    if not active:
                        break
                self._score(active, pending)
                update = {}
                for stream in active:  # text held back for a stop that never came
                    if stream.count > stream.emitted:
                        offset = stream.count - len(stream.tail)
                        update[stream.index] = stream.tail[stream.emitted - offset:]
                        stream.emitted = stream.count
                if update:
                    yield update
        finally:
            self._score(active, pending)  # a pass closed midway: the characters drawn so far
            results[:] = [stream.result() for stream in streams]

    @staticmethod
    def _score(active: list[_Stream], pending: list) -> None:
        """The model's log-probabilities of the characters drawn in the `pending` steps, all in one
        softmax (a few kernels per SCORE_CHUNK steps, not per step); then `pending` is emptied."""
        if not pending:
            return
        logits = torch.cat([step_logits for step_logits, _ in pending])
        chosen = torch.tensor([token for _, tokens in pending for token in tokens], device=logits.device)
        values = logits.log_softmax(-1).gather(1, chosen[:, None])[:, 0].tolist()
        pending.clear()
        for row, stream in enumerate(active):
            mine = values[row::len(active)]
            stream.total += math.fsum(mine)
            stream.recent_logprobs.extend(mine)
            if stream.keep:
                stream.logprobs.extend(mine)

    @staticmethod
    def _find_stop(stream: _Stream, pattern: re.Pattern, reach: int, settings: SampleSettings) -> bool:
        """Whether a stop match ending at or after min_length has appeared; marks where the text ends.
        Matches that end before min_length are passed over."""
        offset = stream.count - len(stream.tail)
        position = max(stream.search_from, stream.count - reach, offset)
        while (match := pattern.search(stream.tail, position - offset)) is not None:
            start, end = offset + match.start(), offset + match.end()
            if end > start and end >= settings.min_length:
                stream.cut = end if settings.include_stop else start
                return True
            position = stream.search_from = start + 1
        return False

    def prime_state(self, prime: str) -> tuple[list, int]:
        """Per-layer state after all but the last prime character, and that last character."""
        prime = prime or ("\n" if "\n" in self.vocab.index else self.vocab.chars[0])
        ids = self.vocab.encode(prime).to(self.device).unsqueeze(0)
        if len(prime) > 1:
            _, packed = self._model(ids[:, :-1])
            parts = state_tensors(packed)
            # nn.LSTM/GRU/RNN return (layers, batch=1, hidden); the single-step cells want (1, hidden).
            state = [tuple(p[layer] for p in parts) if len(parts) == 2 else parts[0][layer]
                     for layer in range(self.config.layers)]
        else:
            zero = torch.zeros(1, self.config.hidden, device=self.device)
            state = [(zero, zero) if self.config.cell == "lstm" else zero for _ in range(self.config.layers)]
        return state, int(ids[0, -1])

    def generate(self, settings: SampleSettings) -> str:
        return "".join(self.stream(settings))

    def teacher_forced(self, text: str) -> torch.Tensor:
        """(len(text) - 1, vocab) next-character probabilities along `text`, each from this
        sampler's own step fed the true previous character: how its weights (int8 or fp32)
        predict, for comparing them."""
        SampleSettings(prime=text).validate(self.vocab)  # names any characters the vocab lacks
        ids = self.vocab.encode(text).tolist()
        rows = []
        with torch.inference_mode():
            state, token = self.prime_state(text[:1])
            for following in ids[1:]:
                rows.append(self.step(token, state)[0].softmax(-1))
                token = following
        return torch.stack(rows) if rows else torch.empty(0, len(self.vocab))

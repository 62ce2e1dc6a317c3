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
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
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

_CELL_STEP = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


@dataclass(frozen=True)
class SampleSettings:
    prime: str = ""
    temperature: float = 0.8
    top_k: int = 0            # 0 = off
    length: int = 500
    seed: int | None = None   # None = a new random seed each time

    def validate(self, vocab: Vocab | None = None) -> None:
        """Refuse unusable settings, naming the flag; the prime is checked against `vocab` when given."""
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise SamplingError(f"--temperature must be 0 (argmax) or a positive number, got {self.temperature}.")
        if self.top_k < 0:
            raise SamplingError(f"--top-k must be 0 (off) or positive, got {self.top_k}.")
        if not 0 <= self.length <= MAX_SAMPLE_LENGTH:
            raise SamplingError(f"--length must be from 0 to {MAX_SAMPLE_LENGTH:,} characters, got {self.length}.")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise SamplingError(f"--seed must be from 0 to {MAX_SEED:,}, got {self.seed}.")
        lacking = vocab.missing(self.prime) if vocab is not None else None
        if lacking:
            raise SamplingError(f"The prime text (--prime) has characters the model's vocabulary lacks: "
                                f"{describe_chars(lacking)}. Remove them or use another checkpoint.")

    def with_seed(self) -> SampleSettings:
        """A copy with a concrete seed, so the result can be reproduced."""
        return self if self.seed is not None else replace(self, seed=random.SystemRandom().randrange(2**31))


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

    def _step(self, token: int, state: list) -> torch.Tensor:
        """One character through every layer; updates `state` in place, returns (1, vocab) logits."""
        if self.config.cell == "lstm":
            return self._lstm_step(token, state)
        step = _CELL_STEP[self.config.cell]
        x = None
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self._layers):
            if layer == 0:
                x = step(self._empty_x, state[0], self._empty_w, w_hh, self._input_table[token], b_hh)
            else:
                x = step(x, state[layer], w_ih, w_hh, b_ih, b_hh)
            state[layer] = x
        return torch.addmm(self._head_b, x, self._head_w)

    def _lstm_step(self, token: int, state: list) -> torch.Tensor:
        hidden = self.config.hidden
        x = None
        for layer, (w_ih_t, w_hh_t, bias) in enumerate(self._lstm):
            h, c = state[layer]
            if w_ih_t is None:  # int8: w_hh_t is an Int8Matrix, over [x, h] above the first layer
                gates = (self._input_table[token:token + 1] + w_hh_t(h) if layer == 0
                         else w_hh_t(torch.cat([x, h], dim=1)).add_(bias))
            elif layer == 0:
                gates = torch.addmm(self._input_table[token:token + 1], h, w_hh_t)
            else:
                gates = torch.addmm(bias, x, w_ih_t).addmm_(h, w_hh_t)
            sig = gates[:, :3 * hidden].sigmoid()
            c = torch.addcmul(sig[:, hidden:2 * hidden] * c, sig[:, :hidden], gates[:, 3 * hidden:].tanh())
            x = sig[:, 2 * hidden:] * c.tanh()
            state[layer] = (x, c)
        return torch.addmm(self._head_b, x, self._head_w)

    @staticmethod
    def _choose(logits: torch.Tensor, settings: SampleSettings, rng: random.Random) -> int:
        """Argmax at temperature 0; else draw from the (top-k) softmax. The draw happens on
        the host from a seeded random.Random: a handful of floats, cheaper than a multinomial
        kernel, and the same on every device."""
        if settings.temperature == 0:
            return int(logits.argmax())
        raw, logits = logits[0], logits[0] / settings.temperature
        if 0 < settings.top_k < logits.shape[-1]:
            values, indices = logits.topk(settings.top_k)
            probs, choices = values.softmax(-1).tolist(), indices.tolist()
        else:
            probs, choices = logits.softmax(-1).tolist(), None
        mass = sum(probs)
        if not mass > 0:
            # NaN: a temperature so small that the float32 logits overflowed. Argmax is the limit
            # sampling tends to as the temperature falls, so that is the choice.
            return int(raw.argmax())  # the unscaled logits: several may have overflowed to inf
        point, total = rng.random() * mass, 0.0
        for index, prob in enumerate(probs):  # noqa: B007 (the index where the loop stops is the choice)
            total += prob
            if point < total:
                break
        return choices[index] if choices is not None else index

    def stream(self, settings: SampleSettings) -> Iterator[str]:
        """Yield generated characters one at a time (the prime itself is not yielded).

        Settings must carry a seed to be reproducible; call `settings.with_seed()` first
        to pick one and keep it.
        """
        settings.validate(self.vocab)
        settings = settings.with_seed()
        rng = random.Random(settings.seed)
        with torch.inference_mode(), torch_threads(self.threads):
            state, token = self._prime(settings.prime)
            for _ in range(settings.length):
                token = self._choose(self._step(token, state), settings, rng)
                yield self.vocab.chars[token]

    def _prime(self, prime: str) -> tuple[list, int]:
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
            state, token = self._prime(text[:1])
            for following in ids[1:]:
                rows.append(self._step(token, state)[0].softmax(-1))
                token = following
        return torch.stack(rows) if rows else torch.empty(0, len(self.vocab))

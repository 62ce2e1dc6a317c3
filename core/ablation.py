"""Units ranked by effect: silence each unit and measure how much the model's loss over a text changes.

Silencing unit u of layer l sets its h (and, for an LSTM, its c) to 0 at every step of the text, as the
intervention `L{l+1}:U{u}:h=0@0` plus `c=0@0` does (core.intervene); the loss is the mean cross-entropy
of the next character over the text (nats per character), and optionally over the characters a feature
marks: a prediction counts when the character it predicts has a feature value above 0 (for a regex,
the characters inside a match).

Batched: one pass runs many copies of the model along the batch dimension, copy b with its own unit
silenced, so a layer of 512 units takes a few passes, not 512. Layers below the silenced one are
unaffected and computed once (the baseline trace); the silenced layer reads their output.

Precision: "exact" computes in the model's type (float32 results then differ from one-at-a-time ablation
by float32 rounding; float64 for a float64 model). "fast" takes the copies' matrix products in bfloat16
(the states, gates and losses stay float32), about twice as fast on a CPU with bf16 units; each pass then
carries one copy with nothing silenced, and a unit's change is its copy's loss minus that reference's, so
the rounding the two share cancels (benchmarks/README.md, "Units ranked by effect", measures what is left
against the exact ranking). "auto": fast for a float32 model of 256 units or more on a CPU with bf16 units,
else exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .device import supports_bf16, torch_threads
from .errors import TraceError
from .gates import GateTracer

CHUNK = 512  # copies per pass: large matrix products are the most efficient (13% less CPU than 128 on 2x512),
             # and the state of 512 copies is still small (a few MB per layer)
PRECISIONS = ("auto", "fast", "exact")
FAST_MIN_HIDDEN = 256  # below this a step costs its per-op overhead, not its products: bf16 gains nothing


@dataclass(frozen=True)
class UnitEffect:
    layer: int                   # 0-based
    unit: int
    change: float                # mean loss with the unit silenced minus without (nats per character)
    feature_change: float | None  # the same over the characters the feature marks


@dataclass(frozen=True)
class UnitRanking:
    """The loss of the text with each unit silenced, per layer and unit."""
    text: str
    baseline: float                       # mean loss without silencing (nats per character)
    loss: np.ndarray                      # [layers, units] mean loss with that unit silenced
    feature_baseline: float | None = None
    feature_loss: np.ndarray | None = None  # [layers, units], over the marked characters
    marked: int = 0                       # predictions the feature marks
    precision: str = "exact"              # "exact" or "fast" (bf16 products, changes against an in-pass reference)

    @property
    def change(self) -> np.ndarray:
        return self.loss - self.baseline

    @property
    def feature_change(self) -> np.ndarray | None:
        return None if self.feature_loss is None else self.feature_loss - self.feature_baseline

    def effect(self, layer: int, unit: int) -> UnitEffect:
        feature = self.feature_change
        return UnitEffect(layer, unit, float(self.change[layer, unit]),
                          None if feature is None else float(feature[layer, unit]))

    def ranked(self, by: str = "text", top: int | None = 10) -> list[UnitEffect]:
        """Units by how much silencing them raises the loss (over the text, or by="feature"), largest first."""
        if by == "feature" and self.feature_loss is None:
            raise TraceError("This ranking has no feature: rank again with a feature or regex to rank by it.")
        values = self.change if by == "text" else self.feature_change
        order = np.argsort(-values.ravel(), kind="stable")
        units = values.shape[1]
        return [self.effect(int(i) // units, int(i) % units) for i in order[:top]]


def _targets_and_mask(tracer: GateTracer, text: str, feature: np.ndarray | None):
    ids = tracer.encode(text)
    if feature is None:
        return ids, None
    feature = np.asarray(feature, dtype=np.float64)
    if feature.shape != (len(text),):
        raise TraceError(f"The feature has {feature.size} values but the text has {len(text)} characters; "
                         "they must match.")
    mask = torch.from_numpy(feature[1:] > 0)
    if not bool(mask.any()):
        raise TraceError("The feature marks none of the characters the model predicts in this text, so there "
                         "is no loss to measure on them. Use a text where the feature holds somewhere.")
    return ids, mask


def rank_units(tracer: GateTracer, text: str, prefix: str = "", feature: np.ndarray | None = None,
               layers: list[int] | None = None, chunk: int = CHUNK, threads: int | None = 1,
               precision: str = "auto", progress: Callable[[float], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> UnitRanking | None:
    """Silence every unit of every layer (or of `layers`) in turn and measure the loss over `text`
    (read after `prefix`); `feature` [len(text)] marks characters for a second loss. `progress(fraction)`
    now and then; returns None when `cancelled()` turns true. `threads`: torch threads for the passes (1,
    the default, never oversubscribes a busy CPU, where more threads can be many times slower; None
    leaves torch's setting, faster on an idle multi-core machine). `precision`: see the module's doc."""
    if len(text) < 2:
        raise TraceError("Ranking units needs a text of at least 2 characters (the loss is over the "
                         "characters the model predicts).")
    if chunk < 1:
        raise TraceError(f"The chunk of copies per pass must be 1 or more, got {chunk}.")
    ids, mask = _targets_and_mask(tracer, text, feature)
    rec = tracer.recurrence
    fast = _fast_products(tracer, precision)
    layers = list(range(rec.layers)) if layers is None else [int(layer) for layer in layers]
    for layer in layers:
        if not 0 <= layer < rec.layers:
            raise TraceError(f"Layer {layer + 1} does not exist: the model has layers 1 to {rec.layers}.")
    base = tracer.trace(text, prefix)
    targets = ids[1:]
    steps = len(targets)
    base_nll = -base._buffers.log_probs[:steps].gather(1, targets[:, None])[:, 0].double()
    baseline = float(base_nll.mean())
    feature_baseline = float(base_nll[mask].mean()) if mask is not None else None
    marked = 0 if mask is None else int(mask.sum())
    loss = np.full((rec.layers, rec.hidden), np.nan)
    feature_loss = np.full((rec.layers, rec.hidden), np.nan) if mask is not None else None
    total = len(layers) * rec.hidden
    done = 0
    with torch.inference_mode(), torch_threads(threads):
        for layer in layers:
            below = tracer._input_table[ids[:steps]] if layer == 0 else rec.input_projection(
                layer, base._buffers.hiddens[:steps, layer - 1])
            for first in range(0, rec.hidden, chunk):
                units = torch.arange(first, min(first + chunk, rec.hidden))
                sums = _silenced_losses(tracer, base, layer, units, below, targets, mask, fast, done, total,
                                        progress, cancelled)
                if sums is None:
                    return None
                text_sums, marked_sums = sums
                if fast:  # each copy against the in-pass reference (the last), on top of the trace's own loss
                    text_sums = text_sums[:-1] - text_sums[-1] + float(base_nll.sum())
                    if mask is not None:
                        marked_sums = marked_sums[:-1] - marked_sums[-1] + float(base_nll[mask].sum())
                loss[layer, units.numpy()] = text_sums / steps
                if mask is not None:
                    feature_loss[layer, units.numpy()] = marked_sums / marked
                done += len(units)
                if progress is not None:
                    progress(done / total)
    return UnitRanking(text, baseline, loss, feature_baseline, feature_loss, marked, "fast" if fast else "exact")


def _fast_products(tracer: GateTracer, precision: str) -> bool:
    """Whether `precision` takes the copies' products in bf16 for this model, here."""
    if precision not in PRECISIONS:
        raise TraceError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision == "fast"
    rec = tracer.recurrence
    return (rec.dtype == torch.float32 and rec.hidden >= FAST_MIN_HIDDEN
            and supports_bf16(torch.device("cpu")))


def _silenced_losses(tracer: GateTracer, base, layer: int, units: torch.Tensor, below: torch.Tensor,
                     targets: torch.Tensor, mask: torch.Tensor | None, fast: bool, done: int, total: int,
                     progress, cancelled) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Run copies of layers `layer`.. (copy b with units[b] silenced) over the text: summed loss per copy.
    `fast`: bf16 products, and one more copy, the last, with nothing silenced (the reference)."""
    rec = tracer.recurrence
    hidden, dtype = rec.hidden, rec.dtype
    product = torch.bfloat16 if fast else dtype  # what the matrix products take
    batch = len(units) + fast
    keep = torch.ones(batch, hidden, dtype=dtype)
    keep[torch.arange(len(units)), units] = 0
    top = range(layer, rec.layers)
    h = {lay: base._h0[lay].expand(batch, hidden).clone() for lay in top}
    c = {lay: base._c0[lay].expand(batch, hidden).clone() for lay in top} if rec.cell == "lstm" else {}
    # An LSTM's g columns doubled (exact: a power of two), so the one sigmoid over all four gates gives
    # sigmoid(2 g), and g = tanh(g) = 2 sigmoid(2 g) - 1 costs two cheap operations, not a tanh (which on
    # the CPU takes about 4x a sigmoid's time per element).
    scale = _g_doubled(rec) if rec.cell == "lstm" else 1.0
    w_hh_t = {lay: (rec.w_hh[lay].t() * scale).to(product).contiguous() for lay in top}
    w_ih_t = {lay: (rec.w_ih[lay].t() * scale).to(product).contiguous() for lay in top}
    below = below * scale
    # Above the silenced layer an LSTM or RNN takes [x, h] @ [W_ih; W_hh]^T as one product (about 15% faster
    # than two); a GRU keeps W_hh h apart, as its reset gate multiplies part of it.
    w_cat = {lay: torch.cat([w_ih_t[lay], w_hh_t[lay]]).contiguous() for lay in top if lay > layer} \
        if rec.cell != "gru" else {}
    fused_bias = {lay: rec.b_ih[lay] if rec.cell == "gru" else (rec.b_ih[lay] + rec.b_hh[lay]) * scale
                  for lay in top}
    total_loss = torch.zeros(batch, dtype=torch.float64)
    marked_loss = torch.zeros(batch, dtype=torch.float64) if mask is not None else None
    steps = len(targets)
    for t in range(steps):
        if cancelled is not None and t % 32 == 0 and cancelled():
            return None
        if progress is not None and t % 256 == 255:
            progress((done + len(units) * t / steps) / total)
        x = None
        for lay in top:
            if lay == layer:
                x = _cell_step(rec, lay, below[t], h[lay], c, w_hh_t[lay], keep)
            elif lay in w_cat:
                pre = _projection(fused_bias[lay], torch.cat([x, h[lay]], dim=1), w_cat[lay])
                x = _cell_step(rec, lay, None, h[lay], c, w_hh_t[lay], None, pre)
            else:
                x = _cell_step(rec, lay, _projection(fused_bias[lay], x, w_ih_t[lay]), h[lay], c, w_hh_t[lay], None)
            h[lay] = x
        logits = torch.addmm(tracer._head_b, x.to(dtype), tracer._head_w)
        nll = (torch.logsumexp(logits, dim=1) - logits[:, targets[t]]).double()
        total_loss += nll
        if marked_loss is not None and mask[t]:
            marked_loss += nll
    return total_loss.numpy(), None if marked_loss is None else marked_loss.numpy()


def _g_doubled(rec) -> torch.Tensor:
    """Per pre-activation column of an LSTM (i, f, g, o): 2 for g's, 1 for the others."""
    scale = torch.ones(4 * rec.hidden, dtype=rec.dtype)
    scale[2 * rec.hidden:3 * rec.hidden] = 2
    return scale


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1: four cheap operations, together about a quarter of torch.tanh's time
    on the CPU; within 2e-7 of it in float32."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def _projection(bias: torch.Tensor, x: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    """bias + x @ weight_t in the model's type; the product in the type of `weight_t`. A bf16 product's
    result takes the float32 bias after it: added inside a bf16 product, the bias is rounded too (that
    doubled the largest difference from the exact ranking on a trained 2x512, at the same speed)."""
    if weight_t.dtype == bias.dtype:
        return torch.addmm(bias, x, weight_t)
    return torch.mm(x.to(weight_t.dtype), weight_t).to(bias.dtype).add_(bias)


def _cell_step(rec, layer: int, xproj: torch.Tensor | None, h: torch.Tensor, c: dict, w_hh_t: torch.Tensor,
               keep: torch.Tensor | None, pre: torch.Tensor | None = None) -> torch.Tensor:
    """One step of `layer` for a batch of copies; `keep` (0 at each copy's silenced unit) zeroes h and c.
    `pre` (LSTM, RNN): the whole pre-activation, already computed, instead of xproj + W_hh h. The states
    stay in the model's type."""
    units = rec.hidden
    if rec.cell == "lstm":
        pre = _projection(xproj, h, w_hh_t) if pre is None else pre
        gates = torch.sigmoid(pre)  # g's columns hold sigmoid(2 g) (see _g_doubled)
        g = gates[:, 2 * units:3 * units] * 2 - 1
        cell = gates[:, units:2 * units] * c[layer] + gates[:, :units] * g
        if keep is not None:
            cell.mul_(keep)
        c[layer] = cell
        h_new = gates[:, 3 * units:] * _tanh(cell)
    elif rec.cell == "gru":
        hh = _projection(rec.b_hh[layer], h, w_hh_t)
        rz = torch.sigmoid(xproj[..., :2 * units] + hh[:, :2 * units])
        n = torch.tanh(xproj[..., 2 * units:] + rz[:, :units] * hh[:, 2 * units:])
        h_new = n + rz[:, units:] * (h - n)
    else:
        h_new = _projection(xproj, h, w_hh_t) if pre is None else pre
        h_new = (h_new.relu_() if rec.relu else h_new.tanh_()).to(h.dtype)
    if keep is not None:
        h_new.mul_(keep)
    return h_new

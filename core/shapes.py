"""The shapes of the tensors in a forward pass, read from a real pass (hooks), never written by hand.

`forward_shapes` follows a character model's forward pass as the lesson draws it: ids [B, T] ->
embedded [B, T, E] -> recurrent output [B, T, H] and state [layers, B, H] -> the lesson's
contiguous().view to [B*T, H] -> logits [B*T, V], against targets [B*T]. `module_shapes` does the
same for a bare nn.LSTM / GRU / RNN, which is what the shapes quiz checks an answer against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .model import CELLS, GATES

# Below this many multiply-adds a pass runs on the CPU (its fused kernels take milliseconds); above, on torch's
# meta device, which computes every shape and no number, at about a millisecond a step whatever the sizes.
CPU_PASS_WORK = 5e7


def pass_device(cell: str, inputs: int, hidden: int, layers: int, batch: int, seq: int) -> str:
    """Where a pass of these sizes reads its shapes quickest: "cpu" for a small one, "meta" for a large one."""
    work = batch * seq * layers * GATES[cell] * hidden * (max(inputs, hidden) + hidden)
    return "cpu" if work < CPU_PASS_WORK else "meta"


@dataclass(frozen=True)
class TensorShape:
    """One tensor of a pass: `name` says which, `shape` is read from the tensor, and `dims` names each
    dimension with the lesson's letters (B batch, T time, E embedding, V vocabulary, H hidden, L layers)."""
    name: str
    shape: tuple[int, ...]
    dims: tuple[str, ...]


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"The {name} for a shapes pass must be a whole number of at least 1, got {value!r}.")


def _named_state(state) -> list[tuple[str, torch.Tensor]]:
    """An LSTM's (h, c) or another cell's h, named."""
    parts = list(state) if isinstance(state, tuple) else [state]
    return list(zip(("h", "c")[:len(parts)], parts, strict=True))


def forward_shapes(model: nn.Module, batch: int, seq: int) -> list[TensorShape]:
    """The tensors of `model`'s forward pass over a batch of `batch` x `seq` ids, in order.

    The pass runs through a twin of the model (same class, same config: the model's own forward code),
    so hooks never touch the model itself, which another thread may be sampling from. A large pass runs
    on torch's meta device (see pass_device), which computes every shape and no number: a full training
    batch of a large model costs no memory and none of its arithmetic. The twin is in eval mode, where
    the recurrent module runs as one call, so hooks on it see the input, output and state.
    A one-hot model (--embed onehot, or one without an embedding weight) has its recurrent input named
    "one-hot" [B, T, V].
    """
    _check_sizes(batch=batch, seq=seq)
    config = model.config
    device = pass_device(config.cell, config.vocab_size if getattr(config, "embed", 0) == 0 else config.embed,
                         config.hidden, config.layers, batch, seq)
    with torch.device(device):
        twin = type(model)(config).eval()
    seen: dict[str, object] = {}
    hooks = [
        twin.rnn.register_forward_pre_hook(lambda _m, args: seen.setdefault("rnn_in", args[0])),
        twin.rnn.register_forward_hook(lambda _m, _args, out: seen.setdefault("rnn_out", out)),
        twin.head.register_forward_hook(lambda _m, _args, out: seen.setdefault("logits", out)),
    ]
    try:
        ids = torch.zeros((batch, seq), dtype=torch.long, device=device)
        targets = torch.zeros((batch, seq), dtype=torch.long, device=device)
        with torch.no_grad():
            twin(ids)
    finally:
        for hook in hooks:
            hook.remove()
    output, state = seen["rnn_out"]
    # core.model.OneHot holds the identity as `weight` (so code reading an embedding's table reads it): the
    # config says whether the input is one-hot, a missing embedding weight says so for any other model
    onehot = bool(getattr(config, "onehot", False)) or getattr(getattr(twin, "embed", None), "weight", None) is None
    rows = [TensorShape("ids", tuple(ids.shape), ("B", "T"))]
    rnn_in = seen["rnn_in"]
    if onehot:
        rows.append(TensorShape("one-hot", tuple(rnn_in.shape), ("B", "T", "V")))
    else:
        rows.append(TensorShape("embedded", tuple(rnn_in.shape), ("B", "T", "E")))
    rows.append(TensorShape("output", tuple(output.shape), ("B", "T", "H")))
    for name, part in _named_state(state):
        rows.append(TensorShape(name, tuple(part.shape), ("L", "B", "H")))
    # The lesson's CharRNN reshapes before its linear layer; ours applies the layer to [B, T, H] and
    # flattens the logits for the loss (core/chartask.py): the same [B*T, V] either way.
    reshaped = output.contiguous().view(-1, output.shape[-1])
    rows.append(TensorShape("reshaped", tuple(reshaped.shape), ("B*T", "H")))
    rows.append(TensorShape("logits", tuple(seen["logits"].flatten(0, 1).shape), ("B*T", "V")))
    rows.append(TensorShape("targets", tuple(targets.flatten().shape), ("B*T",)))
    return rows


def module_shapes(cell: str, input_size: int, hidden: int, layers: int, batch: int, seq: int,
                  batch_first: bool, device: str = "auto") -> list[TensorShape]:
    """The input, output and hidden state (h, and c for an LSTM) of a real nn.LSTM / GRU / RNN's forward
    pass over zeros: what the shapes quiz checks an answer against. `device` "auto" picks the quicker of
    "cpu" and "meta" (pass_device); meta reads the shapes of sizes of any size without allocating."""
    if cell not in CELLS:
        raise ConfigError(f"Unknown cell type '{cell}'. Use one of: {', '.join(CELLS)}.")
    _check_sizes(input_size=input_size, hidden=hidden, layers=layers, batch=batch, seq=seq)
    if device == "auto":
        device = pass_device(cell, input_size, hidden, layers, batch, seq)
    with torch.device(device):
        module = CELLS[cell](input_size, hidden, layers, batch_first=batch_first)
    order = ("B", "T") if batch_first else ("T", "B")
    shape = (batch, seq) if batch_first else (seq, batch)
    inputs = torch.zeros((*shape, input_size), device=device)
    with torch.no_grad():
        output, state = module(inputs)
    rows = [TensorShape("input", tuple(inputs.shape), (*order, "I")),
            TensorShape("output", tuple(output.shape), (*order, "H"))]
    for name, part in _named_state(state):
        rows.append(TensorShape(name, tuple(part.shape), ("L", "B", "H")))
    return rows

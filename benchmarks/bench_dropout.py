"""What dropout masks keyed by stream cost a training step, against the global-RNG masks, in one run.

    python -m benchmarks.bench_dropout [--rounds 5] [--steps 3] [--sizes 512,128] [--threads N]

A CharRNN LSTM 2xH (embedding 64, dropout 0.3, vocabulary 65 as tinyshakespeare's) in training mode on
the CPU, batch 128 x seq 100 (TrainConfig's defaults), under bf16 autocast where the CPU has fast bf16
as the Trainer runs it: forward, cross-entropy and backward (no optimizer step: the same for both).
"global" draws its masks with fast_dropout from torch's global generator; "keyed" passes a
DropoutKey, so every stream's mask is reseeded and drawn on its own (a new step number each step).
The two alternate, `--steps` steps each per round, the first of a round taking turns; medians
over rounds. The mask rows time the masks alone: one (128, 100, H) mask, drawn both ways.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
from torch.nn import functional

from rnn_playground.core.device import supports_bf16
from rnn_playground.core.model import CharRNN, DropoutKey, ModelConfig, stream_dropout_mask

from .common import median, print_table

BATCH, SEQ, VOCAB, DROPOUT = 128, 100, 65, 0.3


class StepTimer:
    """Training steps of one model, with or without keyed masks, same inputs and state each time."""

    def __init__(self, hidden: int):
        torch.manual_seed(0)
        self.model = CharRNN(ModelConfig(vocab_size=VOCAB, hidden=hidden, layers=2, dropout=DROPOUT)).train()
        self.ids = torch.randint(0, VOCAB, (BATCH, SEQ))
        self.targets = torch.randint(0, VOCAB, (BATCH, SEQ))
        self.amp = supports_bf16(torch.device("cpu"))
        self.step = 0

    def seconds(self, steps: int, keyed: bool) -> float:
        """Seconds per step over `steps` steps."""
        started = time.perf_counter()
        for _ in range(steps):
            key = DropoutKey(seed=1234, step=self.step) if keyed else None
            self.step += 1
            self.model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16) if self.amp else nullcontext():
                logits, _ = self.model(self.ids, dropout_key=key)
                loss = functional.cross_entropy(logits.flatten(0, 1), self.targets.flatten())
            loss.backward()
        return (time.perf_counter() - started) / steps


def mask_seconds(hidden: int, rounds: int) -> tuple[float, float]:
    """Seconds to draw one (BATCH, SEQ, hidden) keep mask: the global generator's way, then keyed."""
    threshold = round(DROPOUT * 32768)  # fast_dropout's own draw, without the multiply
    shape = (BATCH, SEQ, hidden)
    global_times, keyed_times = [], []
    for step in range(rounds * 5):
        started = time.perf_counter()
        torch.empty(shape, dtype=torch.int16).random_().ge_(threshold)
        global_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        stream_dropout_mask(shape, DROPOUT, DropoutKey(seed=1234, step=step), site=0)
        keyed_times.append(time.perf_counter() - started)
    return median(global_times), median(keyed_times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per round and way")
    parser.add_argument("--sizes", default="512,128", help="hidden sizes (2 layers each)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    amp = supports_bf16(torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {'bf16 autocast' if amp else 'fp32'}; "
          f"batch {BATCH}, seq {SEQ}, dropout {DROPOUT}; medians of {args.rounds} alternating rounds")
    rows = []
    for hidden in sizes:
        timer = StepTimer(hidden)
        timer.seconds(1, keyed=False)  # warm-up: allocator, oneDNN kernels
        timer.seconds(1, keyed=True)
        global_times, keyed_times = [], []
        for round_ in range(args.rounds):
            for keyed in (False, True) if round_ % 2 == 0 else (True, False):  # neither way always goes first
                (keyed_times if keyed else global_times).append(timer.seconds(args.steps, keyed=keyed))
        step_global, step_keyed = median(global_times), median(keyed_times)
        mask_global, mask_keyed = mask_seconds(hidden, args.rounds)
        rows.append([f"training step, LSTM 2x{hidden}", f"{step_global * 1e3:.1f}", f"{step_keyed * 1e3:.1f}",
                     f"{step_keyed / step_global:.3f}", f"{(step_keyed - step_global) * 1e3:+.1f}"])
        rows.append([f"one mask ({BATCH}x{SEQ}x{hidden})", f"{mask_global * 1e3:.2f}", f"{mask_keyed * 1e3:.2f}",
                     f"{mask_keyed / mask_global:.3f}", f"{(mask_keyed - mask_global) * 1e3:+.2f}"])
        rows.append(["  2 masks per step, of the global step", "", "",
                     "", f"{2 * (mask_keyed - mask_global) / step_global:+.2%}"])
    print_table("milliseconds (forward + loss + backward; masks alone)",
                ["what", "global ms", "keyed ms", "keyed / global", "difference"], rows)


if __name__ == "__main__":
    main()

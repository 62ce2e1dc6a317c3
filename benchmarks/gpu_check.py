"""The one short GPU check: train LSTM 2x512 on tinyshakespeare for a minute, then sample.

    python -m benchmarks.gpu_check [--device cuda] [--minutes 1]

Prints training chars/s (bf16 autocast on and off) and sampling chars/s on the device, for
benchmarks/README.md. Everything it exercises also runs on the CPU (the test suite covers it).
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.events import Finished, StepEvent, ValidationEvent
from rnn_playground.core.sampling import SampleSettings
from rnn_playground.core.trainer import Trainer

from .common import print_table, require_data, runs_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args(argv)
    rows = []
    for amp in (True, False):
        config = TrainConfig(corpus=str(require_data()), hidden=512, layers=2, batch=128, seq=100,
                             minutes=args.minutes / 2, device=args.device, amp=amp, sample_chars=0,
                             val_every=10**9, val_seconds=0, runs_dir=runs_dir())
        trainer = Trainer(config)
        rates, val, steps = [], None, 0
        for event in trainer.run():
            if isinstance(event, StepEvent) and event.step > 20:
                rates.append(event.tokens_per_s)
            elif isinstance(event, ValidationEvent):
                val = event.val_loss
            elif isinstance(event, Finished):
                steps = event.step
        sampler = trainer.snapshot_sampler()
        settings = SampleSettings(prime="ROMEO:", length=2000, top_k=5, seed=1)
        sampler.generate(SampleSettings(length=50, seed=1))
        started = time.perf_counter()
        text = sampler.generate(settings)
        sample_rate = len(text) / (time.perf_counter() - started)
        rows.append([f"LSTM 2x512 b128 s100 {'bf16' if trainer.use_amp else 'fp32'}", steps,
                     round(sorted(rates)[len(rates) // 2]) if rates else 0, f"{val:.4f}" if val else "-",
                     round(sample_rate)])
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else args.device
    print_table(f"{name}: {args.minutes / 2:g} min per row", ["run", "steps", "train chars/s", "val loss",
                                                              "sample chars/s"], rows)


if __name__ == "__main__":
    main()

"""The one short GPU check: train LSTM 2x512 on tinyshakespeare for a minute, then sample.

    python -m benchmarks.gpu_check [--device cuda] [--minutes 1] [--system-only]

Prints training chars/s (bf16 autocast on and off) and sampling chars/s on the device, for
benchmarks/README.md. Everything it exercises also runs on the CPU (the test suite covers it), but for
the system figures' GPU part (NVML): first a 20-step run checks that it records a SystemEvent with the
GPU's utilisation and memory, and run.json the CUDA environment (--system-only: that check alone).
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_playground.core import runs
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.events import Finished, StepEvent, SystemEvent, ValidationEvent
from rnn_playground.core.sampling import SampleSettings
from rnn_playground.core.trainer import Trainer

from .common import print_table, require_data, runs_dir


def check_system_figures(device: str) -> None:
    """A 20-step run on `device` records system figures: the GPU's utilisation and memory (NVML, where
    nvidia-ml-py is installed; else a note saying so, and the allocator's peak), and run.json the CUDA
    environment. Raises SystemExit with what is missing."""
    config = TrainConfig(corpus=str(require_data()), hidden=512, layers=2, batch=128, seq=100, steps=20,
                         device=device, sample_chars=0, val_every=10**9, val_seconds=0, system_every=0.05,
                         runs_dir=runs_dir())
    trainer = Trainer(config)
    readings = [event for event in trainer.run() if isinstance(event, SystemEvent)]
    environment = runs.read_status(trainer.run_dir).get("environment", {})
    problems = []
    if not readings:
        problems.append("no SystemEvent recorded in 20 steps")
    gpus = [gpu for event in readings for gpu in event.gpus or ()]
    notes = [event.note for event in readings if event.note]
    if readings and not gpus:
        problems.append("the SystemEvents have no GPU figures")
    if gpus and not any(gpu.get("peak_allocated_bytes") for gpu in gpus):
        problems.append("no allocator peak")
    if gpus and not notes and not all(gpu.get("util_percent") is not None and gpu.get("mem_used_bytes")
                                      for gpu in gpus):
        problems.append("NVML started but utilisation or memory is missing")
    if not environment.get("cuda") or not environment.get("gpus"):
        problems.append(f"run.json's environment lacks CUDA or GPU names: {environment}")
    print(f"\nsystem figures, 20 steps on {device}: {len(readings)} readings; environment {environment}")
    for gpu in gpus[-2:]:
        print(f"  {gpu}")
    for note in notes:
        print(f"  note: {note}")
    if problems:
        raise SystemExit("system figures check FAILED: " + "; ".join(problems))
    print("system figures check passed" + (" (without NVML: see the note)" if notes else " (NVML)"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--system-only", action="store_true", help="only the system figures check")
    args = parser.parse_args(argv)
    check_system_figures(args.device)
    if args.system_only:
        return
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

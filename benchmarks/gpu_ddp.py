"""Several GPUs: training speed on 1, 2, ... N GPUs at the same per-GPU batch, bf16 on and off.

    python -m benchmarks.gpu_ddp [--gpus 1,2,4,8] [--per-gpu-batch 128] [--hidden 512] [--steps 200]
    python -m benchmarks.gpu_ddp --cpu-dry-run --gpus 1,2 --hidden 32 --per-gpu-batch 8 --steps 12

For each GPU count n (default: 1, 2, 4, ... and every visible GPU), each per-GPU batch b and hidden
size H (comma lists), bf16 on and off: the real `rnn-playground train --devices cuda:0,...,cuda:n-1
--batch n*b` (n = 1: one process, no DDP; above: torchrun's standalone launch, one process per GPU,
DDP over NCCL), an LSTM 2xH (seq 100, the rest TrainConfig's defaults) on tinyshakespeare when
present (else the built-in corpus), for `--steps` steps with a step event every `--log-every`.
Read from each run's metrics.jsonl, after the first `--warmup` steps (CUDA kernels, the allocator,
DDP's buckets):

- chars/s: the whole run's characters per second; per GPU: that / n.
- ms per step: n x b x seq characters / chars/s.
- scaling efficiency: chars/s on n GPUs / (n x chars/s on 1 GPU), 1.00 being perfect.
- all-reduce share (an estimate): (ms per step on n GPUs - ms per step on 1) / ms per step on n.
  The per-GPU work is the same, so the time a step gains over one GPU is what several cost: mostly
  the part of DDP's gradient all-reduce that backward does not hide, plus the per-step agreement
  and waiting for the slowest rank. An estimate from step times, not a profile.

Without a GPU it stops with a message. `--cpu-dry-run` runs the same code path on the CPU
(`--devices cpu --nproc n`, gloo, one thread per process), for trying the script where there is no
GPU; its figures say nothing about GPUs.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .common import TINYSHAKESPEARE, chars_per_second, print_table, runs_dir

ROOT = Path(__file__).resolve().parents[1]


def positive_list(text: str) -> list[int]:
    """A comma list of whole numbers above 0, as argparse's type."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of whole numbers, such as 1,2,4") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers of 1 or more, such as 1,2,4")
    return sorted(set(values))


def default_counts(available: int) -> list[int]:
    """1, 2, 4, ... up to `available`, and `available` itself."""
    counts, n = [], 1
    while n < available:
        counts.append(n)
        n *= 2
    return counts + [available]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_ddp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=positive_list, default=None, metavar="LIST",
                        help="GPU counts to measure (default: 1, 2, 4, ... and every visible GPU)")
    parser.add_argument("--per-gpu-batch", type=positive_list, default=[128], metavar="LIST",
                        help="streams each GPU carries (default 128, the default model's batch on one GPU)")
    parser.add_argument("--hidden", type=positive_list, default=[512], metavar="LIST",
                        help="hidden sizes of the LSTM 2xH (default 512, the default model)")
    parser.add_argument("--seq", type=int, default=100, help="characters per window (default 100)")
    parser.add_argument("--steps", type=int, default=200, help="steps per run (default 200)")
    parser.add_argument("--warmup", type=int, default=40, help="first steps left out of the timing (default 40)")
    parser.add_argument("--log-every", type=int, default=10, help="steps between step events (default 10)")
    parser.add_argument("--precision", choices=("both", "bf16", "fp32"), default="both")
    parser.add_argument("--corpus", default=None, help="default: tinyshakespeare, else the built-in corpus")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take (default 600)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run the code path on CPU processes (gloo) instead of GPUs: for trying the script")
    args = parser.parse_args(argv)
    for name in ("seq", "steps", "log_every", "timeout"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0, got {getattr(args, name)}")
    if not 0 <= args.warmup <= args.steps - 2 * args.log_every:
        parser.error(f"--warmup {args.warmup} leaves fewer than two step events of --steps {args.steps} to time "
                     f"(one every --log-every {args.log_every}); lower it or raise --steps")
    return args


def device_flags(n: int, dry_run: bool) -> list[str]:
    if dry_run:
        return ["--devices", "cpu", "--nproc", str(n), "--threads", "1"]
    return ["--devices", ",".join(f"cuda:{i}" for i in range(n))]


def train(args: argparse.Namespace, n: int, per_gpu_batch: int, hidden: int, bf16: bool) -> Path:
    """One run of the real CLI on n devices; its run folder."""
    corpus = args.corpus or (str(TINYSHAKESPEARE) if TINYSHAKESPEARE.exists() else "builtin:python-stdlib")
    folder = runs_dir()
    command = [sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", corpus, "--hidden", str(hidden),
               "--layers", "2", "--batch", str(n * per_gpu_batch), "--seq", str(args.seq), "--steps", str(args.steps),
               "--log-every", str(args.log_every), "--val-every", "1000000", "--val-seconds", "0",
               "--sample-chars", "0", "--val-fraction", "0.002", "--runs-dir", folder, "--name", "bench",
               *([] if bf16 else ["--no-amp"]), *device_flags(n, args.cpu_dry_run)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"gpu_ddp: {' '.join(command)} took more than --timeout {args.timeout:g} s") from None
    if done.returncode:
        raise SystemExit(f"gpu_ddp: {' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-4000:]}")
    return Path(folder) / "bench"


def measured(run_dir: Path, skip: int) -> tuple[float, int, int]:
    """A finished run's chars/s and timed steps (after `skip` step events), and the processes it ran in,
    from its metrics.jsonl."""
    rate, steps = chars_per_second(run_dir, skip=skip)
    with (run_dir / "metrics.jsonl").open() as lines:
        started = next(record for record in map(json.loads, lines) if record["event"] == "started")
    return rate, steps, started.get("world_size", 1)


@dataclass
class Scaling:
    """One GPU count's figures against one GPU at the same per-GPU batch."""
    gpus: int
    chars_per_s: float
    per_gpu_chars_per_s: float
    step_ms: float
    efficiency: float | None      # None without a one-GPU run to compare with
    added_ms: float | None
    all_reduce_share: float | None


def scaling(rates: dict[int, float], per_gpu_batch: int, seq: int) -> list[Scaling]:
    """The figures of each GPU count from its chars/s (`rates`, by count), against the count 1 when measured."""
    base = rates.get(1)
    base_ms = per_gpu_batch * seq / base * 1e3 if base else None
    rows = []
    for n in sorted(rates):
        step_ms = n * per_gpu_batch * seq / rates[n] * 1e3
        added = step_ms - base_ms if base_ms is not None else None
        rows.append(Scaling(n, rates[n], rates[n] / n, step_ms, rates[n] / (n * base) if base else None, added,
                            max(added, 0.0) / step_ms if added is not None else None))
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    if args.cpu_dry_run:
        available = max(args.gpus or [2])
        where = "CPU processes (--cpu-dry-run: the code path only; these figures say nothing about GPUs)"
    else:
        available = torch.cuda.device_count()
        if not available:
            raise SystemExit("gpu_ddp: no CUDA GPU is visible here (torch.cuda.device_count() is 0), so there is "
                             "nothing to measure. Run it on a machine with GPUs, or add --cpu-dry-run to try the "
                             "code path on CPU processes.")
        if args.gpus and max(args.gpus) > available:
            raise SystemExit(f"gpu_ddp: --gpus asks for {max(args.gpus)} GPUs; this machine has {available}.")
        names = sorted({torch.cuda.get_device_name(i) for i in range(available)})
        where = f"{available} x {', '.join(names)}; NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}"
    counts = args.gpus or default_counts(available)
    precisions = {"both": [True, False], "bf16": [True], "fp32": [False]}[args.precision]
    skip = math.ceil(args.warmup / args.log_every)  # step events left out
    print(f"torch {torch.__version__}; {where}; GPU counts {counts}; {args.steps} steps per run, the first "
          f"{args.warmup} left out", flush=True)
    for hidden in args.hidden:
        for per_gpu_batch in args.per_gpu_batch:
            for bf16 in precisions:
                rates: dict[int, float] = {}
                for n in counts:
                    run_dir = train(args, n, per_gpu_batch, hidden, bf16)
                    rate, steps, processes = measured(run_dir, skip)
                    shutil.rmtree(run_dir.parent, ignore_errors=True)
                    if not rate > 0:
                        raise SystemExit(f"gpu_ddp: the run on {n} devices logged too few step events to time.")
                    rates[n] = rate
                    print(f"LSTM 2x{hidden}, {per_gpu_batch} per GPU, {'bf16' if bf16 else 'fp32'}, {n} device"
                          f"{'s' if n > 1 else ''}: {rate:,.0f} chars/s over {steps} steps, {processes} "
                          f"process{'es' if processes > 1 else ''}", flush=True)
                rows = [[r.gpus, r.gpus * per_gpu_batch, f"{r.chars_per_s:,.0f}", f"{r.per_gpu_chars_per_s:,.0f}",
                         f"{r.step_ms:.1f}", "-" if r.efficiency is None else f"{r.efficiency:.2f}",
                         "-" if r.added_ms is None else f"{r.added_ms:+.1f}",
                         "-" if r.all_reduce_share is None else f"{r.all_reduce_share:.1%}"]
                        for r in scaling(rates, per_gpu_batch, args.seq)]
                print_table(f"LSTM 2x{hidden}, seq {args.seq}, {per_gpu_batch} streams per GPU, "
                            f"{'bf16' if bf16 else 'fp32'}",
                            ["GPUs", "global batch", "chars/s", "per GPU", "ms/step", "scaling eff.",
                             "ms added vs 1", "all-reduce share (est.)"], rows)


if __name__ == "__main__":
    main()

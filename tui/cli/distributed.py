"""`train --devices A,B` / `--nproc N`: one run in several processes, started by torchrun from the same command.

The command that the user types becomes torchrun's launcher (`torch.distributed.run`, standalone
rendezvous on this machine): it starts one worker per device, each running this same `train`
command, which sees torchrun's environment (core.distributed.launched_by_torchrun) and joins the
process group. Several machines are started by hand with torchrun itself (README: "Several GPUs").
Nothing here launches processes, rendezvous or reduces gradients: torchrun and DDP do.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

import torch
from rich.console import Console

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import read_metadata
from rnn_playground.core.device import device_for_flag
from rnn_playground.core.distributed import TIMEOUT_ENV
from rnn_playground.core.errors import CheckpointError, ConfigError, PlaygroundError

from .terminal import EXIT_ERROR

LAUNCHER_ONLY = ("--nproc", "--max-restarts")  # the launcher's own flags; the workers get the rest
CLI_MODULE = "rnn_playground.tui"  # `python -m rnn_playground.tui train ...`: what each worker runs


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several processes (torch.distributed)")
    group.add_argument("--devices", default=None, metavar="LIST",
                       help="train in one process per device, the batch's streams split among them: "
                            "cuda:0,cuda:1 (NCCL), cuda for every visible GPU, or cpu with --nproc (gloo)")
    group.add_argument("--nproc", type=int, default=None, metavar="N",
                       help="processes to start: with --devices cpu, N CPU processes; with --devices cuda, the "
                            "first N GPUs (default: one per listed device)")
    group.add_argument("--max-restarts", type=int, default=0, metavar="N",
                       help="restart all processes up to N times when one fails; the run resumes from its last "
                            "checkpoint (torchrun --max-restarts)")
    group.add_argument("--rank-timeout", type=float, default=None, metavar="S",
                       help="seconds a process waits for the others before the run ends with an error naming "
                            "the cause (default: 180)")


def rank_devices(spec: str | None, nproc: int | None) -> list[str]:
    """Each process's device, by local rank, from --devices and --nproc (checked against this machine)."""
    if nproc is not None and nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}.")
    if spec is None:
        if nproc is not None and nproc > 1:
            raise ConfigError("--nproc needs --devices: --devices cpu --nproc N for CPU processes, or --devices "
                              "cuda --nproc N for the first N GPUs.")
        return []
    names = [name.strip().lower() for name in spec.split(",") if name.strip()]
    if not names:
        raise ConfigError("--devices is empty. Give devices separated by commas, such as cuda:0,cuda:1.")
    if names == ["cuda"]:
        count = torch.cuda.device_count()
        if not count:
            raise ConfigError("--devices cuda: this machine has no CUDA GPU that torch can use. "
                              "Use --devices cpu --nproc N for CPU processes.")
        if nproc is not None and nproc > count:
            raise ConfigError(f"--nproc {nproc} asks for more GPUs than the {count} this machine has.")
        names = [f"cuda:{i}" for i in range(nproc or count)]
    elif len(names) == 1 and nproc is not None:
        names = names * nproc
    elif nproc is not None and nproc != len(names):
        raise ConfigError(f"--nproc {nproc} does not match the {len(names)} devices --devices lists; "
                          "give one or the other.")
    for name in set(names):
        device_for_flag(name, "--devices")
    cuda = [name for name in names if name.startswith("cuda")]
    if len(set(cuda)) != len(cuda):
        raise ConfigError(f"--devices {spec} lists a GPU twice; NCCL gives each process its own GPU.")
    if cuda and len(cuda) != len(names):
        raise ConfigError(f"--devices {spec} mixes GPUs and other devices; the processes of a run share one "
                          "backend (NCCL for GPUs, gloo for the CPU).")
    return names


def worker_argv(argv: list[str], run_name: str, devices: list[str]) -> list[str]:
    """The worker's `train` arguments: the user's, without the launcher's own flags, naming the run
    folder (so a restart finds it) and listing every device explicitly."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        flag = token.split("=", 1)[0]
        if flag in LAUNCHER_ONLY + ("--devices", "--name"):
            skip = "=" not in token
            continue
        out.append(token)
    return out + ["--devices", ",".join(devices), "--name", run_name]


def launch(args: argparse.Namespace, devices: list[str], console: Console) -> int:
    """Start the run's processes under torchrun's standalone rendezvous and wait for them."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if args.resume:
        run_dir = runs.resolve_checkpoint(args.resume).parent
    else:
        run_dir = runs.new_run_dir(args.runs_dir, args.run_name)
        runs.check_unused(run_dir)
    if args.max_restarts < 0:
        raise ConfigError(f"--max-restarts must be 0 or more, got {args.max_restarts}.")
    if args.rank_timeout is not None:
        if not args.rank_timeout > 0:
            raise ConfigError(f"--rank-timeout must be a number of seconds above 0, got {args.rank_timeout}.")
        os.environ[TIMEOUT_ENV] = str(args.rank_timeout)
    # torchrun warns that it sets OMP_NUM_THREADS=1 unless set; each rank sets its own thread count anyway.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # torchrun logs each failure and signal as it handles it; our own message says what failed, once.
    os.environ.setdefault("LOGLEVEL", "CRITICAL")  # its loggers read this when created (on import, below)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    console.print(f"[dim]Starting {len(devices)} processes ({', '.join(devices)}) for run {run_dir.name}…[/]",
                  highlight=False)
    torchrun = parse_args(["--standalone", f"--nproc-per-node={len(devices)}", f"--max-restarts={args.max_restarts}",
                           "--module", CLI_MODULE, "train",
                           *worker_argv(args.argv[1:] if args.argv[:1] == ["train"] else args.argv,
                                        run_dir.name, devices)])
    try:
        run(torchrun)
    except ChildFailedError as exc:
        console.print(f"[bold red]error:[/] {describe_failure(exc, run_dir)}", highlight=False)
        return EXIT_ERROR
    except SignalException as exc:
        # torchrun passed the signal on to every process: they stopped at a step boundary and saved.
        return 0 if exc.sigval == signal.SIGINT else 128 + int(exc.sigval)
    return 0


def describe_failure(error, run_dir: Path) -> str:
    """Which rank failed and how, and what is left of the run: the failure torchrun reports first."""
    rank, failure = min(error.failures.items(), key=lambda item: item[1].timestamp)
    if failure.exitcode < 0:
        how = f"was killed by {failure.signal_name()}"
    elif failure.exitcode == EXIT_ERROR:
        how = "stopped on an error (its message is above)"
    else:
        how = f"exited with status {failure.exitcode}"
    return (f"The run stopped: rank {rank} (pid {failure.pid}) {how}, and torchrun stopped the other "
            f"processes. {last_checkpoint(run_dir)}")


def last_checkpoint(run_dir: Path) -> str:
    try:
        path = runs.resolve_checkpoint(run_dir)
        step = read_metadata(path).get("progress", {}).get("step")
    except (CheckpointError, PlaygroundError):
        return f"No checkpoint was saved in {run_dir} yet."
    return (f"The last checkpoint, {path.name} from step {step:,}, is intact in {run_dir}; continue with "
            f"--resume {run_dir}.")


def restart_target(run_dir: Path, attempt: int) -> Path | None:
    """After torchrun restarted the workers (--max-restarts: `attempt` 2 and up), the run's last checkpoint."""
    if attempt <= 1:
        return None
    try:
        return runs.resolve_checkpoint(run_dir)
    except (CheckpointError, PlaygroundError):
        return None  # it failed before its first checkpoint: start again

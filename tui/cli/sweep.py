"""`rnn-playground sweep`: a grid of train settings as headless runs queued onto devices (tui.viewmodel.sweep)."""

from __future__ import annotations

import argparse
import shlex
import signal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rnn_playground.core.config import flag_of
from rnn_playground.core.runs import default_runs_dir
from rnn_playground.tui.viewmodel.format import fmt_loss, with_default
from rnn_playground.tui.viewmodel.settings import field_type
from rnn_playground.tui.viewmodel.sweep import (
    FAILED,
    FINISHED,
    RUNNING,
    STOPPED,
    SweepLock,
    SweepRun,
    SweepRunner,
    SweepSpec,
    check_per_device,
    describe_point,
    open_sweep,
    parse_devices,
    sweepable_fields,
)

from .options import HelpFormatter
from .terminal import StopOnSignals, output_console

EXIT_RUNS_FAILED = 1

DESCRIPTION = """\
Train every combination of the values given: any train flag may list several, separated by commas, and
the grid is their product. Each grid point is a normal run (NAME-001, NAME-002, ... in the runs folder),
trained headless in a process of its own; each device trains at most --per-device runs at once and takes
the next when one ends. RUNS/sweeps/NAME/sweep.json lists the grid and each run's settings and state.

Ctrl+C stops every running run at its next step with a checkpoint. The same command again resumes the
sweep: finished runs are kept, stopped and queued ones train (from their checkpoints), failed ones only
with --retry-failed. Exit status: 0 when every run finished (or Ctrl+C stopped them), 1 when a run
failed, 2 for a refused setting.

  rnn-playground sweep --hidden 256,512 --lr 1e-3,3e-3 --devices cuda:0,cuda:1 --minutes 10
  rnn-playground sweep --cell lstm,gru --devices cpu --per-device 1 --steps 2000 --name cells
"""


def register(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="train a grid of settings as headless runs queued onto devices",
        description=DESCRIPTION, formatter_class=HelpFormatter, allow_abbrev=False)
    sweep.add_argument("--name", default=None,
                       help="the sweep's name; its runs are NAME-001, NAME-002, ... (default: sweep- and a hash "
                            "of its settings, so the same command names the same sweep)")
    sweep.add_argument("--devices", default="auto",
                       help="devices to queue the runs onto, separated by commas, each listed once (cpu, cuda:0, "
                            "cuda:1, mps)")
    sweep.add_argument("--per-device", type=int, default=1, metavar="N", help="runs each device trains at once")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="when resuming, train the runs that failed again (otherwise they stay failed)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="check everything and print the runs with the command each would run; start nothing")
    sweep.add_argument("--runs-dir", default=None,
                       help="where the runs and the sweep's folder live (default: $RNN_PLAYGROUND_RUNS or "
                            "./checkpoints)")
    grid = sweep.add_argument_group("train settings", "Each as `train` takes it; all but the switches may list "
                                                      "several values separated by commas.")
    for f in sweepable_fields():
        help_text = with_default(f.metadata["help"], f.default)
        if field_type(f) is bool:
            grid.add_argument(flag_of(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                              help=help_text)
        else:
            grid.add_argument(flag_of(f.name), dest=f.name, default=None, metavar="V[,V...]", help=help_text)
    sweep.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    # Every refusal comes before anything starts: flags, devices, each grid point, the sweep folder.
    per_device = check_per_device(args.per_device)
    spec = SweepSpec.from_given({f.name: getattr(args, f.name) for f in sweepable_fields()})
    devices = parse_devices(args.devices)
    spec.check(devices[0])
    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    sweep = open_sweep(runs_dir, args.name, spec)
    if args.dry_run:
        return dry_run(sweep, devices, per_device, args.retry_failed, console)
    lock = SweepLock(sweep.folder, sweep.name)
    try:
        sweep.save()
        return run_sweep(sweep, devices, per_device, args.retry_failed, console)
    finally:
        lock.release()


def run_sweep(sweep, devices: list[str], per_device: int, retry_failed: bool, console: Console) -> int:
    total = len(sweep.runs)

    def said(run: SweepRun) -> None:
        done = sum(r.state in (FINISHED, STOPPED, FAILED) for r in sweep.runs)
        where = f"{run.name} on {run.device}"
        if run.state == RUNNING:
            console.print(f"started {where}: {describe_point(run.settings) or 'the fixed settings'}", highlight=False)
        elif run.state == FAILED:
            console.print(f"[red]failed[/] {where}: {run.message}", highlight=False)
        else:
            console.print(f"{run.state} {where}: step {run.step or 0:,}, best val {fmt_loss(run.best_val_loss)} "
                          f"({done} of {total} ended)", highlight=False)

    runner = SweepRunner(sweep, devices, per_device, retry_failed=retry_failed, on_change=said)
    kept = [run for run in sweep.runs if run not in runner.to_train()]
    console.print(f"Sweep {sweep.name}: {sweep.spec.describe()} on {', '.join(devices)} ({per_device} at once "
                  f"each); file {sweep.folder / 'sweep.json'}", highlight=False)
    if kept:
        console.print(f"Resuming: {len(kept)} run{'s' if len(kept) != 1 else ''} kept as they were "
                      f"({', '.join(f'{r.name} {r.state}' for r in kept)}).", highlight=False)
    with StopOnSignals(lambda reason: runner.stop(), console) as signals:
        runner.run()
    output_console().print(summary_table(sweep))
    best = sweep.best()
    if best is not None:
        console.print(f"Best: {best.name} (val {fmt_loss(best.best_val_loss)}"
                      f"{', ' + describe_point(best.settings) if best.settings else ''}).", highlight=False)
    counts = sweep.counts()
    if signals.signum is not None:
        console.print(f"Stopped: run the same command again to resume the sweep "
                      f"({counts[STOPPED] + counts['queued']} runs to go).", highlight=False)
        return 0 if signals.signum == signal.SIGINT else 128 + signals.signum
    if counts[FAILED]:
        console.print(f"{counts[FAILED]} run{'s' if counts[FAILED] != 1 else ''} failed; the same command with "
                      "--retry-failed trains them again.", highlight=False)
        return EXIT_RUNS_FAILED
    return 0


def dry_run(sweep, devices: list[str], per_device: int, retry_failed: bool, console: Console) -> int:
    """What the sweep would do: its runs as they stand, and the command of each it would train."""
    runner = SweepRunner(sweep, devices, per_device, retry_failed=retry_failed)
    console.print(f"Sweep {sweep.name}: {sweep.spec.describe()} on {', '.join(devices)} ({per_device} at once "
                  f"each); nothing started (--dry-run).", highlight=False)
    output_console().print(summary_table(sweep))
    for index, run in enumerate(runner.to_train()):
        print(shlex.join(["rnn-playground", *runner.command(run, devices[index % len(devices)])[3:]]))
    return 0


def summary_table(sweep) -> Table:
    best = sweep.best()
    table = Table(title=f"sweep {sweep.name}")
    axes = [name for name, _ in sweep.spec.axes]
    for column in ("run", *(flag_of(name)[2:] for name in axes), "step", "best val", "state"):
        table.add_column(column, justify="right" if column in ("step", "best val") else "left")
    for run in sweep.runs:
        mark = " ★" if best is not None and run.name == best.name else ""
        state = run.state + (f": {run.message}" if run.message else "")
        table.add_row(run.name + mark, *(str(run.settings.get(name)) for name in axes),
                      f"{run.step:,}" if run.step is not None else "-", fmt_loss(run.best_val_loss), state)
    return table

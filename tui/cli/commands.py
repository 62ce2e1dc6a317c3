"""Headless subcommands: train, sample, runs, devices."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from rnn_playground.core.checkpoint import read_metadata
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.device import check_threads, device_for_flag, list_devices
from rnn_playground.core.distributed import (
    MainRankError,
    Solo,
    check_split,
    join_from_environment,
    launched_by_torchrun,
    rank_device,
)
from rnn_playground.core.errors import CheckpointError, ConfigError, PlaygroundError
from rnn_playground.core.events import ErrorEvent
from rnn_playground.core.runs import RunInfo, default_runs_dir, list_runs, resolve_checkpoint
from rnn_playground.core.sampling import PENALTY_WINDOW, SAMPLER_WEIGHTS, Sampler, SampleResult, SampleSettings
from rnn_playground.core.trainer import TrainControl, Trainer
from rnn_playground.tui.viewmodel.compare_view import (
    AXES,
    FIXED_COLUMNS,
    Comparison,
    check_compared,
    compare_table,
    comparison_json,
    fmt_axis,
    fmt_setting,
    shared_phrases,
)
from rnn_playground.tui.viewmodel.controller import InProcessRun, RunController, RunUpdate
from rnn_playground.tui.viewmodel.format import fmt_loss, fmt_rate, human_size

from . import beam, distributed
from .options import HelpFormatter, add_dataclass_options, explicit_options, options_from
from .render import TrainDisplay
from .terminal import EXIT_BROKEN_PIPE, EXIT_ERROR, StopOnSignals, output_console, silence_lost_output


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a character-level RNN headless, with live progress",
        description="Train a character-level RNN. Ctrl+C stops at the next step and saves a checkpoint. "
                    "With --resume, settings not given on the command line come from the checkpoint.",
        formatter_class=HelpFormatter, allow_abbrev=False)
    train.add_argument("--resume", metavar="RUN", default=None,
                       help="continue a run: its folder (last checkpoint) or a checkpoint file")
    train.add_argument("--name", dest="run_name", default=None, help="run folder name (default: generated)")
    add_dataclass_options(train, TrainConfig, skip=("run_name",))
    distributed.add_options(train)
    train.set_defaults(func=cmd_train, parser=train)

    sample = subparsers.add_parser(
        "sample", help="stream text from a checkpoint",
        description="Stream generated text to stdout, one character at a time.", formatter_class=HelpFormatter)
    sample.add_argument("checkpoint", help="a run folder (its last checkpoint) or a .safetensors file")
    sample.add_argument("--prime", default="", help="text to start from (default: a newline)")
    sample.add_argument("--temperature", type=float, default=SampleSettings.temperature,
                        help="randomness: 0 picks the likeliest character every time")
    sample.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest characters (0 = off)")
    sample.add_argument("--top-p", type=float, default=SampleSettings.top_p,
                        help="nucleus: sample among the fewest likeliest characters holding this much probability, "
                             "above 0 and at most 1 (1 = off; applied after temperature, penalty and top-k)")
    sample.add_argument("--repetition-penalty", type=float, default=SampleSettings.repetition_penalty,
                        help=f"divide the positive logits (multiply the negative) of characters among the last "
                             f"{PENALTY_WINDOW} (prime included) by this: above 1 breaks loops (1 = off)")
    sample.add_argument("--stop", default="", help="end each sample where this text appears in it (default: none)")
    sample.add_argument("--stop-regex", action="store_true", help="--stop is a regular expression")
    sample.add_argument("--include-stop", action="store_true", help="keep the stop text at the end of the sample")
    sample.add_argument("--min-length", type=int, default=0, help="characters before a --stop match counts")
    sample.add_argument("--length", type=int, default=SampleSettings.length, help="characters to generate")
    sample.add_argument("--samples", type=int, default=1,
                        help="samples drawn together in one batched pass, printed one after another")
    sample.add_argument("--json", action="store_true",
                        help="print one JSON object (a list with --samples above 1): text, prime, settings, "
                             "per-character log-probabilities (nats), total nats, bits per character, stop reason")
    sample.add_argument("--seed", type=int, default=None, help="seed for a reproducible sample (default: random)")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sample.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch, 1 to the CPU count (default: automatic, which is 1 for "
                             "sampling: one character at a time is too little work to share)")
    sample.add_argument("--best", action="store_true", help="use the run's best checkpoint instead of the last")
    sample.add_argument("--weights", choices=SAMPLER_WEIGHTS, default="auto",
                        help="fp32: the model's own weights (exact logits); int8: LSTM weights as int8 with a "
                             "scale per row, about 2x faster for large models on a CPU with bf16 units, "
                             "validation loss within 0.0003 nats of fp32; auto: int8 where that is the case "
                             "(LSTM, hidden >= 256, such a CPU), else fp32 (default: %(default)s)")
    beam.add_options(sample)
    sample.set_defaults(func=cmd_sample)

    runs = subparsers.add_parser("runs", help="list training runs, or compare some", formatter_class=HelpFormatter,
                                 description="List the runs in a folder, most recent first; or, with --compare, "
                                             "compare runs: each one's best validation loss (at which step, "
                                             "characters seen and training time), its last training loss, and "
                                             "the settings that differ between them.")
    runs.add_argument("directory", nargs="?", default=None,
                      help="runs folder (default: $RNN_PLAYGROUND_RUNS or ./checkpoints)")
    runs.add_argument("--json", action="store_true",
                      help="print the runs as a JSON list (paths absolute, sizes in bytes, times as Unix "
                           "seconds and ISO 8601) for scripts")
    runs.add_argument("--compare", nargs="+", metavar="RUN", default=None,
                      help="compare these run folders (two or more) in one table; with --json, their best and last "
                           "values, settings, and the settings that differ")
    runs.set_defaults(func=cmd_runs)

    devices = subparsers.add_parser("devices", help="list the devices torch can use here",
                                    formatter_class=HelpFormatter, description="List CPU, CUDA GPUs and MPS.")
    devices.set_defaults(func=cmd_devices)


def download_progress(console: Console):
    """A Rich progress bar for corpus downloads; returns (callback, close)."""
    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=console, transient=True)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("downloading corpus", total=total)
        progress.update(task, completed=done)

    def close() -> None:
        if task is not None:  # an unstarted Progress still prints an empty line when stopped
            progress.stop()

    return update, close


def run_trainer(trainer: Trainer, control: TrainControl, console: Console, title: str,
                show_samples: bool = True) -> int:
    """Drive a trainer to the end with the live display. Ctrl+C, SIGTERM and SIGHUP stop it at the
    next step and save; a closed output pipe does the same. The exit status is 128 + the signal's
    number for SIGTERM, SIGHUP and a closed pipe (as a shell reports a process those end), 0 for a
    Ctrl+C stop, 2 for an error."""
    with StopOnSignals(control.stop, console) as signals, \
            TrainDisplay(console, title, show_samples=show_samples,
                         on_output_lost=lambda: control.stop("output closed")) as display:
        def publish(update: RunUpdate) -> None:  # in this thread: the run's body runs inline
            state = controller.receive(update)
            if state is not None:
                display.show(state.snapshot, state.status)

        controller = RunController(lambda body: body(lambda: False), publish)
        controller.start(InProcessRun.of(trainer, control))
    if display.output_lost:
        silence_lost_output()  # output still buffered for it must not fail (status 120) at exit
    if controller.snapshot.status == "error":
        return EXIT_ERROR
    if signals.signum is not None and signals.signum != signal.SIGINT:
        return 128 + signals.signum
    return EXIT_BROKEN_PIPE if display.output_lost else 0


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    devices = distributed.rank_devices(args.devices, args.nproc)
    given = explicit_options(args.parser, args.argv)
    if devices and "device" in given:
        raise ConfigError("Give --device for one process or --devices for several, not both.")
    if launched_by_torchrun():
        try:
            code = train_as_rank(args, devices, console)
        except PlaygroundError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            code = EXIT_ERROR
        # The run's files are written and closed. Leave without the process group's C++ teardown, which
        # now and then aborts a finished worker ("terminate called without an active exception", SIGABRT:
        # seen in about 1 of 15 launches here), and torchrun would report a run that ended well as failed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if len(devices) > 1:
        check_split(run_batch(args, given), len(devices))
        return distributed.launch(args, devices, console)
    if devices:
        args.device = devices[0]
        given.add("device")
    control = TrainControl()
    return run_trainer(build_trainer(args, control, console, given), control, console, "rnn-playground train")


def run_batch(args: argparse.Namespace, given: set[str]) -> int:
    """The batch the run will train with: the flag's, or a resumed run's own."""
    if args.resume and "batch" not in given:
        batch = read_metadata(resolve_checkpoint(args.resume)).get("config", {}).get("batch")
        return batch if isinstance(batch, int) and batch > 0 else args.batch
    return args.batch


def build_trainer(args: argparse.Namespace, control: TrainControl, console: Console, given: set[str],
                  group: Solo | None = None, resume: str | None = None) -> Trainer:
    """The Trainer the train command's flags describe: a new run, or --resume (`resume`) of one."""
    resume = resume or args.resume
    progress, close = download_progress(console)
    try:
        if resume:
            try:
                if group is None or group.is_main:  # only rank 0 reads the file (other machines may not have it)
                    resolve_checkpoint(resume)
            except CheckpointError as exc:
                raise CheckpointError(f"--resume {resume}: {exc}") from None
            # Only the flags typed override the checkpoint's settings.
            overrides = {k: v for k, v in options_from(args, TrainConfig).items()
                         if k in given - {"run_name", "resume"}}
            return Trainer.resume(resume, control, group=group, **overrides)
        return Trainer(TrainConfig(**options_from(args, TrainConfig)), control, corpus_progress=progress, group=group)
    finally:
        close()


def train_as_rank(args: argparse.Namespace, devices: list[str], console: Console) -> int:
    """One process of a run torchrun started: join the others, train this rank's streams. Rank 0 shows
    the run and writes its folder; of the others, the first on each machine shows its own errors (a machine
    may lack the corpus), the rest nothing."""
    local_rank = int(os.environ["LOCAL_RANK"])
    if devices:
        args.device = rank_device(devices, local_rank)
    device = device_for_flag(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    group = join_from_environment(device)
    given = explicit_options(args.parser, args.argv) | {"device"}
    restarted = False

    def what_to_resume() -> bytes:
        """Rank 0 decides for all: the checkpoint to resume (--resume, or the run's last after torchrun
        restarted the workers), or none."""
        nonlocal restarted
        root = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
        folder = resolve_checkpoint(args.resume).parent if args.resume else root / (args.run_name or "")
        restart = distributed.restart_target(folder, group.attempt) if args.resume or args.run_name else None
        restarted = restart is not None
        return str(restart or args.resume or "").encode()

    try:
        control = TrainControl()
        resume = group.from_main(what_to_resume).decode() or None
        if group.is_main:
            trainer = build_trainer(args, control, console, given, group, resume)
            if restarted:
                console.print(f"[yellow]Restarted by torchrun: resuming from {resume}.[/]", highlight=False)
            return run_trainer(trainer, control, console, f"rnn-playground train · {group.world_size} processes")
        quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - rank 0 says what the run does
        trainer = build_trainer(args, control, quiet, given, group, resume)
        failure = None
        with StopOnSignals(control.stop, quiet):
            for event in trainer.run():
                if isinstance(event, ErrorEvent):
                    failure = event.message
        if failure is None:
            return 0
        raise PlaygroundError(failure)
    except MainRankError:
        return EXIT_ERROR  # rank 0 says why
    except PlaygroundError as exc:
        if group.is_main:
            raise
        if local_rank == 0:
            console.print(f"[bold red]error (rank {group.rank}):[/] {exc}", highlight=False)
        return EXIT_ERROR


def cmd_sample(args: argparse.Namespace, console: Console) -> int:
    if beam.wants_beam(args):
        return beam.run_beam(args, console)
    settings = SampleSettings(prime=args.prime, temperature=args.temperature, top_k=args.top_k,
                              length=args.length, seed=args.seed, top_p=args.top_p,
                              repetition_penalty=args.repetition_penalty, stop=args.stop, stop_regex=args.stop_regex,
                              include_stop=args.include_stop, min_length=args.min_length, samples=args.samples)
    settings.validate()  # every flag before the checkpoint is read; the prime once its vocabulary is known
    device_for_flag(args.device)
    if args.threads is not None:
        check_threads(args.threads)
    sampler = Sampler.from_checkpoint(resolve_checkpoint(args.checkpoint, "best.safetensors" if args.best
                                                         else "last.safetensors"), args.device, args.weights,
                                      args.threads)
    settings = settings.with_seed()
    settings.validate(sampler.vocab)  # a refused prime is never echoed to stdout before the error
    out = sys.stdout
    streaming = settings.samples == 1 and not args.json
    if streaming:
        out.write(settings.prime)
        out.flush()
    started = time.perf_counter()
    run = sampler.start(settings, keep=not streaming)  # one streamed sample may be endless: keep nothing
    for update in run:
        if streaming:
            out.write(update[0])
            out.flush()
    elapsed = time.perf_counter() - started
    results = run.results
    if args.json:
        records = [sample_json(result, settings) for result in results]
        out.write(json.dumps(records[0] if settings.samples == 1 else records, ensure_ascii=False) + "\n")
    elif streaming:
        out.write("\n")
    else:
        for result in results:
            out.write(f"--- sample {result.index + 1}: {sample_score(result)}, seed {result.seed}\n")
            out.write(settings.prime + result.text + "\n")
    out.flush()
    count = sum(result.length for result in results)
    stopped = sum(result.stop_reason == "stop" for result in results)
    score = f"; {sample_score(results[0])}" if settings.samples == 1 else ""
    ended = f", {stopped} of {len(results)} at the stop text" if settings.stop else ""
    console.print(f"[dim]{count} characters in {elapsed:.2f} s ({fmt_rate(count / max(elapsed, 1e-9))} chars/s)"
                  f"{score}{ended}; seed {settings.seed}, temperature {settings.temperature:g}, "
                  f"top-k {settings.top_k}, top-p {settings.top_p:g}, penalty {settings.repetition_penalty:g}, "
                  f"{sampler.weights} weights, "
                  f"{sampler.threads} thread{'s' if sampler.threads > 1 else ''}[/]", highlight=False)
    return 0


def sample_score(result: SampleResult) -> str:
    return f"log-prob {result.total:.1f} nats, {result.bits_per_char:.2f} bits/char"


def sample_json(result: SampleResult, settings: SampleSettings) -> dict:
    return {"text": result.text, "prime": settings.prime, "seed": result.seed, "settings": dataclasses.asdict(settings),
            "logprobs": list(result.logprobs), "total_nats": result.total, "bits_per_char": result.bits_per_char,
            "stop_reason": result.stop_reason}


def cmd_runs(args: argparse.Namespace, console: Console) -> int:
    if args.compare is not None:
        return cmd_compare(args)
    directory = Path(args.directory) if args.directory else default_runs_dir()
    infos = list_runs(directory)
    if args.json:
        print(json.dumps([run_json(info) for info in infos], indent=1))
        return 0
    if not infos:
        console.print(f"No runs in {directory}. Start one with: rnn-playground train")
        return 0
    table = Table(title=f"runs in {directory}")
    for column in ("name", "model", "step", "best val", "device", "size", "updated", ""):
        table.add_column(column, justify="right" if column in ("step", "best val", "size") else "left")
    for info in infos:
        model, best = ("[red]unreadable[/]", "-") if info.problem else (info.model, fmt_loss(info.best_val_loss))
        table.add_row(info.name, model, str(info.step), best, info.device, human_size(info.size_bytes),
                      datetime.fromtimestamp(info.updated).strftime("%Y-%m-%d %H:%M"),
                      "[green]live[/]" if info.live else "")
    console = output_console()
    console.print(table)
    for info in infos:
        if info.problem:  # the reason in full, below the table (a table cell would wrap it into pieces)
            console.print(f"[red]unreadable[/] {info.name}: {info.problem}.", highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`runs --compare RUN RUN ...`: the Runs screen's comparison table (compare_view), headless."""
    if args.directory is not None:
        raise PlaygroundError(f"--compare takes the run folders themselves; {args.directory} before it is one "
                              "more: put it after --compare.")
    runs = Comparison(check_compared(args.compare)).read()
    if args.json:
        print(json.dumps(comparison_json(runs), indent=1))
        return 0
    compared = compare_table(runs)
    table = Table(title=f"{len(runs)} runs compared")
    for column in FIXED_COLUMNS[:3]:
        table.add_column(column, justify="right" if column == "best val" else "left")
    for axis in AXES:
        table.add_column(f"at {axis}", justify="right")
    table.add_column(FIXED_COLUMNS[-1], justify="right")
    for key in compared.differing_keys:  # the settings that differ: bold, the reason the runs differ
        table.add_column(key, header_style="bold reverse", style="bold")
    for row in compared.rows:
        best = row.best_val
        table.add_row(row.mark, row.name, fmt_loss(best.loss if best else None),
                      *(fmt_axis(axis, best.at(axis)) if best else "-" for axis in AXES),
                      fmt_loss(row.last_train_loss),
                      *(fmt_setting(row.settings.get(key)) for key in compared.differing_keys))
    console = output_console()
    console.print(table)
    differ = ", ".join(compared.differing_keys) or "none"
    console.print(f"differ: {differ}", highlight=False)
    console.print("same: " + " · ".join(shared_phrases(compared)), highlight=False)
    return 0


def run_json(info: RunInfo) -> dict:
    record = dataclasses.asdict(info)
    record["path"] = str(info.path.resolve())
    record["updated_iso"] = datetime.fromtimestamp(info.updated).astimezone().isoformat(timespec="seconds")
    return record


def cmd_devices(args: argparse.Namespace, console: Console) -> int:
    table = Table(title="devices")
    for column in ("device", "name", "total memory", "free memory"):
        table.add_column(column)
    for info in list_devices():
        table.add_row(info.spec, info.name,
                      human_size(info.total_memory) if info.total_memory else "-",
                      human_size(info.free_memory) if info.free_memory else "-")
    output_console().print(table)
    return 0

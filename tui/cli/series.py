"""Headless `series` subcommands: train a time-series RNN, forecast from a checkpoint."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rnn_playground.core.device import device_for_flag
from rnn_playground.core.errors import CheckpointError, ConfigError
from rnn_playground.core.runs import BEST, LAST, resolve_checkpoint
from rnn_playground.core.series import (
    Predictions,
    SeriesConfig,
    load_series,
    make_config,
    new_series_trainer,
    predict,
    resume_series,
)
from rnn_playground.core.trainer import TrainControl
from rnn_playground.tui.viewmodel.series_view import metric_rows

from .commands import run_trainer
from .options import add_dataclass_options, given_options
from .terminal import EXIT_ERROR, output_console


class _Help(argparse.RawDescriptionHelpFormatter):
    """Flags are added with default None (to tell given settings from defaults); their help shows the real default."""


FORECAST_STEPS = 50
MAX_FORECAST_STEPS = 1_000_000  # each point is a step of the model, fed back


def register(subparsers) -> None:
    series = subparsers.add_parser(
        "series", help="time-series RNN: train on a built-in signal or a CSV file, forecast",
        description="Train an RNN to predict the next value of a series, and forecast with it.\n\n"
                    "  rnn-playground series train --signal sine\n"
                    "  rnn-playground series train --csv data.csv --column value --cell gru --steps 3000\n"
                    "  rnn-playground series train --preset course\n"
                    "  rnn-playground series forecast checkpoints/brisk-otter --steps 100",
        formatter_class=_Help)
    series.set_defaults(func=lambda args, console: _usage(series))
    sub = series.add_subparsers(dest="series_command", metavar="SUBCOMMAND")

    train = sub.add_parser(
        "train", help="train on a built-in signal or a CSV column, with live progress",
        description="Train a time-series RNN headless. The last --val-fraction of the series is validation; "
                    "standardization is fitted on the training part and stored in the checkpoint. Ctrl+C stops "
                    "at the next step and saves. With --resume, settings not given on the command line come "
                    "from the checkpoint.", formatter_class=_Help)
    train.add_argument("--resume", metavar="RUN", default=None,
                       help="continue a run: its folder (last checkpoint) or a checkpoint file")
    train.add_argument("--name", dest="run_name", default=None, help="run folder name (default: generated)")
    add_dataclass_options(train, SeriesConfig, skip=("run_name",), defaults=False)
    train.set_defaults(func=cmd_series_train)

    forecast = sub.add_parser(
        "forecast", help="forecast past the end of the data and show validation metrics",
        description="Predict with a trained series model: a free-running forecast --steps points past the end "
                    "of its data (each prediction fed back as the next input), and MSE/MAE over the validation "
                    "range for the model and the naive baselines, in the data's units.", formatter_class=_Help)
    forecast.add_argument("checkpoint", help="a run folder (its last checkpoint) or a .safetensors file")
    forecast.add_argument("--steps", type=int, default=None,
                          help=f"points to forecast past the end (default: {FORECAST_STEPS}; 0 for a model with "
                               "extra input columns, whose future values the data lacks)")
    forecast.add_argument("--csv-out", metavar="FILE", default=None,
                          help="write the forecast to this CSV file ('-' for stdout) instead of a table")
    forecast.add_argument("--csv", metavar="FILE", default=None,
                          help="predict on this CSV instead of the data the model was trained on (also when "
                               "that file has moved)")
    forecast.add_argument("--column", default=None,
                          help="CSV target column: a header name or 0-based index (default: the one trained on)")
    forecast.add_argument("--inputs", default=None,
                          help="CSV extra input columns, comma-separated names or indices (default: the ones "
                               "trained on)")
    forecast.add_argument("--period", type=int, default=None,
                          help="seasonal period in points for the seasonal-naive baseline (0 = none; "
                               "default: the one used in training)")
    forecast.add_argument("--best", action="store_true", help="use the run's best checkpoint instead of the last")
    forecast.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    forecast.set_defaults(func=cmd_series_forecast)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_ERROR


def cmd_series_train(args: argparse.Namespace, console: Console) -> int:
    given = given_options(args, SeriesConfig)
    control = TrainControl()
    if args.resume:
        if "preset" in given:
            raise ConfigError("--preset applies to new runs; a resumed run keeps its checkpoint's settings.")
        given.pop("run_name", None)
        try:
            resolve_checkpoint(args.resume)
        except CheckpointError as exc:
            raise CheckpointError(f"--resume {args.resume}: {exc}") from None
        trainer = resume_series(args.resume, control, **given)
    else:
        config = make_config(**given)
        trainer = new_series_trainer(config, control)
    task = trainer.task
    console.print(describe_task(task), highlight=False)
    code = run_trainer(trainer, control, console, "rnn-playground series train", show_samples=False)
    if code == 0 and task.split < task.data.points:
        result = predict(task.model, task.data, task.normalizer, task.config.val_fraction, period=task.period)
        output_console().print(metrics_table(result, "final weights"))
        if task.data.features > 1:  # a forecast past the end would need the extra inputs' future values
            console.print(f"validation metrics with: rnn-playground series forecast {trainer.run_dir} --steps 0",
                          highlight=False)
        else:
            console.print(f"forecast with: rnn-playground series forecast {trainer.run_dir} --steps 100",
                          highlight=False)
    return code


def describe_task(task) -> str:
    data, config = task.data, task.config
    names = ", ".join(data.names)
    inputs = f"{data.features} input feature{'s' if data.features > 1 else ''} ({names})"
    dropped = (f"; skipped {len(data.dropped_lines)} bad row(s) at line(s) "
               f"{', '.join(map(str, data.dropped_lines[:10]))}{'…' if len(data.dropped_lines) > 10 else ''}"
               if data.dropped_lines else "")
    period = f", seasonal period {task.period}" if task.period else ""
    header = ""
    if config.csv:
        header = (f"; header row: line {data.header_line}" if data.header_line is not None
                  else "; no header row (columns numbered from 0; pass --header yes if line 1 is one)")
    notes = "".join(f"\nnote: {note}" for note in task.notes)
    return (f"series {data.source}: {data.points:,} points, {task.split:,} training / "
            f"{data.points - task.split:,} validation; {inputs}{header}; {config.batch} stream(s) x windows of "
            f"{config.seq} points, {task.windows} step(s) per epoch{period}{dropped}{notes}")


def metrics_table(result: Predictions, label: str = "") -> Table:
    first, last = result.split, result.split + len(result.target) - 1
    title = (f"validation points {first}–{last} ({len(result.target)}), original units"
             + (f", {label}" if label else ""))
    table = Table(title=title)
    for column in ("predictor", "MSE", "MAE", "MSE vs last value"):
        table.add_column(column, justify="left" if column == "predictor" else "right")
    for row in metric_rows(result):
        table.add_row(row.name + (f" (period {result.period})" if row.name.startswith("seasonal") else ""),
                      f"{row.mse:.6g}", f"{row.mae:.6g}", "-" if row.vs_last is None else f"{row.vs_last:.2%}")
    return table


ONE_STEP_ROWS = 20  # validation points shown in the one-step table; evenly spaced over the range


def one_step_table(result: Predictions, name: str, rows: int = ONE_STEP_ROWS) -> Table:
    """The model's one-step predictions (each from the true past) beside the true values, at up to
    `rows` evenly spaced points of the validation range (all of them when it is that short)."""
    count = len(result.target)
    picks = sorted({round(i * (count - 1) / (rows - 1)) for i in range(rows)}) if count > rows else range(count)
    table = Table(title=f"one-step predictions over the validation range ({len(picks)} of {count} points"
                        f"{', evenly spaced' if count > rows else ''}), original units")
    for column in ("index", name, "one-step", "error"):
        table.add_column(column, justify="right")
    for i in picks:
        table.add_row(str(int(result.val_index[i])), f"{result.target[i]:.6g}", f"{result.one_step[i]:.6g}",
                      f"{result.one_step[i] - result.target[i]:+.3g}")
    return table


def write_forecast_csv(result: Predictions, handle) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["index", "forecast"])
    for index, value in zip(result.forecast_index, result.forecast, strict=True):
        writer.writerow([int(index), f"{value:.8g}"])


def cmd_series_forecast(args: argparse.Namespace, console: Console) -> int:
    if args.steps is not None and not 0 <= args.steps <= MAX_FORECAST_STEPS:
        raise ConfigError(f"--steps must be from 0 to {MAX_FORECAST_STEPS:,}, got {args.steps}.")
    if args.period is not None and args.period < 0:
        raise ConfigError(f"--period must be 0 (no seasonal-naive baseline) or a positive number of points, "
                          f"got {args.period}.")
    device_for_flag(args.device)
    loaded = load_series(args.checkpoint, args.device, prefer=BEST if args.best else LAST)
    data = loaded.data(args.csv, args.column, args.inputs)
    # A model with extra inputs cannot forecast past the end: their future values are unknown.
    steps = args.steps if args.steps is not None else FORECAST_STEPS if loaded.model.config.inputs == 1 else 0
    stored = loaded.checkpoint.meta.get("data", {}).get("fingerprint")
    if stored and data.fingerprint != stored:
        console.print(f"[yellow]note:[/] {data.source} differs from the data the model was trained on; "
                      "its training standardization is kept.", highlight=False)
    result = predict(loaded.model, data, loaded.normalizer, loaded.config.val_fraction, steps=steps,
                     period=loaded.period(data, args.period))
    if args.steps is None and not steps:
        console.print(f"[yellow]note:[/] the model also reads {', '.join(data.names[1:])}, whose values past the "
                      "end of the data are unknown, so there is no forecast; showing the validation metrics.",
                      highlight=False)
    out = output_console()
    if result.metrics and args.csv_out != "-":
        out.print(one_step_table(result, data.names[0]))
    if args.csv_out == "-":
        write_forecast_csv(result, sys.stdout)
        sys.stdout.flush()
        out = console  # keep stdout pure CSV
    elif args.csv_out:
        path = Path(args.csv_out)
        try:
            with path.open("w", encoding="utf-8", newline="") as handle:
                write_forecast_csv(result, handle)
        except OSError as exc:
            raise ConfigError(f"Cannot write {path}: {exc.strerror or exc}. Pick another --csv-out.") from None
        console.print(f"wrote {len(result.forecast)} forecast points to {path}", highlight=False)
    elif steps:
        out.print(f"free-running forecast past the end of {data.source}:", highlight=False)
        table = Table()
        table.add_column("step", justify="right")
        table.add_column("index", justify="right")
        table.add_column(data.names[0], justify="right")
        for step, (index, value) in enumerate(zip(result.forecast_index, result.forecast, strict=True), 1):
            table.add_row(str(step), str(int(index)), f"{value:.6g}")
        out.print(table)
    if result.metrics:
        out.print(metrics_table(result, f"{loaded.checkpoint.path.name}"))
    else:
        console.print("no validation range (val-fraction 0), so no metrics", highlight=False)
    return 0

"""`gates` on a time-series run: the cell's gates and states at every point of a series, the prediction
of the next value against the true one. `register` (after gates.register) adds the series flags to the
`gates` parser and makes its command `cmd_gates_any`: a series checkpoint is traced here, a character
one by gates.cmd_gates, unchanged."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_playground.core.checkpoint import read_metadata
from rnn_playground.core.errors import TraceError
from rnn_playground.core.series_gates import SeriesTrace, SeriesTracer
from rnn_playground.tui.viewmodel.format import fmt_layer

from .gates import (
    check_flags,
    check_model_flags,
    checkpoint_path,
    cmd_gates,
    print_saturation,
    print_written,
    tracing_threads,
)
from .terminal import output_console

CHAR_ONLY = (("text", "--text"), ("file", "--file"), ("prefix", "--prefix"), ("find", "--find"),
             ("regex", "--regex"))
SERIES_ONLY = (("csv", "--csv"), ("signal", "--signal"), ("column", "--column"), ("inputs", "--inputs"))


def register(subparsers) -> None:
    gates = subparsers.choices["gates"]
    series = gates.add_argument_group("time-series runs", "a series run traces its own data unless given another; "
                                      "the table shows each point's prediction of the next value beside it")
    source = series.add_mutually_exclusive_group()
    source.add_argument("--csv", metavar="FILE", default=None, help="trace this CSV file's data instead")
    source.add_argument("--signal", metavar="NAME", default=None,
                        help="trace this built-in signal instead (as `series train --signal`)")
    series.add_argument("--column", default=None,
                        help="CSV target column: a header name or 0-based index (default: the one trained on)")
    series.add_argument("--inputs", default=None,
                        help="CSV extra input columns, comma-separated (default: the ones trained on)")
    gates.set_defaults(func=cmd_gates_any)


def cmd_gates_any(args: argparse.Namespace, console: Console) -> int:
    path = checkpoint_path(args)
    if read_metadata(path).get("kind") == "series":
        return cmd_series_gates(args, console, path)
    refuse_series_flags(args, path)
    return cmd_gates(args, console)


def refuse_series_flags(args: argparse.Namespace, path: Path) -> None:
    """A character run given flags that pick a series' data: say so rather than ignore them."""
    given = [flag for name, flag in SERIES_ONLY if getattr(args, name, None) is not None]
    if given:
        raise TraceError(f"{', '.join(given)} pick the data of a time-series run, but {path} is a character "
                         "model: give the text to trace with --text or --file.")


def series_step_table(trace: SeriesTrace, layer: int, key: str, rows: int, units: int) -> Table:
    quantity = trace.quantity(key)
    shown = len(trace) if rows <= 0 else min(rows, len(trace))
    name = trace.names[0]
    table = Table(title=f"{len(trace)} steps, {fmt_layer(layer, trace.layers)}; {name} in the data's units",
                  caption=(f"showing steps 0-{shown - 1} of {len(trace)} (--rows 0 shows all)"
                           if shown < len(trace) else None))
    for column in ("step", f"{name} read", "prediction of next", "next (target)", "error",
                   *(f"{extra} read" for extra in trace.names[1:])):
        table.add_column(column, justify="right")
    table.add_column(f"most active {quantity.symbol}")
    for step in range(shown):
        info = trace.step_info(step, layer)
        active = trace.most_active(step, layer, key, units)
        table.add_row(str(step), f"{info.inputs[0]:.6g}", f"{info.prediction:.6g}",
                      "-" if info.target is None else f"{info.target:.6g}",
                      "-" if info.error is None else f"{info.error:+.3g}",
                      *(f"{value:.6g}" for value in info.inputs[1:]),
                      Text("  ".join(f"#{a.unit} {a.value:+.2f}" for a in active)))
    return table


def cmd_series_gates(args: argparse.Namespace, console: Console, path: Path) -> int:
    given = [flag for name, flag in CHAR_ONLY if getattr(args, name, None) not in (None, "")]
    if given:
        raise TraceError(f"{path} is a time-series model: it reads values, not text, so {', '.join(given)} "
                         "do not apply. Trace its own data (no flag), another CSV file (--csv FILE --column "
                         "NAME) or a built-in signal (--signal NAME).")
    if args.rank:
        raise TraceError(f"--rank ranks the units of a character model; ranking a time-series model's units is "
                         f"not built yet, and {path} is one. Drop --rank.")
    check_flags(args)
    tracer, loaded = SeriesTracer.from_checkpoint(path, loop_threads=tracing_threads(args))
    check_model_flags(args, tracer)
    data = loaded.data(args.csv, args.column, args.inputs, args.signal)
    stored = loaded.checkpoint.meta.get("data", {}).get("fingerprint")
    if stored and data.fingerprint != stored:
        console.print(f"[yellow]note:[/] {data.source} differs from the data the model was trained on; "
                      "its training standardization is kept.", highlight=False)
    started = time.perf_counter()
    trace = tracer.trace(data)
    elapsed = time.perf_counter() - started
    console.print(f"[dim]{path}: {tracer.describe()}; traced {len(trace):,} points of {data.source} in "
                  f"{elapsed:.2f} s[/]", highlight=False)
    layer = trace.layer_index(None if args.layer is None else args.layer - 1)
    out = output_console()
    out.print(series_step_table(trace, layer, args.quantity or "h", args.rows, args.units))
    print_saturation(out, trace, args.low, args.high)
    if args.json:
        print_written(console, trace.write_json(args.json))
    return 0

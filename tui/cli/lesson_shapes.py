"""`lesson shapes`: the Shapes page's table, for a bare recurrent module or a run's model."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_playground.core.errors import ConfigError
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import CELLS, describe_model
from rnn_playground.core.runs import resolve_checkpoint
from rnn_playground.tui.viewmodel.lesson.shapes import (
    LESSON_QUESTION,
    SIZE_LIMIT,
    ShapeRow,
    model_rows,
    module_call,
    module_rows,
)

from .options import HelpFormatter
from .terminal import output_console

# The flags that describe a bare module, with the lesson's question as their defaults; a run's model
# describes itself, so with a RUN they are refused rather than ignored.
MODULE_FLAGS = (("--cell", "cell", LESSON_QUESTION.cell), ("--input", "input", LESSON_QUESTION.input_size),
                ("--hidden", "hidden", LESSON_QUESTION.hidden), ("--layers", "layers", LESSON_QUESTION.layers),
                ("--batch-first", "batch_first", False))


def register(pages) -> None:
    shapes = pages.add_parser(
        "shapes", help="every tensor of a forward pass with its shape",
        description="Print the shapes of the tensors of a forward pass, read from a real pass: of a bare "
                    "nn.LSTM / GRU / RNN built from the flags (input, output, h and c), or, given a RUN, of "
                    "the run's character model at its batch and sequence length (ids, embedded, output, "
                    "h and c, the lesson's reshape, logits, targets). The defaults are the lesson's quiz: a "
                    "GRU with input 100, hidden 20, 1 layer, batches of 3.",
        formatter_class=HelpFormatter)
    shapes.add_argument("run", nargs="?", default=None,
                        help="a run folder or .safetensors file: show its model's pass instead of a bare module's")
    shapes.add_argument("--cell", choices=list(CELLS), default=None,
                        help=f"the module's cell (default: {LESSON_QUESTION.cell})")
    shapes.add_argument("--input", type=int, default=None, metavar="N",
                        help=f"the module's input_size (default: {LESSON_QUESTION.input_size})")
    shapes.add_argument("--hidden", type=int, default=None, metavar="N",
                        help=f"the module's hidden_size (default: {LESSON_QUESTION.hidden})")
    shapes.add_argument("--layers", type=int, default=None, metavar="N",
                        help=f"the module's num_layers (default: {LESSON_QUESTION.layers})")
    shapes.add_argument("--batch-first", action="store_true", default=None,
                        help="the module reads [batch, seq, features] (PyTorch's default: [seq, batch, features])")
    shapes.add_argument("--batch", type=int, default=None, metavar="B",
                        help=f"sequences per batch (default: {LESSON_QUESTION.batch}, or the run's --batch)")
    shapes.add_argument("--seq", type=int, default=None, metavar="T",
                        help=f"steps per sequence (default: {LESSON_QUESTION.seq}, or the run's --seq)")
    shapes.add_argument("--best", action="store_true", help="with a RUN: its best checkpoint instead of the last")
    shapes.add_argument("--json", action="store_true", help="print the tensors as JSON")
    shapes.set_defaults(func=cmd_shapes)


def check_size(flag: str, value: int | None) -> None:
    if value is not None and not 1 <= value <= SIZE_LIMIT:
        raise ConfigError(f"{flag} must be a whole number from 1 to {SIZE_LIMIT:,}, got {value}.")


def cmd_shapes(args: argparse.Namespace, console: Console) -> int:
    for flag in ("--input", "--hidden", "--layers", "--batch", "--seq"):
        check_size(flag, getattr(args, flag[2:]))
    if args.run is not None:
        given = [flag for flag, dest, _ in MODULE_FLAGS if getattr(args, dest) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} describe a bare module; a RUN's model describes itself: "
                              f"leave out {' and '.join(given)}, or the RUN.")
        path = resolve_checkpoint(args.run, "best.safetensors" if args.best else "last.safetensors")
        model, _, checkpoint = load_model(path, "cpu")
        config = checkpoint.meta.get("config") or {}
        batch = args.batch or _size(config.get("batch"), LESSON_QUESTION.batch)
        seq = args.seq or _size(config.get("seq"), LESSON_QUESTION.seq)
        rows = model_rows(model, batch, seq)
        title = f"{describe_model(model.config)} of {path}, batches of {batch} sequences of {seq} steps"
        about = {"run": str(path), "model": model.config.to_dict()}
    else:
        module = {dest: default if getattr(args, dest) is None else getattr(args, dest)
                  for _, dest, default in MODULE_FLAGS}
        batch, seq = args.batch or LESSON_QUESTION.batch, args.seq or LESSON_QUESTION.seq
        rows = module_rows(module["cell"], module["input"], module["hidden"], module["layers"], batch, seq,
                           module["batch_first"])
        call = module_call(module["cell"], module["input"], module["hidden"], module["layers"], module["batch_first"])
        title = f"{call}, batches of {batch} sequences of {seq} steps"
        about = {"module": module}
    if args.json:
        print(json.dumps({**about, "batch": batch, "seq": seq, "tensors": [
            {"name": r.name, "dims": list(r.dims), "shape": list(r.shape), "meaning": r.meaning} for r in rows]},
            indent=1))
        return 0
    output_console().print(shapes_table(rows, title))
    return 0


def _size(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default


def shapes_table(rows: list[ShapeRow], title: str) -> Table:
    table = Table(title=Text(title), title_justify="left")
    table.add_column("tensor", style="bold")
    table.add_column("letters", style="dim")
    table.add_column("shape")
    table.add_column("meaning")
    for row in rows:
        table.add_row(*(Text(cell) for cell in (row.name, row.letters, row.shape_text, row.meaning)))
    return table

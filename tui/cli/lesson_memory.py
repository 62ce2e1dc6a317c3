"""Headless `lesson memory`: the Memory page's experiment, accuracy against delay for RNN, GRU and LSTM."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_playground.core.errors import ConfigError, PlaygroundError
from rnn_playground.core.memory_task import (
    MemorySettings,
    cached_result,
    estimate_seconds,
    reach_summary,
    run_memory_experiment,
    store_result,
)
from rnn_playground.tui.viewmodel.lesson.memory import NAMES

from .options import HelpFormatter
from .terminal import output_console


def register(lesson_subparsers) -> None:
    defaults = MemorySettings()
    memory = lesson_subparsers.add_parser(
        "memory", help="why gates matter: recall accuracy against delay for RNN, GRU and LSTM",
        description="Train a vanilla RNN, a GRU and an LSTM of the same size to recall the symbol seen d steps "
                    "earlier (random symbols from a small alphabet), one small model per cell and delay, on the "
                    "CPU with a fixed seed, and print their held-out accuracy against d. The result is cached "
                    "per settings, so a second run prints at once.",
        formatter_class=HelpFormatter)
    memory.add_argument("--delays", default=",".join(map(str, defaults.delays)),
                        help="the delays d, comma-separated (1 to 64)")
    memory.add_argument("--hidden", type=int, default=defaults.hidden, help="hidden size of every model")
    memory.add_argument("--steps", type=int, default=defaults.steps, help="training steps per model")
    memory.add_argument("--seed", type=int, default=defaults.seed, help="the seed of weights and data")
    memory.add_argument("--seconds", type=float, default=None,
                        help="a cap on the whole experiment's time (each model gets its share; a model stopped "
                             "early scores lower)")
    memory.add_argument("--json", action="store_true", help="print the result as JSON")
    memory.add_argument("--no-cache", action="store_true", help="train again even if a cached result exists")
    memory.set_defaults(func=cmd_lesson_memory)


def parse_delays(text: str) -> tuple[int, ...]:
    try:
        delays = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(f"--delays is a comma-separated list of whole numbers such as 1,2,4,8,16, "
                          f"not {text!r}.") from None
    if not delays:
        raise ConfigError("--delays needs at least one delay, such as 1,2,4,8,16.")
    return delays


def cmd_lesson_memory(args: argparse.Namespace, console: Console) -> int:
    settings = MemorySettings(delays=parse_delays(args.delays), hidden=args.hidden, steps=args.steps,
                              seed=args.seed, seconds=args.seconds)
    result = None if args.no_cache else cached_result(settings)
    if result is None:
        console.print(f"Training {len(settings.cells) * len(settings.delays)} models ({settings.describe()}), "
                      f"about {estimate_seconds(settings):.0f} s on a 2-core CPU...", highlight=False)
        with console.status("training") as status:   # on a terminal only: a log gets the line above
            result = run_memory_experiment(
                settings, progress=lambda fraction, words: status.update(f"{words} ({fraction:.0%})"))
        try:
            store_result(result)
        except PlaygroundError as exc:  # the measurement stands: printed, only not cached
            console.print(Text.assemble(("note: ", "yellow"), str(exc)))
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    out = output_console()
    table = Table(title=f"Recall after d steps: held-out accuracy (chance {result.chance:.0%})")
    table.add_column("d", justify="right")
    for cell in result.accuracy_table:
        table.add_column(NAMES[cell], justify="right")
    for delay, row in result.rows():
        table.add_row(str(delay), *(f"{accuracy:.0%}" for accuracy in row.values()))
    out.print(table)
    took = "cached" if result.from_cache else f"took {result.seconds:.0f} s"
    out.print(f"{settings.describe()}; {took}" + (" (time cap reached)" if result.cut_short else ""),
              highlight=False)
    for cell, reach in result.reach.items():
        out.print(f"{NAMES[cell]}: gradient at d={settings.delays[-1]} reaches k = {reach_summary(reach)} "
                  f"(at 1/1000 of k = 0)", highlight=False)
    return 0

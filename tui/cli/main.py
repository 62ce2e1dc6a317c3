"""The `rnn-playground` command. With no arguments it opens the app; subcommands run headless."""

from __future__ import annotations

import argparse
import sys

from rnn_playground.core.errors import PlaygroundError

from . import commands, control, evaluate, gates, lesson, series, series_gates, sweep
from .options import HelpFormatter
from .terminal import EXIT_ERROR, output_console, quiet_broken_pipe

# Each provides `register(subparsers)`, which adds parsers whose `func(args, console) -> int` does the work.
SUBCOMMANDS = (commands, series, gates, series_gates, evaluate, control, sweep, lesson)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnn-playground",
        description="Train, sample and look inside recurrent neural networks. "
                    "Run with no arguments to open the app.",
        formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    console = output_console(stderr=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    args.argv = argv
    try:
        return args.func(args, console)
    except PlaygroundError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_ERROR
    except BrokenPipeError:
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        return 130


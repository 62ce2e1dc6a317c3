"""The `rnn-playground` command. With no arguments it opens the app; subcommands run headless."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from typing import Callable

from rich.console import Console

from core.errors import PlaygroundError

EXIT_ERROR = 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def add_dataclass_options(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                          defaults: bool = True) -> None:
    """One flag per dataclass field, help from the field's metadata, default shown.

    With defaults=False every flag defaults to None (its help still names the default), for
    commands that fill unset values from elsewhere; `explicit_options` is the other way to
    tell which flags were typed.
    """
    for f in dataclasses.fields(cls):
        if f.name in skip or "help" not in f.metadata:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if defaults else None
        help_text = f.metadata["help"] if defaults else f"{f.metadata['help']} (default: {f.default})"
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if kind.startswith("bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        convert = int if kind.startswith("int") else float if kind.startswith("float") else str
        parser.add_argument(flag, type=convert, default=default, help=help_text, metavar=f.name.upper())


def options_from(args: argparse.Namespace, cls) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def explicit_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations of the options actually typed (the parser must have allow_abbrev=False)."""
    given = set()
    for action in parser._actions:
        for flag in action.option_strings:
            if any(token == flag or token.startswith(flag + "=") for token in argv):
                given.add(action.dest)
    return given


# Subcommand modules each provide `register(subparsers)`, which adds parsers whose
# `func(args, console) -> int` does the work.
SUBCOMMAND_MODULES = ["tui.commands", "tui.cli_series", "tui.cli_gates"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnn-playground",
        description="Train, sample and look inside recurrent neural networks. "
                    "Run with no arguments to open the app.",
        formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def install_stop_handler(stop: Callable[[], None], console: Console) -> Callable[[], None]:
    """First Ctrl+C asks the run to stop cleanly (and save); a second one exits at once.
    Returns a function that restores the previous handler."""
    previous = signal.getsignal(signal.SIGINT)

    def handle(signum, frame):
        if getattr(handle, "pressed", False):
            raise KeyboardInterrupt
        handle.pressed = True
        console.print("[yellow]Stopping at the next step and saving a checkpoint "
                      "(press Ctrl+C again to quit at once)…[/]")
        stop()

    signal.signal(signal.SIGINT, handle)
    return lambda: signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    console = Console(stderr=True)
    if not argv:
        return open_app()
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
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        return 130


def open_app() -> int:
    from tui.app import run_app
    return run_app()

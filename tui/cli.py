"""The `rnn-playground` command. With no arguments it opens the app; subcommands run headless."""

from __future__ import annotations

import argparse
import dataclasses
import re
import signal
import sys
from typing import Callable

from rich.console import Console

from core.errors import PlaygroundError

EXIT_ERROR = 2


# Help text that already says what happens when the flag is left out: "(default: ...)", "(default when ...",
# "; default 0.1 for ...", "Default: h ...", "off by default", argparse's "%(default)s".
_STATES_DEFAULT = re.compile(r"(^|[(;.]\s*)default\b|\bby default\b|%\(default\)", re.IGNORECASE)


def with_default(help_text: str, default) -> str:
    """`help_text` plus "(default: X)", unless it already states its default or there is none worth
    stating (None: the flag is simply off when not given; an empty string)."""
    if default is None or default == "" or default is argparse.SUPPRESS or _STATES_DEFAULT.search(help_text):
        return help_text
    return f"{help_text} (default: {default})"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's help states its default once (see with_default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return help_text  # a required positional has no default
        return with_default(help_text, action.default)


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
        # With defaults=False the flag's own default is None, so the help names the field's default.
        help_text = f.metadata["help"] if defaults else with_default(f.metadata["help"], f.default)
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

"""The `rnn-playground` command. With no arguments it opens the app; subcommands run headless."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import signal
import sys
from collections.abc import Callable

from rich.console import Console

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.tui.viewmodel.format import with_default

EXIT_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE (13; Windows has none)


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
    tell which flags were typed. A config's own fields come first, then those it inherits (the
    loop settings every kind of run shares), so `train --help` starts with the corpus.
    """
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name in inherited):
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
SUBCOMMAND_MODULES = ["rnn_playground.tui.cli.commands", "rnn_playground.tui.cli.series", "rnn_playground.tui.cli.gates"]


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


# Signals that ask a headless run to stop at the next step and save: Ctrl+C, a job scheduler's or
# `kill`'s stop, a closed SSH session. The reason is what the run's log and `stopped (...)` line say.
STOP_SIGNALS = {getattr(signal, name): reason for name, reason in
                (("SIGINT", "interrupted"), ("SIGTERM", "terminated"), ("SIGHUP", "hangup"))
                if hasattr(signal, name)}  # Windows has no SIGHUP


class StopOnSignals:
    """While active, the first of SIGINT, SIGTERM or SIGHUP calls `stop(reason)` (the run stops at
    the next step and saves); Ctrl+C or the same signal again quits at once. `signum` is the first one received, so
    the command can exit with the conventional 128 + signum. Use as a context manager."""

    def __init__(self, stop: Callable[[str], None], console: Console):
        self.stop = stop
        self.console = console
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            # Once stopping, the command is on its way out: a hang-up arriving after the save must
            # not kill it with the default action before it exits with 128 + the first signal.
            signal.signal(signum, previous if self.signum is None else signal.SIG_IGN)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            # Ctrl+C again, or the same signal again, means now; another one (a hang-up arriving
            # while a scheduler's SIGTERM is being honoured) must not cut the save short.
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            if signum == self.signum:
                raise SystemExit(128 + signum)
            return
        self.signum = signum
        again = "press Ctrl+C again" if signum == signal.SIGINT else f"send {signal.Signals(signum).name} again"
        try:  # after a hangup the terminal may be gone: saving matters more than saying so
            self.console.print(f"[yellow]Stopping at the next step and saving a checkpoint "
                               f"({again} to quit at once)…[/]", highlight=False)
        except OSError:
            pass
        self.stop(STOP_SIGNALS[signum])


class PipeConsole(Console):
    """A closed pipe raises BrokenPipeError, as plain writes do, so every command ends the same
    quiet way (see quiet_broken_pipe) and a training run can save first. Rich's own handling would
    exit with status 1 at once, and silence stdout even when stderr was the closed one."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def output_console(stderr: bool = False) -> Console:
    """A Rich console for stdout (or stderr). On a terminal, the terminal's width; otherwise (a log
    file, a pipe) one line per message and tables at their natural width: nothing wraps at 80
    columns or is cut to fit."""
    console = PipeConsole(stderr=stderr)
    if console.is_terminal:
        return console
    return PipeConsole(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True)


UNWRAPPED_WIDTH = 100_000


def quiet_broken_pipe() -> int:
    """The reader of our output went away (`rnn-playground sample | head`): exit quietly as Unix
    tools do."""
    silence_lost_output()
    return EXIT_BROKEN_PIPE


def silence_lost_output() -> None:
    """Output still buffered for a closed pipe or a vanished terminal goes to /dev/null, so the
    interpreter's last flush prints no traceback and does not turn the exit status into 120."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):
                pass


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


"""How a headless command meets its terminal: the output console, a closed pipe, stop signals, exit statuses."""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable

from rich.console import Console

EXIT_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE (13; Windows has none)


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

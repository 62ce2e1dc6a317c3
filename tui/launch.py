"""The `rnn-playground` command: with no arguments it opens the app, with a subcommand it runs headless.

It stands above both faces so that neither imports the other (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        from rnn_playground.tui.app.shell import run_app  # only the app pays for importing Textual
        return run_app()
    from rnn_playground.tui.cli.main import main as run_command
    return run_command(argv)

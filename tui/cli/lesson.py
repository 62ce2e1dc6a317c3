"""Headless `lesson` command: the Lesson screen's pages that make sense without the app, one subcommand each."""

from __future__ import annotations

import argparse

from rich.console import Console

from . import lesson_batching, lesson_memory, lesson_shapes
from .options import HelpFormatter
from .terminal import EXIT_ERROR

# Each provides `register(lesson_subparsers)`, adding a page's parser whose `func(args, console) -> int` does the
# work (as main.SUBCOMMANDS does for the top-level commands).
PAGES = (lesson_shapes, lesson_batching, lesson_memory)


def register(subparsers) -> None:
    lesson = subparsers.add_parser(
        "lesson", help="the lesson's chapters on a model, headless (shapes, batching, memory)",
        description="The Lesson screen's pages that make sense without the app: each prints what its page "
                    "shows, computed from a real model or module.",
        formatter_class=HelpFormatter)
    pages = lesson.add_subparsers(dest="page", metavar="PAGE")
    for module in PAGES:
        module.register(pages)

    def no_page(args: argparse.Namespace, console: Console) -> int:
        lesson.print_help()
        return EXIT_ERROR

    lesson.set_defaults(func=no_page)

"""Headless `lesson batching`: the trainer's windows over a corpus, printed as the Batching page shows them."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from rich.console import Console
from rich.text import Text

from rnn_playground.core.config import TrainConfig, check_corpus_flag
from rnn_playground.core.corpus import DEFAULT_CORPUS, Vocab, load_corpus
from rnn_playground.core.errors import ConfigError
from rnn_playground.tui.viewmodel.lesson.batching import BatchingPage
from rnn_playground.tui.viewmodel.lesson.page import Source, line_text

from .options import HelpFormatter
from .terminal import output_console

WIDTH = 100  # columns of text per stream line (x and y get about half each)


def register(lesson_subparsers) -> None:
    parser = lesson_subparsers.add_parser(
        "batching", help="print the training windows a corpus is cut into (B streams, T characters each)",
        description="Cut a corpus the way training does (the validation part held out from the end, the rest "
                    "into --batch contiguous streams walked --seq characters at a time) and print the first "
                    "windows: each stream's input x and target y (x shifted by one character), and the "
                    "course's wrap-around target against ours.",
        formatter_class=HelpFormatter)
    parser.add_argument("--corpus", default=DEFAULT_CORPUS, help="a text file, a folder, or a corpus name")
    parser.add_argument("--batch", type=int, default=8, help="streams (B)")
    parser.add_argument("--seq", type=int, default=20, help="characters per window (T)")
    parser.add_argument("--windows", type=int, default=3, help="windows printed, from the first")
    parser.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction,
                        help="fraction held out from the end for validation, as in train")
    parser.set_defaults(func=cmd_lesson_batching)


def batching_page(text: str, batch: int, seq: int, val_fraction: float) -> BatchingPage:
    """The Batching page over `text` cut at B x T; a ConfigError in words when it cannot be."""
    for flag, value in (("--batch", batch), ("--seq", seq)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}.")
    if not 0 <= val_fraction < 0.9:
        raise ConfigError(f"--val-fraction must be in [0, 0.9), got {val_fraction}.")
    config = SimpleNamespace(batch=batch, seq=seq, val_fraction=val_fraction, test_fraction=0.0)
    page = BatchingPage(Source(None, Vocab.from_text(text), config, text, origin="corpus"))
    if page.batches is None or (page.batch, page.seq) != (batch, seq):
        raise ConfigError(f"{page.cut_error} Lower --batch or --seq, or use a larger corpus.")
    return page


def cmd_lesson_batching(args: argparse.Namespace, console: Console) -> int:
    if args.windows < 1:
        raise ConfigError(f"--windows must be at least 1, got {args.windows}.")
    check_corpus_flag(args.corpus)
    corpus = load_corpus(args.corpus)
    page = batching_page(corpus.text, args.batch, args.seq, args.val_fraction)
    out = output_console()
    view = page.view(WIDTH, 6)  # its first lines: the sizes
    for row in view.lines[:2]:
        out.print(Text(line_text(row)))
    for window in range(min(args.windows, len(page.batches))):
        start = window * page.seq
        out.print(Text(f"\nwindow {window + 1}: columns {start:,}-{start + page.seq - 1:,}", style="bold"))
        for row in page.window_block(window, WIDTH):
            out.print(Text(line_text(row)))
    out.print()
    for row in page.wrap_lines():
        out.print(Text(line_text(row)))
    console.print(f"[dim]{corpus.source}: {len(page.ids):,} training characters[/]", highlight=False)
    return 0

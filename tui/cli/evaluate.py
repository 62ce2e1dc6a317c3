"""Headless `eval` subcommand: score a text with runs in bits per character, and compare two runs
character by character (--diff)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_playground.core.corpus import decode_utf8
from rnn_playground.core.device import check_threads, device_for_flag
from rnn_playground.core.errors import ConfigError, CorpusError, PlaygroundError
from rnn_playground.core.evaluate import (
    SPLITS,
    Evaluation,
    SplitText,
    baseline_rows,
    evaluate_text,
    run_corpus,
    split_text,
)
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import describe_model
from rnn_playground.core.runs import BEST, LAST, resolve_checkpoint
from rnn_playground.tui.viewmodel.eval_view import (
    A_WINS,
    LARGE_BITS,
    TIE_BITS,
    DiffSpan,
    diff_spans,
    summarize_diff,
)
from rnn_playground.tui.viewmodel.format import escape_char, show_text_char

from .options import HelpFormatter
from .terminal import output_console

_STYLES = {(A_WINS, 1): "green", (A_WINS, 2): "bold black on green",
           (-A_WINS, 1): "red", (-A_WINS, 2): "bold black on red"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="score a text with runs: bits per character with a 95%% interval; --diff compares two",
        description="Score a text with each run: the surprisal of every character given all before it, the text "
                    "read as one stream with the hidden state carried, as bits (and nats) per character with a "
                    "95% interval from a block bootstrap (blocks of 1,000 characters, 1,000 resamples). "
                    "The text is a file (--file), or each run's own validation or test split (--split). Characters "
                    "outside a run's vocabulary are counted and scored log(V+1) nats each (a uniform guess over "
                    "its V characters plus one unknown); the model skips them as input.\n\n"
                    "With --diff and two runs, the text is shown coloured by which run predicts each character "
                    f"better (green: the first, red: the second; on a green or red ground: {LARGE_BITS:g} bits or "
                    f"more; under {TIE_BITS:g} bits: a tie), and where each wins most. Without colour (NO_COLOR, "
                    "a pipe), a line of markers under each line of text: a/A where the first wins, b/B the second.",
        formatter_class=HelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders (their last checkpoint) or .safetensors files")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--file", default=None, help="a UTF-8 text file to score")
    source.add_argument("--split", choices=SPLITS, default=None,
                        help="score each run's own validation or test split of its corpus (default: val)")
    parser.add_argument("--json", action="store_true", help="print the scores as a JSON list")
    parser.add_argument("--exact", action="store_true",
                        help="read the text as one stream (slower); by default it runs in chunks side by side, "
                             "each warmed up on the 256 characters before it")
    parser.add_argument("--best", action="store_true", help="use each run's best checkpoint instead of the last")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the text with a unigram and an interpolated Witten-Bell n-gram of each "
                             "run's training text (order chosen on its validation split)")
    parser.add_argument("--diff", action="store_true", help="compare two runs character by character")
    parser.add_argument("--show", type=int, default=3000,
                        help="with --diff, characters of the text shown (0 = all); the summary covers all of it")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch, 1 to the CPU count (default: automatic: 1 on a busy machine, "
                             "else one per free core)")
    parser.set_defaults(func=cmd_eval)


def read_text_file(path: str) -> str:
    """The text of --file, refused in one line if missing, unreadable, not UTF-8, or too short to score."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CorpusError(f"--file {path}: cannot read it ({exc.strerror or exc}).") from None
    text = decode_utf8(data, f"--file {path}")
    if not text:
        raise CorpusError(f"--file {path} is empty. Pick a file with some text in it.")
    if len(text) < 2:
        raise CorpusError(f"--file {path} has one character: nothing to predict. Pick a longer text.")
    return text


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    if args.diff and len(args.runs) != 2:
        raise ConfigError(f"--diff compares two runs; got {len(args.runs)}.")
    if args.show < 0:
        raise ConfigError(f"--show must be 0 (all) or a number of characters, got {args.show}.")
    device_for_flag(args.device)
    if args.threads is not None:
        check_threads(args.threads)
    file_text = SplitText(read_text_file(args.file), Path(args.file).name, ("file",)) if args.file else None
    split = args.split or "val"
    prefer = BEST if args.best else LAST
    paths = [resolve_checkpoint(run, prefer) for run in args.runs]
    loaded = [load_model(path, args.device) for path in paths]  # refuses a series run before its "corpus" loads
    # The corpus is read for a run's own split, and for the baselines fitted on its training text.
    corpora = [run_corpus(checkpoint.meta, _run_name(path), f"--split {split}") if not file_text else None
               for path, (_, _, checkpoint) in zip(paths, loaded, strict=True)]
    texts = [file_text or split_text(corpus, split, _run_name(path))
             for path, corpus in zip(paths, corpora, strict=True)]
    if args.diff and texts[0].key != texts[1].key:
        raise CorpusError(f"--diff needs both runs to score the same text, but their {split} splits differ (other "
                          "corpora or fractions). Give --file PATH to score one text with both.")
    rows: list[Evaluation] = []
    for path, text, (model, vocab, _) in zip(paths, texts, loaded, strict=True):
        rows.append(evaluate_text(model, vocab, text.text, run=_run_name(path), name=describe_model(model.config),
                                  exact=args.exact, text_name=text.name, threads=args.threads))
    out = output_console()
    notes = []
    if args.baselines:
        rows += _baselines(args, paths, loaded, corpora, texts, notes)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=1))
        return 0
    show_table(out, rows)
    for note in notes:
        out.print(f"[yellow]{note}[/]", highlight=False)
    if len({text.key for text in texts}) > 1:
        out.print("[yellow]The runs were scored on different texts (each its own split): their figures are not "
                  "directly comparable.[/]", highlight=False)
    if args.diff:
        show_diff(out, texts[0].text, rows[0], rows[1], args.show)
    return 0


def _baselines(args, paths, loaded, corpora, texts, notes: list[str]) -> list[Evaluation]:
    """Baseline rows, once per (training text, scored text). A run whose corpus cannot be read again (moved,
    changed) while scoring a file gets a note instead: the models' scores stand without it."""
    rows, done = [], set()
    for index, (path, text) in enumerate(zip(paths, texts, strict=True)):
        try:
            corpus = corpora[index] or run_corpus(loaded[index][2].meta, _run_name(path), "the baselines")
        except PlaygroundError as exc:
            notes.append(f"No baselines for {_run_name(path)}: {exc}")
            continue
        key = (corpus.fingerprint, corpus.config.val_fraction, corpus.config.test_fraction, text.key)
        if key not in done:
            done.add(key)
            rows += baseline_rows(corpus, text.text, text_name=text.name)
    return rows


def _run_name(path: Path) -> str:
    return f"{path.parent.name}{' (best)' if path.name == BEST else ''}"


def show_table(out: Console, rows: list[Evaluation]) -> None:
    table = Table(title="bits per character (lower is better)")
    for column in ("run", "model", "text", "chars", "bits/char", "95% interval", "nats/char", "unknown chars"):
        table.add_column(column, justify="right" if column in ("chars", "bits/char", "nats/char") else "left")
    for index, row in enumerate(rows):
        low, high = row.interval
        unknown = (f"{row.unknown_count:,}: " + " ".join(escape_char(c) for c in row.unknown_chars[:12])
                   + (" …" if len(row.unknown_chars) > 12 else "")) if row.unknown_count else "0"
        first_baseline = row.kind == "baseline" and (index == 0 or rows[index - 1].kind != "baseline")
        table.add_row(row.run, row.model, row.text, f"{row.chars:,}", f"{row.bits_per_char:.4f}",
                      f"{low:.4f} – {high:.4f}", f"{row.nats_per_char:.4f}", unknown,
                      style="dim" if row.kind == "baseline" else None, end_section=False)
        if first_baseline and index:
            table.rows[index - 1].end_section = True  # a rule between the runs and the baselines
    out.print(table)
    if any(row.kind == "baseline" for row in rows):
        out.print("[dim]Baselines learn each run's training text: a unigram and an interpolated Witten-Bell n-gram "
                  "whose order is the best on its validation split; a character they never saw is one unknown "
                  "symbol (--no-baselines leaves them out).[/]", highlight=False)
    penalized = [row for row in rows if row.unknown_count and row.kind == "model"]
    if penalized:
        out.print("Characters outside a run's vocabulary are scored log(V+1) nats each (a uniform guess over its V "
                  "characters plus one unknown: " + ", ".join(f"{row.run} {row.penalty_nats:.3f}" for row in penalized)
                  + ") and skipped as the model's input.", highlight=False)
    if not all(row.exact for row in rows):
        out.print("[dim]Read in chunks side by side, each warmed up on the 256 characters before it (--exact: one "
                  "stream, slower).[/]", highlight=False)


def show_diff(out: Console, text: str, a: Evaluation, b: Evaluation, show: int) -> None:
    shown = text if not show else text[:show]
    spans = diff_spans(shown, a.surprisals[:max(len(shown) - 1, 0)], b.surprisals[:max(len(shown) - 1, 0)])
    colour = not out.no_color and out.color_system is not None
    out.print(f"\n[bold]{a.run}[/] (A) against [bold]{b.run}[/] (B)" + (f", first {len(shown):,} characters"
                                                                       if len(shown) < len(text) else ""),
              highlight=False)
    if colour:
        out.print(f"[green]green[/]: A predicts better, [red]red[/]: B does (by {TIE_BITS:g} bits or more; "
                  f"[bold black on green]on a ground[/]: {LARGE_BITS:g} or more)", highlight=False)
        line = Text()
        for span in spans:
            line.append(span.text, style=_STYLES.get((span.winner, span.level), ""))
        out.print(line, soft_wrap=True)
    else:
        out.print(f"under each line: a/A: A predicts better, b/B: B does (by {TIE_BITS:g} bits or more; capitals: "
                  f"{LARGE_BITS:g} or more)", highlight=False)
        for text_line, marker_line in marker_lines(spans, max(20, min(out.width, 120))):
            out.print(text_line, highlight=False, markup=False, soft_wrap=True)
            out.print(marker_line, highlight=False, markup=False, soft_wrap=True)
    summary = summarize_diff(text, a.surprisals, b.surprisals)
    out.print(f"\nOver {summary.chars:,} characters: A {summary.a_bits / max(summary.chars, 1):.4f} bits/char, "
              f"B {summary.b_bits / max(summary.chars, 1):.4f}; A predicts {summary.a_better:,} characters better, "
              f"B {summary.b_better:,} (the rest within {TIE_BITS:g} bits).", highlight=False)
    for label, top in (("A", summary.a_top), ("B", summary.b_top)):
        if top:
            out.print(f"Where {label} wins most:", highlight=False)
            for span in top:
                out.print(f"  {abs(span.bits):8.1f} bits  at {span.start:,}: {_visible(span)}", highlight=False,
                          markup=False)


def _visible(span: DiffSpan, limit: int = 60) -> str:
    text = "".join(show_text_char(c) for c in span.text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def marker_lines(spans: list[DiffSpan], width: int) -> list[tuple[str, str]]:
    """The diffed text as (text, markers) pairs of at most `width` cells: each character drawn as one
    cell (controls made visible), its marker beneath it."""
    chars, marks = [], []
    for span in spans:
        chars.extend(span.text)
        marks.extend(span.marker)
    pairs: list[tuple[str, str]] = []
    start = 0
    for end in [i + 1 for i, c in enumerate(chars) if c == "\n"] + [len(chars)]:
        for cut in range(start, max(end, start + 1), width):
            piece = range(cut, min(cut + width, end))
            if piece:
                pairs.append(("".join(show_text_char(chars[i]) for i in piece), "".join(marks[i] for i in piece)))
        start = end
    return pairs


"""Headless `gates` subcommand: look inside a character model, step by step."""

from __future__ import annotations

import argparse
import re
import threading
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rnn_playground.core.ablation import CHUNK, UnitRanking
from rnn_playground.core.corpus import decode_utf8
from rnn_playground.core.device import check_threads, choose_threads, step_work
from rnn_playground.core.errors import CorpusError, TraceError
from rnn_playground.core.gates import GateTracer, Trace
from rnn_playground.core.gates_analysis import FEATURES, REGEX_FEATURE, UnitMatch, compile_regex
from rnn_playground.core.runs import resolve_checkpoint
from rnn_playground.tui.viewmodel.format import escape_char, fmt_layer, layer_number
from rnn_playground.tui.viewmodel.gates_session import (
    EffectVsCorrelation,
    RankingJob,
    effect_vs_correlation,
    run_ranking,
)
from rnn_playground.tui.viewmodel.intervene import (
    SYNTAX,
    InterventionComparison,
    compare_intervention,
    parse_intervention,
)

from .options import HelpFormatter
from .terminal import output_console


def register(subparsers) -> None:
    gates = subparsers.add_parser(
        "gates", help="trace gate values, predictions and unit behaviour over a text",
        description="Run a text through a character model and show what happens inside it at every "
                    "character: gate values (LSTM i, f, g, o, c, h; GRU r, z, n, h; RNN h), the likeliest "
                    "next characters, the probability the model gave the true next character, and gate "
                    "saturation. With --find or --regex, list the units that best track a feature of the "
                    "text instead. A time-series run traces its own data (or --csv / --signal): per point the "
                    "value read, the prediction of the next value and the true one, and the gates and states "
                    "of its units. With --intervene, clamp, silence or force units from a position on and "
                    "see how the predictions change. With --rank, rank every unit by how much silencing it "
                    "raises the loss.\n\nBuilt-in features:\n" +
                    "\n".join(f"  {name:14} {text}" for name, text in FEATURES.items()) +
                    "\n\nInterventions (--intervene, repeatable, all applied together):\n"
                    f"  {SYNTAX}\n"
                    "  L1..Ln       the layer, 1 = nearest the input\n"
                    "  U42, U3,7,9, U3-9   the units (0-based)\n"
                    "  h=V, c=V     clamp the hidden state (any cell) or the LSTM cell state to any number V;\n"
                    "               0 silences the unit. Applied right after the step's update, so that\n"
                    "               step's own prediction already sees it\n"
                    "  f=1, f=0, i=0, o=0   force an LSTM gate (never forget, forget everything, write\n"
                    "               nothing, say nothing); i, f, o take 0 or 1, and a GRU's r, z too\n"
                    "  @P           from character index P of the text on (default 0)",
        formatter_class=HelpFormatter)
    gates.add_argument("checkpoint", help="a run folder (its last checkpoint) or a .safetensors file")
    source = gates.add_mutually_exclusive_group()
    source.add_argument("--text", help="the text to trace (a character run: --text or --file is required)")
    source.add_argument("--file", help="a UTF-8 file whose text to trace")
    gates.add_argument("--prefix", default="", help="text read first, to set the state the trace starts from")
    gates.add_argument("--layer", type=int, default=None,
                       help="layer the table shows and unit search looks in, counted from 1 = nearest the input, "
                            "as the app shows them (default: the top layer for the table, all layers for unit "
                            "search; --json always has every layer, with 0-based indices)")
    gates.add_argument("--json", metavar="OUT", default=None, help="also write the full trace to this JSON file")
    gates.add_argument("--rows", type=int, default=40, help="steps shown in the table (0 = all)")
    gates.add_argument("--top-k", type=int, default=3, help="likeliest next characters shown (and in --json)")
    gates.add_argument("--units", type=int, default=3, help="most active units shown per step")
    gates.add_argument("--quantity", default=None,
                       help="quantity for the active units and unit search: i, f, g, o, c, h, kept, written "
                            "(LSTM); r, z, n, h (GRU); h (RNN). Default: h for the table, c (LSTM) or h for search")
    gates.add_argument("--low", type=float, default=0.1, help="a gate below this is left-saturated")
    gates.add_argument("--high", type=float, default=0.9, help="a gate above this is right-saturated")
    search = gates.add_mutually_exclusive_group()
    search.add_argument("--find", metavar="FEATURE", choices=list(FEATURES),
                        help=f"list the units that best track a built-in feature: {', '.join(FEATURES)}")
    search.add_argument("--regex", metavar="RE", help="list the units that best track a regular expression's "
                                                     "matches (1 inside a match, 0 outside)")
    gates.add_argument("--top", type=int, default=10,
                       help="units listed by --find / --regex and by --rank; steps listed by --intervene")
    gates.add_argument("--intervene", metavar="SPEC", action="append", default=None,
                       help=f"clamp, silence or force units from a position on: {SYNTAX} (repeatable; see above). "
                            "Shows the surprisal before and after; --json then holds the intervened trace, the "
                            "interventions and the comparison")
    gates.add_argument("--rank", action="store_true",
                       help="rank every unit of every layer by how much silencing it (h, and an LSTM's c, set to 0 "
                            "at every step) raises the loss over the text, in nats per character; with --find / "
                            "--regex also over the characters the feature marks, beside the correlation search "
                            "(units found that matter, found that change little, matter but missed). --json then "
                            "holds the whole ranking")
    gates.add_argument("--threads", type=int, default=None,
                       help="CPU threads for tracing and --rank (0 = torch's default: faster on an idle multi-core "
                            "machine, much slower on a busy one; default: 1 for tracing, the free cores for --rank)")
    gates.add_argument("--best", action="store_true", help="use the run's best checkpoint instead of the last")
    gates.set_defaults(func=cmd_gates)


def read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    path = Path(args.file).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}. Check the path given to --file.") from None
    return decode_utf8(data, f"File {path}")


def step_table(trace: Trace, layer: int, key: str, rows: int, k: int, units: int) -> Table:
    quantity = trace.quantity(key)
    shown = len(trace) if rows <= 0 else min(rows, len(trace))
    table = Table(title=f"{len(trace)} steps, {fmt_layer(layer, trace.layers)}", caption=(
        f"showing steps 0-{shown - 1} of {len(trace)} (--rows 0 shows all)" if shown < len(trace) else None))
    table.add_column("step", justify="right")
    table.add_column("char")
    table.add_column("next")
    table.add_column("p(next)", justify="right")
    table.add_column("rank", justify="right")
    table.add_column("bits", justify="right")
    table.add_column(f"top {k} predictions")
    table.add_column(f"most active {quantity.symbol}")
    for step in range(shown):
        info = trace.step_info(step, layer, k)
        active = trace.most_active(step, layer, key, units)
        table.add_row(*(Text(cell) for cell in (  # Text: characters such as '[' are never markup
            str(step), escape_char(info.char), escape_char(info.next_char),
            "-" if info.next_prob is None else f"{info.next_prob:.3f}",
            "-" if info.next_rank is None else str(info.next_rank),
            "-" if info.surprisal_bits is None else f"{info.surprisal_bits:.2f}",
            "  ".join(f"{escape_char(p.char)} {p.prob:.2f}" for p in info.top),
            "  ".join(f"#{a.unit} {a.value:+.2f}" for a in active))))
    return table


def gate_means_table(trace: Trace, layer: int, rows: int) -> Table:
    """Per step, the mean over the layer's units of every gate (and the hidden state): how open each
    gate is, step by step."""
    keys = [q.key for q in trace.quantities if q.kind in ("gate", "tanh")]  # LSTM i f g o h; GRU r z n h; RNN h
    shown = len(trace) if rows <= 0 else min(rows, len(trace))
    table = Table(title=f"gate means over the {trace.hidden} units of {fmt_layer(layer, trace.layers)}, per step")
    table.add_column("step", justify="right")
    table.add_column("char")
    for key in keys:
        table.add_column(trace.quantity(key).symbol, justify="right")
    means = {key: trace.values(key)[:shown, layer].mean(axis=-1) for key in keys}
    chars = trace.chars
    for step in range(shown):
        table.add_row(str(step), Text(escape_char(chars[step])), *(f"{means[key][step]:+.2f}" for key in keys))
    return table


def saturation_table(trace: Trace, low: float, high: float) -> Table | None:
    result = trace.saturation(low, high)
    if not result.keys:
        return None
    table = Table(title=f"gate saturation over {result.steps} steps (left: < {low:g}, right: > {high:g})")
    for column in ("layer", "gate", "mean left", "mean right", "units mostly left", "units mostly right",
                   "never saturated"):
        table.add_column(column, justify="left" if column == "gate" else "right")
    for row in result.rows():
        table.add_row(layer_number(row.layer, trace.layers), row.label, f"{row.mean_left:.1%}", f"{row.mean_right:.1%}",
                      f"{row.mostly_left}/{row.units}", f"{row.mostly_right}/{row.units}", f"{row.never}/{row.units}")
    return table


def print_saturation(out: Console, trace: Trace, low: float, high: float) -> None:
    """The saturation table, or why there is none (a vanilla RNN)."""
    saturation = saturation_table(trace, low, high)
    if saturation is None:
        out.print("A vanilla RNN has no gates, so there is no gate saturation to report.")
    else:
        out.print(saturation)


def print_written(console: Console, written: Path, what: str = "the full trace") -> None:
    console.print(f"[dim]wrote {what} to {written} ({written.stat().st_size:,} bytes)[/]", highlight=False)


def intervention_table(comparison: InterventionComparison, rows: int) -> Table:
    """The steps whose true next character's surprisal changed most, in text order."""
    shown = sorted(comparison.most_changed(rows), key=lambda s: s.step)
    specs = "; ".join(iv.describe() for iv in comparison.interventions)
    table = Table(title=Text(f"under {specs}: the {len(shown)} predictions that changed most, of "
                             f"{len(comparison.steps):,} from position {comparison.start}"))
    for column in ("step", "char", "next", "bits before", "bits after", "change", "top before", "top after"):
        table.add_column(column, justify="right" if column in ("step", "bits before", "bits after", "change")
                         else "left")
    for s in shown:
        table.add_row(*(Text(cell) for cell in (
            str(s.step), escape_char(s.char), escape_char(s.next_char), f"{s.before_bits:.2f}", f"{s.after_bits:.2f}",
            f"{s.change:+.2f}", "  ".join(f"{escape_char(p.char)} {p.prob:.2f}" for p in s.top_before),
            "  ".join(f"{escape_char(p.char)} {p.prob:.2f}" for p in s.top_after))))
    return table


def check_model_flags(args: argparse.Namespace, tracer: GateTracer) -> None:
    """The flags that depend on the model, checked once it is loaded and before anything is traced."""
    if args.layer is not None and not 1 <= args.layer <= tracer.layers:
        raise TraceError(f"--layer {args.layer} does not exist: the model has layers 1 to {tracer.layers} "
                         f"(1 is nearest the input).")
    keys = [q.key for q in tracer.quantities]
    if args.quantity is not None and args.quantity not in keys:
        raise TraceError(f"--quantity must be one of {', '.join(keys)} for this {tracer.cell.upper()}, "
                         f"got {args.quantity!r}.")


def checkpoint_path(args: argparse.Namespace) -> Path:
    return resolve_checkpoint(args.checkpoint, "best.safetensors" if args.best else "last.safetensors")


def check_flags(args: argparse.Namespace) -> None:
    """The flags that need no model, checked before one is loaded."""
    if args.threads is not None:
        check_threads(args.threads, "--threads", zero="torch's default", advice="", error=TraceError)
    for flag, value, least in (("--rows", args.rows, 0), ("--top-k", args.top_k, 1), ("--units", args.units, 0),
                               ("--top", args.top, 1)):
        if value < least:
            raise TraceError(f"{flag} must be {least} or more, got {value}.")
    if args.rank and args.intervene:
        raise TraceError("--rank cannot be combined with --intervene: the ranking silences units of the model as "
                         "trained, not under an intervention. Run them separately.")
    if args.rank and args.layer is not None:
        raise TraceError("--layer does not apply to --rank: the ranking silences every unit of every layer, and "
                         "its comparison with --find / --regex searches them all. Drop --layer.")
    if not 0 <= args.low < args.high <= 1:  # also refuses NaN
        raise TraceError(f"--low and --high must be gate values with 0 <= --low < --high <= 1, got --low "
                         f"{args.low} and --high {args.high}.")
    if args.regex is not None:
        try:
            re.compile(args.regex)
        except re.error as exc:
            raise TraceError(f"--regex must be a regular expression: {args.regex!r} is not ({exc}).") from None
        except RecursionError:  # what re raises for brackets nested a few hundred deep
            compile_regex(args.regex, "--regex")  # raises the engine's TraceError for it


def cmd_gates(args: argparse.Namespace, console: Console) -> int:
    out = output_console()
    path = checkpoint_path(args)
    check_flags(args)
    if args.text is None and args.file is None:  # not required by the parser: a series run needs neither
        raise TraceError("Give the text to trace: --text TEXT or --file FILE.")
    tracer = GateTracer.from_checkpoint(path, loop_threads=tracing_threads(args))
    check_model_flags(args, tracer)
    text = read_text(args)
    source = "--text" if args.text is not None else f"--file {args.file}"
    if not text:
        raise TraceError(f"{source} is empty: give at least one character to trace.")
    tracer.encode(text, source)  # names characters the vocabulary lacks, before any tracing
    tracer.encode(args.prefix, "--prefix")
    if args.intervene and (args.find or args.regex):
        raise TraceError("--intervene cannot be combined with --find or --regex: run them separately.")
    interventions = [flag_intervention(spec, tracer, len(text)) for spec in args.intervene or ()]
    started = time.perf_counter()
    trace = tracer.trace(text, prefix=args.prefix)
    elapsed = time.perf_counter() - started
    console.print(f"[dim]{path}: {tracer.describe()}; traced {len(trace):,} characters in {elapsed:.2f} s[/]",
                  highlight=False)
    layer = trace.layer_index(None if args.layer is None else args.layer - 1)

    if interventions:
        changed = trace.intervened(interventions)
        comparison = compare_intervention(trace, changed, args.top_k)
        out.print(intervention_table(comparison, args.top))
        out.print(Text(comparison.summary()))
        if args.json:
            written = changed.write_json(args.json, None, args.top_k, extra={"intervention": comparison.to_dict()})
            console.print(f"[dim]wrote the intervened trace and the comparison to {written} "
                          f"({written.stat().st_size:,} bytes)[/]", highlight=False)
        return 0
    matches = search_units(out, args, trace, layer) if args.find or args.regex else None
    extra = None
    if args.rank:
        extra = {"ranking": rank_by_effect(out, console, args, tracer, text, matches)}
    elif matches is None:
        out.print(step_table(trace, layer, args.quantity or "h", args.rows, args.top_k, args.units))
        out.print(gate_means_table(trace, layer, args.rows))
        print_saturation(out, trace, args.low, args.high)

    if args.json:  # every layer, whichever is shown
        written = trace.write_json(args.json, None, args.top_k, extra=extra)
        print_written(console, written, "the full trace and the ranking" if extra else "the full trace")
    return 0


def search_units(out: Console, args: argparse.Namespace, trace: Trace, layer: int) -> list[UnitMatch]:
    """--find / --regex: the units whose state best tracks the feature (Pearson r), printed and returned."""
    key = args.quantity or ("c" if trace.cell == "lstm" else "h")
    quantity = trace.quantity(key)
    name = args.find or f"regex {args.regex}"
    try:
        feature = trace.feature(args.find, args.regex)
        matches = trace.find_units(args.find, args.regex, key=key, layer=None if args.layer is None else layer,
                                   top=args.top)
    except TraceError as exc:
        raise TraceError(f"{feature_flag(args)}: {exc}") from None
    out.print(Text(f"Feature {name}: {FEATURES.get(args.find, REGEX_FEATURE)}; mean {feature.mean():.3g} "
                   f"over {len(trace):,} steps.\nQuantity: {quantity.label}."))
    table = Table(title=Text(f"units that best track {name}"))
    for column in ("rank", "layer", "unit", "correlation"):
        table.add_column(column, justify="right")
    for rank, match in enumerate(matches, 1):
        table.add_row(str(rank), layer_number(match.layer, trace.layers), str(match.unit),
                      f"{match.correlation:+.3f}")
    out.print(table)
    return matches


def feature_flag(args: argparse.Namespace) -> str:
    return f"--find {args.find}" if args.find else f"--regex {args.regex!r}"


RANK_PROGRESS_S = 5.0  # a progress line at most this often: a long ranking shows it is alive, a short one is quiet


def tracing_threads(args: argparse.Namespace) -> int | None:
    """The tracer's loop threads: --threads (0: torch's setting, None), else 1 (its small steps gain nothing
    from more, and lose much on a busy machine)."""
    return 1 if args.threads is None else args.threads or None


def ranking_threads(args: argparse.Namespace, tracer: GateTracer) -> int:
    """The ranking's threads: --threads (0: torch's default), else the machine's free cores (its products of
    512 copies gain from every core: 2x512 ranked in 29 s on two threads against 56 s on one, benchmarks/README.md)."""
    if args.threads is None:
        return choose_threads(None, step_work(CHUNK, tracer.hidden))
    return args.threads or torch.get_num_threads()


def rank_by_effect(out: Console, console: Console, args: argparse.Namespace, tracer: GateTracer, text: str,
                   matches: list[UnitMatch] | None) -> dict:
    """--rank: silence every unit in turn (the Gates screen's ranking job, run here), print the units that
    matter most and, after --find / --regex, the screen's comparison with the correlation search; returns
    the ranking for --json."""
    job = RankingJob(0, tracer, text, args.prefix, threading.Event(), args.find, args.regex,
                     threads=ranking_threads(args, tracer))
    started = last = time.monotonic()

    def progress(fraction: float) -> None:
        nonlocal last
        if fraction < 1 and time.monotonic() - last >= RANK_PROGRESS_S:
            last = time.monotonic()
            console.print(f"[dim]ranking units by the effect of silencing them… {fraction:.0%}[/]", highlight=False)

    try:
        ranking = run_ranking(job, progress)
    except TraceError as exc:
        flag = "--rank" + (f" {feature_flag(args)}" if matches is not None else "")
        raise TraceError(f"{flag}: {exc}") from None
    assert ranking is not None  # only a cancelled job returns None, and nothing cancels this one
    console.print(f"[dim]ranked {tracer.layers * tracer.hidden:,} units over {len(text):,} characters in "
                  f"{time.monotonic() - started:.2f} s[/]", highlight=False)
    silenced = "h and c" if tracer.cell == "lstm" else "h"
    name = args.find or (f"regex {args.regex}" if args.regex is not None else "")
    summary = (f"Silencing a unit sets its {silenced} to 0 at every step. Loss over the text's {len(text) - 1:,} "
               f"predictions: {ranking.baseline:.4f} nats/char")
    if ranking.feature_loss is not None:
        summary += (f"; over the {ranking.marked:,} characters {name} marks: {ranking.feature_baseline:.4f} "
                    "nats/char")
    if ranking.precision == "fast":
        summary += ". The silenced copies took bf16 products, each measured against an unsilenced copy computed alike"
    out.print(Text(summary + "."))
    out.print(effect_table(ranking, "text", args.top, "over the text"))
    if ranking.feature_loss is not None:
        out.print(effect_table(ranking, "feature", args.top, f"over the characters {name} marks"))
    comparison = effect_vs_correlation(ranking, matches) if matches else None
    if comparison is not None:
        out.print(comparison_table(comparison, tracer.layers, name))
    return ranking_dict(ranking, args, silenced, comparison)


def effect_table(ranking: UnitRanking, by: str, top: int, what: str) -> Table:
    layers = ranking.loss.shape[0]
    effects = ranking.ranked(by=by, top=top)
    table = Table(title=Text(f"the {len(effects)} units whose silencing raises the loss {what} most"),
                  caption="Δloss: mean loss with the unit silenced minus without, nats per character")
    for column in ("rank", "layer", "unit", "Δloss text"):
        table.add_column(column, justify="right")
    if ranking.feature_loss is not None:
        table.add_column("Δloss feature", justify="right")
    for rank, effect in enumerate(effects, 1):
        table.add_row(str(rank), layer_number(effect.layer, layers), str(effect.unit), f"{effect.change:+.4f}",
                      *(() if effect.feature_change is None else (f"{effect.feature_change:+.4f}",)))
    return table


def comparison_table(comparison: EffectVsCorrelation, layers: int, name: str) -> Table:
    """The Gates screen's three groups: the correlation search's units against the top units by effect."""
    over = f"the characters {name} marks" if comparison.by == "feature" else "the text"
    found = len(comparison.both) + len(comparison.correlation_only)
    table = Table(title=Text(f"the {found} units that best track {name} against the top {found} by Δloss over "
                             f"{over} (a unit matters when silencing it raises the loss)"))
    for column in ("", "layer", "unit", "Δloss", "correlation"):
        table.add_column(column, justify="right" if column else "left")
    for label, rows in comparison.groups():
        if not rows:
            table.add_row(label, "-", "-", "-", "-")
        for n, row in enumerate(rows):
            table.add_row(label if n == 0 else "", layer_number(row.layer, layers), str(row.unit),
                          f"{row.change:+.4f}", "-" if row.correlation is None else f"{row.correlation:+.3f}")
    return table


def ranking_dict(ranking: UnitRanking, args: argparse.Namespace, silenced: str,
                 comparison: EffectVsCorrelation | None) -> dict:
    """--json's "ranking": every layer's and unit's loss change ([layer][unit], 0-based), the feature's too."""
    feature = None
    if ranking.feature_loss is not None:
        feature = {"name": args.find, "regex": args.regex, "marked": ranking.marked,
                   "baseline": ranking.feature_baseline, "change": ranking.feature_change.tolist()}
    return {"silenced": f"{silenced} set to 0 at every step, one unit at a time",
            "loss": "mean cross-entropy of the next character, nats per character",
            "predictions": len(ranking.text) - 1, "precision": ranking.precision, "baseline": ranking.baseline,
            "change": ranking.change.tolist(),
            "feature": feature, "comparison": None if comparison is None else comparison.to_dict()}


def flag_intervention(spec: str, tracer, length: int):
    """One --intervene value, parsed as the Gates screen parses it; a refusal names the flag."""
    try:
        return parse_intervention(spec, tracer.cell, tracer.layers, tracer.hidden, length)
    except TraceError as exc:
        raise TraceError(f"--intervene: {exc}") from None

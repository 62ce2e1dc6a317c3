"""`sample --beam W`: the most likely continuation of the prime, by beam search (core/beam.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console

from rnn_playground.core.beam import beam_search, check_beam
from rnn_playground.core.device import check_threads, choose_threads, device_for_flag, step_work, torch_threads
from rnn_playground.core.errors import SamplingError
from rnn_playground.core.loading import load_model
from rnn_playground.core.runs import resolve_checkpoint
from rnn_playground.core.sampling import SampleSettings, stop_rule
from rnn_playground.tui.viewmodel.format import fmt_rate

# Flags that shape a random draw: a beam search draws nothing, so it refuses them rather than
# ignoring them silently. (flag, argparse destination, the value that means "not given").
DRAW_FLAGS = (("--temperature", "temperature", SampleSettings.temperature), ("--top-k", "top_k", 0),
              ("--seed", "seed", None), ("--samples", "samples", 1), ("--top-p", "top_p", 1.0),
              ("--repetition-penalty", "repetition_penalty", 1.0))


def add_options(sample: argparse.ArgumentParser) -> None:
    sample.add_argument("--beam", type=int, default=None, metavar="W",
                        help="beam search with W beams: the most likely continuation of --length characters "
                             "instead of a random draw (deterministic: takes no --temperature, --top-k or "
                             "--seed)")
    sample.add_argument("--length-norm", type=float, default=0.0, metavar="ALPHA",
                        help="with --beam: rank beams by log-probability / length**ALPHA, which matters "
                             "only when beams stop at different lengths (0 = the raw sum)")


def refuse_draw_flags(args: argparse.Namespace) -> None:
    for flag, dest, unset in DRAW_FLAGS:
        value = getattr(args, dest, unset)
        if value != unset:
            raise SamplingError(f"--beam finds the most likely text and draws nothing at random, so {flag} "
                                f"does not apply: leave out {flag}, or --beam to sample.")


def wants_beam(args: argparse.Namespace) -> bool:
    """--beam, or a beam-only flag (which run_beam then refuses without --beam)."""
    return args.beam is not None or args.length_norm != 0


def run_beam(args: argparse.Namespace, console: Console) -> int:
    width, length, alpha = args.beam, args.length, args.length_norm
    if width is None:
        raise SamplingError("--length-norm ranks the beams of a beam search: give --beam W with it.")
    refuse_draw_flags(args)
    if args.weights == "int8":
        raise SamplingError("--beam runs the model's own fp32 weights: leave out --weights int8.")
    stop = stop_rule(SampleSettings(stop=args.stop, stop_regex=args.stop_regex, include_stop=args.include_stop,
                                    min_length=args.min_length))
    if args.min_length and stop is None:
        raise SamplingError("--min-length delays a --stop match: give --stop with it.")
    # Every flag before the checkpoint is read; the width against the vocabulary once it is known.
    check_beam(width, length or 1, vocab_size=max(width, 1), length_norm=alpha, has_stop=stop is not None)
    device = device_for_flag(args.device)
    if args.threads is not None:
        check_threads(args.threads)
    path = resolve_checkpoint(args.checkpoint, "best.safetensors" if args.best else "last.safetensors")
    model, vocab, _ = load_model(path, args.device)
    threads = choose_threads(args.threads, step_work(width, model.config.hidden), device.type)
    started = time.perf_counter()
    with torch_threads(threads):
        result = beam_search(model, vocab, args.prime, width, length, length_norm=alpha, stop=stop)
    elapsed = time.perf_counter() - started
    best = result.best
    if getattr(args, "json", False):
        print(json.dumps(beam_json(args, str(path), result), indent=1))
    else:
        sys.stdout.write(args.prime + best.text + "\n")
        sys.stdout.flush()
    count = len(best.generated)
    console.print(f"[dim]beam {width}: log-prob {best.logprob:.3f} nats ({best.bits_per_char():.3f} bits/char) "
                  f"over {count} characters, {result.runners_up} runner{'' if result.runners_up == 1 else 's'}-up; "
                  f"length-norm {alpha:g}; {elapsed:.2f} s ({fmt_rate(count / max(elapsed, 1e-9))} chars/s), "
                  f"{threads} thread{'s' if threads > 1 else ''}[/]", highlight=False)
    return 0


def beam_json(args: argparse.Namespace, checkpoint: str, result) -> dict:
    best = result.best
    return {
        "text": best.text,
        "generated": best.generated,
        "settings": {"checkpoint": checkpoint, "prime": args.prime, "beam": args.beam, "length": args.length,
                     "length_norm": args.length_norm, "stop": args.stop, "stop_regex": args.stop_regex,
                     "include_stop": args.include_stop, "min_length": args.min_length, "device": args.device},
        "logprob_nats": best.logprob,
        "bits_per_char": best.bits_per_char(),
        "char_logprobs": best.char_logprobs(),
        "beams": [{"text": beam.text, "logprob": beam.logprob, "score": beam.score, "finished": beam.finished}
                  for beam in result.beams],
    }

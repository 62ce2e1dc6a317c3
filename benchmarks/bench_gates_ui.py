"""Gates screen: key-press latency while a long text is traced in the background, against the
same screen idle.

A CharRNN LSTM 2x512 (embedding 64, fixed random weights: the cost of tracing does not depend on
what they are) is opened on the Gates screen (headless, `App.run_test`, 120x40) with the first
`--chars` characters of tinyshakespeare as typed text. Then `.` (next unit) is sent through the
app's driver every `--interval` seconds, as a terminal would send it, and a key's latency is the
time from sending it to the first frame that shows the new unit in the header:

- idle: the cursor at the start, nothing being traced;
- tracing: after `End`, while the screen's worker extends the trace to the end of the text,
  holding the trace's lock for about CHUNK_S at a time; once with the screen's default and once
  with chunks 25 times longer (about what a fixed 256 steps a chunk took here at this size).

The compare case (`--compare`, also run alone with `--compare-only`): the same model and text in the
compare view (`d`: A against the n-gram of tinyshakespeare's training part), `Right` sent every
`--interval` seconds, a key's latency running to the first frame whose step line shows the new
position: while the worker fits the n-gram and scores the text with both models, then once it is done.

The layers case (`--layers-view`, also alone with `--layers-only`): the same model and text, `Right` sent every
`--interval` seconds in the cell view, then in the all-layers view (`a`: every layer's strips over the text around
the cursor), a key's latency running to the first frame whose step line shows the new position.

The span match case (`--span-match`, also alone with `--span-match-only`): the engine's match (core.gates_analysis)
of a 5-character span on the top layer's c over the whole text, against tracing that text, which it needs first.

The intervention case (`--intervene`, also run alone with `--intervene-only`): the same model and the
first 2,000 characters, `Right` sent every `--interval` seconds, a key's latency running to the first
frame whose step line shows the new position: in the cell view with no intervention (the baseline),
then with 64 units of layer 1 silenced from position 10 on (`L1:U0-63:c=0@10`, added by `i` and Enter:
each step now also extends the intervened trace, and the screen draws it), in the cell view and in the
intervene view (`e`: the change of c and h, the next character before and after).

Headless, frames are not encoded to escape sequences; everything before that is the real path.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch

from benchmarks.bench_sample_ui import make_checkpoint
from benchmarks.bench_tui import FrameWatch, key_latency_ms, percentile, send_key
from benchmarks.common import SHARED_DATA, print_table, runs_dir


@asynccontextmanager
async def gates_app(run: Path, freeze_gc: bool = False) -> AsyncIterator[tuple]:
    """(app, pilot, screen): the app headless at 120x40 on the run's Gates screen, its first trace in.
    gc is unfrozen afterwards, so the next case starts as a fresh app would."""
    from rnn_playground.core.device import DeviceInfo
    from rnn_playground.tui.app.screens import gates
    from rnn_playground.tui.app.shell import PlaygroundApp
    app = PlaygroundApp(runs_dir=run.parent, devices=[DeviceInfo("cpu", "CPU", None, None)], mode="gates",
                        freeze_gc=freeze_gc)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run("gates", run)
        while not (isinstance(app.screen, gates.GatesScreen) and app.screen.gates.trace is not None):
            await asyncio.sleep(0.05)
        yield app, pilot, app.screen
    gc.unfreeze()


async def type_text(pilot, screen, text: str) -> None:
    """`text` as the screen's typed text: a fresh trace of it, nothing traced past the cursor."""
    generation = screen.gates.generation
    await pilot.press("o")
    screen.query_one("#gates-source-kind").value = "text"
    screen.query_one("#gates-source-value").value = text
    screen.set_focus(screen.query_one("#gates-source-value"))
    await pilot.press("enter")
    while screen.gates.generation == generation or screen.gates.text != text or screen.gates.is_loading:
        await asyncio.sleep(0.05)
    await pilot.pause()


async def press_right(app, watch: FrameWatch, screen) -> float:
    """Right's latency to the first frame whose step line shows the new position."""
    shown = f"step {screen.gates.pos + 1:,}/"
    return await key_latency_ms(app, watch, "right", lambda s: shown in str(s.query_one("#gates-step").content))


async def phase(run: Path, text: str, chunk_s: float, freeze_gc: bool, interval: float, presses: int
                ) -> tuple[list[float], list[float], float]:
    """(idle latencies ms, latencies while tracing ms, seconds to trace the whole text with no keys
    pressed meanwhile)."""
    from rnn_playground.tui.viewmodel import gates_session
    gates_session.CHUNK_S = chunk_s
    async with gates_app(run, freeze_gc) as (app, pilot, screen):
        async def trace_to_end() -> float:
            started = time.perf_counter()
            send_key(app, "end")
            while screen.gates.pos != len(text) - 1:
                await asyncio.sleep(0.005)
            return time.perf_counter() - started

        await type_text(pilot, screen, text)
        quiet_s = await trace_to_end()  # no keys meanwhile: what the chunking itself costs
        await type_text(pilot, screen, text)
        watch = FrameWatch(app)

        async def press_unit() -> float:
            shown = f"unit {(screen.gates.unit + 1) % screen.gates.tracer.hidden}["
            return await key_latency_ms(app, watch, "full_stop",
                                        lambda s: shown in s.query_one("#gates-header").content.plain)

        idle = []
        for _ in range(presses):
            idle.append(await press_unit())
            await asyncio.sleep(interval)
        send_key(app, "end")
        while not screen.gates.extending:
            await asyncio.sleep(0.001)
        tracing = []
        while screen.gates.extending:
            tracing.append(await press_unit())
            await asyncio.sleep(interval)
        while screen.gates.pos != len(text) - 1:
            await asyncio.sleep(0.005)
    return idle, tracing, quiet_s


def with_real_fingerprint(run: Path) -> None:
    """make_checkpoint stores a dummy corpus fingerprint; the n-gram baseline needs the real one (a corpus
    whose fingerprint differs counts as changed since training)."""
    from rnn_playground.core import runs
    from rnn_playground.core.checkpoint import load_checkpoint, save_checkpoint
    from rnn_playground.core.corpus import load_corpus
    checkpoint = load_checkpoint(run / runs.LAST)
    meta = checkpoint.meta
    meta["corpus"]["fingerprint"] = load_corpus(meta["corpus"]["spec"]).fingerprint
    save_checkpoint(run / runs.LAST, checkpoint.tensors, meta)


async def compare_phase(run: Path, text: str, interval: float, presses: int
                        ) -> tuple[list[float], list[float], float]:
    """(latencies ms while the comparison computes, latencies ms once it is shown, seconds it took)."""
    async with gates_app(run) as (app, pilot, screen):
        await type_text(pilot, screen, text)
        watch = FrameWatch(app)
        started = time.perf_counter()
        send_key(app, "d")
        while not screen.gates.comparing:
            await asyncio.sleep(0.001)
        computing = []
        while screen.gates.comparing:
            computing.append(await press_right(app, watch, screen))
            await asyncio.sleep(interval)
        seconds = time.perf_counter() - started
        assert screen.gates.comparison is not None, screen.gates.compare_note
        shown = []
        for _ in range(presses):
            shown.append(await press_right(app, watch, screen))
            await asyncio.sleep(interval)
    return computing, shown, seconds


def compare_rows(run: Path, text: str, args) -> list[list]:
    computing, shown, seconds = [], [], []
    for round_ in range(args.rounds):
        busy, done, took = asyncio.run(compare_phase(run, text, args.interval, args.presses))
        computing.extend(busy)
        shown.extend(done)
        seconds.append(took)
        print(f"round {round_ + 1}, compare view: {len(busy)} presses while computing ({took:.2f} s), median "
              f"{statistics.median(busy) if busy else float('nan'):.1f} ms; shown: median "
              f"{statistics.median(done):.1f} ms", flush=True)
    base = statistics.median(shown)
    return [[name, len(values), statistics.median(values), percentile(values, 0.95), max(values),
             f"{statistics.median(seconds):.2f}", f"{statistics.median(values) / base:.2f}"]
            for name, values in (("compare view, comparison shown", shown),
                                 ("compare view, while computing", computing)) if values]


async def layers_phase(run: Path, text: str, interval: float, presses: int) -> tuple[list[float], list[float]]:
    """(latencies ms of Right in the cell view, in the all-layers view)."""
    from rnn_playground.tui.app.widgets.layerstrips import LayerStrips
    async with gates_app(run) as (app, pilot, screen):
        await type_text(pilot, screen, text)
        watch = FrameWatch(app)
        latencies: dict[str, list[float]] = {"cell": [], "layers": []}
        for view in ("cell", "layers"):
            if view == "layers":
                send_key(app, "a")
                strips = screen.query_one(LayerStrips)
                while strips.view is None or len(strips.view.chars) < 2:
                    await asyncio.sleep(0.01)
            for _ in range(presses):
                latencies[view].append(await press_right(app, watch, screen))
                await asyncio.sleep(interval)
        assert screen.query_one(LayerStrips).view.start + screen.query_one(LayerStrips).view.cursor == screen.gates.pos
    return latencies["cell"], latencies["layers"]


def layers_rows(run: Path, text: str, args) -> list[list]:
    cell, layers = [], []
    for round_ in range(args.rounds):
        plain, stacked = asyncio.run(layers_phase(run, text, args.interval, args.presses))
        cell.extend(plain)
        layers.extend(stacked)
        print(f"round {round_ + 1}: cell view median {statistics.median(plain):.1f} ms, all-layers view median "
              f"{statistics.median(stacked):.1f} ms", flush=True)
    base = statistics.median(cell)
    return [[name, len(values), statistics.median(values), percentile(values, 0.95), max(values),
             f"{statistics.median(values) / base:.2f}"]
            for name, values in (("cell view", cell), ("all-layers view", layers))]


def span_match_rows(run: Path, text: str, args) -> list[list]:
    from rnn_playground.core.gates import GateTracer
    from rnn_playground.core.gates_analysis import match_spans
    traced, matched = [], []
    for round_ in range(args.rounds):
        tracer = GateTracer.from_checkpoint(run)
        started = time.perf_counter()
        trace = tracer.trace(text)
        traced.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = match_spans(trace, 100, 105, key="c", layer=-1, percentile=90.0, top=20)
        matched.append(time.perf_counter() - started)
        print(f"round {round_ + 1}: traced in {traced[-1]:.2f} s, matched in {matched[-1]:.3f} s "
              f"({len(result.units)} units on, {len(result.matches)} matches)", flush=True)
    base = statistics.median(traced)
    return [[name, f"{statistics.median(values):.3f}", f"{statistics.median(values) / base:.3f}"]
            for name, values in (("trace the text", traced), ("span match, top layer's c", matched))]


def intervention(hidden: int) -> str:
    """64 units of layer 1 silenced from position 10 (all of them on a model with fewer)."""
    return f"L1:U0-{min(64, hidden) - 1}:c=0@10"


async def intervene_phase(run: Path, text: str, interval: float, presses: int) -> dict[str, list[float]]:
    """Latencies ms of Right by case: no intervention, one active in the cell view, and in the intervene view."""
    cases: dict[str, list[float]] = {}
    # gc frozen once the screens are built, as rnn-playground runs the app
    async with gates_app(run, freeze_gc=True) as (app, pilot, screen):
        await type_text(pilot, screen, text)
        await pilot.press(*["right"] * 12)
        watch = FrameWatch(app)

        async def measure(name: str) -> None:
            values = cases.setdefault(name, [])
            for _ in range(presses):
                values.append(await press_right(app, watch, screen))
                await asyncio.sleep(interval)

        await measure("cell view, no intervention")
        spec = intervention(screen.gates.tracer.hidden)
        await pilot.press("i")
        screen.query_one("#gates-intervene-spec").value = spec
        await pilot.press("enter")
        while screen.gates.changed is None:
            if screen.gates.intervene_note and not screen.gates.interventions:  # refused: say why, do not hang
                raise SystemExit(f"bench_gates_ui: the intervention {spec} was refused: {screen.gates.intervene_note}")
            await asyncio.sleep(0.01)
        await pilot.press("c")
        await measure(f"cell view, {spec} active")
        await pilot.press("e")
        await measure(f"intervene view, {spec} active")
    return cases


def intervene_rows(run: Path, text: str, args) -> list[list]:
    results: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        cases = asyncio.run(intervene_phase(run, text[:2000], args.interval, args.presses))
        for name, values in cases.items():
            results.setdefault(name, []).extend(values)
        print(f"round {round_ + 1}: " + "; ".join(f"{name} median {statistics.median(v):.1f} ms"
                                                  for name, v in cases.items()), flush=True)
    base = statistics.median(next(iter(results.values())))
    return [[name, len(values), statistics.median(values), percentile(values, 0.95), max(values),
             f"{statistics.median(values) / base:.2f}"] for name, values in results.items()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=8000, help="characters of text to trace")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between key presses")
    parser.add_argument("--presses", type=int, default=20, help="key presses on the idle screen")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunks-ms", default=None,
                        help="comma-separated chunk lengths to compare (default: the screen's and 25 times it)")
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True,
                        help="also the compare view's case (Right pressed while A and the n-gram score the text)")
    parser.add_argument("--compare-only", action="store_true", help="only the compare view's case")
    parser.add_argument("--layers-view", action=argparse.BooleanOptionalAction, default=True,
                        help="also the all-layers view's case (Right pressed in the cell view, then in it)")
    parser.add_argument("--layers-only", action="store_true", help="only the all-layers view's case")
    parser.add_argument("--span-match", action=argparse.BooleanOptionalAction, default=True,
                        help="also the span match's case (the engine's match against tracing the text)")
    parser.add_argument("--span-match-only", action="store_true", help="only the span match's case")
    parser.add_argument("--intervene", action=argparse.BooleanOptionalAction, default=True,
                        help="also the intervention case (Right pressed with an intervention active)")
    parser.add_argument("--intervene-only", action="store_true", help="only the intervention case")
    args = parser.parse_args(argv)
    import textual

    from rnn_playground.tui.viewmodel.gates_session import CHUNK_S
    chunks = [float(ms) / 1000 for ms in args.chunks_ms.split(",")] if args.chunks_ms else [CHUNK_S, CHUNK_S * 25]
    source = SHARED_DATA / "tinyshakespeare.txt"
    text = source.read_text(encoding="utf-8")[:args.chars] if source.exists() else \
        ("The quick brown fox jumps over the lazy dog.\n" * (args.chars // 45 + 1))[:args.chars]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, textual {textual.__version__}; "
          f"LSTM {args.layers}x{args.hidden}, {len(text):,} characters, {args.rounds} rounds", flush=True)
    run = make_checkpoint(Path(runs_dir()), args.hidden, args.layers)
    # an --X-only flag runs that case alone (several such flags: those cases); else each case its flag allows
    only = {case for case, flag in (("span_match", args.span_match_only), ("layers", args.layers_only),
                                    ("intervene", args.intervene_only), ("compare", args.compare_only)) if flag}
    wanted = {"span_match": args.span_match, "layers": args.layers_view, "intervene": args.intervene,
              "compare": args.compare}

    def runs(case: str) -> bool:
        return case in only if only else wanted[case]

    if runs("span_match"):
        print_table("Span match over the whole text, s", ["case", "median s", "median / trace median"],
                    span_match_rows(run, text, args))
    if runs("layers"):
        print_table("Gates screen, all-layers view: key (Right) -> frame showing the step, ms",
                    ["view", "presses", "median", "p95", "max", "median / cell view median"],
                    layers_rows(run, text, args))
    if runs("intervene"):
        print_table("Gates screen, an intervention active: key (Right) -> frame showing the step, ms",
                    ["case", "presses", "median", "p95", "max", "median / no intervention"],
                    intervene_rows(run, text, args))
    if runs("compare"):
        with_real_fingerprint(run)
        rows = compare_rows(run, text, args)
        print_table("Gates screen, compare view: key (Right) -> frame showing the step, ms",
                    ["case", "presses", "median", "p95", "max", "comparison s", "median / shown median"], rows)
    if only:
        return
    settings = [(chunk_s, True, f"chunks of {chunk_s * 1000:.0f} ms" + (" (default)" if chunk_s == CHUNK_S else ""))
                for chunk_s in chunks]
    settings.append((CHUNK_S, False, f"chunks of {CHUNK_S * 1000:.0f} ms, gc not frozen"))
    results: dict[str, tuple[list[float], list[float], list[float]]] = {name: ([], [], []) for *_, name in settings}
    for round_ in range(args.rounds):
        for chunk_s, freeze_gc, name in settings:
            quiet, busy, seconds = asyncio.run(phase(run, text, chunk_s, freeze_gc, args.interval, args.presses))
            idle, tracing, traced = results[name]
            idle.extend(quiet)
            tracing.extend(busy)
            traced.append(seconds)
            print(f"round {round_ + 1}, {name}: idle median {statistics.median(quiet):.1f} ms; while tracing "
                  f"{len(busy)} presses, median {statistics.median(busy):.1f} ms, max {max(busy):.1f} ms; "
                  f"the whole text traced in {seconds:.2f} s with no keys pressed", flush=True)
    base = statistics.median(results[settings[0][2]][0])
    rows = []
    for *_, name in settings:
        idle, tracing, traced = results[name]
        rows.append([name, statistics.median(idle), percentile(idle, 0.95), len(tracing), statistics.median(tracing),
                     percentile(tracing, 0.95), max(tracing), f"{statistics.median(traced):.2f}",
                     f"{statistics.median(tracing) / base:.2f}"])
    print_table("Gates screen: key (next unit) -> frame showing it, ms",
                ["setting", "idle median", "idle p95", "tracing: presses", "median", "p95", "max",
                 "trace s (no keys)", "tracing median / default idle"], rows)

if __name__ == "__main__":
    main()

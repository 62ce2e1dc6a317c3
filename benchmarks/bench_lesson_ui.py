"""Lesson screen: key -> frame latency of every page's keys on a 2x512 LSTM, against the Gates screen's `.`.

A CharRNN LSTM 2x512 (embedding 64, fixed random weights) is saved as a run and opened in the app (headless,
`App.run_test`, 120x40). On the Lesson screen each page present is shown in turn and each of its keys (all
but typing) is sent through the app's driver every `--interval` seconds, as a terminal would send it; a key's
latency is the time from sending it to the first frame drawn after the screen handled it. The baseline,
measured in the same run, is the Gates screen's `.` (next unit) on the same model, a key that redraws one
screen the same way. For the Complete page, also the time from `r` to the frame showing the new completions
(4 x 60 characters drawn in one batched pass in a worker). Target: p95 under 100 ms for every page.

Headless, frames are not encoded to escape sequences; everything before that is the real path.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from benchmarks.bench_sample_ui import make_checkpoint
from benchmarks.bench_tui import FrameWatch, key_latency_ms, percentile, send_key
from benchmarks.common import print_table, runs_dir


async def wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.02)


async def measure(run: Path, presses: int, interval: float,
                  only: set[str] | None = None) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """(Gates `.` latencies ms, {page: key latencies ms}, Complete `r` -> completions shown ms)."""
    from rnn_playground.core.device import DeviceInfo
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.screens.lesson import LessonScreen
    from rnn_playground.tui.app.shell import PlaygroundApp
    app = PlaygroundApp(runs_dir=run.parent, devices=[DeviceInfo("cpu", "CPU", None, None)], mode="gates")
    async with app.run_test(size=(120, 40)):
        watch = FrameWatch(app)

        async def key_to_frame(key: str, handled) -> float:
            return await key_latency_ms(app, watch, key, handled)

        app.open_run("gates", run)
        await wait_until(lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace is not None)
        gates = app.screen
        baseline = []
        for _ in range(presses):
            unit = gates.gates.unit
            baseline.append(await key_to_frame("full_stop",
                                               lambda s, unit=unit: s is gates and gates.gates.unit != unit))
            await asyncio.sleep(interval)

        await app.switch_mode("lesson")
        await wait_until(lambda: isinstance(app.screen, LessonScreen) and app.screen.source is not None)
        screen = app.screen

        def idle() -> bool:
            return not screen._jobs and screen._last_view is not None and not screen._last_view.busy

        pages: dict[str, list[float]] = {}
        completions: list[float] = []
        for _ in range(len(screen.pages)):
            page = screen.page
            await wait_until(idle)
            if only and page.name not in only:
                send_key(app, "right_square_bracket")
                await asyncio.sleep(interval)
                continue
            times = pages.setdefault(page.name, [])
            keys = [key for key in page.keys if key.action != "type"]
            for n in range(presses):
                key = keys[n % len(keys)].key if keys else "left_square_bracket"
                before = screen.renders
                times.append(await key_to_frame(key, lambda s, before=before: s is screen and screen.renders > before))
                await wait_until(idle)
                await asyncio.sleep(interval)
                if not keys:  # the page switch went away: come back
                    send_key(app, "right_square_bracket")
                    await asyncio.sleep(interval)
            if page.name == "complete":
                for _ in range(max(3, presses // 4)):
                    generation = page.generation + 1
                    future = watch.expect(lambda s, g=generation, page=page: (
                        s is screen and page.completions is not None and page.completions.generation == g
                        and screen._last_view is not None and not screen._last_view.busy))
                    sent = time.perf_counter()
                    send_key(app, "r")
                    completions.append((await asyncio.wait_for(future, 60.0) - sent) * 1000)
                    await asyncio.sleep(interval)
            send_key(app, "right_square_bracket")
            await asyncio.sleep(interval)
    return baseline, pages, completions


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--presses", type=int, default=20, help="key presses per page")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between key presses")
    parser.add_argument("--pages", default="", help="only these pages, comma-separated (default: every page)")
    args = parser.parse_args(argv)
    run = make_checkpoint(Path(runs_dir()), hidden=args.hidden, layers=args.layers)
    baseline, pages, completions = asyncio.run(measure(run, args.presses, args.interval,
                                                           set(filter(None, args.pages.split(","))) or None))
    base = statistics.median(baseline)
    rows = [["Gates screen `.` (baseline)", len(baseline), base, percentile(baseline, 0.95), max(baseline), "1.00"]]
    for name, values in pages.items():
        rows.append([f"Lesson {name}: its keys", len(values), statistics.median(values), percentile(values, 0.95),
                     max(values), f"{statistics.median(values) / base:.2f}"])
    if completions:
        rows.append(["Lesson complete: r -> completions shown", len(completions), statistics.median(completions),
                     percentile(completions, 0.95), max(completions), f"{statistics.median(completions) / base:.2f}"])
    print_table(f"Lesson screen, key -> frame, LSTM {args.layers}x{args.hidden}, 120x40 (ms)",
                ["case", "presses", "median", "p95", "max", "median / baseline"], rows)
    worst = max(percentile(values, 0.95) for values in pages.values())
    print(f"\nworst page p95: {worst:.1f} ms (target < 100 ms): {'met' if worst < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()

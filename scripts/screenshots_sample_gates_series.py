"""Save the README's screenshots of the Sample, Gates and Series screens, as the app draws them (SVG).

    python scripts/screenshots_sample_gates_series.py checkpoints/bard [--out docs/screenshots]

RUN is a character-model run folder (the README's were made with an LSTM 2x256 trained for five
minutes on tinyshakespeare on the CPU). The app runs headless at 120x36; the keys pressed are
the ones a user would press. The Series screenshot trains a small model on the built-in sine first
(a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

SIZE = (120, 36)


async def wait(pilot, predicate, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise SystemExit("timed out waiting for the screen")
        await pilot.pause(0.05)
    await pilot.pause(0.2)


async def sample(run: Path, out: Path) -> None:
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.shell import PlaygroundApp
    app = PlaygroundApp(runs_dir=run.parent, mode="sample")
    async with app.run_test(size=SIZE) as pilot:
        app.open_run("sample", run)
        await wait(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint is not None)
        screen = app.screen
        screen.seed, screen.seed_fixed = 7, True
        await pilot.press("p", *"ROMEO:", "escape", "T", "k", "k", "k", "k", "k", "k")  # 0.7, top-k 20
        await pilot.press("g")
        await wait(pilot, lambda: not screen.streaming and screen.generated)
        app.save_screenshot("sample.svg", str(out))


async def gates(run: Path, out: Path) -> None:
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.shell import PlaygroundApp
    app = PlaygroundApp(runs_dir=run.parent, mode="gates")
    async with app.run_test(size=SIZE) as pilot:
        app.open_run("gates", run)
        await wait(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.trace is not None)
        screen = app.screen
        await pilot.press("f")                      # unit search: line-position, the best unit
        screen.query_one("#gates-feature").value = "line-position"
        await wait(pilot, lambda: screen.matches and "line-position" in screen.analysis_note)
        screen.select_match(screen.matches[0])
        await pilot.press("escape", "c", *["right"] * 45)
        await wait(pilot, lambda: screen.pending is None)
        app.save_screenshot("gates.svg", str(out))


async def series(out: Path) -> None:
    from rnn_playground.tui.app.shell import PlaygroundApp
    app = PlaygroundApp(runs_dir=Path(tempfile.mkdtemp()), mode="series")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.run_name = "sine-demo"
        screen.query_one("#series-steps").value = "600"
        await pilot.press("s")
        await wait(pilot, lambda: not screen.running and screen.predictions is not None)
        app.save_screenshot("series.svg", str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a character-model run folder")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.run.resolve()
    asyncio.run(sample(run, args.out))
    asyncio.run(gates(run, args.out))
    asyncio.run(series(args.out))
    for name in ("sample", "gates", "series"):
        print(args.out / f"{name}.svg")


if __name__ == "__main__":
    main()

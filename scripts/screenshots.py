"""Screenshots of the Train and Runs screens for the README, saved by the app itself (SVG).

    .venv/bin/python scripts/screenshots.py            # about two minutes on a 2-core CPU
    .venv/bin/python scripts/screenshots.py --keys     # print the README's key table

It trains a real model in the app (headless, as the tests drive it) while a second run trains
"headless" in a thread, the way `rnn-playground train` in another terminal would, then saves
docs/screenshots/train.svg during training and docs/screenshots/runs.svg with both runs listed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
OUT = ROOT / "docs" / "screenshots"


SCOPES = ("Everywhere", "Train", "Runs", "Compare", "Dialogs", "Help")  # Sample, Gates, Series: their own table


def key_table_markdown() -> str:
    from rnn_playground.tui.app.keys import key_display, key_table
    from rnn_playground.tui.app.shell import PlaygroundApp
    lines = ["| Where | Key | What it does |", "|---|---|---|"]
    for scope, keys, description in key_table(PlaygroundApp):
        if scope in SCOPES:
            lines.append(f"| {scope} | `{key_display(keys)}` | {description} |")
    return "\n".join(lines)


async def take(size: tuple[int, int], seconds: float) -> None:
    import torch

    from rnn_playground.core.config import TrainConfig
    from rnn_playground.core.trainer import TrainControl, Trainer
    from rnn_playground.tui.app.shell import PlaygroundApp
    torch.set_num_threads(1)  # two runs and the UI share two cores here
    import os

    from rnn_playground.tui.app.screens.runs import RunsScreen
    os.chdir(tempfile.mkdtemp(prefix="rnn-playground-shots-"))  # the runs folder shows as "checkpoints"
    runs = Path("checkpoints")
    corpus = str(SHAKESPEARE) if SHAKESPEARE.exists() else "builtin:python-stdlib"
    # The "other terminal": a GRU training headless, written to the same runs folder.
    control = TrainControl()
    other = Trainer(TrainConfig(corpus=corpus, cell="gru", hidden=128, layers=2, batch=32, seq=64, val_every=50,
                                steps=100_000, run_name="gru-from-ssh", runs_dir=str(runs), device="cpu"), control)
    thread = threading.Thread(target=lambda: [None for _ in other.run()], daemon=True)
    thread.start()

    config = TrainConfig(corpus=corpus, hidden=256, layers=2, batch=32, seq=64, val_every=40,
                         minutes=2 * seconds / 60, sample_chars=160)
    app = PlaygroundApp(runs_dir=runs, initial_config=config, watch_interval=0.5, list_interval=2.0)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        await pilot.press("s")
        started = time.monotonic()
        while time.monotonic() - started < seconds or app.train_controller.snapshot.sample is None:
            await asyncio.sleep(0.5)
        await pilot.pause(0.3)
        OUT.mkdir(parents=True, exist_ok=True)
        app.save_screenshot("train.svg", str(OUT))
        print(f"saved {OUT / 'train.svg'} at step {app.train_controller.snapshot.step}", flush=True)
        await pilot.press("x")
        while app.train_controller.active:
            await asyncio.sleep(0.2)
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        while len(screen.infos) < 2:
            await asyncio.sleep(0.2)
        names = [info.name for info in screen.infos]
        await pilot.press(*["down"] * names.index("gru-from-ssh"))  # the live one: its curves update
        await asyncio.sleep(3.0)
        app.save_screenshot("runs.svg", str(OUT))
        print(f"saved {OUT / 'runs.svg'}", flush=True)
        await pilot.press("q")
    control.stop()
    thread.join(120)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", action="store_true", help="print the key table (Markdown) and exit")
    parser.add_argument("--seconds", type=float, default=75.0, help="training time before the Train screenshot")
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=36)
    args = parser.parse_args(argv)
    if args.keys:
        print(key_table_markdown())
        return 0
    asyncio.run(take((args.width, args.height), args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

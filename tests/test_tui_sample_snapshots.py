"""Snapshot tests (pytest-textual-snapshot) of the Sample screen at 80x24 and 120x40.

Deterministic: the checkpoint is a fixed-seed model written as a file (no training), the seed is
fixed, the stream's clock is a counter, animations are off. Update with
`pytest tests/test_tui_sample_snapshots.py --snapshot-update` and look at the SVGs first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .tui_helpers import plain_app, wait, write_char_checkpoint

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("deterministic")]


class CountingClock:
    """Advances 0.4 ms each time it is read: the stream's timing, and so its chars/s, are fixed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.0004
        return self.now


async def open_sample(pilot, run: Path):
    """Open `run` on the Sample screen of the app under test; the screen once its checkpoint is loaded."""
    from rnn_playground.tui.app.screens.sample import SampleScreen
    app = pilot.app
    app.open_run("sample", run)
    await wait(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint is not None)
    return app.screen


# Keys pressed before g (generate), and when the result is complete: one draw, four samples, beam search.
SCREENS = {
    "one": (1234, ("p", *"def", "escape", "T", "T", "k", "k", "k", "k", "k", "L"),
            lambda stream: stream.generated),
    "four": (1234, ("p", *"def", "escape", "n", "n", "u", "u", "e", "L", "L", "L"),
             lambda stream: stream.results),
    "beam": (None, ("p", *"def", "escape", "b", "L", "L", "L"),
             lambda stream: stream.beam_step),
}


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("case", SCREENS)
def test_sample_screen(snap_compare, case, size, monkeypatch):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    monkeypatch.setattr(SampleScreen, "clock", CountingClock())
    run = write_char_checkpoint(Path("runs") / "brisk-otter")
    seed, keys, complete = SCREENS[case]

    async def run_before(pilot):
        screen = await open_sample(pilot, run)
        if seed is not None:
            screen.stream.seed, screen.stream.seed_fixed = seed, True
        await pilot.press(*keys)
        await pilot.press("g")
        await wait(pilot, lambda: not screen.stream.streaming and complete(screen.stream))

    assert snap_compare(plain_app(), terminal_size=size, run_before=run_before)


def test_sample_screen_complete_as_you_type(snap_compare, monkeypatch):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    monkeypatch.setattr(SampleScreen, "clock", CountingClock())
    run = write_char_checkpoint(Path("runs") / "brisk-otter")

    async def run_before(pilot):
        screen = await open_sample(pilot, run)
        await pilot.press("a", *"The quick")
        # The continuation of the whole prime, not of a prefix typed before a pause in typing.
        await wait(pilot, lambda: screen.ghost.text and screen.ghost.prime == "The quick"
                   and screen._ghost_timer is None)
        pilot.app.clear_notifications()  # the toast from `a` fades on a timer: not part of the screen under test
        await pilot.pause()

    assert snap_compare(plain_app(), terminal_size=(80, 24), run_before=run_before)

"""Snapshot tests (pytest-textual-snapshot) of the Gates screen at 80x24 and 120x40: a fixed-seed
model written as a file, the run's corpus slice, a fixed number of steps. Update with
`pytest tests/test_tui_gates_snapshots.py --snapshot-update` and look at the SVGs first."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tui_helpers import plain_app, wait, write_char_checkpoint

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("deterministic")]


async def open_gates(pilot, run: Path):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    app = pilot.app
    app.open_run("gates", run)
    await wait(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace is not None)
    return app.screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_gates_screen(snap_compare, size):
    run = write_char_checkpoint(Path("runs") / "brisk-otter")

    async def run_before(pilot):
        screen = await open_gates(pilot, run)
        await pilot.press(*["right"] * 30, "full_stop", "full_stop")
        await wait(pilot, lambda: screen.gates.pos == 30 and screen.gates.pending is None)

    assert snap_compare(plain_app(), terminal_size=size, run_before=run_before)


def test_gates_screen_unit_search(snap_compare):
    run = write_char_checkpoint(Path("runs") / "brisk-otter")

    async def run_before(pilot):
        screen = await open_gates(pilot, run)
        await pilot.press(*["right"] * 12, "f")
        await wait(pilot, lambda: screen.gates.matches)
        await pilot.press("escape")

    assert snap_compare(plain_app(), terminal_size=(120, 40), run_before=run_before)


def test_gates_screen_saturation_gru(snap_compare):
    run = write_char_checkpoint(Path("runs") / "calm-heron", cell="gru", hidden=96, layers=1)

    async def run_before(pilot):
        screen = await open_gates(pilot, run)
        await pilot.press("right", "s")
        await wait(pilot, lambda: screen.gates.saturation is not None)

    assert snap_compare(plain_app(), terminal_size=(80, 24), run_before=run_before)


COMPARED = ('The lazy dog jumps over the quick brown fox. "Quoted (words)" follow.\n'
            "def g(y):\n    return [y, (y + 1), {'k': y}]\n")


def test_gates_screen_compare(snap_compare):
    """The compare view at 80x24: A against the n-gram of its training text, the cursor in the text."""
    run = write_char_checkpoint(Path("runs") / "brisk-otter", fingerprint="real")
    write_char_checkpoint(Path("runs") / "calm-heron", cell="gru", hidden=32, seed=5, fingerprint="real")

    async def run_before(pilot):
        screen = await open_gates(pilot, run)
        await pilot.press("o")
        screen.query_one("#gates-source-kind").value = "text"
        screen.query_one("#gates-source-value").value = COMPARED
        screen.set_focus(screen.query_one("#gates-source-value"))
        await pilot.press("enter")
        await wait(pilot, lambda: screen.gates.text == COMPARED and screen.gates.trace is not None)
        await pilot.press(*["right"] * 30, "d")
        await wait(pilot, lambda: screen.gates.comparison is not None and len(screen.gates.compare_choices) == 2)

    assert snap_compare(plain_app(), terminal_size=(80, 24), run_before=run_before)

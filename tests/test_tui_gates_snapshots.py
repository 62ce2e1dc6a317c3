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

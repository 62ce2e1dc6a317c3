"""Snapshot tests (pytest-textual-snapshot) of the Train and Runs screens at 80x24 and 120x40.

Deterministic: the runs are fixed files (fixed contents, sizes and modification times), the
clock and the device list are injected, timers are off, and the live view is fed a fixed
sequence of the trainer's events. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .tui_helpers import HELD_LOCKS, feed_live_run, pinned_app, settle_train, write_run

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("deterministic")]


@pytest.fixture
def runs_folder(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_run(root, "brisk-otter", steps=3000, age=26 * 3600)
    write_run(root, "calm-heron", cell="gru", hidden=256, steps=1200, state="stopped", age=3 * 3600)
    write_run(root, "eager-lynx", layers=3, steps=800, device="cuda:0", live=True, age=20.0, total=20000)
    yield root
    while HELD_LOCKS:
        HELD_LOCKS.pop().release()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_train_screen_live(snap_compare, size, tmp_path):
    async def run_before(pilot):
        await settle_train(pilot)
        feed_live_run(pilot.app)
        await pilot.pause()

    assert snap_compare(pinned_app(), terminal_size=size, run_before=run_before)


def test_train_screen_idle(snap_compare, tmp_path):
    assert snap_compare(pinned_app(), terminal_size=(80, 24), run_before=settle_train)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_runs_screen(snap_compare, size, runs_folder):
    async def run_before(pilot):
        screen = pilot.app.screen
        while not (screen.infos and screen.details is not None and screen.watch_snapshot is not None):
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(pinned_app(mode="runs"), terminal_size=size, run_before=run_before)

"""Snapshot tests (pytest-textual-snapshot) of the Series screen at 80x24 and 120x40, after training
a small model on the built-in sine (CPU, fixed seeds, one thread, fixed run name, a loss point
every 5 steps rather than four a second). Update with
`pytest tests/test_tui_series_snapshots.py --snapshot-update` and look at the SVGs first."""

from __future__ import annotations

import pytest

from .tui_helpers import plain_app, wait

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("deterministic")]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_series_screen(snap_compare, size):
    from rnn_playground.tui.app.screens.series import SeriesScreen

    async def run_before(pilot):
        screen = pilot.app.screen
        assert isinstance(screen, SeriesScreen)
        screen.run_name = "sine-demo"
        screen.log_every = 5  # loss points by step count, not by wall time
        screen.query_one("#series-hidden").value = "16"
        screen.query_one("#series-steps").value = "200"
        await pilot.press("s")
        await wait(pilot, lambda: not screen.running and screen.predictions is not None)

    assert snap_compare(plain_app(mode="series"), terminal_size=size, run_before=run_before)

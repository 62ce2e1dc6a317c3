"""Snapshot tests of the Lesson screen: every page present, at 80x24 and 120x40, on a fixed-seed model written
as a file (the run open in the app); the Memory page with a tiny experiment's cached result. Update with
`pytest tests/test_tui_lesson_snapshots.py --snapshot-update` and look at the SVGs first."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnn_playground.core.memory_task import MemorySettings, cached_result, run_memory_experiment, store_result
from rnn_playground.tui.viewmodel.lesson import PAGE_NAMES, page_class

from .tui_helpers import plain_app, wait, write_char_checkpoint

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("deterministic")]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pytest.mark.parametrize("name", PAGE_NAMES)
def test_lesson_page(snap_compare, name, size):
    if page_class(name) is None:
        pytest.skip(f"the {name} page is not in this tree")
    run = write_char_checkpoint(Path("runs") / "brisk-otter")
    tiny = MemorySettings(delays=(1, 4, 8), hidden=8, steps=30, batch=16)  # a few seconds, no time cap
    if name == "memory":
        store_result(run_memory_experiment(tiny))

    async def run_before(pilot):
        from rnn_playground.tui.app.screens.lesson import LessonScreen
        app = pilot.app
        app.selected_run = run
        await app.switch_mode("lesson")
        await wait(pilot, lambda: isinstance(app.screen, LessonScreen) and app.screen.source is not None)
        screen = app.screen
        while screen.page.name != name:
            await pilot.press("right_square_bracket")
        if name == "memory":
            screen.page.settings, screen.page.result = tiny, cached_result(tiny)
        if name == "batching":  # the fixed run's B=128 x T=100 needs more text than its 5,000 characters
            await pilot.press(*"bbbb")  # as a learner would: down to B=8, which fits
        if name == "train_eval":  # the fixed run has dropout 0: the page's d shows what dropout changes
            await pilot.press("d", "s")  # and s draws the samples again with it
        # the page's own work (completions, an experiment) done, and drawn
        await wait(pilot, lambda: not screen._jobs and screen._last_view is not None and not screen._last_view.busy)
        screen.render_all()
        await pilot.pause()

    assert snap_compare(plain_app(), terminal_size=size, run_before=run_before)

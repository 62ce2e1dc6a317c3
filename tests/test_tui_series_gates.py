"""The Gates screen of a time-series run: opened from the Runs screen with g, the signal with a cursor, the
gates and states of each unit, the prediction against the target; the numbers shown equal the tracer's."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tui_helpers import cuts, pinned_app, screen_text, series_run, wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("deterministic")]


async def open_series_gates(pilot, name: str):
    from rnn_playground.tui.app.screens.series_gates import SeriesGatesScreen
    app = pilot.app
    screen = app.screen
    await wait_for(pilot, lambda: any(info.name == name for info in screen.infos), what="the runs")
    row = next(n for n, info in enumerate(screen.infos) if info.name == name)
    screen.query_one("#runs-table").move_cursor(row=row)
    await wait_for(pilot, lambda: screen.details is not None and screen.details.info.name == name,
                   what=f"details of {name}")
    await pilot.press("g")
    return await wait_for(pilot, lambda: isinstance(app.screen, SeriesGatesScreen) and app.screen.gates.trace
                          is not None and app.screen, what="the traced series")


async def test_g_on_a_series_run_opens_its_gates_and_shows_the_tracer_values():
    from rnn_playground.core.series_gates import SeriesTracer
    from rnn_playground.tui.app.screens.runs import RunsScreen
    run = series_run(Path("runs"), "mellow-newt")
    app = pinned_app(mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_series_gates(pilot, "mellow-newt")
        await pilot.press(*["right"] * 7, "full_stop", "full_stop")
        await wait_for(pilot, lambda: screen.gates.pos == 7 and screen.gates.unit == 2, what="the cursor")
        await pilot.pause()
        tracer, loaded = SeriesTracer.from_checkpoint(run)
        trace = tracer.trace(loaded.data())
        info = trace.step_info(7, layer=0)
        text = screen_text(app)
        assert f"read temperature {info.inputs[0]:.4g}" in text, text
        assert f"predicts next {info.prediction:.4g}" in text and f"true {info.target:.4g}" in text, text
        assert f"humidity {info.inputs[1]:.4g}" in text
        assert "step 7/299" in text and "cursor at 7" in text and "unit 2" in text
        assert cuts(app) == []
        numbers = screen.unit_numbers()
        assert numbers and numbers == {key: f"{values[2]:+.4f}" for key, values in info.values.items()}
        # the plot holds the signal and the prediction of each point, with the cursor on it
        plot = screen.query_one("#sgates-plot")
        assert [line.name for line in plot.lines] == ["temperature", "prediction"]
        assert plot.markers == [(7, "cursor at 7")]
        # the keys that need a text are greyed, the others apply
        assert screen.check_action("word", (1,)) is None and screen.check_action("search", ()) is None
        assert screen.check_action("compare", ()) is None and screen.check_action("move", (1,)) is True
        await pilot.press("w", "f", "d")  # greyed: nothing happens
        assert screen.gates.pos == 7 and app.screen is screen
        await pilot.press("end")
        await wait_for(pilot, lambda: screen.gates.pos == 299, what="the end")
        await pilot.pause()
        assert "step 299/299" in screen_text(app) and "true -" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on Runs")


def test_series_gates_screen(snap_compare):
    series_run(Path("runs"), "mellow-newt")

    async def run_before(pilot):
        screen = await open_series_gates(pilot, "mellow-newt")
        await pilot.press(*["right"] * 40, "full_stop")
        await wait_for(pilot, lambda: screen.gates.pos == 40 and screen.gates.unit == 1, what="the cursor")

    assert snap_compare(pinned_app(mode="runs"), terminal_size=(80, 24), run_before=run_before)



def test_the_char_gates_loader_says_where_a_series_runs_gates_open():
    """Handed a series run, the char Gates screen's loader names where its gates are, not the char loader's
    bare refusal."""
    from rnn_playground.core.errors import PlaygroundError
    from rnn_playground.tui.viewmodel.gates_session import load_tracer
    run = series_run(Path("runs"), "mellow-newt")
    with pytest.raises(PlaygroundError, match=r"mellow-newt is a time-series run; .* g on it on the Runs screen "
                                              r"\(5\), or headless: rnn-playground gates "):
        load_tracer(run)

"""Series runs on the Runs screen are first-class: their kind in the table, their own settings in
the details, and opening one where only character models are read leaves the open checkpoint open."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tui_helpers import Internals, pinned_app, screen_text, series_run, wait_for, write_char_checkpoint

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("deterministic")]


async def select_run(pilot, name: str):
    screen = pilot.app.screen
    await wait_for(pilot, lambda: any(info.name == name for info in screen.infos), what="the runs")
    row = next(n for n, info in enumerate(screen.infos) if info.name == name)
    screen.query_one("#runs-table").move_cursor(row=row)
    await wait_for(pilot, lambda: screen.details is not None and screen.details.info.name == name,
                   what=f"details of {name}")
    await pilot.pause()
    return screen


async def test_a_series_run_shows_its_kind_and_its_own_settings():
    root = Path("runs")
    write_char_checkpoint(root / "brisk-otter")
    series_run(root, "mellow-newt")
    app = pinned_app(mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await select_run(pilot, "mellow-newt")
        table = screen.query_one("#runs-table")
        kinds = {str(table.get_row(info.name)[1]): info.name for info in screen.infos}
        assert kinds == {"series": "mellow-newt", "char": "brisk-otter"}
        details = screen.query_one("#details-info").render().plain
        for shown in ("csv daily.csv", "target temperature", "inputs humidity", "window 10", "batch 2", "20 steps"):
            assert shown in details, details
        assert "embed" not in details and "corpus" not in details
        # a character run keeps its own fields
        screen = await select_run(pilot, "brisk-otter")
        details = screen.query_one("#details-info").render().plain
        assert "embed 16" in details and "corpus corpus.txt" in details


async def test_a_series_run_does_not_replace_the_checkpoint_open_on_sample():
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.screens.series_gates import SeriesGatesScreen
    root = Path("runs")
    char = write_char_checkpoint(root / "brisk-otter")
    series = series_run(root, "mellow-newt")
    app = pinned_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run("sample", char)
        sample = await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint
                                and app.screen, what="the checkpoint")
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="Runs")
        await select_run(pilot, "mellow-newt")
        await pilot.press("s")  # refused on Runs, with the reason and what to do instead
        notes = await wait_for(pilot, lambda: [n.message for n in Internals.notifications(app)
                                               if "series forecast" in n.message],
                               what="the refusal")
        assert notes == [f"mellow-newt is a time-series run; the Sample screen reads character models. "
                         f"Forecast it with: rnn-playground series forecast {series}"]
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("g")  # a series run's own Gates screen, over Runs (issue 17)
        await wait_for(pilot, lambda: isinstance(app.screen, SeriesGatesScreen), what="the series Gates screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on Runs")
        assert sample.checkpoint is not None and sample.checkpoint.name == "brisk-otter"
        # Handed over some other way, the Sample screen still keeps what it had open.
        app.open_run("sample", series)
        await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and not sample.is_loading
                       and "Still sampling from brisk-otter" in screen_text(app), what="the kept checkpoint")
        assert sample.checkpoint.name == "brisk-otter"
        await pilot.press("g")
        await wait_for(pilot, lambda: not sample.stream.streaming and sample.stream.generated, what="a sample")


def test_series_losses_keep_significant_digits_in_the_app_and_the_runs_command(capsys):
    from rnn_playground.tui.cli.main import main
    from rnn_playground.tui.viewmodel.format import fmt_loss
    assert [fmt_loss(v) for v in (1.43214, 0.0123, 0.00123, 0.000123, 4.56e-5, 0.0, None)] == \
        ["1.4321", "0.0123", "0.00123", "0.000123", "4.56e-05", "0.0000", "-"]
    root = Path("runs")
    run = series_run(root, "mellow-newt")
    import json
    status = json.loads((run / "run.json").read_text())
    status["best_val_loss"] = 3.2e-05  # a well-fitted series run
    (run / "run.json").write_text(json.dumps(status))
    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3.20e-05" in out and "0.0000" not in out


async def test_a_single_point_sparkline_is_not_a_solid_block():
    from textual.app import App, ComposeResult

    from rnn_playground.tui.app.widgets.live import LossPanel

    class One(App):
        def compose(self) -> ComposeResult:
            yield LossPanel("val loss", id="panel")

    app = One()
    async with app.run_test(size=(40, 6)) as pilot:
        panel = app.query_one(LossPanel)
        panel.show((1.25,), 1.25, 1.25, 200)
        await pilot.pause()
        text = screen_text(app)
        assert "val loss 1.2500" in text and "█" not in text, text
        panel.show((1.25, 0.75), 0.75, 0.75, 400)  # two points have a shape: drawn
        await pilot.pause()
        assert "█" in screen_text(app)


def test_plot_window_defaults_to_a_readable_span_and_stays_inside_the_data():
    from rnn_playground.tui.viewmodel.series_view import POINTS_PER_COLUMN, plot_window
    assert plot_window(1500, 2099, 50) == (2099 - 50 * POINTS_PER_COLUMN, 2099)  # the end, 4 points a column
    assert plot_window(0, 100, 50) == (0, 100)                                    # fits whole
    assert plot_window(1500, 2099, 50, span=100, end=1000) == (1500, 1600)        # scrolled past the start
    assert plot_window(1500, 2099, 50, span=10_000) == (1500, 2099)               # zoomed out past everything


async def train_series(pilot):
    screen = pilot.app.screen
    screen.log_every = 5
    screen.query_one("#series-hidden").value = "8"
    screen.query_one("#series-steps").value = "60"
    await pilot.press("s")
    await wait_for(pilot, lambda: not screen.running and screen.predictions is not None, what="training")
    screen.set_focus(None)
    await pilot.pause()
    return screen


def plot_rows(app) -> list[str]:
    from rnn_playground.tui.app.widgets.plot import LinePlot
    return app.screen.query_one(LinePlot).render().plain.splitlines()


async def test_the_series_plot_shows_a_window_with_axes_and_moves_by_key():
    import re

    from rnn_playground.tui.app.widgets.plot import LinePlot
    app = pinned_app(mode="series")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await train_series(pilot)
        plot = screen.query_one(LinePlot)
        extent = plot._extent()
        lo, hi = plot.window
        columns = plot.size.width - 9
        assert hi == extent[1] and hi - lo <= columns * 4 < extent[1] - extent[0]  # not 600 points in 50 columns
        rows = plot_rows(app)
        x_values = [int(v) for v in re.findall(r"\d+", rows[-1])]
        assert len(x_values) >= 3 and x_values == sorted(x_values) and x_values[0] == lo and x_values[-1] == hi
        y_values = [line for line in rows if "┤" in line]
        assert len(y_values) >= 3
        assert "zoom" in str(plot.border_subtitle)
        await pilot.press("minus")
        assert plot.window is not None
        await pilot.pause()
        assert plot.window[1] - plot.window[0] == pytest.approx(2 * (hi - lo))
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert plot.window[1] < hi
        await pilot.press("0")
        await pilot.pause()
        assert plot.window == extent
        await pilot.press("plus")
        await pilot.pause()
        assert plot.window[1] - plot.window[0] == pytest.approx((extent[1] - extent[0]) / 2)


async def test_without_colour_the_predicted_lines_have_marks_of_their_own(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = pinned_app(mode="series")
    async with app.run_test(size=(80, 24)) as pilot:
        await train_series(pilot)
        await pilot.press("0")  # the whole range: the one-step predictions and the forecast
        await pilot.pause()
        rows = plot_rows(app)
        legend = " ".join(rows[:2])
        assert "•• one-step" in legend and "×× forecast" in legend
        body = "\n".join(rows[2:])
        assert "•" in body and "×" in body

"""Series runs on the Runs screen are first-class: their kind in the table, their own settings in
the details, and opening one where only character models are read leaves the open checkpoint open."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_tui_fit import series_run
from .test_tui_sample_snapshots import write_char_checkpoint
from .test_tui_snapshots import _deterministic, make_app  # noqa: F401
from .tui_helpers import screen_text, wait_for

pytestmark = pytest.mark.timeout(180)


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
    app = make_app(mode="runs")
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
    from tui.screens.runs import RunsScreen
    from tui.screens.sample import SampleScreen
    root = Path("runs")
    char = write_char_checkpoint(root / "brisk-otter")
    series = series_run(root, "mellow-newt")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run("sample", char)
        sample = await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint
                                and app.screen, what="the checkpoint")
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="Runs")
        await select_run(pilot, "mellow-newt")
        await pilot.press("s")  # refused on Runs, with the reason and what to do instead
        notes = await wait_for(pilot, lambda: [n.message for n in app._notifications if "series forecast" in n.message],
                               what="the refusal")
        assert notes == [f"mellow-newt is a time-series run; the Sample screen reads character models. "
                         f"Forecast it with: rnn-playground series forecast {series}"]
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert sample.checkpoint is not None and sample.checkpoint.name == "brisk-otter"
        # Handed over some other way, the Sample screen still keeps what it had open.
        app.open_run("sample", series)
        await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and not sample.is_loading
                       and "Still sampling from brisk-otter" in screen_text(app), what="the kept checkpoint")
        assert sample.checkpoint.name == "brisk-otter"
        await pilot.press("g")
        await wait_for(pilot, lambda: not sample.streaming and sample.generated, what="a sample")


def test_series_losses_keep_significant_digits_in_the_app_and_the_runs_command(capsys):
    from tui.cli import main
    from tui.widgets.format import fmt_loss
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

    from tui.widgets.live import LossPanel

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

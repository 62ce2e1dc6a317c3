"""The Series screen: trains a real small series model in a worker, shows the loss as it goes,
pauses and stops, and draws core's predictions and metrics; bad settings and CSV errors inline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .tui_helpers import Host, screen_text, wait_for

pytestmark = pytest.mark.timeout(120)

async def test_trains_and_draws_cores_predictions(tmp_path):
    from rnn_playground.core.series import load_series
    from rnn_playground.tui.app.screens.series import SeriesScreen
    screen = SeriesScreen(steps="40", hidden="8", forecast="50")
    async with Host(screen, "series.tcss", tmp_path / "runs").run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "press s" in screen_text(pilot.app)
        await pilot.press("s")
        assert screen.running or screen.snapshot.status == "finished"
        await wait_for(pilot, lambda: not screen.running, what="training to finish")
        snap = screen.snapshot
        assert snap.status == "finished" and snap.step == 40
        assert len(snap.train_losses) > 0 and len(snap.val_losses) == 1
        # one point draws nothing (a lone bar would be a solid block); two or more, core's losses
        drawn = list(snap.train_losses) if len(snap.train_losses) > 1 else []
        assert screen.query_one("#series-train Sparkline").data == drawn
        # the plot is core's prediction from the saved model
        loaded = load_series(Path(snap.run_dir))
        expected = loaded.predict(steps=50)
        pred = screen.predictions
        assert np.allclose(pred.one_step, expected.one_step, atol=1e-5)
        assert np.allclose(pred.forecast, expected.forecast, atol=1e-5) and len(pred.forecast) == 50
        plot = screen.query_one("#series-plot")
        assert {line.role for line in plot.lines} == {"target", "one-step", "forecast"}
        drawn = screen_text(pilot.app)
        assert "target" in drawn and "one-step" in drawn and "forecast" in drawn
        assert any(0x2800 < ord(ch) <= 0x28FF for ch in drawn)  # braille dots
        metrics = screen.query_one("#series-metrics").render()
        for metric in expected.metrics:
            assert metric.name in drawn and f"{metric.mse:.3g}" in drawn
        del metrics


async def test_pause_resume_and_stop(tmp_path):
    from rnn_playground.tui.app.screens.series import SeriesScreen
    screen = SeriesScreen(steps="100000", hidden="8")
    async with Host(screen, "series.tcss", tmp_path / "runs").run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.snapshot.step >= 5, what="some steps")
        await pilot.press("space")
        await wait_for(pilot, lambda: screen.snapshot.status == "paused", what="the pause")
        step = screen.snapshot.step
        await pilot.pause(0.4)
        assert screen.snapshot.step == step
        await pilot.press("space")
        await wait_for(pilot, lambda: screen.snapshot.step > step, what="resuming")
        await pilot.press("x")
        await wait_for(pilot, lambda: not screen.running, what="the stop")
        assert screen.snapshot.status == "stopped"
        assert screen.predictions is not None  # drawn at the stop
        assert (Path(screen.snapshot.run_dir) / "last.safetensors").exists()


async def test_bad_settings_block_starting(tmp_path):
    from rnn_playground.tui.app.screens.series import SeriesScreen
    screen = SeriesScreen(hidden="many")
    async with Host(screen, "series.tcss", tmp_path / "runs").run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        assert not screen.running
        assert "hidden: 'many' is not a whole number" in screen.query_one("#series-error").content.plain
        screen.query_one("#series-hidden").value = "0"
        await pilot.pause()
        assert "hidden must be at least 1" in screen.query_one("#series-error").content.plain
        screen.query_one("#series-hidden").value = "8"
        await pilot.pause()
        assert not screen.query_one("#series-error").display


async def test_csv_errors_are_shown_with_the_engines_message(tmp_path):
    from rnn_playground.tui.app.screens.series import SeriesScreen
    bad = tmp_path / "bad.csv"
    bad.write_text("time,value\n1,0.5\n2,oops\n3,0.7\n")
    screen = SeriesScreen(source="csv", csv=str(bad), column="value", steps="5")
    async with Host(screen, "series.tcss", tmp_path / "runs").run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert screen.query_one("#series-row-csv").display
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running and screen.snapshot.status == "error")
        error = screen.query_one("#series-error").content.plain
        assert "line 3" in error and "oops" in error
        screen.query_one("#series-csv").value = str(tmp_path / "missing.csv")
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running and "missing.csv" in
                       screen.query_one("#series-error").content.plain)


async def test_the_course_preset_fills_the_form_and_trains(tmp_path):
    from textual.widgets import Select

    from rnn_playground.tui.app.screens.series import SeriesScreen
    screen = SeriesScreen()
    async with Host(screen, "series.tcss", tmp_path / "runs").run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen.query_one("#series-preset", Select).value = "course"
        await pilot.pause()
        values = screen.form().values
        assert (values["cell"], values["hidden"], values["layers"], values["lr"], values["steps"]) == \
            ("rnn", 32, 1, 0.01, 75)
        assert "course preset" in screen.query_one("#series-form-note").content.plain
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running and screen.predictions is not None)
        snap = screen.snapshot
        assert snap.status == "finished" and snap.step == 75
        assert snap.config["batch"] == 1 and snap.config["model"]["cell"] == "rnn"

"""The footer on every screen at 80 columns: the app's keys always show, and inside a text
field the keys that still work there; quitting asks once."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from .test_tui import long_config, make_app, press
from .tui_helpers import screen_text, wait_for

pytestmark = pytest.mark.timeout(120)

def footer_of(app) -> str:
    lines = screen_text(app).splitlines()
    return lines[-1] if lines else ""


SCREENS = (("1", "TrainScreen"), ("2", "SampleScreen"), ("3", "GatesScreen"), ("4", "SeriesScreen"),
           ("5", "RunsScreen"))


async def test_every_screen_shows_help_and_quit_and_the_field_keys_at_80_columns(tmp_path, tiny_run):
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, name in SCREENS:
            await press(pilot, key)
            await wait_for(pilot, lambda: type(app.screen).__name__ == name, 10, name)
            if name in ("SampleScreen", "GatesScreen"):
                app.open_run("sample" if name == "SampleScreen" else "gates", tiny_run)
                await pilot.pause(0.3)
            footer = await wait_for(pilot, lambda: "? Help" in (line := footer_of(app)) and line, 10, f"{name}'s footer")
            assert footer.rstrip().endswith("q Quit") or "q Quit " in footer, (name, footer)
            assert "1-5 Screens" in footer, (name, footer)
            fields = list(app.screen.query(Input))
            if not fields:
                continue
            app.screen.set_focus(fields[0])
            footer = await wait_for(pilot, lambda: "F1 Help" in (line := footer_of(app)) and line, 10, f"{name}'s footer in a field")
            assert "esc Leave field" in footer and "^q Quit" in footer and "⏎ " in footer, (name, footer)
            assert "? Help" not in footer and "1-5" not in footer, (name, footer)
            app.screen.set_focus(None)
            await pilot.pause()


async def test_q_on_the_quit_question_does_not_ask_twice(tmp_path, tiny_corpus):
    from tui.screens.confirm import ConfirmScreen
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s")
        await wait_for(pilot, lambda: app.session.snapshot.status == "training", 30, "training")
        await press(pilot, "q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the question")
        await press(pilot, "q")
        await press(pilot, "ctrl+q")
        assert sum(isinstance(screen, ConfirmScreen) for screen in app.screen_stack) == 1
        await press(pilot, "n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 10, "the question gone")
        assert app.session.active  # "Keep training"
        await press(pilot, "x")
        await wait_for(pilot, lambda: not app.session.active, 30, "stopped")

"""The footer on every screen at 80 columns: the app's keys always show, and inside a text
field the keys that still work there; quitting asks once."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from .conftest import long_config
from .tui_helpers import make_app, press, screen_text, wait_for

pytestmark = pytest.mark.timeout(120)

def footer_of(app) -> str:
    lines = screen_text(app).splitlines()
    return lines[-1] if lines else ""


SCREENS = (("1", "TrainScreen"), ("2", "SampleScreen"), ("3", "GatesScreen"), ("4", "SeriesScreen"),
           ("5", "RunsScreen"), ("6", "LessonScreen"))


async def test_every_screen_shows_help_and_quit_and_the_field_keys_at_80_columns(tmp_path, tiny_run):
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, name in SCREENS:
            await press(pilot, key)
            await wait_for(pilot, lambda: type(app.screen).__name__ == name, 10, name)
            if name in ("SampleScreen", "GatesScreen"):
                app.open_run("sample" if name == "SampleScreen" else "gates", tiny_run)
                await pilot.pause(0.3)
            if name == "LessonScreen":  # on the run opened above; its text field is the Complete page's
                await wait_for(pilot, lambda: app.screen.source is not None, 60, "the Lesson's model")
                while app.screen.page.name != "complete":
                    await press(pilot, "right_square_bracket")
            footer = await wait_for(pilot, lambda: "? Help" in (line := footer_of(app)) and line, 10,
                                    f"{name}'s footer")
            assert footer.rstrip().endswith("q Quit") or "q Quit " in footer, (name, footer)
            assert "1-6 Screens" in footer, (name, footer)
            fields = list(app.screen.query(Input))
            if not fields:
                continue
            app.screen.set_focus(fields[0])
            footer = await wait_for(pilot, lambda: "F1 Help" in (line := footer_of(app)) and line, 10,
                                    f"{name}'s footer in a field")
            assert "esc Leave field" in footer and "^q Quit" in footer and "⏎ " in footer, (name, footer)
            assert "? Help" not in footer and "1-6" not in footer, (name, footer)
            app.screen.set_focus(None)
            await pilot.pause()


async def test_q_on_the_quit_question_does_not_ask_twice(tmp_path, tiny_corpus):
    from rnn_playground.tui.app.screens.confirm import ConfirmScreen
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "training", 30, "training")
        await press(pilot, "q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the question")
        await press(pilot, "q")
        await press(pilot, "ctrl+q")
        assert sum(isinstance(screen, ConfirmScreen) for screen in app.screen_stack) == 1
        await press(pilot, "n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 10, "the question gone")
        assert app.train_controller.active  # "Keep training"
        await press(pilot, "x")
        await wait_for(pilot, lambda: not app.train_controller.active, 30, "stopped")


async def open_screen(pilot, app, key: str, name: str, run) -> None:
    app.screen.set_focus(None)  # a digit typed in a field would not switch screens
    await pilot.pause()
    await press(pilot, key)
    await wait_for(pilot, lambda: type(app.screen).__name__ == name, 10, name)
    if name in ("SampleScreen", "GatesScreen"):
        app.open_run("sample" if name == "SampleScreen" else "gates", run)
        await wait_for(pilot, lambda: getattr(app.screen, "checkpoint", None) is not None
                       or getattr(getattr(app.screen, "gates", None), "trace", None) is not None, 20, f"{name} loaded")
    app.screen.set_focus(None)
    await pilot.pause()


async def test_tab_and_shift_tab_leave_every_field(tmp_path, tiny_run):
    """Issue 10: Tab did not leave the Sample prime (the only thing it could focus), so only
    Escape got out of it, which tmux delays. Every text field, on every screen, Tab and Shift+Tab
    leave; Gates' text and search rows are opened first so their fields are there."""
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        checked = set()
        for key, name in SCREENS:
            await open_screen(pilot, app, key, name, tiny_run)
            if name == "GatesScreen":
                await press(pilot, "o", "escape", "f", "escape")
                app.screen.query_one("#gates-source").display = True  # o's row stays open for the test
            fields = [w for w in app.screen.focus_chain if isinstance(w, Input)]
            for field in fields:
                for tab in ("tab", "shift+tab"):
                    app.screen.set_focus(field)
                    await pilot.pause()
                    await press(pilot, tab)
                    await pilot.pause()
                    assert app.focused is not None and app.focused is not field, (name, field.id, tab)
                checked.add(f"{name}#{field.id}")
        assert {"SampleScreen#prime", "GatesScreen#gates-source-value", "GatesScreen#gates-regex",
                "TrainScreen#corpus", "SeriesScreen#series-hidden"} <= checked, checked


async def test_the_first_tab_from_the_start_shows_where_the_focus_is(tmp_path, tiny_run):
    """Train: the first Tab from the start reached the event log, which showed no focus. The panes
    Tab reaches (Train's log, Sample's output) draw a heavy border when focused: visible without colour."""
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await press(pilot, "tab")
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "event-log"
        assert "┏" in screen_text(app) and "log" in screen_text(app).split("┏", 1)[1].splitlines()[0]
        await open_screen(pilot, app, "2", "SampleScreen", tiny_run)
        await press(pilot, "p", "tab", "tab")  # from the prime to the stop field, then the sample
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "sample-output"
        assert "┏" in screen_text(app)


async def test_complete_as_you_type_keeps_the_prime(tmp_path, tiny_run):
    """`a` put the focus in the prime with its text selected, so the next key replaced it."""
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, app, "2", "SampleScreen", tiny_run)
        prime = app.screen.query_one("#prime", Input)
        prime.value = "def"
        await press(pilot, "a")
        await wait_for(pilot, lambda: app.focused is prime, 10, "the prime focused")
        assert prime.selection.is_empty
        await press(pilot, *" f(")
        assert prime.value == "def f("
        await press(pilot, "a")  # complete-as-you-type off again, before the app closes


async def test_find_focuses_the_unit_list_and_enter_says_what_it_does(tmp_path, tiny_run):
    """After `f` the focus is on the unit list the hint names ("Enter selects"); in Gates' text
    fields the key bar says what Enter does there (load, search), not "Open"."""
    from textual.widgets import OptionList
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, app, "3", "GatesScreen", tiny_run)
        screen = app.screen
        await press(pilot, "f")
        await pilot.pause()
        assert isinstance(app.focused, OptionList) and app.focused.id == "gates-matches"
        await wait_for(pilot, lambda: screen.gates.matches, 30, "the units found")
        await wait_for(pilot, lambda: "Enter selects" in str(screen.query_one("#gates-search-note").content), 10,
                       "the hint")
        await press(pilot, "down", "enter")
        assert (screen.gates.layer, screen.gates.unit) == (screen.gates.matches[1].layer, screen.gates.matches[1].unit)
        await press(pilot, "shift+tab")
        assert app.focused.id == "gates-regex"
        footer = await wait_for(pilot, lambda: "F1 Help" in (line := footer_of(app)) and line, 10, "field footer")
        assert "Search" in footer and "Open" not in footer, footer
        await press(pilot, "escape")
        await wait_for(pilot, lambda: app.focused is None, 10, "the field left")
        await press(pilot, "o")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "gates-source-value", 10,
                       "the text field")
        footer = await wait_for(pilot, lambda: "Load" in (line := footer_of(app)) and line, 10, "field footer")
        assert "Open" not in footer, footer

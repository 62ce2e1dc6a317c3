"""The command palette (Ctrl+p) lists every key binding of the screen it is opened on, by its
description, only where it applies, and runs it; read from the palette as it is drawn."""

from __future__ import annotations

import pytest
from textual.actions import parse
from textual.binding import Binding

from .conftest import long_config
from .tui_helpers import make_app, press, wait_for

pytestmark = pytest.mark.timeout(240)


def descriptions(screen) -> set[str]:
    return descriptions_of(type(screen))


def applying(screen) -> set[str]:
    """The bindings whose action applies now, by the screen's own check_action (as the palette asks)."""
    shown = set()
    with screen.by_name():
        for b in type(screen).BINDINGS:
            _, name, parameters = parse(b.action)
            if screen.check_action(name, parameters) is True:
                shown.add(b.description)
    return shown


async def palette_lists(pilot) -> set[str]:
    """Open the palette, read the commands it lists before anything is typed, close it."""
    from textual.command import CommandList, CommandPalette
    app = pilot.app
    await press(pilot, "ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), 10, "the palette")
    palette = app.screen
    await pilot.pause(0.3)
    await wait_for(pilot, lambda: palette.query_one(CommandList).option_count, 10, "its commands")
    await pilot.pause(0.2)
    commands = palette.query_one(CommandList)
    listed = {commands.get_option_at_index(i).hit.text for i in range(commands.option_count)}
    await press(pilot, "escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), 10, "the palette closed")
    return listed


async def run_from_palette(pilot, name: str) -> None:
    from textual.command import CommandPalette
    app = pilot.app
    await press(pilot, "ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), 10, "the palette")
    await press(pilot, *name)
    await pilot.pause(0.5)
    await press(pilot, "enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), 10, "the palette closed")
    await pilot.pause(0.2)


async def test_every_binding_of_every_screen_is_in_the_palette_where_it_applies(tmp_path, tiny_run, tiny_corpus):
    """Issue 10 item 8: the palette listed screens and training actions only."""
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.screens.lesson import LessonScreen
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.screens.series import SeriesScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    app = make_app(tmp_path, runs_dir=tiny_run.parent, watch_interval=0, list_interval=0,
                   initial_config=long_config(tiny_corpus, hidden=16, layers=1, embed=8))
    seen: dict[type, set[str]] = {}

    async def check(screen_type) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, screen_type), 10, screen_type.__name__)
        screen = app.screen
        listed = await palette_lists(pilot)
        own = descriptions(screen)
        expected = applying(screen)
        assert listed & own == expected, (screen_type.__name__, sorted(listed & own), sorted(expected))
        seen.setdefault(screen_type, set()).update(expected)

    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await check(TrainScreen)                                    # idle: Start
        app.screen.set_focus(app.screen.query_one("#corpus"))
        await check(TrainScreen)                                    # in a field: Leave field too
        app.screen.set_focus(None)
        await press(pilot, "s")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "training", 30, "training")
        await check(TrainScreen)                                    # Pause, Stop, Save, Restart
        await press(pilot, "space")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "paused", 30, "paused")
        await check(TrainScreen)                                    # Resume
        await press(pilot, "space")

        await press(pilot, "5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.infos) >= 2, 20, "runs")
        runs_screen = app.screen
        live = next(row for row, info in enumerate(runs_screen.infos) if info.live)
        runs_screen.query_one("#runs-table").move_cursor(row=live)  # the app's own run: steered by its folder too
        await wait_for(pilot, lambda: runs_screen.reach is not None and runs_screen.watch_snapshot is not None
                       and app.train_controller.snapshot.status == "training", 30, "the live run watched")
        await check(RunsScreen)                                     # Pause, Stop, Save, Follow on Train
        await press(pilot, "p")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "paused", 30, "paused through its folder")
        await check(RunsScreen)                                     # Resume
        await press(pilot, "p")
        await wait_for(pilot, lambda: app.train_controller.snapshot.status == "training", 30, "training again")
        while runs_screen.selected != tiny_run:
            await press(pilot, "down")
            await wait_for(pilot, lambda: runs_screen.selected is not None, 5, "a selection")
        await check(RunsScreen)

        app.open_run("sample", tiny_run)
        await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint, 20, "sample")
        sample = app.screen
        sample.prime_input.value = "The"
        await check(SampleScreen)
        sample.set_focus(sample.prime_input)
        await check(SampleScreen)                                   # in the prime: Leave field, and every key
        # Run by name from inside the field: the letter keys type there, the palette does not.
        temperature = sample.stream.temperature
        await run_from_palette(pilot, "Temp+")
        assert sample.stream.temperature > temperature and sample.prime_input.value == "The"
        sample.set_focus(None)
        for _ in range(4):
            await press(pilot, "w")                                 # a slow typewriter: it is still streaming
        await press(pilot, "g")
        await wait_for(pilot, lambda: sample.stream.streaming, 10, "streaming")
        await check(SampleScreen)                                   # Stop
        await press(pilot, "x")
        sample.stop_input.value = "e"                               # a stop text: Include stop, Min length
        await press(pilot, "b")                                     # beam search: Fewer beams, More beams
        await wait_for(pilot, lambda: sample.stream.stop_text == "e" and not sample.stream.streaming, 10, "stop")
        await check(SampleScreen)
        await press(pilot, "b")

        app.open_run("gates", tiny_run)
        await wait_for(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace, 20, "gates")
        gates = app.screen
        await check(GatesScreen)
        await run_from_palette(pilot, "Saturation")
        assert gates.gates.view == "saturation"
        await run_from_palette(pilot, "Compare")
        await wait_for(pilot, lambda: gates.gates.comparison is not None, 60, "the comparison")
        await check(GatesScreen)                                    # Next span, Previous span
        await press(pilot, "i", "enter")                            # the prefilled intervention added
        await wait_for(pilot, lambda: gates.gates.changed is not None, 20, "the intervened trace")
        await check(GatesScreen)                                    # Remove, Remove all
        await press(pilot, "r")
        await check(GatesScreen)                                    # the rank view: Rank again
        await press(pilot, "o")
        await check(GatesScreen)                                    # in the text field: Leave field

        app.screen.set_focus(None)
        await press(pilot, "6")                                     # the Lesson on the run opened above
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen) and app.screen.source, 60, "lesson")
        lesson = app.screen
        await check(LessonScreen)                                   # Pages, Previous page, Deeper
        while lesson.page.name != "complete":
            await press(pilot, "right_square_bracket")
        await press(pilot, "t")
        await check(LessonScreen)                                   # in the text field: Leave field
        lesson.set_focus(None)

        await press(pilot, "4")
        await wait_for(pilot, lambda: isinstance(app.screen, SeriesScreen), 10, "series")
        series = app.screen
        await check(SeriesScreen)                                   # Start, Free run
        series.set_focus(series.query_one("#series-hidden"))
        await check(SeriesScreen)
        series.set_focus(None)
        await press(pilot, "s", "space")
        await wait_for(pilot, lambda: series.snapshot.status == "paused", 30, "series paused")
        await check(SeriesScreen)                                   # Resume, Stop
        await press(pilot, "space")
        await wait_for(pilot, lambda: series.snapshot.status == "training", 30, "series training")
        await check(SeriesScreen)                                   # Pause
        await press(pilot, "x")
        await wait_for(pilot, lambda: not series.running, 30, "series stopped")

        await press(pilot, "1", "x")
        await wait_for(pilot, lambda: not app.train_controller.active, 30, "the run stopped")
        await press(pilot, "5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and runs_screen.selected_info is not None
                       and not runs_screen.selected_info.live, 20, "a saved run selected")
        await check(RunsScreen)                                     # nothing trains: Train more
        row = runs_screen.query_one("#runs-table").cursor_row
        await press(pilot, "space", "down" if row + 1 < len(runs_screen.infos) else "up", "space")
        await wait_for(pilot, lambda: len(runs_screen.marked) == 2, 10, "two runs marked")
        await check(RunsScreen)                                     # two marked: Compare

    for screen_type in (TrainScreen, RunsScreen, SampleScreen, GatesScreen, SeriesScreen, LessonScreen):
        missing = descriptions_of(screen_type) - seen.get(screen_type, set())
        assert not missing, f"{screen_type.__name__}: never in the palette: {sorted(missing)}"


def descriptions_of(screen_type) -> set[str]:
    return {b.description for b in screen_type.BINDINGS if isinstance(b, Binding)}

"""Every screen at 80x24 shows whole words and whole numbers: each screen is put in a telling state
(long run names, two-digit ranks, errors with advice, a live run beside a series run) and
tui_helpers.cuts compares what each widget means to show with what its region shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import TINY_TEXT, tiny_config
from .tui_helpers import (
    cuts,
    feed_live_run,
    pinned_app,
    screen_text,
    series_run,
    settle_train,
    wait_for,
    write_char_checkpoint,
    write_run,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("deterministic")]
SIZE = (80, 24)


def assert_whole(app) -> None:
    problems = cuts(app)
    assert not problems, (f"cut at {app.size.width}x{app.size.height}:\n" + "\n".join(problems) + "\n\n"
                          + screen_text(app))


def live_session_with_trainer(app, tmp_path) -> None:
    """The live Train view of a fixed run, with a real (unstarted) trainer behind it, as the Sample
    screen sees a run training in the app."""
    from rnn_playground.core.trainer import Trainer
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    feed_live_run(app)
    # a controller whose run lives nowhere (its body never runs): the picture of a run training
    from rnn_playground.tui.viewmodel.controller import InProcessRun, RunController
    trainer = Trainer(tiny_config(corpus, runs_dir=str(tmp_path / "scratch")))
    app.train_controller = RunController(lambda body: None, lambda update: None)
    app.train_controller.start(InProcessRun.of(trainer, trainer.control))


async def test_train_idle_with_field_errors(tmp_path):
    app = pinned_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle_train(pilot)
        form = app.screen.query_one("#form")
        app.screen.query_one("#corpus").value = "missing/corpus.txt"
        app.screen.query_one("#hidden").value = "0"
        await wait_for(pilot, lambda: form.corpus_check is not None and "corpus" in form.errors, what="corpus check")
        await pilot.pause()
        assert_whole(app)


async def test_train_training(tmp_path):
    app = pinned_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle_train(pilot)
        feed_live_run(app)
        await pilot.pause()
        assert_whole(app)


@pytest.mark.parametrize("size", [SIZE, (120, 40)])
async def test_sample_with_a_result_while_a_run_trains(tmp_path, size):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    run = write_char_checkpoint(Path("runs") / "plucky-quokka-4821", hidden=512, step=12_000)
    app = pinned_app()
    async with app.run_test(size=size) as pilot:
        await settle_train(pilot)
        live_session_with_trainer(app, tmp_path)
        app.open_run("sample", run)
        screen = await wait_for(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint
                                and app.screen, what="checkpoint")
        await pilot.press("l", "g")
        await wait_for(pilot, lambda: not screen.stream.streaming and screen.stream.generated, what="a sample")
        await pilot.pause()
        assert_whole(app)


async def gates_screen(pilot, run: Path):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    app = pilot.app
    app.open_run("gates", run)
    return await wait_for(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace is not None
                          and app.screen, what="the gates trace")


async def test_gates_with_a_run_at_a_two_digit_rank(tmp_path):
    run = write_char_checkpoint(Path("runs") / "plucky-quokka-4821")
    app = pinned_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await gates_screen(pilot, run)
        from rnn_playground.tui.app.widgets.bars import NextCharBars
        bars = screen.query_one(NextCharBars)
        for _ in range(200):  # step on to a character the model ranks 10th or worse
            if bars.view is not None and bars.view.true_rank is not None and bars.view.true_rank >= 10:
                break
            await pilot.press("right")
            await pilot.pause()
        assert bars.view.true_rank >= 10
        await pilot.pause()
        assert_whole(app)


async def test_gates_saturation_view(tmp_path):
    run = write_char_checkpoint(Path("runs") / "plucky-quokka-4821")
    app = pinned_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await gates_screen(pilot, run)
        await pilot.press("right", "s")
        await wait_for(pilot, lambda: screen.gates.saturation is not None, what="saturation")
        await pilot.pause()
        assert "o_t" in screen.query_one("#gates-update").render().plain  # the Use gate is summarised
        assert_whole(app)


async def test_series_after_training():
    from rnn_playground.tui.app.screens.series import SeriesScreen
    app = pinned_app(mode="series")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SeriesScreen)
        screen.log_every = 5
        screen.query_one("#series-hidden").value = "8"
        screen.query_one("#series-steps").value = "60"
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running and screen.predictions is not None, what="training")
        await pilot.pause()
        assert_whole(app)


async def test_runs_with_a_live_run_and_a_series_run(tmp_path):
    root = Path("runs")
    write_run(root, "plucky-quokka-4821", cell="gru", hidden=1024, steps=120_000, age=26 * 3600)
    write_run(root, "eager-lynx", layers=3, steps=800, device="cuda:0", live=True, age=20.0, total=20000)
    series_run(root, "mellow-newt")
    app = pinned_app(mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.infos) == 3 and screen.details is not None
                       and screen.watch_snapshot is not None, what="the runs")
        for row in range(3):  # each run's details, the live one first
            screen.query_one("#runs-table").move_cursor(row=row)
            name = screen.infos[row].name
            await wait_for(pilot, lambda: screen.details is not None and screen.details.info.name == name
                           and screen.watch_snapshot is not None, what=f"details of {name}")
            await pilot.pause()
            assert_whole(app)


async def test_help():
    app = pinned_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert_whole(app)


def test_the_gates_text_breaks_lines_between_words_and_keeps_them_as_the_cursor_moves():
    from rnn_playground.tui.app.widgets.unittext import layout_window
    text = TINY_TEXT[:2000]
    width, lines = 30, 6
    previous = None
    for pos in range(0, 400, 7):
        ranges = layout_window(text, pos, width, lines)
        assert any(a <= pos < b for a, b in ranges)                       # the cursor is shown
        assert all(b - a <= width for a, b in ranges)                     # no line passes the width
        assert all(b1 == a2 for (_, b1), (a2, _) in zip(ranges, ranges[1:], strict=False))  # every character, in order
        for a, b in ranges:
            if b < len(text) and text[b - 1] not in " \n":                # a break inside a word only
                assert text[b] in " \n" or text[a:b].count(" ") == 0      # where a word is wider than a line
        if previous is not None:  # lines seen before keep their breaks as the cursor moves on
            lo, hi = max(previous[0][0], ranges[0][0]), min(previous[-1][1], ranges[-1][1])
            assert {a for a, _ in previous if lo <= a < hi} == {a for a, _ in ranges if lo <= a < hi}
        previous = ranges

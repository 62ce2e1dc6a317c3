"""Runs compared (issue 14): the curves of real tiny runs on three axes, the table of best values with the
settings that differ, the Runs screen's overlay and `rnn-playground runs --compare`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.events import ValidationEvent
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.viewmodel.compare_view import (
    AXES,
    Comparison,
    CurveReader,
    check_compared,
    compare_table,
    comparison_json,
    next_axis,
    plot_lines,
    plot_title,
)

from .conftest import long_config, tiny_config


def train(corpus: Path, runs_dir: Path, name: str, **overrides) -> Path:
    trainer = Trainer(tiny_config(corpus, run_name=name, runs_dir=str(runs_dir), **overrides))
    list(trainer.run())
    return trainer.run_dir


@pytest.fixture
def two_runs(tiny_corpus, tmp_path) -> tuple[Path, Path]:
    """Two finished tiny runs that differ in their batch size alone."""
    runs_dir = tmp_path / "runs"
    return train(tiny_corpus, runs_dir, "wide", batch=8), train(tiny_corpus, runs_dir, "narrow", batch=4)


def test_the_characters_axis_is_steps_times_batch_times_seq(two_runs):
    wide, narrow = Comparison(two_runs).read()
    assert wide.status == narrow.status == "finished"
    assert wide.val.steps == narrow.val.steps == (20, 40)
    assert wide.val.chars == tuple(step * 8 * 16 for step in wide.val.steps)
    # The same steps, twice the batch: twice the characters seen, point for point.
    assert [w / n for w, n in zip(wide.val.chars, narrow.val.chars, strict=True)] == [2.0, 2.0]
    assert [w / n for w, n in zip(wide.train.chars, narrow.train.chars, strict=True)] == [2.0] * len(wide.train)
    assert len(wide.train) == 40 and wide.train.steps[-1] == 40  # log_every=1: a point a step


def test_a_run_resumed_with_another_batch_counts_each_stretch_at_its_own(tiny_corpus, tmp_path):
    run_dir = train(tiny_corpus, tmp_path / "runs", "resumed", batch=8)
    list(Trainer.resume(run_dir, steps=60, batch=4).run())
    run = CurveReader(run_dir).read()
    assert run.val.steps == (20, 40, 60)
    assert run.val.chars == (20 * 8 * 16, 40 * 8 * 16, 40 * 8 * 16 + 20 * 4 * 16)
    assert run.settings["batch"] == 4  # the settings the run trains with now
    seconds = run.train.seconds
    assert all(b >= a for a, b in zip(seconds, seconds[1:], strict=False))  # its clock carried over the resume


def test_the_time_axis_is_the_runs_training_time_and_grows_with_its_steps(two_runs):
    run = CurveReader(two_runs[0]).read()
    seconds = run.train.seconds
    assert all(b >= a for a, b in zip(seconds, seconds[1:], strict=False)) and seconds[-1] > 0
    assert seconds[0] <= run.val.seconds[0] <= run.val.seconds[1] <= seconds[-1]
    best = run.best_val
    assert best.loss == min(run.val.losses) and best.at("steps") == best.step and best.at("time") == best.seconds


def test_the_table_marks_exactly_the_settings_that_differ(two_runs, tiny_corpus, tmp_path):
    table = compare_table(Comparison(two_runs).read())
    assert table.differing == {"batch"}
    assert [row.mark for row in table.rows] == ["•", "x"] and [row.name for row in table.rows] == ["wide", "narrow"]
    assert table.shared["hidden"] == 32 and "batch" not in table.shared and "run_name" not in table.keys
    third = train(tiny_corpus, tmp_path / "runs", "other", batch=8, lr=3e-3, hidden=24)
    table = compare_table(Comparison([two_runs[0], third]).read())
    assert table.differing == {"lr", "hidden"}
    row = table.rows[1]
    assert row.cells("steps")[:2] == ["x", "other"] and row.cells("steps")[3] == f"{row.best_val.step:,}"


def test_a_live_run_grows_as_its_metrics_are_read_again(tiny_corpus, tmp_path):
    trainer = Trainer(tiny_config(tiny_corpus, run_name="growing", runs_dir=str(tmp_path / "runs")))
    events = trainer.run()
    for event in events:
        if isinstance(event, ValidationEvent):
            break
    reader = CurveReader(trainer.run_dir)
    first = reader.read()
    assert first.status == "training" and first.val.steps == (20,) and first.train.steps[-1] == 20
    assert reader.read() is first  # nothing new: nothing rebuilt
    list(events)
    grown = reader.read()
    assert grown.status == "finished" and grown.val.steps == (20, 40) and grown.train.steps[-1] == 40
    assert grown.train.steps[:20] == first.train.steps  # read on from where it stopped, not twice


def test_the_plot_has_a_line_a_run_on_each_axis(two_runs):
    runs = Comparison(two_runs).read()
    axis, seen = "steps", []
    for _ in AXES:
        seen.append(axis)
        lines = plot_lines(runs, axis, "val")
        assert [line.name for line in lines] == ["wide", "narrow"] and [line.role for line in lines] == \
            ["run-0", "run-1"]
        assert lines[0].x.tolist() == list(runs[0].val.x(axis))
        axis = next_axis(axis)
    assert seen == ["steps", "characters", "time"] and axis == "steps"
    assert len(plot_lines(runs, "steps", "train")[0].x) == 40
    assert plot_title("characters", "train") == "train loss vs characters seen"


def test_the_json_holds_best_and_last_values_and_the_differing_settings(two_runs):
    data = comparison_json(Comparison(two_runs).read())
    assert data["differing"] == ["batch"]
    wide = data["runs"][0]
    assert wide["name"] == "wide" and wide["best_val_step"] in (20, 40) and wide["settings"]["batch"] == 8
    assert wide["best_val_chars"] == wide["best_val_step"] * 8 * 16 and wide["last_train_loss"] > 0


def test_what_cannot_be_compared_is_refused_naming_the_flag(two_runs, tmp_path):
    with pytest.raises(PlaygroundError, match="--compare needs at least two run folders"):
        check_compared(two_runs[:1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlaygroundError, match=r"--compare: .*empty is not a run folder"):
        check_compared([two_runs[0], tmp_path / "empty"])
    with pytest.raises(PlaygroundError, match="named twice"):
        check_compared([two_runs[0], two_runs[0]])
    assert check_compared(two_runs) == list(two_runs)


# --------------------------------------------------------------------------- the CLI


def test_the_cli_prints_the_table_and_the_json(two_runs, capsys):
    from rnn_playground.tui.cli.main import main
    assert main(["runs", "--compare", *map(str, two_runs)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "best val" in line)
    assert "batch" in header and "hidden" not in header  # the differing settings are the columns
    wide = next(line for line in out.splitlines() if " wide " in line)
    assert "•" in wide and "5.12k" in wide  # best at step 40: 40 x 8 x 16 characters
    assert "differ: batch" in out and "hidden 32" in out.split("same:", 1)[1]
    assert main(["runs", "--compare", *map(str, two_runs), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["differing"] == ["batch"] and [run["name"] for run in data["runs"]] == ["wide", "narrow"]
    assert data["runs"][1]["best_val_chars"] == data["runs"][1]["best_val_step"] * 4 * 16


def test_the_cli_refuses_one_run_and_a_folder_that_is_no_run_in_a_line(two_runs, tmp_path, capsys):
    from rnn_playground.tui.cli.main import main
    assert main(["runs", "--compare", str(two_runs[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --compare needs at least two run folders") and "\n" not in err
    assert main(["runs", "--compare", str(two_runs[0]), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--compare:" in err and "is not a run folder" in err and "Traceback" not in err


# --------------------------------------------------------------------------- the Runs screen


async def test_space_marks_two_runs_and_v_compares_them_with_the_axis_cycling(two_runs, tiny_corpus, tmp_path):
    from rnn_playground.tui.app.screens.compare import CompareScreen
    from rnn_playground.tui.app.screens.runs import RunsScreen

    from .tui_helpers import make_app, press, screen_text, wait_for
    # The Train form checks its corpus even while another screen shows: the tiny file, not the built-in text
    # (which a check would leave in the form's corpus cache, held whole).
    app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs",
                   initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.infos) == 2, 30, "runs")
        runs_screen = app.screen
        assert runs_screen.check_action("compare", ()) is None  # greyed: nothing marked
        await press(pilot, "space", "down", "space")
        await wait_for(pilot, lambda: len(runs_screen.marked) == 2, 10, "two marked")
        first, second = (info.name for info in runs_screen.infos)
        table = screen_text(app)
        assert any(line.startswith("│ •  " + first) for line in table.splitlines()), table  # the mark column
        assert any(line.startswith("│ x  " + second) for line in table.splitlines()), table
        await press(pilot, "v")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.runs, 30, "compared")
        compare = app.screen
        text = await wait_for(pilot, lambda: "val loss vs steps" in (t := screen_text(app)) and t, 10, "the title")
        legend = next(line for line in text.splitlines() if f"• {first}" in line)
        assert f"x {second}" in legend  # both runs in the legend, each with its mark
        header = next(line for line in text.splitlines() if "best val" in line)
        assert "batch" in header and "at steps" in header and "hidden" not in header
        assert "same:" in text and "hidden 32" in text

        await press(pilot, "a")
        await wait_for(pilot, lambda: "val loss vs characters seen" in screen_text(app), 10, "characters")
        assert "at chars" in screen_text(app) and "5.12k" in screen_text(app)  # the wide run's best, 40 x 8 x 16
        await press(pilot, "a")
        await wait_for(pilot, lambda: "val loss vs training time" in screen_text(app), 10, "time")
        await press(pilot, "a", "l")
        await wait_for(pilot, lambda: "train loss vs steps" in screen_text(app), 10, "back to steps, train loss")
        assert compare.axis == "steps" and compare.which == "train"

        await press(pilot, "escape")
        await wait_for(pilot, lambda: app.screen is runs_screen, 10, "back to the runs")
        await press(pilot, "space")  # unmarks the selected run: one left, nothing to compare
        await wait_for(pilot, lambda: len(runs_screen.marked) == 1, 10, "one marked")
        assert runs_screen.check_action("compare", ()) is None


async def test_a_live_run_grows_on_the_overlay(tiny_corpus, tmp_path):
    """A headless run training in another process, compared with a finished one: its curve grows on screen."""
    from rnn_playground.tui.app.screens.compare import CompareScreen

    from .tui_helpers import make_app, start_headless_run, wait_for
    runs_dir = tmp_path / "runs"
    done = train(tiny_corpus, runs_dir, "done")
    process = start_headless_run(tiny_corpus, runs_dir / "live")
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs",
                       initial_config=long_config(tiny_corpus))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: (runs_dir / "live" / "metrics.jsonl").exists(), 60, "the live run")
            await pilot.pause()
            app.push_screen(CompareScreen([done, runs_dir / "live"]))
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.runs, 30, "read")
            screen = app.screen
            screen.action_loss()  # training loss: a point every step, so it grows at once
            first = len(screen.runs[1].train)
            await wait_for(pilot, lambda: len(screen.runs[1].train) > first + 2, 60, "the live curve grows")
            assert screen.runs[1].active and screen.runs[0].status == "finished"
    finally:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- pictures


@pytest.fixture
def pictured_runs(tmp_path):
    from .tui_helpers import HELD_LOCKS, write_run
    root = tmp_path / "runs"
    write_run(root, "brisk-otter", steps=3000, age=26 * 3600)
    write_run(root, "calm-heron", cell="gru", hidden=256, steps=1200, state="stopped", age=3 * 3600)
    write_run(root, "eager-lynx", layers=3, steps=800, device="cuda:0", live=True, age=20.0, total=20000)
    for name, scale in (("calm-heron", 1.08), ("eager-lynx", 0.93)):  # curves of their own, told apart on the plot
        metrics = root / name / "metrics.jsonl"
        records = [json.loads(line) for line in metrics.read_text().splitlines()]
        for record in records:
            for key in ("loss", "val_loss", "best_val_loss"):
                if key in record:
                    record[key] *= scale
        metrics.write_text("".join(json.dumps(record) + "\n" for record in records))
    yield root
    while HELD_LOCKS:
        HELD_LOCKS.pop().release()


async def compare_three(pilot) -> None:
    from rnn_playground.tui.app.screens.compare import CompareScreen

    from .tui_helpers import press
    app = pilot.app
    while not (app.screen.infos and app.screen.details is not None):
        await pilot.pause(0.05)
    await press(pilot, "space", "down", "space", "down", "space", "v")
    while not (isinstance(app.screen, CompareScreen) and app.screen.runs):
        await pilot.pause(0.05)
    await pilot.pause()


@pytest.mark.usefixtures("deterministic", "pictured_runs")
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_compare_screen(snap_compare, size):
    from .tui_helpers import pinned_app
    assert snap_compare(pinned_app(mode="runs"), terminal_size=size, run_before=compare_three)


@pytest.mark.usefixtures("deterministic", "pictured_runs")
def test_compare_screen_no_color_by_characters(snap_compare, monkeypatch):
    from .tui_helpers import pinned_app, press
    monkeypatch.setenv("NO_COLOR", "1")

    async def run_before(pilot):
        await compare_three(pilot)
        await press(pilot, "a")
        await pilot.pause()

    assert snap_compare(pinned_app(mode="runs"), terminal_size=(80, 24), run_before=run_before)

"""A distributed run's world size, its ranks' devices and each rank's speed (RunStarted.world_size and
.devices, StepEvent.rank_tokens_per_s): folded into the snapshot, worded by the middle floor, and shown on the
Runs and Train screens and by the headless CLI, readable at 80x24; nothing of it for a run in one process.
The runs are metrics.jsonl lines a test writes into a real folder, as the engine's rank 0 writes them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from rnn_playground.core import runs
from rnn_playground.core.events import RunStarted, StepEvent, ValidationEvent, event_from_json
from rnn_playground.tui.cli.render import TrainDisplay
from rnn_playground.tui.viewmodel.format import fmt_rate_compact
from rnn_playground.tui.viewmodel.monitor import RunMonitor, describe_event, rank_phrases

from .tui_helpers import cuts, make_app, press, wait_for

pytestmark = pytest.mark.timeout(120)

CONFIG = {"cell": "lstm", "hidden": 64, "layers": 2, "batch": 8, "seq": 16, "lr": 0.003, "steps": 1000,
          "model": {"cell": "lstm", "hidden": 64, "layers": 2, "embed": 16, "dropout": 0.0, "vocab_size": 40}}


def distributed_events(world_size: int = 2, devices=("cpu", "cpu"), rates=(41_200.0, 40_900.0), steps: int = 40,
                       name: str = "duo") -> list:
    ranked = world_size > 1
    events = [RunStarted(name, f"runs/{name}", devices[0] if devices else "cpu", CONFIG, 100_000, 40, 9_000,
                         1_000, 0, 1000, world_size=world_size, devices=list(devices) if ranked else None, time=1.0)]
    for step in range(10, steps + 1, 10):
        events.append(StepEvent(step, 1000, step / 100, 3.0 - step / 100, sum(rates), 0.003, step / 10.0, 90.0,
                                rank_tokens_per_s=list(rates) if ranked else None, time=1.0 + step / 10))
    events.append(ValidationEvent(steps, 2.9, 2.9, True, time=2.0 + steps / 10))
    return events


def write_live_run(root: Path, name: str, events: list):
    """A run folder as a training process writes it, held live (its writer's lock) until the lock is released."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / runs.METRICS).write_text("".join(json.dumps(event.to_json()) + "\n" for event in events))
    lock = runs.RunLock.acquire(run_dir)
    runs.write_status(run_dir, state="running", run_id="0123456789abcdef", kind="char", device="cpu",
                      config=CONFIG, step=events[-1].step)
    return lock


def folded(events) -> RunMonitor:
    monitor = RunMonitor()
    for event in events:
        monitor.add_record(event.to_json())  # through the JSON a metrics.jsonl line holds
    return monitor


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (950, "950"), (999.7, "1k"), (4_120, "4.12k"),
                                               (41_234, "41.2k"), (412_345, "412k"), (1_234_567, "1.23M"),
                                               (None, "-"), (float("nan"), "-")])
def test_a_compact_rate_has_three_significant_digits(value, shown):
    assert fmt_rate_compact(value) == shown


def test_the_snapshot_holds_the_ranks_and_the_middle_floor_words_them():
    monitor = folded(distributed_events())
    snap = monitor.snapshot()
    assert snap.world_size == 2 and snap.devices == ("cpu", "cpu") and snap.rank_tokens_per_s == (41_200.0, 40_900.0)
    assert snap.tokens_per_s == 82_100.0  # the run's own, all ranks together
    assert rank_phrases(snap) == ["2 ranks (cpu, cpu)", "41.2k + 40.9k chars/s"]
    assert "on 2 ranks (cpu, cpu): 100,000 parameters" in snap.log[0].text

    many = folded(distributed_events(8, [f"cuda:{i}" for i in range(8)], [40_100.0 + 160 * i for i in range(8)]))
    assert rank_phrases(many.snapshot()) == ["8 ranks (cuda:0, cuda:1, … cuda:7)", "40.1k-41.2k chars/s per rank"]

    from rnn_playground.core.events import Paused
    monitor.add(Paused(40))
    assert rank_phrases(monitor.snapshot()) == ["2 ranks (cpu, cpu)"]  # speeds only while it trains


def test_one_process_shows_nothing_of_ranks_and_old_lines_read_as_one_process():
    snap = folded(distributed_events(1, None, (82_100.0,))).snapshot()
    assert snap.world_size == 1 and snap.devices is None and snap.rank_tokens_per_s is None
    assert rank_phrases(snap) == []
    line = distributed_events(1, None, (1.0,))[0].to_json()
    del line["world_size"]  # a metrics.jsonl line written before the field existed
    started = event_from_json(line)
    assert started.world_size == 1 and "rank" not in describe_event(started)[1]


async def test_the_runs_screen_shows_the_ranks_of_a_live_distributed_run_at_80x24(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the table's title says "runs in runs", whole
    root = tmp_path / "runs"
    lock = write_live_run(root, "duo", distributed_events())
    single = write_live_run(root, "solo", distributed_events(1, None, (82_100.0,), name="solo"))
    try:
        app = make_app(tmp_path, runs_dir=root, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen" and app.screen.infos
                                    and app.screen)
            for name in ("duo", "solo"):
                screen.query_one("#runs-table").move_cursor(row=[info.name for info in screen.infos].index(name))
                await wait_for(pilot, lambda: screen.details is not None and screen.watch_snapshot is not None
                               and screen.watch_snapshot.run_name == name, 20, f"{name}'s details")
                await pilot.pause(0.2)
                details = screen.query_one("#details-info").render().plain
                if name == "duo":
                    assert "2 ranks (cpu, cpu)" in details and "41.2k + 40.9k chars/s" in details, details
                else:
                    assert "rank" not in details, details
                assert cuts(app) == []
    finally:
        lock.release()
        single.release()


async def test_the_train_screen_shows_the_ranks_of_a_followed_run_at_80x24(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    lock = write_live_run(root, "duo", distributed_events())
    try:
        app = make_app(tmp_path, runs_dir=root, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen" and app.screen.details is not None
                           and app.screen.watch_snapshot is not None, 20, "the run")
            await press(pilot, "t")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "TrainScreen"
                           and app.train_run.snapshot.world_size == 2, 20, "followed")
            line = await wait_for(pilot, lambda: "ranks" in (text := app.screen.query_one("#run-device").render().plain)
                                  and text, 10, "the ranks line")
            assert line.startswith("2 ranks (cpu, cpu) · 41.2k + 40.9k chars/s"), line
            assert "82,100 chars/s" in app.screen.query_one("#run-status").render().plain
            assert cuts(app) == []
    finally:
        lock.release()


def render_display(snap, terminal: bool) -> str:
    output = io.StringIO()
    console = Console(file=output, width=80, force_terminal=terminal, color_system=None)
    display = TrainDisplay(console)
    display.show(snap)
    if terminal:
        console.print(display._render())
    return output.getvalue()


def test_the_headless_display_shows_the_ranks_and_nothing_for_one_process():
    snap = folded(distributed_events()).snapshot()
    panel = render_display(snap, terminal=True)
    assert "duo on 2 ranks (cpu, cpu)" in panel and "per rank" in panel and "41.2k + 40.9k chars/s" in panel
    plain = " ".join(render_display(snap, terminal=False).split())
    assert "82,100 characters/s (ranks 41.2k + 40.9k chars/s)" in plain
    assert "on 2 ranks (cpu, cpu)" in plain  # the run's first log line
    one = folded(distributed_events(1, None, (82_100.0,))).snapshot()
    for terminal in (True, False):
        assert "rank" not in render_display(one, terminal)

"""Snapshot tests (pytest-textual-snapshot) of the Train and Runs screens at 80x24 and 120x40.

Deterministic: the runs are fixed files (fixed contents, sizes and modification times), the
clock and the device list are injected, timers are off, and the live view is fed a fixed
sequence of the trainer's events. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs before committing them.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import save_checkpoint
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.device import DeviceInfo
from rnn_playground.core.events import CheckpointSaved, RunStarted, SampleEvent, StepEvent, ValidationEvent
from rnn_playground.tui.viewmodel.monitor import RunMonitor

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the app's clock in these tests
DEVICES = [DeviceInfo("cpu", "Test CPU (2 threads)", 16 * 2**30, 8 * 2**30),
           DeviceInfo("cuda:0", "Test GPU", 80 * 2**30, 79 * 2**30)]
VOCAB = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;()[]{}'\"=+-*/_#\n"))
SAMPLE = ("def read_config(path):\n    with open(path) as handle:\n        return json.load(handle)\n\n"
          "class Reader(object):\n    def __init__(self, stream):\n        self.stream = stream\n")

pytestmark = pytest.mark.timeout(120)


def pinned(**overrides) -> TrainConfig:
    """The settings the screens show, fixed here so a change of the engine's defaults does not
    change these pictures."""
    settings = dict(cell="lstm", hidden=512, layers=2, embed=64, dropout=0.25, batch=64, seq=100, lr=0.003,
                    seed=1234, minutes=None, steps=None, epochs=None, device="auto")
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)  # the runs folder shows as the relative "runs"


def events_of(name: str, cell: str, layers: int, hidden: int, steps: int, device: str, start: float,
              final: str | None = "finished", total: int | None = None) -> list:
    """A plausible, fixed run: falling loss with fixed wiggles, validation every 200 steps."""
    config = {**pinned(cell=cell, layers=layers, hidden=hidden, steps=total).to_dict(),
              "run_name": name, "runs_dir": "runs",
              "model": {"vocab_size": len(VOCAB), "cell": cell, "hidden": hidden, "layers": layers, "embed": 64,
                        "dropout": 0.25}}
    events: list = [RunStarted(name, f"runs/{name}", device, config, 3_300_000, len(VOCAB), 2_700_000, 300_000, 0,
                               total, time=start)]
    best = None
    for step in range(25, steps + 1, 25):
        t = start + step * 0.5
        loss = 1.3 + 2.9 * math.exp(-step / 400) + 0.05 * math.sin(step / 37)
        eta = (total - step) * 0.5 if total else max(0.0, 600 - step * 0.5)
        events.append(StepEvent(step, total, step / 420, loss, 12_800.0 + 50 * math.sin(step), 0.003, step * 0.5,
                                eta, 0, time=t))
        if step % 200 == 0:
            val = 1.45 + 2.7 * math.exp(-step / 450)
            is_best = best is None or val < best
            best = val if is_best else best
            events.append(ValidationEvent(step, val, best, is_best, time=t))
            if is_best:
                events.append(CheckpointSaved(step, f"runs/{name}/best.safetensors", "best", time=t))
            events.append(CheckpointSaved(step, f"runs/{name}/last.safetensors", "validation", time=t))
            events.append(SampleEvent(step, SAMPLE, time=t))
    return events, config, best


HELD_LOCKS: list = []  # locks of the "live" runs written, released when the fixture ends


def write_run(root: Path, name: str, *, cell="lstm", layers=2, hidden=512, steps=3000, device="cpu",
              state="finished", age=3600.0, live=False, total=None) -> None:
    run = root / name
    run.mkdir(parents=True)
    events, config, best = events_of(name, cell, layers, hidden, steps, device, NOW - age - steps * 0.5,
                                     total=total)
    with (run / runs.METRICS).open("w") as handle:
        for event in events:
            handle.write(json.dumps(event.to_json()) + "\n")
    import torch
    meta = {"kind": "char", "vocab": VOCAB, "config": config, "model": config["model"],
            "progress": {"step": steps, "epoch": 7, "window": 0, "tokens": steps * 6400, "elapsed_s": steps * 0.5},
            "best_val_loss": best, "device": device,
            "corpus": {"spec": "builtin:python-stdlib", "source": "Python standard library sources",
                       "fingerprint": "0" * 64, "chars": 3_000_000}}
    save_checkpoint(run / runs.LAST, {"model.w": torch.zeros(hidden * layers)}, meta)
    status = {"state": "running" if live else state, "device": device, "config": config, "kind": "char",
              "step": steps, "best_val_loss": best, "updated": NOW - age}
    if live:
        status.update(pid=os.getpid(), host=socket.gethostname())
        HELD_LOCKS.append(runs.RunLock.acquire(run))  # what makes it live: a writer holds its lock
    (run / runs.STATUS).write_text(json.dumps(status, indent=1, sort_keys=True))
    for path in run.iterdir():
        os.utime(path, (NOW - age, NOW - age))


@pytest.fixture
def runs_folder(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_run(root, "brisk-otter", steps=3000, age=26 * 3600)
    write_run(root, "calm-heron", cell="gru", hidden=256, steps=1200, state="stopped", age=3 * 3600)
    write_run(root, "eager-lynx", layers=3, steps=800, device="cuda:0", live=True, age=20.0, total=20000)
    yield root
    while HELD_LOCKS:
        HELD_LOCKS.pop().release()


def make_app(**kwargs):
    from rnn_playground.tui.app.shell import PlaygroundApp
    kwargs.setdefault("devices", DEVICES)
    kwargs.setdefault("runs_dir", Path("runs"))
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("watch_interval", 0)
    kwargs.setdefault("initial_config", pinned(corpus="tinyshakespeare", minutes=10.0))
    return PlaygroundApp(**kwargs)


async def settle_train(pilot) -> None:
    form = pilot.app.screen.query_one("#form")
    while form.corpus_check is None:
        await pilot.pause(0.05)
    await pilot.pause()


def feed_live_run(app) -> None:
    """Show a run in the live view as the training worker would: a snapshot of fixed events."""
    from rnn_playground.tui.viewmodel.session import TrainingSession
    monitor = RunMonitor()
    events, _, _ = events_of("brisk-otter", "lstm", 2, 512, 1600, "cpu (Test CPU (2 threads))", NOW - 800,
                             total=5000)
    for event in events:
        monitor.add(event)
    session = TrainingSession(running=True)
    session.snapshot = monitor.snapshot()
    app.session = session
    app._session_changed()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_train_screen_live(snap_compare, size, tmp_path):
    async def run_before(pilot):
        await settle_train(pilot)
        feed_live_run(pilot.app)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_train_screen_idle(snap_compare, tmp_path):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=settle_train)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_runs_screen(snap_compare, size, runs_folder):
    async def run_before(pilot):
        screen = pilot.app.screen
        while not (screen.infos and screen.details is not None and screen.watch_snapshot is not None):
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(make_app(mode="runs"), terminal_size=size, run_before=run_before)

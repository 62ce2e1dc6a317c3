"""System figures while a run trains (core.sysmetrics): recorded in metrics.jsonl by a real run with real psutil,
the environment in run.json, folded into device lines, and shown by the Train and Runs screens and the CLI."""

from __future__ import annotations

import json
import platform
import socket
import sys
import threading

import pytest
import torch

from rnn_playground.core import runs
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.events import SystemEvent, event_from_json
from rnn_playground.core.sysmetrics import NO_NVML
from rnn_playground.core.trainer import TrainControl, Trainer
from rnn_playground.tui.viewmodel.monitor import RunMonitor, describe_device_figures, system_lines

from .conftest import long_config, tiny_config
from .tui_helpers import cuts, make_app, press, records, wait_for

pytestmark = pytest.mark.timeout(120)


def train_until_readings(config, readings: int = 2) -> Trainer:
    """A real run that stops itself once it has recorded `readings` SystemEvents."""
    control = TrainControl()
    trainer = Trainer(config, control)
    seen = 0
    for event in trainer.run():
        if isinstance(event, SystemEvent):
            seen += 1
            if seen >= readings:
                control.stop()
    return trainer


def test_a_run_records_system_figures_and_its_environment(tiny_corpus, tmp_path):
    trainer = train_until_readings(long_config(tiny_corpus, system_every=0.2, runs_dir=str(tmp_path / "runs")))
    found = records(trainer.run_dir, "system")
    assert len(found) >= 2
    (stopped,) = records(trainer.run_dir, "stopped")  # the readings never stopped the run: the test did
    for record in found:
        assert record["rss_bytes"] > 10 * 2**20  # a process holding torch: tens of MB at least
        assert record["process_cpu_percent"] >= 0 and record["system_cpu_percent"] >= 0
        assert "gpus" not in record and "note" not in record  # the CPU: no GPU figures, nothing missing
        assert 0 <= record["step"] <= stopped["step"]
    assert [r["step"] for r in found] == sorted(r["step"] for r in found)  # at step boundaries, in order

    environment = runs.read_status(trainer.run_dir)["environment"]
    assert environment == {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if torch.version.cuda else None,
                           "gpus": [], "python": platform.python_version(), "host": socket.gethostname(),
                           "argv": sys.argv}


def test_system_every_0_records_none(tiny_corpus, tmp_path):
    # Two seconds of training: at 0.2 s it would record several readings.
    trainer = Trainer(tiny_config(tiny_corpus, steps=None, minutes=2 / 60, system_every=0,
                                  runs_dir=str(tmp_path / "runs")))
    events = list(trainer.run())
    assert events[-1].kind == "finished"
    assert not [e for e in events if isinstance(e, SystemEvent)] and not records(trainer.run_dir, "system")
    assert "system" not in {json.loads(line)["event"] for line in (trainer.run_dir / runs.METRICS).open()}


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), 1e308])
def test_a_bad_interval_is_refused_naming_the_flag(tiny_corpus, value):
    with pytest.raises(ConfigError, match=r"--system-every must be zero \(no system figures\) or a positive"):
        tiny_config(tiny_corpus, system_every=value).validate()


def test_the_fold_gives_a_line_per_device_from_the_recorded_figures(tiny_corpus, tmp_path):
    trainer = train_until_readings(long_config(tiny_corpus, system_every=0.2, runs_dir=str(tmp_path / "runs")), 3)
    monitor = RunMonitor()
    for record in records(trainer.run_dir):
        assert monitor.add_record(record)
    snap = monitor.snapshot()
    (cpu,) = snap.system
    assert cpu.device == "cpu" and len(cpu.load_history) >= 3 and cpu.memory_bytes > 0
    (line,) = system_lines(snap)
    assert line.startswith("cpu    proc ") and " · rss " in line and " · sys " in line and len(line) <= 80


def gpu_event(step: int, util: float, used_gib: float, nvml: bool = True, note: str | None = None) -> SystemEvent:
    gpu = {"device": "cuda:0", "name": "Test GPU", "mem_total_bytes": 80 * 2**30,
           "peak_allocated_bytes": int(used_gib * 0.9 * 2**30)}
    if nvml:
        gpu.update(util_percent=util, mem_used_bytes=int(used_gib * 2**30), power_w=287.4, temp_c=71)
    # Through JSON and back, as a watcher reads metrics.jsonl.
    event = SystemEvent(step, process_cpu_percent=101.5, rss_bytes=int(1.5 * 2**30), system_cpu_percent=12.0,
                        gpus=[gpu], note=note)
    return event_from_json(json.loads(json.dumps(event.to_json())))


def test_a_gpus_figures_make_a_line_that_fits_80_columns_and_narrower():
    monitor = RunMonitor()
    for step, util in enumerate((10, 50, 90, 97)):
        monitor.add(gpu_event(step, util, 20 + step))
    cpu, gpu = monitor.snapshot().system
    assert gpu.device == "cuda:0" and gpu.load_history == (10, 50, 90, 97)
    line = describe_device_figures(gpu)
    assert line == "cuda:0 util 97% ▂▅▇█ · mem 23.0/80.0 GB ▃▃▃▃ · 287 W · 71°C · peak 20.7 GB"
    assert len(line) <= 80
    narrow = describe_device_figures(gpu, 45)
    assert narrow.startswith("cuda:0 util 97% ▂▅▇█") and len(narrow) <= 45  # phrases dropped whole
    assert describe_device_figures(cpu, 80).startswith("cpu    proc 102% ")


def test_without_nvml_the_gpu_line_gives_the_allocator_peak_and_says_why_once():
    monitor = RunMonitor()
    note = f"{NO_NVML}: nvidia-ml-py is not installed"
    monitor.add(gpu_event(1, 0, 10, nvml=False, note=note))
    monitor.add(gpu_event(2, 0, 20, nvml=False))
    snap = monitor.snapshot()
    assert [line.text for line in snap.log] == [note]  # one log line, never an error
    assert system_lines(snap)[1] == "cuda:0 peak 18.0/80.0 GB ▂▃"  # bars from 0 to the GPU's memory


async def test_the_train_screen_shows_the_device_line_at_80x24(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, system_every=0.2))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        system = app.screen.query_one("#run-system")
        assert not system.display  # nothing before the first reading
        await press(pilot, "s")
        await wait_for(pilot, lambda: "cpu    proc" in str(system.content) and system.display, 30, "the cpu line")
        await pilot.pause(0.1)
        assert not [cut for cut in cuts(app) if "run-system" in cut]
        app.train_controller.stop()
        await wait_for(pilot, lambda: not app.train_controller.active, 30, "stop")
        await wait_for(pilot, lambda: not system.display, 5, "the line gone once the run ended")


async def test_the_runs_screen_shows_a_live_runs_device_line(tmp_path, tiny_corpus):
    from rnn_playground.tui.app.screens.runs import RunsScreen
    control = TrainControl()
    trainer = Trainer(long_config(tiny_corpus, run_name="busy", runs_dir=str(tmp_path / "runs"), system_every=0.2),
                      control)
    thread = threading.Thread(target=lambda: list(trainer.run()), daemon=True)
    thread.start()
    try:
        app = make_app(tmp_path, watch_interval=0.2, list_interval=600, mode="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.infos, 20, "listed")
            info = app.screen.query_one("#details-info")
            await wait_for(pilot, lambda: "\ncpu    proc" in str(info.content), 30, "the cpu line in the details")
    finally:
        control.stop()
        thread.join(30)


def test_the_cli_prints_the_device_line(tiny_corpus, tmp_path, capsys):
    from rnn_playground.tui.cli.main import main
    code = main(["train", "--corpus", str(tiny_corpus), "--minutes", str(2 / 60), "--system-every", "0.2",
                 "--runs-dir", str(tmp_path / "runs"), "--hidden", "16", "--embed", "8", "--batch", "4",
                 "--seq", "16", "--val-seconds", "0", "--sample-chars", "0", "--device", "cpu", "--no-amp"])
    assert code == 0
    err = capsys.readouterr().err
    # Not a line per reading: the first as soon as it is read, then one a minute.
    assert err.count("cpu    proc ") == 1, err

"""Sweeps: a grid of tiny models trained as real headless runs on the CPU, stopped, resumed, refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnn_playground.core.checkpoint import read_metadata
from rnn_playground.core.runs import read_metrics, read_status
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.sweep import SWEEP_FILE, SweepSpec, open_sweep, sweep_groups

from .tui_helpers import (
    Internals,
    make_app,
    pinned_app,
    press,
    screen_text,
    shows,
    type_into,
    wait_for,
    write_char_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--embed", "8", "--layers", "1", "--batch", "4", "--seq", "16", "--sample-chars", "0", "--no-amp",
        "--val-seconds", "0", "--system-every", "0"]


def sweep_command(corpus, runs_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rnn_playground.tui", "sweep", "--corpus", str(corpus), "--runs-dir", str(runs_dir),
            "--devices", "cpu", *TINY, *args]


def sweep_file(runs_dir: Path, name: str) -> dict:
    return json.loads((runs_dir / "sweeps" / name / SWEEP_FILE).read_text())


async def test_a_2x2_sweep_runs_every_point_to_the_end_and_is_grouped_on_the_runs_screen(tiny_corpus, tmp_path,
                                                                                        deterministic):
    runs_dir = tmp_path / "runs"
    result = subprocess.run(sweep_command(tiny_corpus, runs_dir, "--hidden", "8,16", "--lr", "1e-3,3e-3", "--steps",
                                          "6", "--val-every", "6", "--per-device", "2", "--name", "grid"),
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    data = sweep_file(runs_dir, "grid")
    assert data["grid"] == {"hidden": [8, 16], "lr": [0.001, 0.003]}
    assert [(r["name"], r["settings"], r["state"]) for r in data["runs"]] == [
        ("grid-001", {"hidden": 8, "lr": 0.001}, "finished"), ("grid-002", {"hidden": 8, "lr": 0.003}, "finished"),
        ("grid-003", {"hidden": 16, "lr": 0.001}, "finished"), ("grid-004", {"hidden": 16, "lr": 0.003}, "finished")]
    for run in data["runs"]:  # each a normal run folder, with its own settings
        status = read_status(runs_dir / run["name"])
        assert status["state"] == "finished" and status["step"] == 6 == run["step"]
        assert (status["config"]["hidden"], status["config"]["lr"]) == (run["settings"]["hidden"],
                                                                        run["settings"]["lr"])
        assert Path(run["folder"]) == (runs_dir / run["name"]).resolve()
    best = min(data["runs"], key=lambda r: r["best_val_loss"])
    assert f"Best: {best['name']} (val" in result.stderr
    assert "started grid-004 on cpu: --hidden 16, --lr 0.003" in result.stderr
    groups = sweep_groups(runs_dir)
    assert groups == {r["name"]: ("grid", r["name"] == best["name"]) for r in data["runs"]}

    again = subprocess.run(sweep_command(tiny_corpus, runs_dir, "--hidden", "8,16", "--lr", "1e-3,3e-3", "--steps",
                                         "6", "--val-every", "6", "--name", "grid"),
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "4 runs kept as they were" in again.stderr and "started" not in again.stderr

    # The Runs screen lists the sweep's runs together, in grid order, its best starred, even when a run of
    # no sweep was updated between them.
    long_ago = time.time() - 86_400
    for path in (runs_dir / "grid-001").iterdir():
        os.utime(path, (long_ago, long_ago))
    lone = write_char_checkpoint(runs_dir / "lone-otter")
    for path in lone.iterdir():  # listed by time it stands between grid-001 and the others
        os.utime(path, (long_ago + 3600, long_ago + 3600))
    app = pinned_app(mode="runs", runs_dir=runs_dir)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.infos) == 5, what="the runs")
        await pilot.pause()
        assert [info.name for info in screen.infos] == ["grid-001", "grid-002", "grid-003", "grid-004", "lone-otter"]
        table = screen.query_one("#runs-table")
        assert [str(cell) for cell in table.get_column("sweep")] == [
            "grid ★" if r["name"] == best["name"] else "grid" for r in data["runs"]] + [""]
        assert "sweep" in screen_text(app)
        # M marks the whole sweep of the selected run (not the lone run), and v overlays its runs.
        await pilot.press("M")
        assert sorted(path.name for path in screen.marked) == ["grid-001", "grid-002", "grid-003", "grid-004"]
        await pilot.press("v")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen", what="the comparison")
        await wait_for(pilot, lambda: all(name in screen_text(app) for name in ("grid-001", "grid-004")),
                       what="the sweep's runs in the legend")


def test_an_interrupted_sweep_stops_its_runs_with_checkpoints_and_resumes_them(tiny_corpus, tmp_path):
    runs_dir = tmp_path / "runs"
    command = sweep_command(tiny_corpus, runs_dir, "--hidden", "8,12", "--steps", "3000", "--val-every", "100000",
                            "--log-every", "1", "--name", "cut")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sweep = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = runs_dir / "cut-001"
    deadline = time.time() + 90
    while time.time() < deadline and sum(r.get("event") == "step" for r in read_metrics(first)[0]) < 3:
        time.sleep(0.1)
    sweep.send_signal(signal.SIGINT)  # to the sweep alone: the runs, in their own sessions, hear it from it
    _, err = sweep.communicate(timeout=90)
    assert sweep.returncode == 0, err
    data = sweep_file(runs_dir, "cut")
    assert [r["state"] for r in data["runs"]] == ["stopped", "queued"], err
    stopped_at = read_metadata(first / "last.safetensors")["progress"]["step"]
    assert 0 < stopped_at < 3000 and read_status(first)["state"] == "stopped"
    assert "run the same command again to resume" in err

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert [r["state"] for r in sweep_file(runs_dir, "cut")["runs"]] == ["finished", "finished"]
    records, _ = read_metrics(first)
    starts = [i for i, r in enumerate(records) if r.get("event") == "started"]
    assert len(starts) == 2  # trained twice in one folder: resumed, not started over
    resumed_steps = [r["step"] for r in records[starts[1]:] if r.get("event") == "step"]
    assert resumed_steps[0] == stopped_at + 1 and resumed_steps[-1] == 3000
    assert read_status(first)["step"] == 3000 and read_status(runs_dir / "cut-002")["step"] == 3000


def test_a_run_that_fails_is_marked_failed_with_its_message_while_the_rest_finish(tiny_corpus, tmp_path):
    runs_dir = tmp_path / "runs"
    missing = tmp_path / "no-such-corpus.txt"
    command = [sys.executable, "-m", "rnn_playground.tui", "sweep", "--corpus", f"{tiny_corpus},{missing}",
               "--hidden", "8", "--runs-dir", str(runs_dir), "--devices", "cpu", *TINY, "--steps", "4",
               "--val-every", "4", "--name", "mixed"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    good, bad = sweep_file(runs_dir, "mixed")["runs"]
    assert good["state"] == "finished" and good["step"] == 4
    assert bad["state"] == "failed" and str(missing) in bad["message"] and "\n" not in bad["message"]
    assert f"failed mixed-002 on cpu: {bad['message']}" in " ".join(result.stderr.split())
    assert "--retry-failed" in result.stderr

    kept = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 1 and "started" not in kept.stderr  # failed runs wait for --retry-failed
    retried = subprocess.run([*command, "--retry-failed"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "started mixed-002" in retried.stderr and "started mixed-001" not in retried.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--devices", "cpu,cpu"], "--devices cpu,cpu lists cpu twice"),
    (["--devices", "tpu"], "--devices must name a device of this machine: Unknown device 'tpu'"),
    (["--devices", "cuda:7"], "--devices must name a device of this machine: Device 'cuda:7' is not available"),
    (["--devices", ""], "--devices is empty"),
    (["--devices", "cpu,"], "--devices cpu, has an empty name between commas"),
    (["--per-device", "0"], "--per-device must be at least 1"),
    (["--lr", "1e-3,,3e-3"], "--lr 1e-3,,3e-3 has an empty value between commas"),
    (["--hidden", ""], "--hidden is empty"),
    (["--hidden", "8,big"], "--hidden value 'big' (in --hidden 8,big) is not a whole number"),
    (["--lr", "1e-3,fast"], "--lr value 'fast' (in --lr 1e-3,fast) is not a number"),
    (["--lr", "1e-3,0.001"], "--lr 1e-3,0.001 lists 0.001 twice"),
    (["--hidden", "8,0"], "Grid point 2 (--hidden 0): --hidden must be at least 1, got 0."),
    (["--cell", "lstm,gruu"], "Grid point 2 (--cell gruu): --cell must be one of lstm, gru, rnn, got 'gruu'."),
    (["--dropout", "0.1,1.5", "--hidden", "8,16"], "Grid point 2 (--hidden 8, --dropout 1.5): --dropout must be in"),
])
def test_bad_input_is_refused_naming_flag_and_value_before_anything_starts(args, message, tiny_corpus, tmp_path,
                                                                           capsys):
    runs_dir = tmp_path / "runs"
    argv = ["sweep", "--corpus", str(tiny_corpus), "--runs-dir", str(runs_dir), "--devices", "cpu", *TINY, *args]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert not runs_dir.exists()  # nothing started, nothing written


def test_a_sweep_folder_of_another_sweep_is_refused_naming_what_differs(tiny_corpus, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    spec = SweepSpec.from_given({"hidden": "8,16", "corpus": str(tiny_corpus)})
    open_sweep(runs_dir, "mine", spec).save()
    argv = ["sweep", "--corpus", str(tiny_corpus), "--runs-dir", str(runs_dir), "--devices", "cpu", "--name", "mine"]
    assert main([*argv, "--hidden", "8,32"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Sweep mine" in err and "it has --hidden 8,16, this command --hidden 8,32" in err
    assert main([*argv, "--hidden", "8,16", "--lr", "1e-3"]) == 2
    assert "it has no --lr, this command --lr 0.001" in " ".join(capsys.readouterr().err.split())

    (runs_dir / "sweeps" / "stranger").mkdir()
    (runs_dir / "sweeps" / "stranger" / "notes.txt").write_text("not a sweep")
    assert main([*argv[:-1], "stranger", "--hidden", "8"]) == 2
    assert "holds no sweep.json: it is not a sweep's folder" in " ".join(capsys.readouterr().err.split())
    (runs_dir / "taken-001").mkdir()
    assert main([*argv[:-1], "taken", "--hidden", "8"]) == 2
    assert "Run folder" in capsys.readouterr().err
    assert not list(runs_dir.glob("*/*.safetensors"))


def test_a_dry_run_checks_everything_and_prints_each_runs_command_but_starts_nothing(tiny_corpus, tmp_path,
                                                                                      capsys):
    runs_dir = tmp_path / "runs"
    argv = ["sweep", "--corpus", str(tiny_corpus), "--runs-dir", str(runs_dir), "--devices", "cpu", "--hidden",
            "8,16", "--steps", "5", "--name", "plan", "--dry-run"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Sweep plan: 2 runs: hidden on cpu" in captured.err and "nothing started" in captured.err
    assert (f"rnn-playground train --hidden 16 --steps 5 --runs-dir {runs_dir.resolve()} --corpus {tiny_corpus} "
            "--devices cpu --name plan-002") in captured.out
    assert not runs_dir.exists()
    assert main([*argv, "--hidden", "0,16"]) == 2  # refused as a real sweep would be
    assert "Grid point 1 (--hidden 0)" in capsys.readouterr().err


def test_the_grid_is_the_product_of_the_lists_and_the_default_name_follows_the_settings():
    spec = SweepSpec.from_given({"hidden": "256,512", "lr": "1e-3,3e-3", "cell": "lstm,gru", "steps": "100"})
    assert spec.describe() == "8 runs: cell x hidden x lr"
    assert spec.points()[:2] == [{"cell": "lstm", "hidden": 256, "lr": 0.001},
                                 {"cell": "lstm", "hidden": 256, "lr": 0.003}]
    assert spec.fixed == (("steps", 100),)
    same = SweepSpec.from_given({"lr": "0.001, 0.003", "hidden": "256,512", "cell": "lstm,gru", "steps": "100"})
    assert same.default_name() == spec.default_name() != SweepSpec.from_given({"hidden": "256"}).default_name()
    assert SweepSpec.from_given({"hidden": "64"}).describe() == "1 run"
    # A setting's values parse as its flag does: --embed takes a size or onehot (0).
    assert SweepSpec.from_given({"embed": "64,onehot"}).points() == [{"embed": 64}, {"embed": 0}]


async def test_the_train_screen_starts_a_sweep_from_fields_listing_several_values(tmp_path, tiny_corpus):
    from .conftest import tiny_config

    runs_dir = tmp_path / "runs"
    config = tiny_config(tiny_corpus, hidden=8, layers=1, embed=8, batch=4, steps=5, val_every=5, sample_chars=0,
                         system_every=0.0)
    app = make_app(tmp_path, initial_config=config)
    async with app.run_test(size=(100, 30)) as pilot:
        form = app.screen.form
        await wait_for(pilot, lambda: form.corpus_check is not None, 20, "corpus check")
        await type_into(pilot, "#hidden", "8,12")
        await type_into(pilot, "#lr", "0.01,fast")
        await wait_for(pilot, lambda: "lr" in form.errors, 10, "the lr error")
        assert "lr value 'fast' (in lr 0.01,fast) is not a number" in form.errors["lr"]
        await type_into(pilot, "#lr", "0.01")
        await shows(pilot, "New sweep · 2 runs: hidden")
        await press(pilot, "enter")
        await wait_for(pilot, lambda: app.screen.sweeps, 10, "the sweep to start")
        assert any("Sweep started" in str(n.title) for n in Internals.notifications(app))
        assert app.screen.sweeps[0].wait(timeout=120) == 0
    [folder] = (runs_dir / "sweeps").iterdir()
    data = sweep_file(runs_dir, folder.name)
    assert data["grid"] == {"hidden": [8, 12]} and data["fixed"]["lr"] == 0.01 and data["fixed"]["steps"] == 5
    assert [(r["settings"], r["state"]) for r in data["runs"]] == [({"hidden": 8}, "finished"),
                                                                 ({"hidden": 12}, "finished")]
    assert read_status(runs_dir / f"{folder.name}-002")["config"]["hidden"] == 12


def test_the_command_the_app_starts_describes_the_same_sweep():
    from rnn_playground.core.config import TrainConfig
    from rnn_playground.tui.cli.main import build_parser
    from rnn_playground.tui.viewmodel.sweep import form_sweep, sweep_command, sweep_devices, sweepable_fields

    spec, errors = form_sweep({"hidden": "8,16", "lr": "0.01,0.02"},
                              TrainConfig(hidden=8, lr=0.01, steps=5, amp=False, cell="gru"), "cpu")
    assert errors == {} and spec.describe() == "4 runs: hidden x lr"
    assert sweep_devices("cpu,cpu") == ("cpu", 2) and sweep_devices("cuda:0,cuda:1") == ("cuda:0,cuda:1", 1)
    args = build_parser().parse_args(sweep_command(spec, "cpu", 2, "/runs", "mine")[3:])
    assert SweepSpec.from_given({f.name: getattr(args, f.name) for f in sweepable_fields()}) == spec
    assert (args.devices, args.per_device, args.runs_dir, args.name) == ("cpu", 2, "/runs", "mine")
    assert form_sweep({"hidden": "8,0"}, TrainConfig(), "cpu") == (
        None, {"form": "Grid point 2 (--hidden 0): --hidden must be at least 1, got 0."})

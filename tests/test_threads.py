"""CPU threads: the --threads flag of train, series train and sample, the automatic choice, the app's field."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnn_playground.core.device import TWO_THREADS_FROM_WORK, check_threads, default_threads, step_work, usable_cpus
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.runs import read_status
from rnn_playground.core.sampling import Sampler, SampleSettings
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.settings import check_settings, config_form_values
from tests.conftest import tiny_config

TINY_FLAGS = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch", "4", "--seq", "8", "--sample-chars", "0",
              "--val-every", "5"]
CPUS = usable_cpus()
needs_two = pytest.mark.skipif(CPUS < 2, reason="needs 2 CPUs to tell a thread count from the default")


def test_the_automatic_choice_is_one_thread_unless_the_model_is_large_and_cores_are_free():
    small, large = step_work(8, 32), step_work(128, 512)
    assert small < TWO_THREADS_FROM_WORK <= large
    assert default_threads(small, cpus=8, load=0.0) == 1            # too little work to share
    assert default_threads(large, cpus=8, load=0.0) == 8            # idle: one thread per core
    assert default_threads(large, cpus=8, load=5.2) == 3            # the free cores only
    assert default_threads(large, cpus=2, load=1.0) == 1            # a busy neighbour on one of two cores
    assert default_threads(large, cpus=2, load=9.0) == 1            # everything busy
    assert default_threads(large, cpus=1, load=0.0) == 1
    assert default_threads(large, cpus=8, load=0.0, device_type="cuda") == 1  # the CPU only feeds the GPU
    assert default_threads(large, cpus=8, load=0.0, reserve=1) == 7  # a core kept for the app's UI
    assert default_threads(large, cpus=2, load=0.0, reserve=1) == 1  # on two cores: one trains, one for the UI
    assert default_threads(large, cpus=8, load=5.2, reserve=1) == 2


@pytest.mark.parametrize("bad", [0, -1, CPUS + 1, 10**9, True, 2.5, "2"])
def test_a_thread_count_outside_1_to_the_cpus_is_refused_naming_the_flag(bad):
    with pytest.raises(ConfigError, match=rf"^--threads must be a whole number from 1 to {CPUS} .*got {bad}\."):
        check_threads(bad)
    check_threads(1)
    check_threads(CPUS)


@needs_two
def test_a_run_trains_on_the_threads_asked_for_and_records_them(tiny_corpus, tmp_path):
    trainer = Trainer(tiny_config(tiny_corpus, steps=3, threads=2, runs_dir=str(tmp_path / "runs")))
    assert torch.get_num_threads() == 1  # the test's own setting (conftest)
    seen = set()
    for event in trainer.run():
        seen.add(torch.get_num_threads())  # between steps, in the thread running the loop
        if event.kind == "started":
            assert event.threads == 2
    assert seen == {2}
    assert torch.get_num_threads() == 1  # restored when the run ends
    assert read_status(trainer.run_dir)["threads"] == 2


def test_a_run_without_threads_uses_the_automatic_choice(tiny_corpus, tmp_path):
    trainer = Trainer(tiny_config(tiny_corpus, steps=2, runs_dir=str(tmp_path / "runs")))
    assert trainer.threads == 1  # a tiny model: one thread whatever the load
    list(trainer.run())
    assert read_status(trainer.run_dir)["threads"] == 1


def test_every_command_refuses_a_bad_thread_count_with_exit_2(tiny_corpus, tiny_run, tmp_path, capsys):
    runs = tmp_path / "cli-runs"
    commands = [["train", "--corpus", str(tiny_corpus), *TINY_FLAGS, "--steps", "2", "--runs-dir", str(runs)],
                ["series", "train", "--steps", "2", "--runs-dir", str(runs)],
                ["sample", str(tiny_run), "--length", "5"]]
    for command in commands:
        for bad in ("0", "-3", str(CPUS + 1)):
            assert main([*command, "--threads", bad]) == 2, (command, bad)
            captured = capsys.readouterr()
            err = " ".join(captured.err.split())
            assert f"error: --threads must be a whole number from 1 to {CPUS}" in err and f"got {bad}." in err
            assert "Traceback" not in err and not captured.out  # nothing sampled either
    assert not runs.exists()  # refused before anything was written


def test_a_non_number_is_refused_by_the_parser_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--threads", "many"])
    assert exit_.value.code == 2
    assert "--threads" in capsys.readouterr().err


@needs_two
def test_train_and_series_train_record_the_threads_given(tiny_corpus, tmp_path, capsys):
    runs = tmp_path / "cli-runs"
    assert main(["train", "--corpus", str(tiny_corpus), *TINY_FLAGS, "--steps", "2", "--threads", "2",
                 "--name", "c", "--runs-dir", str(runs)]) == 0
    assert read_status(runs / "c")["threads"] == 2
    assert main(["series", "train", "--steps", "2", "--threads", "2", "--name", "s", "--runs-dir", str(runs)]) == 0
    assert read_status(runs / "s")["threads"] == 2
    # Resuming keeps the setting unless given again.
    assert main(["train", "--resume", str(runs / "c"), "--steps", "3"]) == 0
    assert read_status(runs / "c")["threads"] == 2
    assert main(["train", "--resume", str(runs / "c"), "--steps", "4", "--threads", "1"]) == 0
    assert read_status(runs / "c")["threads"] == 1


@needs_two
def test_sampling_streams_on_its_threads(tiny_run, capsys):
    sampler = Sampler.from_checkpoint(tiny_run, "cpu", threads=2)
    seen = set()
    for _ in sampler.stream(SampleSettings(length=5, seed=1)):
        seen.add(torch.get_num_threads())
    assert seen == {2} and torch.get_num_threads() == 1
    assert Sampler.from_checkpoint(tiny_run, "cpu").threads == 1  # automatic: one character is little work
    assert main(["sample", str(tiny_run), "--length", "5", "--threads", "2"]) == 0
    assert "2 threads" in capsys.readouterr().err


def test_the_form_takes_auto_or_a_thread_count():
    def check(text):
        return check_settings({"threads": text}, budget_kind="steps", budget="10")

    assert check("auto").config.threads is None and check("").config.threads is None
    assert check("1").config.threads == 1
    assert "threads must be auto or a whole number" in check("two").errors["threads"]
    assert "--threads must be a whole number from 1" in check("0").errors["threads"]
    assert config_form_values({"threads": None})["threads"] == "auto"
    assert config_form_values({"threads": 2})["threads"] == "2"


# --------------------------------------------------------------------------- the app

APP_THREADS = min(2, CPUS)


@pytest.mark.timeout(120)
async def test_the_train_forms_threads_field_reaches_the_run(tmp_path, tiny_corpus):
    from tests.conftest import long_config
    from tests.tui_helpers import make_app, type_into, wait_for
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, steps=3))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#threads").value == "auto"
        await type_into(pilot, "#threads", "0")
        await pilot.pause()
        assert "threads must be a whole number from 1" in str(app.screen.query_one("#err-threads").content)
        await pilot.press("s")
        assert not app.session.active  # refused: the error is marked under the field
        await type_into(pilot, "#threads", str(APP_THREADS))
        await wait_for(pilot, lambda: not app.screen.query_one("#form").errors, 20, "a valid form")
        app.screen.start()
        await wait_for(pilot, lambda: app.session.snapshot.status in ("finished", "error"), 60, "the run")
        assert read_status(Path(app.session.snapshot.run_dir))["threads"] == APP_THREADS
        assert app.session.snapshot.config["threads"] == APP_THREADS
        assert app.session.trainer.reserve_cores == 1  # an automatic choice would leave the UI a core


@pytest.mark.timeout(120)
async def test_the_series_screens_threads_field_reaches_the_run(tmp_path):
    from rnn_playground.tui.app.screens.series import SeriesScreen
    from tests.tui_helpers import Host, wait_for
    screen = SeriesScreen(steps="3", hidden="8", threads="many")
    async with Host(screen, "series.tcss", tmp_path / "runs").run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        assert not screen.running
        assert "threads must be auto or a whole number" in screen.query_one("#series-error").content.plain
        screen.query_one("#series-threads").value = str(APP_THREADS)
        await pilot.pause()
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running and screen.snapshot.status == "finished", 60, "the run")
        assert read_status(Path(screen.snapshot.run_dir))["threads"] == APP_THREADS


def test_the_engine_makes_openmp_workers_sleep_unless_told_otherwise(tmp_path):
    """Set before torch loads (core's package import), so the OpenMP runtime sees it; a user's choice stays."""
    import os
    import subprocess
    import sys
    probe = "import core.trainer, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["passive", "True"], done.stderr
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**env, "OMP_WAIT_POLICY": "active"})
    assert done.stdout.split() == ["active", "True"], done.stderr

"""Run folders under faults and hostile input: one writer per run (a real OS lock between real
processes), names that stay inside the runs folder, temporaries of killed writers, unusable run.json."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnn_playground.core import runs
from rnn_playground.core.errors import RunBusyError, RunFolderError
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli.main import main

from .conftest import run_to_end, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch", "4", "--seq", "8", "--sample-chars", "0",
              "--device", "cpu", "--no-amp"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rnn_playground.tui", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def start_training(tiny_corpus: Path, runs_dir: Path, name: str) -> subprocess.Popen:
    """A real `train` process that keeps training (and saving every 5 steps) until killed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(tiny_corpus),
                             "--steps", "10000000", "--name", name, "--runs-dir", str(runs_dir), "--val-every", "5",
                             *TINY_FLAGS],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def live_run(tiny_corpus, tmp_path):
    """A run being trained by another process, with a checkpoint saved; yields (process, run folder)."""
    runs_dir = tmp_path / "runs"
    proc = start_training(tiny_corpus, runs_dir, "busy")
    run_dir = runs_dir / "busy"
    try:
        wait_until(lambda: (run_dir / runs.LAST).exists() or proc.poll() is not None, 90, "a first checkpoint")
        assert proc.poll() is None, proc.stderr.read()
        yield proc, run_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stderr.close()


def started_events(run_dir: Path) -> int:
    records, _ = runs.read_metrics(run_dir)
    return sum(1 for r in records if r.get("event") == "started")


def test_a_second_writer_and_a_resume_of_a_live_run_are_refused_naming_the_writer(live_run, tiny_corpus):
    proc, run_dir = live_run
    second = cli("train", "--corpus", str(tiny_corpus), "--steps", "5", "--name", "busy",
                 "--runs-dir", str(run_dir.parent), *TINY_FLAGS)
    resumed = cli("train", "--resume", str(run_dir), "--steps", "100000")
    for result in (second, resumed):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        message = " ".join(result.stderr.split())
        assert f"process {proc.pid} on {socket.gethostname()}" in message
        assert "one writer" in message and "--resume" in message
    assert proc.poll() is None  # the writer trains on, alone
    assert started_events(run_dir) == 1
    assert runs.writer_of(run_dir).pid == proc.pid


def test_a_killed_writer_leaves_the_run_free_and_not_live_even_when_its_pid_is_reused(live_run):
    proc, run_dir = live_run
    assert [info.live for info in runs.list_runs(run_dir.parent)] == [True]
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert runs.read_status(run_dir)["state"] == "running"  # what kill -9 leaves behind
    # A pid reused by a live process (this one) must not make it look live: the lock decides.
    runs.write_status(run_dir, pid=os.getpid(), host=socket.gethostname())
    assert not runs.is_live(run_dir) and runs.writer_of(run_dir) is None
    listing = cli("runs", str(run_dir.parent))
    assert listing.returncode == 0 and "busy" in listing.stdout and "live" not in listing.stdout
    # ...and the run can be continued at once.
    resumed = cli("train", "--resume", str(run_dir), "--steps", "3", "--val-every", "100")
    assert resumed.returncode == 0, resumed.stderr
    assert runs.read_status(run_dir)["state"] == "finished"


def test_two_trainers_in_one_process_cannot_share_a_run(tiny_corpus, tmp_path):
    config = tiny_config(tiny_corpus, steps=4, run_name="shared", runs_dir=str(tmp_path / "runs"))
    first = Trainer(config)
    with pytest.raises(RunBusyError, match=f"process {os.getpid()} on"):
        Trainer(config)
    with pytest.raises(RunBusyError):
        runs.RunLock.acquire(first.run_dir)
    run_to_end(first)  # the end of run() lets go of the folder
    assert not runs.is_live(first.run_dir)
    resumed = Trainer.resume(first.run_dir, steps=6)
    assert runs.is_live(first.run_dir)
    run_to_end(resumed)
    assert not runs.is_live(first.run_dir)


def test_a_trainer_that_fails_to_build_lets_go_of_its_folder(tmp_path):
    config = tiny_config(tmp_path / "no-such-corpus.txt", run_name="failed", runs_dir=str(tmp_path / "runs"))
    with pytest.raises(Exception, match="no-such-corpus"):
        Trainer(config)
    assert not runs.is_live(tmp_path / "runs" / "failed")
    runs.RunLock.acquire(tmp_path / "runs" / "failed").release()


def test_a_series_run_holds_the_lock_too(tmp_path):
    from rnn_playground.core.series import SeriesConfig, new_series_trainer, resume_series
    config = SeriesConfig(signal="sine", length=400, steps=4, val_every=2, hidden=8, batch=4, seq=16, device="cpu",
                          run_name="wave", runs_dir=str(tmp_path / "runs"))
    trainer = new_series_trainer(config)
    with pytest.raises(RunBusyError):
        new_series_trainer(config)
    run_to_end(trainer)
    resumed = resume_series(trainer.run_dir, steps=6)
    with pytest.raises(RunBusyError):
        resume_series(trainer.run_dir, steps=8)
    run_to_end(resumed)
    assert not runs.is_live(trainer.run_dir)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["../..", "..", ".", "/tmp/elsewhere", "a/b", ".hidden", "", "x" * 101, "tab\there"])
def test_a_run_name_is_one_safe_folder_name(tiny_corpus, tmp_path, name, capsys):
    runs_dir = tmp_path / "deep" / "runs"
    code = main(["train", "--corpus", str(tiny_corpus), "--steps", "2", "--name", name, "--runs-dir", str(runs_dir),
                 *TINY_FLAGS])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "cannot be used: a run name is a single folder name" in err
    assert not (tmp_path / "deep").exists() and not Path("/tmp/elsewhere").exists()


def test_safe_run_names_are_accepted():
    for name in ("brisk-otter", "run_2.v1", "A1"):
        assert runs.check_run_name(name) == name


# --------------------------------------------------------------------------- temporaries of killed writers


def test_temporaries_of_a_dead_writer_go_when_the_run_is_opened_or_listed(tiny_run):
    leftovers = [tiny_run / ".last.safetensors.k3j_x9.tmp", tiny_run / ".run.json.abc.tmp"]
    foreign = tiny_run / ".notes.tmp"  # not something a run writes: left alone
    foreign.write_text("mine")
    size_without = sum(p.stat().st_size for p in tiny_run.iterdir() if p.is_file() and p.name != runs.LOCK)
    with runs.RunLock.acquire(tiny_run):  # a live writer: its temporaries are its own business
        for path in leftovers:
            path.write_bytes(b"\0" * 50_000)
        assert runs.run_info(tiny_run).live and all(p.exists() for p in leftovers)
    info = runs.run_info(tiny_run)  # the writer is gone: they are garbage, and not counted
    assert not info.live and not any(p.exists() for p in leftovers) and foreign.exists()
    assert info.size_bytes == size_without
    for path in leftovers:
        path.write_bytes(b"\0")
    runs.RunLock.acquire(tiny_run).release()  # opening the run to write removes them too
    assert not any(p.exists() for p in leftovers)


def test_a_live_writers_temporaries_coming_and_going_never_break_a_listing(tiny_run):
    """A writer's temporary can be renamed into place between the listing of the folder and its stat (CI
    caught the app's pause failing so). Every listing must still answer, with the live run's real files."""
    import threading

    from rnn_playground.core.checkpoint import atomic_writer
    done = threading.Event()

    def churn():  # what a training run does to run.json, as fast as it can
        while not done.is_set():
            with atomic_writer(tiny_run / "scratch.json") as handle:
                handle.write(b"{}")

    with runs.RunLock.acquire(tiny_run):
        writer = threading.Thread(target=churn)
        writer.start()
        try:
            infos = [runs.run_info(tiny_run) for _ in range(3000)]
        finally:
            done.set()
            writer.join()
    assert all(info is not None and info.live and info.size_bytes > 0 for info in infos)


# --------------------------------------------------------------------------- unusable run.json


BAD_STATUS = {
    "a JSON list": ("[1, 2, 3]", "holds a JSON list"),
    "a non-numeric step": (json.dumps({"state": "finished", "step": "lots"}), 'step that is not a number ("lots")'),
    "broken JSON": ('{"state": "fin', "not valid JSON"),
    "a numeric state": (json.dumps({"state": 3}), "state that is not text"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATUS))
def test_one_bad_run_json_is_listed_as_unreadable_and_the_others_normally(tiny_corpus, tmp_path, case):
    runs_dir = tmp_path / "runs"
    for name in ("good", "bad"):
        run_to_end(Trainer(tiny_config(tiny_corpus, steps=2, val_every=2, run_name=name, runs_dir=str(runs_dir))))
    content, reason = BAD_STATUS[case]
    (runs_dir / "bad" / runs.STATUS).write_text(content)
    infos = {info.name: info for info in runs.list_runs(runs_dir)}
    assert set(infos) == {"good", "bad"}
    assert infos["good"].problem is None and infos["good"].step == 2
    assert reason in infos["bad"].problem
    assert infos["bad"].step == 2  # what the checkpoint still tells
    result = cli("runs", str(runs_dir))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    out = " ".join(result.stdout.split())
    assert "good" in out and "bad" in out and "unreadable" in out and reason in out


def test_a_run_json_alone_and_unusable_is_still_listed(tmp_path):
    run_dir = tmp_path / "runs" / "orphan"
    run_dir.mkdir(parents=True)
    (run_dir / runs.STATUS).write_text("[]")
    [info] = runs.list_runs(tmp_path / "runs")
    assert info.name == "orphan" and "holds a JSON list" in info.problem


# --------------------------------------------------------------------------- the app


async def test_the_app_says_a_run_is_busy_instead_of_starting_and_lists_a_bad_run(tiny_run, tmp_path):
    """A run another process took after the Runs screen listed it: the Train screen says who holds
    it instead of starting. A folder with a bad run.json is listed as unreadable, beside the others."""
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    from tests.tui_helpers import Internals, make_app, press, screen_text, wait_for
    bad = tiny_run.parent / "bad"
    bad.mkdir()
    (bad / runs.STATUS).write_text('["not", "a", "status"]')
    os.utime(bad / runs.STATUS, (time.time() - 3600, time.time() - 3600))  # listed second
    app = make_app(tmp_path, runs_dir=tiny_run.parent, mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.infos) == 2, 20, "runs")
        runs_screen = app.screen
        assert [info.name for info in runs_screen.infos] == ["tiny", "bad"]
        await wait_for(pilot, lambda: "unreadable" in screen_text(app), 5, "the bad run marked")
        await wait_for(pilot, lambda: runs_screen.selected == tiny_run and runs_screen.details is not None, 10,
                       "selection")
        await press(pilot, "t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), 5, "train screen")
        await wait_for(pilot, lambda: app.screen.query_one("#form").resume_step == 40, 5, "resume mode")
        other = subprocess.Popen([sys.executable, "-c", "import sys, time; from core.runs import RunLock; "
                                  "lock = RunLock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)",
                                  str(tiny_run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout.readline().strip() == "held"
            app.screen.set_focus(None)
            await press(pilot, "s")
            await wait_for(pilot, lambda: any(f"process {other.pid} on" in str(n.message)
                                              for n in Internals.notifications(app)), 5, "the refusal")
            assert not app.train_controller.active and runs.read_status(tiny_run)["state"] == "finished"
        finally:
            other.kill()
            other.wait(10)
            other.stdout.close()


# --------------------------------------------------------------------------- filesystem faults
# Root ignores permission bits, and these tests run as root here. Each fault has a root-proof case: a
# path under a file (ENOTDIR), an immutable folder (chattr +i, which binds root too), /dev/full (ENOSPC).
# The permission-bit case runs the command without root's override (setpriv drops CAP_DAC_OVERRIDE).


def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def read_only(path: Path, how: str, request) -> list[str]:
    """Make `path` unwritable for the command; returns the prefix to run the command with."""
    if how == "immutable":
        if not _chattr("+i", path):
            pytest.skip("chattr +i is not available on this file system")
        request.addfinalizer(lambda: _chattr("-i", path))
        return []
    os.chmod(path, 0o555)
    request.addfinalizer(lambda: os.chmod(path, 0o755))
    if os.geteuid() != 0:
        return []
    if subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "true"],
                      capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop root's permission override here")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def cli_as(prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([*prefix, sys.executable, "-m", "rnn_playground.tui", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr.replace("error:", "")
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("command", [["train", "--corpus", "{corpus}"], ["series", "train", "--signal", "sine"]])
def test_a_runs_dir_that_is_a_file_is_one_sentence(tiny_corpus, tmp_path, command):
    blocker = tmp_path / "runs-file"
    blocker.write_text("not a folder")
    for runs_dir in (blocker, blocker / "below"):
        args = [a.format(corpus=tiny_corpus) for a in command]
        message = one_line_error(cli_as([], *args, "--runs-dir", str(runs_dir), "--name", "x", "--steps", "2",
                                        "--device", "cpu"))
        assert f"Cannot create the run folder {runs_dir / 'x'}: {blocker} is a file, not a folder" in message


@pytest.mark.parametrize("how", ["immutable", "mode bits"])
def test_a_read_only_runs_dir_is_refused_before_anything_loads(tiny_corpus, tmp_path, how, request):
    runs_dir = tmp_path / "ro-runs"
    runs_dir.mkdir()
    prefix = read_only(runs_dir, how, request)
    message = one_line_error(cli_as(prefix, "train", "--corpus", str(tiny_corpus), "--runs-dir", str(runs_dir),
                                    "--name", "x", "--steps", "2", *TINY_FLAGS))
    assert f"Cannot create the run folder {runs_dir / 'x'}:" in message
    assert ("Permission denied" if how == "mode bits" else "Operation not permitted") in message
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize("how", ["immutable", "mode bits"])
def test_resuming_a_read_only_run_folder_is_one_sentence_and_changes_nothing(tiny_run, how, request):
    before = {p.name: p.read_bytes() for p in tiny_run.iterdir()}
    if how == "mode bits":
        for path in tiny_run.iterdir():
            os.chmod(path, 0o444)
    prefix = read_only(tiny_run, how, request)
    message = one_line_error(cli_as(prefix, "train", "--resume", str(tiny_run), "--steps", "60"))
    assert f"Cannot write to the run folder {tiny_run}:" in message and "Make it writable" in message
    assert {p.name: p.read_bytes() for p in tiny_run.iterdir()} == before


def test_a_metrics_file_that_cannot_be_written_ends_the_run_with_one_sentence(tiny_corpus, tmp_path):
    run_dir = tmp_path / "runs" / "full"
    run_dir.mkdir(parents=True)
    (run_dir / runs.METRICS).symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    result = cli_as([], "train", "--corpus", str(tiny_corpus), "--runs-dir", str(run_dir.parent), "--name", "full",
                    "--steps", "2", *TINY_FLAGS)
    message = one_line_error(result)
    assert f"Cannot write to {run_dir / runs.METRICS}: No space left on device" in message
    assert not runs.is_live(run_dir)


def test_a_status_that_cannot_be_written_is_one_sentence(tiny_run, request):
    if not _chattr("+i", tiny_run):
        pytest.skip("chattr +i is not available on this file system")
    request.addfinalizer(lambda: _chattr("-i", tiny_run))
    with pytest.raises(RunFolderError, match=f"Cannot write to {tiny_run / runs.STATUS}: Operation not permitted"):
        runs.write_status(tiny_run, state="stopped")


# --------------------------------------------------------------------------- unreadable corpus folders
# No root-proof way exists to make a folder unlistable: as root these run without the override (setpriv).


def unreadable(path: Path, request) -> list[str]:
    os.chmod(path, 0o000)
    request.addfinalizer(lambda: os.chmod(path, 0o755))
    return read_only_prefix()


def read_only_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    if subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "true"],
                      capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop root's permission override here")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unreadable_corpus_folder_says_so(tmp_path, request):
    from .conftest import TINY_TEXT
    corpus = tmp_path / "texts"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TINY_TEXT)
    prefix = unreadable(corpus, request)
    message = one_line_error(cli_as(prefix, "train", "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"),
                                    "--steps", "2", *TINY_FLAGS))
    assert f"Cannot read the corpus folder {corpus}: Permission denied" in message
    assert "no files matching" not in message


def test_an_unreadable_corpus_subfolder_is_skipped_with_a_warning_naming_it(tmp_path, request):
    from .conftest import TINY_TEXT
    corpus = tmp_path / "texts"
    (corpus / "open").mkdir(parents=True)
    (corpus / "open" / "a.txt").write_text(TINY_TEXT)
    (corpus / "locked").mkdir()
    (corpus / "locked" / "b.txt").write_text("hidden")
    prefix = unreadable(corpus / "locked", request)
    result = cli_as(prefix, "train", "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"), "--steps", "2",
                    *TINY_FLAGS)
    assert result.returncode == 0, result.stderr
    err = " ".join(result.stderr.split())
    assert f"warning: Skipped the corpus subfolder {corpus / 'locked'}: Permission denied." in err


def test_an_unreadable_run_folder_is_listed_as_such_and_an_unreadable_runs_folder_is_one_sentence(tiny_run, request):
    locked = tiny_run.parent / "locked"
    locked.mkdir()
    (locked / runs.STATUS).write_text(json.dumps({"state": "finished", "step": 3}))
    prefix = unreadable(locked, request)
    result = cli_as(prefix, "runs", str(tiny_run.parent))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    out = " ".join(result.stdout.split())
    assert "tiny" in out and "unreadable locked: run.json cannot be read (Permission denied)" in out
    os.chmod(locked, 0o755)
    unreadable(tiny_run.parent, request)
    message = one_line_error(cli_as(prefix, "runs", str(tiny_run.parent)))
    assert f"Cannot list the runs folder {tiny_run.parent}: Permission denied" in message


def test_resuming_or_sampling_a_run_behind_an_unsearchable_folder_is_one_sentence(tiny_run, request):
    prefix = unreadable(tiny_run.parent, request)
    for args in (["train", "--resume", str(tiny_run), "--steps", "60"], ["sample", str(tiny_run), "--length", "5"]):
        message = one_line_error(cli_as(prefix, *args))
        assert f"Cannot read {tiny_run}" in message and "Permission denied" in message


def test_a_status_file_that_cannot_be_replaced_ends_the_run_with_one_sentence(tiny_corpus, tmp_path):
    run_dir = tmp_path / "runs" / "blocked"
    (run_dir / runs.STATUS).mkdir(parents=True)  # os.replace onto a folder: EISDIR, root or not
    trainer = Trainer(tiny_config(tiny_corpus, steps=2, run_name="blocked", runs_dir=str(run_dir.parent)))
    events = run_to_end(trainer)
    assert [e.kind for e in events] == ["error"]
    assert events[0].message.startswith(f"Cannot write to {run_dir / runs.STATUS}: Is a directory.")
    assert not runs.is_live(run_dir)

"""End to end in a real pseudo-terminal: `rnn-playground` with no arguments opens the app; keys
switch screens; q quits with status 0 and the terminal is restored."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")]

CONTROL = re.compile(rb"\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|P[^\x1b]*\x1b\\"
                     rb"|[()][0-9A-Za-z]|[=>78])")


def command() -> list[str]:
    script = Path(sys.executable).with_name("rnn-playground")
    if script.exists():
        return [str(script)]
    found = shutil.which("rnn-playground")
    return [found] if found else [sys.executable, "-m", "rnn_playground.tui"]


class Terminal:
    """The app on the far side of a pty, 80x24, as a terminal emulator would run it."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.proc = subprocess.Popen(command(), stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.raw = b""

    def read(self, timeout: float = 0.1) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.raw += os.read(self.master, 1 << 16)
            except OSError:  # the app has gone and the pty is closed
                pass

    @property
    def text(self) -> str:
        return CONTROL.sub(b"", self.raw).decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = 60.0, since: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in CONTROL.sub(b"", self.raw[since:]).decode("utf-8", "replace"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{needle!r} never appeared; the terminal showed:\n{self.text[-3000:]}")
            self.read()

    def press(self, keys: bytes) -> int:
        mark = len(self.raw)
        os.write(self.master, keys)
        return mark

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)


def test_the_app_in_a_real_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TEXTUAL_DRIVER", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", RNN_PLAYGROUND_RUNS=str(tmp_path / "runs"), TEXTUAL_ANIMATIONS="none",
               RNN_PLAYGROUND_CACHE=str(tmp_path / "cache"))
    terminal = Terminal(tmp_path, env)
    try:
        terminal.wait_for("New run", timeout=90)  # the Train screen: the app is up
        terminal.wait_for("Start")
        mark = terminal.press(b"5")
        terminal.wait_for("No runs in", since=mark, timeout=20)
        mark = terminal.press(b"?")
        terminal.wait_for("Everywhere", since=mark, timeout=20)
        mark = terminal.press(b"q")  # closes the help
        terminal.wait_for("No runs in", since=mark, timeout=20)
        mark = terminal.press(b"1")
        terminal.wait_for("New run", since=mark, timeout=20)
        terminal.press(b"q")
        deadline = time.monotonic() + 30
        while terminal.proc.poll() is None and time.monotonic() < deadline:
            terminal.read()
        terminal.read(0.2)
        assert terminal.proc.returncode == 0, terminal.text[-2000:]
        assert b"\x1b[?1049h" in terminal.raw  # it took the alternate screen...
        assert terminal.raw.rfind(b"\x1b[?1049l") > terminal.raw.rfind(b"\x1b[?1049h")  # ...and gave it back
        assert b"\x1b[?25h" in terminal.raw[terminal.raw.rfind(b"\x1b[?1049l") - 200:]  # cursor shown again
    finally:
        terminal.close()


def start_tiny_training(tmp_path: Path) -> tuple[Terminal, Path]:
    """The app in a pty, with a tiny run started from the Train form and 3 steps into training:
    (the terminal, the run's folder)."""
    from .conftest import TINY_TEXT
    (tmp_path / "tiny.txt").write_text(TINY_TEXT)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TEXTUAL_DRIVER", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", RNN_PLAYGROUND_RUNS=str(tmp_path / "runs"), TEXTUAL_ANIMATIONS="none",
               RNN_PLAYGROUND_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    terminal = Terminal(tmp_path, env)
    try:
        terminal.wait_for("New run", timeout=90)
        terminal.wait_for("Start")
        # From the Start button, Tab twice reaches the corpus field (past the log); each field's
        # text is selected when Tab reaches it, so typing replaces it.
        terminal.press(b"\t\t")
        time.sleep(0.3)
        for key in [b"tiny.txt", b"\t", b"\t", b"16", b"\t", b"1", b"\t", b"8", b"\t", b"0", b"\t", b"8", b"\t",
                    b"16"]:
            terminal.press(key)  # corpus, (model), hidden, layers, embed, dropout, batch, seq: one key at a time
            time.sleep(0.15)
            terminal.read(0.05)
        mark = terminal.press(b"\r")  # Enter in a field starts
        terminal.wait_for("training", since=mark, timeout=60)
        run = None
        deadline = time.monotonic() + 60
        while run is None or not (run / "metrics.jsonl").exists() or \
                (run / "metrics.jsonl").read_text().count('"event": "step"') < 3:
            assert time.monotonic() < deadline, terminal.text[-3000:]
            terminal.read()
            runs = list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else []
            run = runs[0] if runs else None
    except BaseException:
        terminal.close()
        raise
    return terminal, run


def test_a_hangup_while_training_stops_the_run_and_saves(tmp_path):
    """The SSH connection drops (SIGHUP) while a run trains: the run stops at a step boundary,
    saves a checkpoint, and the process exits cleanly."""
    terminal, run = start_tiny_training(tmp_path)
    try:
        os.killpg(terminal.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while terminal.proc.poll() is None and time.monotonic() < deadline:
            terminal.read()
        assert terminal.proc.returncode == 0, terminal.text[-2000:]
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        stopped = [r for r in records if r["event"] == "stopped"]
        assert stopped and stopped[-1]["reason"] == "hangup"
        assert json.loads((run / "run.json").read_text())["state"] == "stopped"
        assert (run / "last.safetensors").exists()
        config = next(r for r in records if r["event"] == "started")["config"]
        shape = (config["hidden"], config["layers"], config["embed"], config["batch"], config["seq"])
        assert shape == (16, 1, 8, 8, 16)
    finally:
        terminal.close()


def test_a_terminal_that_vanishes_without_a_hangup_stops_the_run_and_saves(tmp_path):
    """The terminal's far end closes and no SIGHUP comes (the pty is not the app's controlling
    terminal, as under `setsid` or some multiplexers): reads of the tty see end-of-file and writes
    fail. The app takes the SIGHUP path: the run stops at a step boundary, saves, and the process
    exits, instead of spinning on the dead terminal forever."""
    terminal, run = start_tiny_training(tmp_path)
    try:
        os.close(terminal.master)
        terminal.master = os.open(os.devnull, os.O_RDONLY)  # for close() to close
        deadline = time.monotonic() + 60
        while terminal.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert terminal.proc.returncode == 0, "the app did not exit when its terminal vanished"
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        stopped = [r for r in records if r["event"] == "stopped"]
        assert stopped and stopped[-1]["reason"] == "hangup"
        assert json.loads((run / "run.json").read_text())["state"] == "stopped"
        assert (run / "last.safetensors").exists()
    finally:
        terminal.close()

"""Helpers for the Pilot tests, in one module: apps to test (the full app, a bare host for one screen,
the fixed apps of the pictures), fixed runs to show, keys and polling, the screen as text, and the check
for cut text. Textual's private API is reached in one place only: `Internals`, which says why."""

from __future__ import annotations

import io
import json
import math
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text
from textual.app import App
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Input

from rnn_playground.core import runs
from rnn_playground.core.checkpoint import save_checkpoint
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.device import DeviceInfo
from rnn_playground.core.events import CheckpointSaved, RunStarted, SampleEvent, StepEvent, ValidationEvent
from rnn_playground.tui.viewmodel.controller import RunController, RunState, RunUpdate
from rnn_playground.tui.viewmodel.monitor import RunMonitor

STYLES = Path(__file__).resolve().parents[1] / "tui" / "app" / "styles"
DEVICES = [DeviceInfo("cpu", "Test CPU (2 threads)", 16 * 2**30, 8 * 2**30)]


# --------------------------------------------------------------------------- Textual's private API


class Internals:
    """Every use of Textual's private API by the tests, each for something Pilot has no public way to do."""

    @staticmethod
    def send_key(app, event) -> None:
        """A key event into the app's driver, as a terminal would send it: Pilot.press waits for the
        whole app to go idle, which never happens while a training thread runs."""
        event.set_sender(app)
        app._driver.send_message(event)

    @staticmethod
    def key_name(character: str) -> str:
        """Textual's name of a key that types `character` ("?" -> "question_mark"), as Pilot finds it."""
        from textual.keys import _character_to_key
        return _character_to_key(character)

    @staticmethod
    def unicode_name(key: str) -> str:
        """The Unicode name of the character a key types, as Pilot finds it."""
        from textual.keys import REPLACED_KEYS, _get_unicode_name_from_key
        return _get_unicode_name_from_key(REPLACED_KEYS.get(key, key))

    @staticmethod
    def driver(app):
        """The driver, to watch what the app writes to the terminal (the clipboard's escape code)."""
        return app._driver

    @staticmethod
    def notifications(app) -> list:
        """The notifications on screen now, newest last: the app has no public list of them."""
        return list(app._notifications)

    @staticmethod
    def select_options(select) -> list[tuple]:
        """A Select's (label, value) options: Select has no public getter."""
        return list(select._options)

    @staticmethod
    def render_update(app):
        """The screen as the compositor draws it (with the screens under a modal one): the text a
        terminal shows, which no public API returns."""
        return app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)

    @staticmethod
    def widget_regions(screen) -> list:
        """(widget, its geometry on screen) for every widget the compositor placed."""
        return list(screen._compositor.full_map.items())


# --------------------------------------------------------------------------- apps


class Host(App):
    """A bare app hosting one screen with its stylesheet (the full app: make_app)."""

    def __init__(self, screen, stylesheet: str, runs_dir: Path | None = None) -> None:
        super().__init__(css_path=[STYLES / "app.tcss", STYLES / stylesheet])
        self._screen = screen
        if runs_dir is not None:
            self.runs_dir = runs_dir

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def make_app(tmp_path: Path, **kwargs):
    from rnn_playground.tui.app.shell import PlaygroundApp
    kwargs.setdefault("devices", DEVICES)
    kwargs.setdefault("runs_dir", tmp_path / "runs")
    return PlaygroundApp(**kwargs)


# --------------------------------------------------------------------------- keys, polling, the screen as text


async def press(pilot, *keys: str) -> None:
    """Key presses through the driver, as Pilot.press sends them, but waiting for the app to
    handle each one rather than for the CPU to go idle (a training thread keeps it busy)."""
    import unicodedata

    from textual import events
    app = pilot.app
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = Internals.key_name(key)
        try:
            char = unicodedata.lookup(Internals.unicode_name(key))
        except KeyError:
            char = key if len(key) == 1 else None
        Internals.send_key(app, events.Key(key, char))
        await pilot.pause(0.01)


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus a field, clear it from the keyboard (Home, then Ctrl+K deletes to the end) and type."""
    pilot.app.screen.set_focus(pilot.app.screen.query_one(selector))
    await pilot.pause(0.01)
    await press(pilot, "home", "ctrl+k", *text)


async def shows(pilot, text: str, timeout: float = 10.0) -> str:
    """Wait until the screen, as drawn, contains `text`."""
    return await wait_for(pilot, lambda: (screen := screen_text(pilot.app)) and text in screen and screen,
                          timeout, repr(text))


def screen_text(app) -> str:
    """The screen as plain text, exactly as it would be drawn."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(Internals.render_update(app))
    return console.export_text()


async def wait_for(pilot, predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll until `predicate()` is truthy and return it; fail with the screen's text on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)


async def wait(pilot, predicate) -> None:
    while not predicate():
        await pilot.pause(0.02)
    await pilot.pause()


# --------------------------------------------------------------------------- fixed runs and the apps of the pictures
# Deterministic: fixed files (contents, sizes, modification times), an injected clock and device list, timers
# off, and the live view fed a fixed sequence of the trainer's events.

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the app's clock in these tests
PICTURE_DEVICES = [DeviceInfo("cpu", "Test CPU (2 threads)", 16 * 2**30, 8 * 2**30),
           DeviceInfo("cuda:0", "Test GPU", 80 * 2**30, 79 * 2**30)]
VOCAB = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;()[]{}'\"=+-*/_#\n"))
SAMPLE = ("def read_config(path):\n    with open(path) as handle:\n        return json.load(handle)\n\n"
          "class Reader(object):\n    def __init__(self, stream):\n        self.stream = stream\n")


def pinned(**overrides) -> TrainConfig:
    """The settings the screens show, fixed here so a change of the engine's defaults does not
    change these pictures."""
    settings = dict(cell="lstm", hidden=512, layers=2, embed=64, dropout=0.25, batch=64, seq=100, lr=0.003,
                    seed=1234, minutes=None, steps=None, epochs=None, device="auto")
    settings.update(overrides)
    return TrainConfig(**settings)


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
        status.update(pid=os.getpid(), host=socket.gethostname(), run_id="0123456789abcdef")  # has the channel
        HELD_LOCKS.append(runs.RunLock.acquire(run))  # what makes it live: a writer holds its lock
    (run / runs.STATUS).write_text(json.dumps(status, indent=1, sort_keys=True))
    for path in run.iterdir():
        os.utime(path, (NOW - age, NOW - age))


def pinned_app(**kwargs):
    """The app the Train and Runs pictures show: fixed settings, clock and devices, no timers."""
    from rnn_playground.tui.app.shell import PlaygroundApp
    kwargs.setdefault("devices", PICTURE_DEVICES)
    kwargs.setdefault("runs_dir", Path("runs"))
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("watch_interval", 0)
    kwargs.setdefault("initial_config", pinned(corpus="tinyshakespeare", minutes=10.0))
    return PlaygroundApp(**kwargs)


def plain_app(**kwargs):
    """The app the Sample, Gates and Series pictures show: default settings, fixed clock and devices."""
    from rnn_playground.tui.app.shell import PlaygroundApp
    kwargs.setdefault("devices", DEVICES)
    kwargs.setdefault("runs_dir", Path("runs"))
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("watch_interval", 0)
    return PlaygroundApp(**kwargs)


async def settle_train(pilot) -> None:
    form = pilot.app.screen.query_one("#form")
    while form.corpus_check is None:
        await pilot.pause(0.05)
    await pilot.pause()


def feed_live_run(app) -> None:
    """Show a run in the live view as the Train run's controller would: the state after fixed events."""
    from rnn_playground.tui.viewmodel.controller import RunState
    monitor = RunMonitor()
    events, _, _ = events_of("brisk-otter", "lstm", 2, 512, 1600, "cpu (Test CPU (2 threads))", NOW - 800,
                             total=5000)
    for event in events:
        monitor.add(event)
    app._train_run_changed(RunState(monitor.snapshot(), "training", active=True))


CORPUS = ("The quick brown fox jumps over the lazy dog. \"Quoted words\" (and parens) follow.\n"
          "def f(x):\n    return [x, (x + 1), {'k': x}]\n") * 40


def write_char_checkpoint(run_dir: Path, *, cell: str = "lstm", hidden: int = 64, layers: int = 2,
                          seed: int = 3, step: int = 1200, corpus: str = "corpus.txt",
                          fingerprint: str = "0" * 64) -> Path:
    """A character model with fixed random weights, saved as the trainer saves one (`fingerprint`: its
    corpus's as stored; "real" stores the corpus file's own, so its text counts as unchanged)."""
    import torch

    from rnn_playground.core.config import TrainConfig
    from rnn_playground.core.corpus import Vocab
    from rnn_playground.core.model import CharRNN
    Path(corpus).write_text(CORPUS, encoding="utf-8")
    if fingerprint == "real":
        from rnn_playground.core.corpus import load_corpus
        fingerprint = load_corpus(corpus).fingerprint
    vocab = Vocab.from_text(CORPUS)
    config = TrainConfig(corpus=corpus, cell=cell, hidden=hidden, layers=layers, embed=16, dropout=0.0)
    torch.manual_seed(seed)
    model = CharRNN(config.model_config(len(vocab)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)  # livelier than a fresh initialisation
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    meta = {"kind": "char", "vocab": list(vocab.chars), "config": {**config.to_dict(), "model": model.config.to_dict()},
            "model": model.config.to_dict(), "progress": {"step": step}, "best_val_loss": 1.4321, "device": "cpu",
            "corpus": {"spec": corpus, "source": corpus, "fingerprint": fingerprint, "chars": len(CORPUS)}}
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run_dir / runs.LAST, tensors, meta)
    return run_dir


def series_run(root: Path, name: str) -> Path:
    """A real, tiny, finished series run (a CSV with a named target column)."""
    import numpy as np

    from rnn_playground.core.series import make_config, new_series_trainer
    csv = root.parent / "daily.csv"
    t = np.arange(300)
    csv.write_text("day,temperature,humidity\n" + "".join(
        f"{i},{20 + 3 * np.sin(i / 7):.4f},{50 + np.cos(i / 5):.4f}\n" for i in t))
    config = make_config(csv=str(csv), column="temperature", inputs="humidity", hidden=8, batch=2, seq=10,
                         steps=20, val_every=10, log_every=1, device="cpu", warmup=2, run_name=name,
                         runs_dir=str(root))
    trainer = new_series_trainer(config)
    for _ in trainer.run():
        pass
    return trainer.run_dir


# --------------------------------------------------------------------------- text a screen cuts
# Find text a screen cuts: for each widget on screen, the text it means to show (its full render,
# a table's labels and cells) against what its region of the screen really shows.
#
# Two kinds of cut are reported:
# - a token (a run of non-space characters: a word, a number, a key like `[t/T]`) of the intended
#   text that is not shown whole: cropped at the edge (`rank 1` for `rank 19`), ended by an
#   ellipsis, broken across two lines, or below the last line of a fixed-height widget;
# - a field of a list-like line (fields separated by two spaces or ` · `, as in
#   `temperature 0.80 [t/T]  top-k off [k/K]`) that fits on one line of the widget but is shown
#   split over two (`seed new each time` / `[s]`). Prose (no such separators) may wrap between words.
#
# Widgets that scroll their text on purpose (logs, the sample output, the help list, a text field
# longer than its box, a list), the Train screen's fixed sample preview, and pictures (sparklines,
# plots) are not checked: what is out of view there is a scroll away, not cut. The Gates text view
# lays out its own lines: its intended text is the slice of the text those lines cover.

FIELD_SEPARATOR = re.compile(r"\s{2,}| · ")
# Widgets whose content scrolls or is drawn rather than written.
SKIPPED = {"Log", "RichLog", "TextArea", "StreamText", "OptionList", "Sparkline", "PlotextPlot", "ScrollBar",
           "ScrollBarCorner", "Toast", "ToastRack", "Tooltip", "ProgressBar", "Bar", "PercentageStatus",
           "ETAStatus", "LoadingIndicator", "SelectOverlay"}

# A fixed box previewing the start of a longer text: the Train screen's latest sample.
PREVIEW_IDS = {"sample"}


def screen_cells(app) -> list[list[str]]:
    """The screen as rows of cells (a wide character fills its first cell, '' the second)."""
    update = Internals.render_update(app)
    rows = []
    for line in update.strips:
        cells: list[str] = []
        for segment in (segment for strip in line for segment in strip):
            if segment.control:
                continue
            for char in segment.text:
                width = cell_len(char)
                if width == 0:
                    if cells:
                        cells[-1] += char
                    continue
                cells.append(char)
                cells.extend([""] * (width - 1))
        rows.append(cells)
    return rows


def _plain(renderable) -> str | None:
    if isinstance(renderable, str):
        return renderable
    if isinstance(renderable, (Text, Content)):
        return renderable.plain
    return None


def intended_text(widget: Widget) -> str | None:
    """What the widget would show with room enough, or None when it is not checked."""
    if type(widget).__name__ in SKIPPED or any(type(a).__name__ in SKIPPED for a in widget.ancestors):
        return None
    if widget.id in PREVIEW_IDS:
        return None
    if type(widget).__name__ == "UnitText":  # lays out its own lines: the text of the lines it shows
        from rnn_playground.tui.app.widgets.unittext import layout_window
        from rnn_playground.tui.viewmodel.format import show_text_char
        ranges = layout_window(widget.text, widget.pos, widget.size.width, widget.size.height)
        if not ranges:
            return None
        shown = widget.text[ranges[0][0]:ranges[-1][1]]
        return "".join(show_text_char(ch) + ("\n" if ch == "\n" else "")
                       for ch in shown)
    if isinstance(widget, DataTable):
        labels = [column.label.plain for column in widget.ordered_columns]
        rows = []
        first = int(widget.scroll_y)
        visible = max(0, widget.scrollable_content_region.height - (1 if widget.show_header else 0))
        for row in widget.ordered_rows[first:first + visible]:
            rows.append("  ".join(_plain(cell) or str(cell) for cell in widget.get_row(row.key)))
        return "  ".join(labels) + "\n" + "\n".join(rows)
    if isinstance(widget, Input):
        if widget.value:
            return None  # a value longer than the field scrolls
        return widget.placeholder
    if widget.children:  # containers: their children are checked
        return None
    try:
        return _plain(widget.render())
    except Exception:  # noqa: BLE001 - a widget that cannot render outside its own refresh
        return None


def _scrolls(widget: Widget) -> bool:
    """Whether an ancestor of the widget can scroll it into view."""
    return any(getattr(a, "max_scroll_y", 0) > 0 or getattr(a, "max_scroll_x", 0) > 0 for a in widget.ancestors)


def _region_lines(cells: list[list[str]], region) -> list[str]:
    lines = []
    for y in range(region.y, region.bottom):
        row = cells[y] if 0 <= y < len(cells) else []
        lines.append("".join(row[region.x:region.right]))
    return lines


def _squash(text: str) -> str:
    return " ".join(text.split())


def cuts(app) -> list[str]:
    """Every cut on the app's current screen, one readable line each (empty: nothing is cut)."""
    cells = screen_cells(app)
    problems = []
    screen = app.screen
    for widget, geometry in Internals.widget_regions(screen):
        if not widget.is_mounted or widget is screen:
            continue
        visible = geometry.region.intersection(geometry.clip)
        if not visible.area:
            continue
        name = f"{type(widget).__name__}#{widget.id}" if widget.id else type(widget).__name__
        if visible != geometry.region and _scrolls(widget):
            continue  # partly scrolled out of view: a scroll away
        title = widget.border_title
        if title:
            title_text = _plain(title) or str(title)
            top = _squash("".join(_region_lines(cells, visible)[0:1]))
            for token in title_text.split():
                if token not in top.replace("─", " ").split():
                    problems.append(f"{name}: border title {title_text!r} shown as {top!r}")
                    break
        intended = intended_text(widget)
        if not intended or not intended.strip():
            continue
        content = widget.content_region.intersection(geometry.clip)
        if isinstance(widget, DataTable):
            content = widget.scrollable_content_region.intersection(geometry.clip)
        if not content.area:
            problems.append(f"{name}: {intended.strip()[:40]!r} has no room at all")
            continue
        shown_lines = _region_lines(cells, content)
        shown = Counter(" ".join(shown_lines).split())
        missing = Counter(intended.split()) - shown
        if missing:
            problems.append(f"{name}: not shown whole: {' '.join(missing.elements())!r}; "
                            f"shows {' | '.join(line.rstrip() for line in shown_lines)!r}")
            continue
        if isinstance(widget, DataTable):
            continue
        squashed_lines = [f" {_squash(line)} " for line in shown_lines]
        for line in intended.splitlines():
            fields = [f for f in FIELD_SEPARATOR.split(line.strip()) if f]
            if len(fields) < 2:
                continue
            for field in fields:
                field = _squash(field)
                if " " in field and cell_len(field) <= content.width and \
                        not any(f" {field} " in shown for shown in squashed_lines):
                    problems.append(f"{name}: {field!r} split over two lines; "
                                    f"shows {' | '.join(line.rstrip() for line in shown_lines)!r}")
    return problems


class Face:
    """What a face does, without Textual: the body runs in a thread; its updates queue up, and the test
    (the face's thread) hands them to the controller."""

    def __init__(self) -> None:
        self.updates: queue.Queue[RunUpdate] = queue.Queue()
        self.controller = RunController(self.launch, self.updates.put)

    def launch(self, body) -> None:
        threading.Thread(target=body, args=(lambda: False,), daemon=True).start()

    def until(self, predicate, timeout: float = 60.0, what: str = "condition") -> RunState:
        deadline = time.monotonic() + timeout
        while not predicate(self.controller.state):
            try:
                self.controller.receive(self.updates.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {what}: {self.controller.state.status}") from None
        return self.controller.state


# --------------------------------------------------------------------------- a run in another process

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--hidden", "16", "--embed", "8", "--batch", "4", "--seq", "16", "--val-every", "100000",
              "--val-seconds", "0", "--sample-chars", "10", "--device", "cpu", "--no-amp", "--threads", "1"]


def until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def records(run_dir: Path, event: str | None = None) -> list[dict]:
    found, _ = runs.read_metrics(run_dir)
    return [r for r in found if event is None or r["event"] == event]


def start_headless_run(tiny_corpus: Path, run_dir: Path) -> subprocess.Popen:
    """`rnn-playground train` in another process, with a budget the test ends; returns once it trains."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(tiny_corpus), "--steps", "1000000",
         "--name", run_dir.name, "--runs-dir", str(run_dir.parent), *TINY_FLAGS],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: records(run_dir, "step") or process.poll() is not None, what="the run's first steps")
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, process.stderr.read()
    return process


def hold_lock(run_dir: Path, run_id: str | None = "deaf") -> subprocess.Popen:
    """A process that holds a run's lock (so the run is live) and never reads its control channel; run_id None:
    a run.json without one, as a version without the control channel writes it."""
    channel = f", run_id={run_id!r}" if run_id is not None else ""
    code = ("import sys, time; from pathlib import Path; from rnn_playground.core import runs; "
            "lock = runs.RunLock.acquire(Path(sys.argv[1])); "
            f"runs.write_status(lock.run_dir, state='running'{channel}, step=0); "
            "print('ready', flush=True); time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def as_a_user_who_cannot_write(folder: Path) -> list[str]:
    """The command prefix that runs a process bound by the folder's permissions: none needed for a user the
    permissions bind; for root, setpriv without the capabilities that override them. Skips when neither."""
    if not os.access(folder, os.W_OK):
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("this user (root) can write a read-only folder and setpriv is missing, so the refusal "
                    "cannot be seen here")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]

"""Snapshot tests (pytest-textual-snapshot) of the Sample screen at 80x24 and 120x40.

Deterministic: the checkpoint is a fixed-seed model written as a file (no training), the seed is
fixed, the stream's clock is a counter, animations are off. Update with
`pytest tests/test_tui_sample_snapshots.py --snapshot-update` and look at the SVGs first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnn_playground.core.device import DeviceInfo

DEVICES = [DeviceInfo("cpu", "Test CPU (2 threads)", 16 * 2**30, 8 * 2**30)]
NOW = 1_767_225_600.0
CORPUS = ("The quick brown fox jumps over the lazy dog. \"Quoted words\" (and parens) follow.\n"
          "def f(x):\n    return [x, (x + 1), {'k': x}]\n") * 40

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)


class CountingClock:
    """Advances 0.4 ms each time it is read: the stream's timing, and so its chars/s, are fixed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.0004
        return self.now


def write_char_checkpoint(run_dir: Path, *, cell: str = "lstm", hidden: int = 64, layers: int = 2,
                          seed: int = 3, step: int = 1200, corpus: str = "corpus.txt") -> Path:
    """A character model with fixed random weights, saved as the trainer saves one."""
    import torch

    from rnn_playground.core import runs
    from rnn_playground.core.checkpoint import save_checkpoint
    from rnn_playground.core.corpus import Vocab
    from rnn_playground.core.model import CharRNN
    from rnn_playground.core.trainer import TrainConfig
    Path(corpus).write_text(CORPUS, encoding="utf-8")
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
            "corpus": {"spec": corpus, "source": corpus, "fingerprint": "0" * 64, "chars": len(CORPUS)}}
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run_dir / runs.LAST, tensors, meta)
    return run_dir


def make_app(**kwargs):
    from rnn_playground.tui.app.shell import PlaygroundApp
    kwargs.setdefault("devices", DEVICES)
    kwargs.setdefault("runs_dir", Path("runs"))
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("watch_interval", 0)
    return PlaygroundApp(**kwargs)


async def wait(pilot, predicate) -> None:
    while not predicate():
        await pilot.pause(0.02)
    await pilot.pause()


async def open_sample(pilot, run: Path):
    """Open `run` on the Sample screen of the app under test; the screen once its checkpoint is loaded."""
    from rnn_playground.tui.app.screens.sample import SampleScreen
    app = pilot.app
    app.open_run("sample", run)
    await wait(pilot, lambda: isinstance(app.screen, SampleScreen) and app.screen.checkpoint is not None)
    return app.screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_sample_screen(snap_compare, size, monkeypatch):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    monkeypatch.setattr(SampleScreen, "clock", CountingClock())
    run = write_char_checkpoint(Path("runs") / "brisk-otter")

    async def run_before(pilot):
        screen = await open_sample(pilot, run)
        screen.stream.seed, screen.stream.seed_fixed = 1234, True
        await pilot.press("p", *"def", "escape", "T", "T", "k", "k", "k", "k", "k", "L")
        await pilot.press("g")
        await wait(pilot, lambda: not screen.stream.streaming and screen.stream.generated)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_sample_screen_complete_as_you_type(snap_compare, monkeypatch):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    monkeypatch.setattr(SampleScreen, "clock", CountingClock())
    run = write_char_checkpoint(Path("runs") / "brisk-otter")

    async def run_before(pilot):
        screen = await open_sample(pilot, run)
        await pilot.press("a", *"The quick")
        # The continuation of the whole prime, not of a prefix typed before a pause in typing.
        await wait(pilot, lambda: screen.ghost.text and screen.ghost.prime == "The quick"
                   and screen._ghost_timer is None)
        pilot.app.clear_notifications()  # the toast from `a` fades on a timer: not part of the screen under test
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)

"""The Sample screen, driven by keys with Textual's Pilot, on a real tiny checkpoint: what appears
on screen is what core's sampler makes for the same seed and settings."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App

from core.sampling import SampleSettings, Sampler

pytestmark = pytest.mark.timeout(120)

STYLES = Path(__file__).resolve().parents[1] / "tui" / "styles"


class Host(App):
    """A bare app hosting one screen (the full app is tested in test_tui_app_screens.py)."""
    CSS_PATH = [STYLES / "app.tcss", STYLES / "sample.tcss"]

    def __init__(self, screen) -> None:
        super().__init__()
        self._screen = screen

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def screen_text(app) -> str:
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      color_system="truecolor", legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(pilot, predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)


async def open_screen(pilot, screen):
    await wait_for(pilot, lambda: screen.checkpoint is not None or screen.load_error, what="the checkpoint")
    assert screen.load_error is None


def on_screen(screen) -> str:
    return screen.query_one("#sample-text").content.plain


async def test_generated_text_is_the_core_samplers(tiny_run):
    from tui.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen).run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, screen)
        # prime, temperature 0.8 -> 1.0, top-k 0 -> 3, length 500 -> 200, seed fixed
        await pilot.press("p", *"The ", "escape", "t", "t", "k", "k", "k", "L", "s")
        assert (screen.temperature, screen.top_k, screen.length, screen.seed_fixed) == (1.0, 3, 200, True)
        settings_line = screen.query_one("#sample-settings").content.plain
        assert "temperature 1.00" in settings_line and "top-k 3" in settings_line and "length 200" in settings_line
        await pilot.press("g")
        await wait_for(pilot, lambda: not screen.streaming, what="the sample")
        seed = screen.seed
        expected = Sampler.from_checkpoint(tiny_run, "cpu").generate(
            SampleSettings(prime="The ", temperature=1.0, top_k=3, length=200, seed=seed))
        assert len(expected) == 200
        assert screen.generated == expected
        assert on_screen(screen) == "The " + expected
        result = screen.query_one("#sample-result").content.plain
        assert "done 200 chars" in result and "chars/s" in result
        assert f"seed {seed}" in result and "temperature 1.00" in result and "top-k 3" in result
        # the same seed again gives the same text; a new seed (r) gives another
        await pilot.press("g")
        await wait_for(pilot, lambda: not screen.streaming and screen.generated)
        assert screen.generated == expected
        await pilot.press("r")
        await wait_for(pilot, lambda: not screen.streaming and screen.generated)
        assert screen.seed != seed
        assert screen.generated == Sampler.from_checkpoint(tiny_run, "cpu").generate(
            SampleSettings(prime="The ", temperature=1.0, top_k=3, length=200, seed=screen.seed))
        # copy: the prime and the text, through the terminal's clipboard escape
        await pilot.press("c")
        assert pilot.app.clipboard == "The " + screen.generated


async def test_stop_mid_stream_stops(tiny_run):
    from tui.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, screen)
        await pilot.press("l", "l", "l", "l", "w", "w", "w")  # 10,000 chars at a typewriter 100/s
        assert screen.length == 10000 and screen.pace == 100.0
        await pilot.press("g")
        await wait_for(pilot, lambda: len(screen.generated) >= 10, what="some text")
        assert screen.streaming
        await pilot.press("x")
        await wait_for(pilot, lambda: not screen.streaming, timeout=5, what="the stop")
        stopped_at = len(screen.generated)
        assert 10 <= stopped_at < 200
        assert screen.last_chunk.stopped
        assert "stopped" in screen.query_one("#sample-result").content.plain
        await pilot.pause(0.3)
        assert len(screen.generated) == stopped_at  # nothing more arrives
        full = Sampler.from_checkpoint(tiny_run, "cpu").generate(
            SampleSettings(prime="", temperature=0.8, top_k=0, length=stopped_at, seed=screen.seed))
        assert screen.generated == full


async def test_bad_prime_is_shown_with_the_engines_message(tiny_run):
    from tui.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, screen)
        await pilot.press("p", *"Ω", "enter")
        error = screen.query_one("#sample-error")
        assert error.display and "vocabulary lacks" in error.content.plain and "'Ω'" in error.content.plain
        assert not screen.streaming and screen.generated == ""


async def test_complete_as_you_type_shows_the_models_continuation(tiny_run):
    from tui.screens.sample import GHOST_CHARS, SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, screen)
        await pilot.press("a")
        assert screen.complete and screen.focused is screen.prime_input
        await pilot.press(*"def")
        sampler = Sampler.from_checkpoint(tiny_run, "cpu")
        expected = sampler.generate(SampleSettings(prime="def", temperature=0.8, length=GHOST_CHARS, seed=0))
        await wait_for(pilot, lambda: screen.ghost == expected, what="the continuation")
        assert on_screen(screen) == "def" + expected
        await pilot.press(*" f")  # typing on replaces it after the next pause
        expected = sampler.generate(SampleSettings(prime="def f", temperature=0.8, length=GHOST_CHARS, seed=0))
        await wait_for(pilot, lambda: screen.ghost == expected, what="the new continuation")


async def test_no_run_says_where_to_get_one(tmp_path):
    from tui.screens.sample import SampleScreen
    screen = SampleScreen()
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "pick a run on the Runs screen" in screen_text(pilot.app)
        await pilot.press("g")
        assert not screen.streaming


async def test_a_series_checkpoint_is_refused_inline(tmp_path):
    from core.series import make_config, new_series_trainer
    from tui.screens.sample import SampleScreen
    trainer = new_series_trainer(make_config(length=400, steps=2, hidden=4, device="cpu",
                                             runs_dir=str(tmp_path / "runs"), run_name="wave"))
    list(trainer.run())
    screen = SampleScreen(trainer.run_dir)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.load_error is not None)
        assert "not a character model" in screen.query_one("#sample-error").content.plain

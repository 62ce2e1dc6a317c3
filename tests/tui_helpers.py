"""Helpers for the Pilot tests: a bare app hosting one screen, the screen as text, polling."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console
from textual.app import App

STYLES = Path(__file__).resolve().parents[1] / "tui" / "app" / "styles"


class Host(App):
    """A bare app hosting one screen with its stylesheet (the full app is tested in test_tui.py)."""

    def __init__(self, screen, stylesheet: str, runs_dir: Path | None = None) -> None:
        super().__init__(css_path=[STYLES / "app.tcss", STYLES / stylesheet])
        self._screen = screen
        if runs_dir is not None:
            self.runs_dir = runs_dir

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def screen_text(app) -> str:
    """The screen as plain text, exactly as it would be drawn."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
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

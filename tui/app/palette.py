"""The command palette's commands for the screen it was opened on: every key binding of that
screen, by its description, listed only where it applies now (posting's pattern: a provider
built from the bindings themselves, so a new key is in the palette without more work)."""

from __future__ import annotations

from collections.abc import Iterator

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .keys import key_display, what_it_does
from .screens.base import PlaygroundScreen


def screen_commands(screen) -> Iterator[tuple[str, str, str]]:
    """(description, help, action) for each binding of `screen` that applies now, in the order of
    its BINDINGS. A key that types inside a field still applies by name (the palette has the focus)."""
    if not isinstance(screen, PlaygroundScreen):
        return
    scope = type(screen).__name__.removesuffix("Screen")
    seen = set()
    for binding in screen.BINDINGS:
        if not isinstance(binding, Binding) or binding.action in seen:
            continue
        seen.add(binding.action)
        _, name, parameters = parse(binding.action)
        with screen.by_name():
            if screen.check_action(name, parameters) is not True:
                continue
        help_text = f"{scope}: {what_it_does(binding)} (key {key_display(binding.key)})"
        yield binding.description, help_text, binding.action


class ScreenBindingsProvider(Provider):
    """Every key of the screen the palette was opened on, by name."""

    def _commands(self):
        screen = self.screen
        for description, help_text, action in screen_commands(screen):
            yield description, help_text, self._runner(screen, action)

    def _runner(self, screen, action: str):
        async def run() -> None:
            with screen.by_name():
                await self.app.run_action(action, screen)
        return run

    async def discover(self) -> Hits:
        for description, help_text, run in self._commands():
            yield DiscoveryHit(description, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for description, help_text, run in self._commands():
            score = matcher.match(description)
            if score > 0:
                yield Hit(score, matcher.highlight(description), run, help=help_text)

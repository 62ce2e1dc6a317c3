"""What every screen shares: the guard (app/guard.py), the footer's keys, the run keys."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from textual.actions import parse
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

from rnn_playground.tui.viewmodel.controller import SAVING

from ..guard import GuardedMessages
from ..keys import typed_actions, typed_bindings

if TYPE_CHECKING:
    from rnn_playground.tui.viewmodel.controller import RunController, RunState

class PlaygroundScreen(GuardedMessages, Screen):
    """A screen whose footer shows only the keys that apply now: outside a text field the
    single-letter keys; inside one, the keys that still work there (F1, ctrl+q, Enter, Escape)."""

    @property
    def active_bindings(self):
        bindings = super().active_bindings
        field = self.focused
        if not isinstance(field, Input):
            return bindings
        # Textual leaves out the keys the field types; out go too the other keys of those bindings
        # ("r,f5") and the bindings on keys it edits with (arrows, Home, Delete). A hidden binding for
        # the same action as one left out (F1 for ?, ctrl+q for q) shows instead: it works in the field.
        shown = {}
        for key, active in bindings.items():
            binding, node = active.binding, active.node
            if node is not field and binding.id and binding.id in {typed.id for typed in typed_bindings(type(node))}:
                continue
            if not binding.show and node is not field and parse(binding.action)[1] in typed_actions(type(node)):
                active = active._replace(binding=replace(binding, show=True))
            elif key == "enter" and binding.action == "submit" and self.submit_description():
                active = active._replace(binding=replace(binding, show=True, description=self.submit_description()))
            shown[key] = active
        return shown

    SUBMIT_DESCRIPTION = ""
    _by_name = False

    @contextmanager
    def by_name(self):
        """While an action is checked or run by name (the command palette), a key that would type
        in the focused field still applies: the palette, not the field, took the keystrokes."""
        self._by_name = True
        try:
            yield
        finally:
            self._by_name = False

    def typing_in_field(self) -> bool:
        """Whether a letter key types into the focused field rather than running its action."""
        return isinstance(self.focused, Input) and not self._by_name

    def typed_in_field(self, action: str) -> bool:
        """Whether `action`'s key goes to the focused field now (it types or edits there), so the
        action does not apply: for check_action."""
        return action in typed_actions(type(self)) and self.typing_in_field()

    def submit_description(self) -> str:
        """What Enter does in the focused text field, for the key bar (a screen whose fields
        differ says so per field)."""
        return self.SUBMIT_DESCRIPTION

    def on_descendant_focus(self) -> None:
        refresh_bindings_if_changed(self)

    def on_descendant_blur(self) -> None:
        refresh_bindings_if_changed(self)


def run_key_bindings(scope: str, which: str = "") -> list[Binding]:
    """The keys that steer a run, the same wherever one is steered (Train, Runs): space pauses and resumes,
    x stops with a save, c saves now. Their ids are `scope`'s ("train.pause"); `which` says, in the help,
    which run they steer where that is not plain."""
    return [
        Binding("space", "pause", "Pause", key_display="space", id=f"{scope}.pause",
                tooltip=f"pause {which or 'training'} at the next step"),
        Binding("space", "resume", "Resume", key_display="space", id=f"{scope}.resume",
                tooltip=f"resume {which or 'a paused run'}"),
        Binding("x", "stop", "Stop", id=f"{scope}.stop",
                tooltip=f"stop {which + ' ' if which else ''}at the next step and save a checkpoint"),
        Binding("c", "save", "Save", id=f"{scope}.save",
                tooltip=f"save a checkpoint {'of ' + which + ' ' if which else ''}now (also while paused)"),
    ]


class RunKeys:
    """The run keys of a screen that drives a run through its `controller` (Train, Series, Runs): whether each
    applies comes from the run's state, and each hands its command to the controller (start: to the
    screen's own `start`, which reads its form)."""

    controller: RunController | None
    _refusals_seen: tuple[object, int] = (None, 0)  # ((the controller, its run), the last log line said)

    @staticmethod
    def run_key_applies(action: str, state: RunState) -> bool | None:
        """Whether run key `action` applies in `state`; None when `action` is not a run key."""
        if action == "pause":
            return state.can_pause
        if action == "resume":
            return state.can_resume
        if action in ("stop", "save"):
            return state.can_stop
        return None

    def start(self) -> bool:
        """Start a run with the screen's settings; False if something blocks it."""
        raise NotImplementedError

    def action_start(self) -> None:
        self.start()

    def action_pause(self) -> None:
        if self.controller is not None:
            self.controller.pause()

    def action_resume(self) -> None:
        if self.controller is not None:
            self.controller.resume()

    def action_stop(self) -> None:
        if self.controller is not None:
            self.controller.stop("user")

    def action_save(self) -> None:
        if self.controller is not None and self.controller.save():
            self.notify(SAVING)

    def say_refusals(self, state: RunState) -> None:
        """Notify, once each, the commands a watched run's folder refused (the run ended meanwhile, or the
        folder's permissions, or a version without the control channel) or that it left unanswered: its log
        says them, in words."""
        if self.controller is None or not state.watched:
            return
        run = (self.controller, self.controller.run)
        known, seen = self._refusals_seen
        if known != run:
            seen = 0
        for line in state.snapshot.log:
            if line.seq > seen and not line.kind and line.text != state.snapshot.error:
                if line.level == "error":
                    self.notify(line.text, title="Not sent", severity="error", timeout=12)
                elif line.level == "warning":
                    self.notify(line.text, title="No answer", severity="warning", timeout=12)
        self._refusals_seen = (run, state.snapshot.log[-1].seq if state.snapshot.log else seen)


def refresh_bindings_if_changed(screen: Screen) -> None:
    """Ask the footer to redraw only when the applicable keys really changed: the footer
    recomposes on every refresh, and training updates arrive several times a second."""
    try:
        active = screen.active_bindings
    except Exception:  # noqa: BLE001 - a screen being torn down
        return
    key = tuple((k, b.binding.action, b.enabled, b.binding.description, b.binding.show) for k, b in active.items())
    if getattr(screen, "_shown_bindings", None) != key:
        screen._shown_bindings = key
        screen.refresh_bindings()

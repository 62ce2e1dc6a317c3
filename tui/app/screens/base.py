"""Helpers shared by the screens."""

from __future__ import annotations

import inspect
import traceback
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from textual.actions import parse
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from ..keys import typed_actions, typed_bindings

if TYPE_CHECKING:
    from rnn_playground.tui.viewmodel.controller import RunController, RunState

# Unexpected errors of this process, newest last, as tracebacks: printed when the app closes
# (run_app), and checked after every test (conftest), so a caught bug still fails its test.
UNEXPECTED_ERRORS: list[str] = []
MAX_KEPT = 20


def report_unexpected(app, error: BaseException, where: str) -> None:
    """An error no handler expected, in `where`: the user sees it as a notification and the app
    goes on (Textual would close it); the traceback is kept for when the app closes."""
    del UNEXPECTED_ERRORS[:-MAX_KEPT + 1]
    UNEXPECTED_ERRORS.append(f"{where}:\n" + "".join(traceback.format_exception(error)))
    try:
        app.log.error(UNEXPECTED_ERRORS[-1])
        app.notify(f"{where}: {type(error).__name__}: {error}. The app carries on; the details are printed "
                   f"when it closes.", title="Unexpected error", severity="error", timeout=15, markup=False)
    except Exception:  # noqa: BLE001 - the app is closing: nothing left to show it on
        pass


class GuardedMessages:
    """A message pump (screen or app) whose handlers' unexpected errors are reported, not fatal.

    Textual sends an exception from a message handler to App._handle_exception, which closes the
    app, and stops that node's message loop. Caught here, around each message, the screen keeps
    handling messages. Failed workers (exit_on_error=False) only post Worker.StateChanged, which
    does not bubble: the one handler below, which the app and every screen inherit, reports them.
    Timer callbacks are wrapped the same way."""

    async def _dispatch_message(self, message) -> None:
        try:
            await super()._dispatch_message(message)
        except Exception as error:  # noqa: BLE001 - see the class docstring
            if not self._guards(message):
                raise
            report_unexpected(self.app, error, f"{self._where()} ({type(message).__name__})")

    def _guards(self, message) -> bool:
        return True

    def _where(self) -> str:
        name = type(self).__name__.removesuffix("Screen")
        return f"the {name} screen" if isinstance(self, Screen) else "the app"

    # What the node shows while a worker of a group runs ("computing saturation…"), by group: busy_text()
    # says it while such a worker is pending or running, and nothing once it has ended, however it ended.
    BUSY: ClassVar[dict[str, str]] = {}

    def busy_text(self, *groups: str) -> str:
        """What this node's running workers (of `groups`; of any group in BUSY if none given) are doing."""
        for worker in self.workers:
            if worker.node is self and worker.group in self.BUSY and (not groups or worker.group in groups) \
                    and not worker.is_finished:
                return self.BUSY[worker.group]
        return ""

    def busy_changed(self) -> None:
        """A worker of a group in BUSY has ended: redraw what shows busy_text()."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's end, for the app and every screen: an unexpected error is shown (the
        worker's own errors reach the screen as messages), and a busy text goes."""
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            name = worker.group if worker.group != "default" else worker.name
            report_unexpected(self.app, worker.error, f"{self._where()}, worker {name}")
        if worker.is_finished and worker.group in self.BUSY:
            self.busy_changed()

    def set_timer(self, delay, callback=None, **kwargs):
        return super().set_timer(delay, guarded(self.app, callback, f"{self._where()} (timer)"), **kwargs)

    def set_interval(self, interval, callback=None, **kwargs):
        return super().set_interval(interval, guarded(self.app, callback, f"{self._where()} (timer)"), **kwargs)


def guarded(app, callback, where: str):
    """`callback` (no arguments, plain or async), its unexpected errors reported rather than fatal:
    for timers and command-palette commands, which Textual runs outside any message handler."""
    if callback is None or (getattr(callback, "__module__", None) or "").startswith("textual"):
        return callback  # Textual's own timers (the screen's updates) run as Textual made them

    async def call() -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception as error:  # noqa: BLE001 - see GuardedMessages
            report_unexpected(app, error, where)
    return call


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


class RunKeys:
    """The run keys of a screen that drives a run through its `controller` (Train, Series): whether each
    applies comes from the run's state, and each hands its command to the controller."""

    controller: RunController

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

    def action_pause(self) -> None:
        self.controller.pause()

    def action_resume(self) -> None:
        self.controller.resume()

    def action_stop(self) -> None:
        self.controller.stop("user")


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

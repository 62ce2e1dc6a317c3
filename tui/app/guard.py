"""The app's guard against its own bugs: an error no handler expected, in a handler, an action, a timer or
a worker of the app, a screen or a widget, is shown as a notification naming where it happened, and the app
carries on (Textual would close it). The one `Worker.StateChanged` handler lives here."""

from __future__ import annotations

import inspect
import traceback
from typing import ClassVar

from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerState

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
    """A message pump (the app, a screen, a widget with workers) whose handlers' unexpected errors are
    reported, not fatal.

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
        if isinstance(self, Screen):
            return f"the {type(self).__name__.removesuffix('Screen')} screen"
        if isinstance(self, Widget):
            screen = self.screen
            on = screen._where() if isinstance(screen, GuardedMessages) else type(screen).__name__
            return f"the {type(self).__name__} of {on}"
        return "the app"

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

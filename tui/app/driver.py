"""Textual's Linux driver, made to notice a terminal that has gone away without a SIGHUP.

When the far end of the app's pty closes and the pty is not the process's controlling terminal
(setsid, some multiplexers and remote shells), no SIGHUP comes: reads of the tty return end of
file at once, so Textual's input thread spins a core, and writes fail with EIO, which kills its
writer thread, after which the app blocks for good on the writer's full queue (and so never
reaches the handlers of later signals). This driver treats any of these as a hangup: writes to
a dead terminal are dropped instead of raised, and the app is told once, from whichever thread
noticed, so it takes the same path as SIGHUP (stop the run at a step boundary, save, exit).
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import Callable
from typing import IO

from textual.drivers.linux_driver import LinuxDriver

# A terminal is gone when polling it reports a hang-up, an error or a closed descriptor.
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class GuardedOutput:
    """The terminal's output file for Textual's writer thread: a failed write or flush (EIO on a
    hung-up tty) reports the terminal lost, and every write after that is dropped, so the writer
    thread keeps draining its queue and nothing that writes to the screen ever blocks."""

    def __init__(self, file: IO[str], on_lost: Callable[[], None]):
        self._file = file
        self._on_lost = on_lost
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._file.write(text)
            except (OSError, ValueError):  # ValueError: the file was closed
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self._lose()

    def _lose(self) -> None:
        self.lost = True
        self._on_lost()

    def __getattr__(self, name: str):  # fileno, isatty, encoding...: the real file's
        return getattr(self._file, name)


class PlaygroundDriver(LinuxDriver):
    """LinuxDriver plus: a thread that waits (without spinning) for the terminal to hang up, an
    output that survives a dead terminal, and an input thread whose EIO is a hang-up, not a crash.
    All three call the app's `terminal_lost()` (at most once, on the app's event loop)."""

    def __init__(self, app, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._file = GuardedOutput(self._file, self._terminal_lost)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost = threading.Event()
        self._watching = threading.Event()

    def start_application_mode(self) -> None:
        self._loop = asyncio.get_running_loop()
        super().start_application_mode()
        descriptors = [fd for fd in {self.fileno, self._file.fileno()} if os.isatty(fd)]
        if descriptors:
            self._watching = threading.Event()  # its own, so a watcher from before a suspend ends
            self._watching.set()
            threading.Thread(target=self._watch, args=(descriptors, self._watching), name="terminal-watch",
                             daemon=True).start()

    def stop_application_mode(self) -> None:
        self._watching.clear()
        super().stop_application_mode()

    def run_input_thread(self) -> None:
        try:
            super().run_input_thread()
        except OSError:  # EIO reading a hung-up tty
            self._terminal_lost()

    def _watch(self, descriptors: list[int], watching: threading.Event) -> None:
        """Block in poll() on the terminal's descriptors for hang-up events only (an event mask of
        0 still reports POLLHUP and POLLERR): no wake-ups while the terminal lives."""
        poller = select.poll()
        for fd in descriptors:
            poller.register(fd, 0)
        while watching.is_set():
            if any(mask & _GONE for _, mask in poller.poll(1000)):
                self._terminal_lost()
                return

    def _terminal_lost(self) -> None:
        if self._lost.is_set() or self._loop is None:
            return
        self._lost.set()
        self._watching.clear()
        handler = getattr(self._app, "terminal_lost", None) or (lambda: self._app.exit())
        try:
            self._loop.call_soon_threadsafe(handler)
        except RuntimeError:  # the event loop has already closed: the app is ending anyway
            pass

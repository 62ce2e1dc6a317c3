"""The Textual app: five modes (Train, Sample, Gates, Series, Runs), help, quitting safely.

The app renders what core emits and holds no training logic: a `Trainer` runs in a worker
thread (tui.session), core.watch folds its events into snapshots, and the screens show them.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.device import DeviceInfo, list_devices, pick_auto_device
from rnn_playground.core.runs import default_runs_dir
from rnn_playground.tui.viewmodel.format import fmt_loss
from rnn_playground.tui.viewmodel.session import TrainerFactory, TrainingSession, TrainingUpdate, run_training

from .messages import DevicesFound
from .modes import MODES as APP_MODES
from .modes import mode_bindings
from .palette import ScreenBindingsProvider
from .screens.base import UNEXPECTED_ERRORS, GuardedMessages, refresh_bindings_if_changed, report_unexpected
from .screens.confirm import ConfirmScreen
from .screens.gates import GatesScreen
from .screens.help import HelpScreen
from .screens.runs import RunsScreen
from .screens.sample import SampleScreen
from .screens.series import SeriesScreen
from .screens.train import TrainScreen

STYLES = Path(__file__).parent / "styles"


class PlaygroundApp(GuardedMessages, App[int]):
    """rnn-playground. Everything injectable for tests and screenshots: the runs folder, the
    device list, the clock (for run ages), and the watch timers (0 turns them off)."""

    TITLE = "rnn-playground"
    COMMANDS = App.COMMANDS | {ScreenBindingsProvider}
    CSS_PATH = [STYLES / "app.tcss", STYLES / "train.tcss", STYLES / "runs.tcss", STYLES / "sample.tcss",
                STYLES / "gates.tcss", STYLES / "series.tcss"]
    # The screens of the modes, in the order of the modes' table (modes.py).
    MODES = {mode.name: screen for mode, screen in zip(
        APP_MODES, (TrainScreen, SampleScreen, GatesScreen, SeriesScreen, RunsScreen), strict=True)}
    DEFAULT_MODE = "train"
    # The modal screens, by the heading the help lists their keys under.
    DIALOGS = {"Dialogs": ConfirmScreen, "Help": HelpScreen}
    BINDINGS = [
        *mode_bindings(),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help", tooltip="this help"),
        Binding("f1", "help", "Help", key_display="F1", show=False, id="app.help_f1",
                tooltip="this help, also from inside a form field (there, what that field means first)"),
        Binding("q", "quit", "Quit", id="app.quit",
                tooltip="quit; while training, asks, then stops at a step boundary and saves a checkpoint"),
        Binding("ctrl+q", "quit", "Quit", key_display="^q", show=False, priority=True, id="app.quit_anywhere",
                tooltip="quit, also from inside a form field"),
    ]

    # vars, not reactives: a reactive on the App repaints the whole screen when it changes;
    # the widgets that show these watch them and repaint themselves.
    status_line: var[str] = var("")
    selected_run: var[Path | None] = var(None)

    def __init__(self, *, runs_dir: Path | str | None = None, devices: Iterable[DeviceInfo] | None = None,
                 clock: Callable[[], float] = time.time, watch_interval: float = 1.0, list_interval: float = 5.0,
                 initial_config: TrainConfig | None = None, mode: str | None = None, freeze_gc: bool = False) -> None:
        super().__init__()
        self.freeze_gc = freeze_gc
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self._injected_devices = list(devices) if devices is not None else None
        self.devices: list[DeviceInfo] | None = None
        self.auto_device = "…"
        self.clock = clock
        self.watch_interval = watch_interval
        self.list_interval = list_interval
        self.initial_config = initial_config or TrainConfig()
        self.start_mode = mode or self.DEFAULT_MODE
        self.session = TrainingSession()  # idle: not running
        self.series_session = TrainingSession()  # the Series screen's run, if one is training
        self.train_screen: TrainScreen | None = None
        self.resume_target: Path | None = None
        self.pending_resume: tuple[Path, dict, int] | None = None
        self.quit_when_stopped = False
        self.exit_note: str | None = None
        self._last_error: str | None = None

    def _guards(self, message) -> bool:
        # The app's own start-up stays fatal: without it there is nothing to carry on with.
        return not isinstance(message, (events.Compose, events.Mount))

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        # Keys, clicks and the palette run actions here: an action's error names its screen.
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as error:  # noqa: BLE001 - reported, as GuardedMessages does
            where = default_namespace._where() if isinstance(default_namespace, GuardedMessages) else "the app"
            name = action if isinstance(action, str) else action[1]
            report_unexpected(self, error, f"{where}, action {name.split('(')[0]}")
            return True

    @property
    def runs_dir_display(self) -> str:
        try:
            return str(self.runs_dir.resolve().relative_to(Path.cwd().resolve())) if self.runs_dir.is_absolute() \
                else str(self.runs_dir)
        except ValueError:
            return str(self.runs_dir)

    # -- start-up

    async def on_mount(self) -> None:
        # Build the Runs and help screens now, before the first frame, rather than on the first
        # press of 5 or ? (mounting them takes a few hundred milliseconds while a run trains);
        # the help screen is then reused.
        self.install_screen(HelpScreen(), name="help")
        if self.start_mode != "runs":
            await self.switch_mode("runs")
        await self.switch_mode(self.start_mode)
        await self.push_screen("help")
        self.pop_screen()
        if self.freeze_gc:
            # Hundreds of thousands of objects live as long as the app (torch, Textual, the screens);
            # each full collection walked them all, a 100-150 ms pause every few seconds of use.
            # Frozen, they are never walked again (only run_app asks: an app per test would pile up).
            gc.freeze()
        if not self.is_headless:
            self.install_signal_handlers()
        if self._injected_devices is not None:
            self._devices_found(self._injected_devices, pick_auto_device(self._injected_devices))
        else:
            self._find_devices()

    @work(thread=True, group="devices", exit_on_error=False)
    def _find_devices(self) -> None:
        devices = list_devices()
        self.post_message(DevicesFound(devices, pick_auto_device(devices)))

    def on_devices_found(self, message: DevicesFound) -> None:
        self._devices_found(message.devices, message.auto)

    def _devices_found(self, devices: list[DeviceInfo], auto: str) -> None:
        self.devices, self.auto_device = devices, auto
        if self.train_screen is not None and self.train_screen.is_mounted:
            self.train_screen.form.set_devices(devices, auto)

    # -- modes, help, palette

    def action_mode(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            # F1 in a form field opens the help on what that field means, above the keys.
            topic = getattr(self.screen, "help_topic", lambda: None)()
            self.get_screen("help").show_topic(topic)
            self.push_screen("help")

    def open_run(self, mode: str, run_dir: Path) -> None:
        self.selected_run = run_dir
        self.switch_mode(mode)

    def prepare_resume(self, run_dir: Path, config: dict, step: int) -> None:
        self.pending_resume = (run_dir, config, step)
        if self.current_mode == "train" and self.train_screen is not None:
            self.train_screen.on_screen_resume()
        else:
            self.switch_mode("train")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for mode in APP_MODES:
            yield SystemCommand(f"Go to {mode.label}", f"Switch to the {mode.label} screen (key {mode.key})",
                                lambda name=mode.name: self.switch_mode(name))
        session = self.session
        if session.active:
            if session.snapshot.status == "paused":
                yield SystemCommand("Resume training", "Continue the paused run (space)", self.resume_training)
            else:
                yield SystemCommand("Pause training", "Pause at the next step (space)", self.pause_training)
            yield SystemCommand("Stop training", "Stop at the next step and save a checkpoint (x)",
                                lambda: self.stop_training("user"))
            yield SystemCommand("Save checkpoint now", "Save the run's last checkpoint (c)", self.save_training)
        elif self.train_screen is not None:
            yield SystemCommand("Start training", "Start a run with the Train screen's settings (s)",
                                self._palette_start)
        yield SystemCommand("Refresh runs", "List the runs again", self._palette_refresh)
        yield SystemCommand("Help: keys", "Every key of the app (? or F1)", self.action_help)
        yield from super().get_system_commands(screen)

    def _palette_start(self) -> None:
        self.switch_mode("train")
        if self.train_screen is not None:
            self.train_screen.start()

    def _palette_refresh(self) -> None:
        self.switch_mode("runs")
        screen = self.screen
        if isinstance(screen, RunsScreen):
            screen.refresh_runs()

    # -- training

    def start_training(self, make_trainer: TrainerFactory, resume_from: Path | None = None) -> None:
        self.session = TrainingSession(resume_from=resume_from, running=True)
        self._last_error = None
        self._train(self.session, make_trainer)
        self._session_changed()

    @work(thread=True, group="train", exit_on_error=False, name="training")
    def _train(self, session: TrainingSession, make_trainer: TrainerFactory) -> None:
        worker = get_current_worker()
        run_training(session, make_trainer, self.post_message, cancelled=lambda: worker.is_cancelled)

    def on_training_update(self, message: TrainingUpdate) -> None:
        session = self.session
        session.snapshot = message.snapshot
        snap = message.snapshot
        if snap.status != "training":
            session.pause_requested = False  # confirmed (paused) or moot (stopped, finished, error)
        if snap.status != "paused":
            session.resume_requested = False
        if snap.status == "error" and snap.error and snap.error != self._last_error:
            self._last_error = snap.error
            self.notify(snap.error, title="Training error", severity="error", timeout=12)
        if message.done:
            session.running = False
            reason = session.stop_requested
            if snap.status == "finished":
                self.notify(f"{snap.run_name} finished at step {snap.step:,}; best validation loss "
                            f"{fmt_loss(snap.best_val_loss)}.", title="Training finished")
            elif snap.status == "stopped" and snap.last_checkpoint:
                self.exit_note = f"Stopped {snap.run_name} at step {snap.step:,}; saved {snap.last_checkpoint}"
                if reason != "quit":
                    self.notify(f"Stopped at step {snap.step:,}; checkpoint saved.", title=snap.run_name or "")
            if self.session_ended():
                return
            self._session_changed()
            if reason == "restart" and self.train_screen is not None:
                self.train_screen.after_restart_stop()
            return
        self._session_changed()

    def _session_changed(self) -> None:
        snap = self.session.snapshot
        if self.session.active or snap.status not in ("idle",):
            status = snap.status
            if self.session.active and self.session.stop_requested:
                status = "stopping"
            elif self.session.active and self.session.pause_requested and snap.status == "training":
                status = "pausing"
            elif self.session.active and self.session.resume_requested and snap.status == "paused":
                status = "resuming"
            name = f" {snap.run_name}" if snap.run_name else ""
            progress = f" {snap.progress:.0%}" if snap.progress is not None and self.session.active else ""
            self.status_line = f"{status}{name}{progress}"
        if self.train_screen is not None and self.train_screen.is_mounted:
            self.train_screen.show_snapshot(snap)
        refresh_bindings_if_changed(self.screen)

    def pause_training(self) -> None:
        session = self.session
        if session.active and not session.stop_requested:
            session.pause_requested = True
            session.control.pause()
            self._session_changed()

    def resume_training(self) -> None:
        session = self.session
        if session.active:
            session.pause_requested = False
            session.resume_requested = session.snapshot.status == "paused"
            session.control.resume()
            self._session_changed()

    def save_training(self) -> None:
        session = self.session
        if session.active and not session.stop_requested:
            session.control.request_save()
            self.notify("Saving a checkpoint at the next step boundary…")

    def stop_training(self, reason: str = "user") -> None:
        session = self.session
        if session.active:
            session.pause_requested = False
            session.stop(reason)
            self._session_changed()

    # -- quitting

    @property
    def sessions(self) -> tuple[TrainingSession, TrainingSession]:
        """The runs the app drives: the Train screen's and the Series screen's."""
        return self.session, self.series_session

    def session_ended(self) -> bool:
        """A run's worker has finished. If we are quitting and none is left, exit (True)."""
        if self.quit_when_stopped and not any(session.active for session in self.sessions):
            self.exit(0)
            return True
        return False

    def on_series_screen_run_ended(self) -> None:
        self.session_ended()

    async def action_quit(self) -> None:
        if not any(session.active for session in self.sessions):
            self.exit(0)
            return
        if self.quit_when_stopped:
            self.notify("Saving the checkpoint; the app closes as soon as it is written.")
            return
        if isinstance(self.screen, ConfirmScreen):  # already asking (q pressed again on the dialog)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.quit_when_stopped = True
                self.stop_training("quit")
                self.series_session.stop("quit")
                self.notify("Stopping at the next step boundary and saving a checkpoint, then quitting…",
                            timeout=30)

        self.push_screen(ConfirmScreen("Training is running. Quit?",
                                       "The run stops at the next step boundary and saves a checkpoint "
                                       "before the app closes.",
                                       yes="Stop, save and quit", no="Keep training"), answer)

    def on_unmount(self) -> None:
        # However the app ends (quit, a closed terminal), a run still training stops at a step
        # boundary and saves; run_app waits for that before returning.
        for session in self.sessions:
            session.stop("quit")

    def install_signal_handlers(self) -> None:
        """SIGHUP (the terminal or the SSH connection went away) and SIGTERM end the app the way
        quitting does: the run stops at a step boundary and saves (run_app waits for it), instead
        of the process dying mid-step."""
        import asyncio
        import signal
        loop = asyncio.get_running_loop()
        for signum, reason in ((signal.SIGHUP, "hangup"), (signal.SIGTERM, "terminated")):
            try:
                loop.add_signal_handler(signum, self._ended_by_signal, reason)
            except (NotImplementedError, RuntimeError, ValueError):  # not on this platform / thread
                pass

    def _ended_by_signal(self, reason: str) -> None:
        for session in self.sessions:
            session.stop(reason)
        self.exit(0)

    def terminal_lost(self) -> None:
        """The terminal went away without a SIGHUP (tui.driver noticed): the SIGHUP path."""
        self._ended_by_signal("hangup")

    def get_driver_class(self):
        from textual.drivers.linux_driver import LinuxDriver
        driver = super().get_driver_class()
        if driver is LinuxDriver:  # not under TEXTUAL_DRIVER, nor on Windows
            from .driver import PlaygroundDriver
            return PlaygroundDriver
        return driver


def run_app(argv: list[str] | None = None) -> int:
    """Open the app; returns the exit status. The terminal is restored before this returns."""
    app = PlaygroundApp(freeze_gc=True)
    result = app.run()
    for session in app.sessions:
        if not session.finished.is_set():
            session.stop("quit")
            _say("rnn-playground: saving a checkpoint of the run before exiting…")
            session.wait()
    if app.exit_note:
        _say(app.exit_note)
    for report in UNEXPECTED_ERRORS:
        _say(f"rnn-playground: an unexpected error in {report}")
    if app.return_code not in (None, 0):
        return app.return_code
    return int(result or 0)


def _say(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:  # the terminal has gone (a hangup)
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run_app(sys.argv[1:]))


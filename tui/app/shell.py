"""The Textual app: six modes (Train, Sample, Gates, Series, Runs, Lesson), help, quitting safely.

The app renders what core emits and holds no training logic: each run is a `RunController`'s (the
middle floor), whose body runs in a thread worker the app starts; its snapshots come back as `RunUpdated`
messages, and the Train run's state is the app variable `train_run`, which the screens watch.
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

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.device import DeviceInfo, list_devices, pick_auto_device
from rnn_playground.core.runs import default_runs_dir
from rnn_playground.tui.viewmodel.controller import SAVING, RunController, RunState
from rnn_playground.tui.viewmodel.format import fmt_loss

from .guard import UNEXPECTED_ERRORS, GuardedMessages, report_unexpected
from .messages import DevicesFound, RunUpdated
from .modes import MODES as APP_MODES
from .modes import mode_bindings
from .palette import ScreenBindingsProvider
from .runner import thread_controller
from .screens.base import refresh_bindings_if_changed
from .screens.compare import CompareScreen
from .screens.confirm import ConfirmScreen
from .screens.gates import GatesScreen
from .screens.help import HelpScreen
from .screens.lesson import LessonScreen
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
                STYLES / "gates.tcss", STYLES / "series.tcss", STYLES / "lesson.tcss"]
    # The screens of the modes, in the order of the modes' table (modes.py).
    MODES = {mode.name: screen for mode, screen in zip(
        APP_MODES, (TrainScreen, SampleScreen, GatesScreen, SeriesScreen, RunsScreen, LessonScreen), strict=True)}
    DEFAULT_MODE = "train"
    # The modal screens, by the heading the help lists their keys under.
    DIALOGS = {"Compare": CompareScreen, "Dialogs": ConfirmScreen, "Help": HelpScreen}
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
    train_run: var[RunState] = var(RunState)            # the Train screen's run, as its controller last said
    device_choices: var[tuple[list[DeviceInfo], str] | None] = var(None)  # (devices, what auto picks) once found
    resume_request: var[tuple[Path, dict, int] | None] = var(None)  # (run folder, config, step) to resume
    gates_request: var[tuple[Path, str, int] | None] = var(None)  # (run folder, text, position) to open Gates at

    def __init__(self, *, runs_dir: Path | str | None = None, devices: Iterable[DeviceInfo] | None = None,
                 clock: Callable[[], float] = time.time, watch_interval: float = 1.0, list_interval: float = 5.0,
                 initial_config: TrainConfig | None = None, mode: str | None = None, freeze_gc: bool = False) -> None:
        super().__init__()
        self.freeze_gc = freeze_gc
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self._injected_devices = list(devices) if devices is not None else None
        self.clock = clock
        self.watch_interval = watch_interval
        self.list_interval = list_interval
        self.initial_config = initial_config or TrainConfig()
        self.start_mode = mode or self.DEFAULT_MODE
        self.train_controller = thread_controller(self, self._train_run_changed, "training")
        # Every run the app drives, stopped with a save on quit: the Train screen's, and a screen's own (Series);
        # and the runs it watches (the Runs screen's), which quitting only stops watching.
        self.controllers: list[RunController] = [self.train_controller]
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
        self.device_choices = (devices, auto)

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

    def open_gates_at(self, run_dir: Path, text: str, pos: int) -> None:
        """The Gates screen on `run_dir`, tracing `text` with the cursor on character `pos` (the Lesson's link)."""
        self.open_run("gates", run_dir)
        self.gates_request = None  # the same request twice still opens it
        self.gates_request = (Path(run_dir), text, pos)  # the Gates screen watches it, after selected_run

    def prepare_resume(self, run_dir: Path, config: dict, step: int) -> None:
        self.resume_request = (run_dir, config, step)  # the Train screen watches it
        if self.current_mode != "train":
            self.switch_mode("train")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for mode in APP_MODES:
            yield SystemCommand(f"Go to {mode.label}", f"Switch to the {mode.label} screen (key {mode.key})",
                                lambda name=mode.name: self.switch_mode(name))
        controller = self.train_controller
        if controller.active:
            if controller.snapshot.status == "paused":
                yield SystemCommand("Resume training", "Continue the paused run (space)", controller.resume)
            else:
                yield SystemCommand("Pause training", "Pause at the next step (space)", controller.pause)
            yield SystemCommand("Stop training", "Stop at the next step and save a checkpoint (x)", controller.stop)
            yield SystemCommand("Save checkpoint now", "Save the run's last checkpoint (c)", self._palette_save)
        else:
            yield SystemCommand("Start training", "Start a run with the Train screen's settings (s)",
                                self._palette_start)
        yield SystemCommand("Refresh runs", "List the runs again", self._palette_refresh)
        yield SystemCommand("Help: keys", "Every key of the app (? or F1)", self.action_help)
        yield from super().get_system_commands(screen)

    async def _palette_start(self) -> None:
        await self.switch_mode("train")
        await self.run_action("screen.start")  # as the key s does

    def _palette_save(self) -> None:
        if self.train_controller.save():
            self.notify(SAVING)

    def _palette_refresh(self) -> None:
        self.switch_mode("runs")
        screen = self.screen
        if isinstance(screen, RunsScreen):
            screen.refresh_runs()

    # -- runs

    def on_run_updated(self, message: RunUpdated) -> None:
        # The Train run's own; a screen's run (the Series screen's) was received there and bubbles up.
        if message.controller is self.train_controller:
            message.controller.receive(message.update)
        if message.update.done:
            self.run_ended()

    def _train_run_changed(self, state: RunState) -> None:
        snap = state.snapshot
        if snap.status == "error" and snap.error and snap.error != self._last_error:
            self._last_error = snap.error
            self.notify(snap.error, title="Training error", severity="error", timeout=12)
        if self.train_run.active and not state.active:  # the run has ended
            if snap.status == "finished":
                self.notify(f"{snap.run_name} finished at step {snap.step:,}; best validation loss "
                            f"{fmt_loss(snap.best_val_loss)}.", title="Training finished")
            elif snap.status == "stopped" and snap.last_checkpoint:
                self.exit_note = f"Stopped {snap.run_name} at step {snap.step:,}; saved {snap.last_checkpoint}"
                if state.stop_reason != "quit":
                    self.notify(f"Stopped at step {snap.step:,}; checkpoint saved.", title=snap.run_name or "")
        elif state.active and not self.train_run.active:  # a new run
            self._last_error = None
        if state.active or snap.status != "idle":
            self.status_line = state.line()
        self.train_run = state
        if self.screen_stack:  # none left while the app unmounts (quitting stops the run)
            refresh_bindings_if_changed(self.screen)

    # -- quitting

    def training_here(self) -> bool:
        """Whether a run of this app's own is training (a run only watched trains on when the app closes)."""
        return any(controller.active and not controller.watching for controller in self.controllers)

    def run_ended(self) -> bool:
        """A run's worker has finished. If we are quitting and none is left, exit (True)."""
        if self.quit_when_stopped and not self.training_here():
            self.exit(0)
            return True
        return False

    async def action_quit(self) -> None:
        if not self.training_here():
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
                for controller in self.controllers:
                    controller.stop("quit")
                self.notify("Stopping at the next step boundary and saving a checkpoint, then quitting…",
                            timeout=30)

        self.push_screen(ConfirmScreen("Training is running. Quit?",
                                       "The run stops at the next step boundary and saves a checkpoint "
                                       "before the app closes.",
                                       yes="Stop, save and quit", no="Keep training"), answer)

    def on_unmount(self) -> None:
        # However the app ends (quit, a closed terminal), a run still training stops at a step
        # boundary and saves; run_app waits for that before returning.
        for controller in self.controllers:
            controller.stop("quit")

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
        for controller in self.controllers:
            controller.stop(reason)
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
    for controller in app.controllers:
        if not controller.wait(0) and not controller.watching:
            controller.stop("quit")
            _say("rnn-playground: saving a checkpoint of the run before exiting…")
            controller.wait()
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


"""Train: the settings form, the device picker, and the live view of the run the app drives.

The walk of `s`: the screen asks the app's Train `RunController` to start an `InProcessRun` (a run in several
processes: a `LaunchedRun`, whose processes torchrun starts); the controller's snapshots come back to the app
variable `train_run`, which this screen watches and renders. The same controller may instead follow a run
another process trains (`t` on the Runs screen: a `FolderRun`); the run keys then steer that run through its
folder, and `s` lets go of it (it trains on) to start a run here."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.runs import new_run_name, writer_of
from rnn_playground.core.trainer import TrainControl, Trainer
from rnn_playground.tui.viewmodel.controller import UI_CORES, InProcessRun, RunState
from rnn_playground.tui.viewmodel.format import fit_clauses, with_default
from rnn_playground.tui.viewmodel.launch import LaunchedRun, resume_command, train_command
from rnn_playground.tui.viewmodel.settings import SettingHelp, budget_of, setting_help, several_devices
from rnn_playground.tui.viewmodel.sweep import (
    SWEEP_LOG,
    SweepSpec,
    start_sweep,
    sweep_command,
    sweep_devices,
    sweep_folder,
)

from ..messages import TrainFormChanged, TrainFormSubmitted
from ..widgets.form import TrainForm
from ..widgets.keybar import KeyBar
from ..widgets.live import LiveView
from ..widgets.modebar import ModeBar
from .base import PlaygroundScreen, RunKeys, refresh_bindings_if_changed, run_key_bindings


class TrainScreen(RunKeys, PlaygroundScreen):
    AUTO_FOCUS = "#start"
    SUBMIT_DESCRIPTION = "Start"
    BINDINGS = [
        Binding("s", "start", "Start", id="train.start",
                tooltip="start training with the settings in the form (also Enter in a field, or the Start button)"),
        *run_key_bindings("train"),
        Binding("r", "restart", "Restart", id="train.restart",
                tooltip="stop the run (saving a checkpoint) and edit the settings for a new run"),
        Binding("escape", "leave_field", "Leave field", key_display="esc", id="train.leave_field",
                tooltip="leave the form field (Tab and Shift+Tab move between fields)"),
    ]

    def compose(self) -> ComposeResult:
        yield ModeBar("train")
        with Horizontal(id="train-body"):
            yield TrainForm(self.app.initial_config, id="form")
            yield LiveView(id="live")
        yield Static("", id="field-help")  # what the focused field means (F1: more)
        yield KeyBar()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resume_target: Path | None = None  # the run folder the form resumes, in resume mode
        self._log_run = 0  # the controller's run whose log lines the live view shows
        self.sweeps: list = []  # the sweep processes started here (they go on headless when the app quits)

    def on_mount(self) -> None:
        self.watch(self.app, "device_choices", self._devices_changed)
        self.watch(self.app, "train_run", self._run_changed)
        self.watch(self.app, "resume_request", self._resume_requested)

    @property
    def controller(self):
        return self.app.train_controller

    @property
    def form(self) -> TrainForm:
        return self.query_one(TrainForm)

    @property
    def live(self) -> LiveView:
        return self.query_one(LiveView)

    # -- what the app hands down

    def _devices_changed(self, choices) -> None:
        if choices is not None:
            self.form.set_devices(*choices)

    def _run_changed(self, old: RunState, state: RunState) -> None:
        if self.controller.run != self._log_run:  # a new run (started here, or followed): its log from line 1
            self._log_run = self.controller.run
            self.live.reset_log()
        self.live.show(state.snapshot, state.status, elsewhere=state.watched and state.active)
        self.say_refusals(state)
        locked = state.active and not state.watched  # a followed run leaves the form free: s starts a new one
        if self.form.disabled != locked:
            self.form.disabled = locked
            if not locked and self.focused is None:
                self.set_focus(self.query_one("#start"))
        if old.active and not state.active and state.stop_reason == "restart":
            # the run stopped for a restart has saved: the form is for editing now
            self.form.set_resume(None)
            self.set_focus(self.query_one("#corpus"))
        refresh_bindings_if_changed(self)

    def _resume_requested(self, request) -> None:
        if request is not None:
            self.app.resume_request = None
            self.prepare_resume(*request)

    # -- bindings

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state: RunState = self.app.train_run
        if action == "start":
            # also while the form has errors: pressing s then says why nothing starts
            return not state.active or state.watched
        if (applies := self.run_key_applies(action, state)) is not None:
            return applies
        if action == "restart":
            if state.active and state.watched:
                return False  # it would only let go of a run that trains elsewhere: s does that, and starts
            return state.can_stop or (not state.active and self.form.resume_step is not None)
        if action == "leave_field":
            return isinstance(self.focused, Input)
        return True

    def start(self) -> bool:
        """Start (or resume) a run with the form's settings; False if something blocks it."""
        app = self.app
        if self.controller.active and not self.controller.watching:
            app.notify("A run is already training. Stop it first (x).", severity="warning")
            return False
        state = self.form.validate_now()
        errors = self.form.errors
        if errors:
            first = self.form.first_invalid()
            if first is not None:
                self.set_focus(first)
            app.notify("Fix what is marked in the form first: " + "; ".join(errors.values())[:300],
                       title="Not started", severity="error")
            return False
        if state.sweep is not None:
            return self._start_sweep(state.sweep, state.device)
        device = state.device
        resume = self.form.resume_step is not None and self.resume_target is not None
        if resume:
            run_dir = self.resume_target
            writer = writer_of(run_dir)
            if writer is not None:  # say so now, rather than as a failed start
                app.notify(f"{run_dir.name} is being trained by {writer.describe()}, and a run has one writer. "
                           "Wait for it to end, or stop it, then start again.", title="Cannot start",
                           severity="error")
                return False
            chosen = self._budget_config()
            budget = {k: getattr(chosen, k) for k in ("steps", "epochs", "minutes")}
            if several_devices(device):  # in processes of its own, watched here
                self.live.reset_log()
                command = resume_command(run_dir, device, threads=chosen.threads, **budget)
                return self.controller.start(LaunchedRun(command, run_dir))

            def make_trainer(control: TrainControl) -> Trainer:
                return Trainer.resume(run_dir, control, device=device, threads=chosen.threads,
                                      reserve_cores=UI_CORES, **budget)
        else:
            config = state.check.config
            assert config is not None
            # A new run always gets a fresh name (the form may hold a resumed run's settings).
            config = _with(config, device=device, runs_dir=str(app.runs_dir), run_name=None)
            if several_devices(device):  # in processes of its own (torchrun starts them), watched here
                config = _with(config, device="auto", run_name=new_run_name(Path(app.runs_dir)))
                self.live.reset_log()
                return self.controller.start(LaunchedRun(train_command(config, device),
                                                         Path(app.runs_dir) / config.run_name))

            def make_trainer(control: TrainControl) -> Trainer:
                return Trainer(config, control, reserve_cores=UI_CORES)
        followed = self.controller.snapshot.run_name if self.controller.watching else None
        started = self.controller.start(InProcessRun(make_trainer))  # lets go of a followed run first
        if started and followed:
            app.notify(f"No longer following {followed}: it trains on in its own process (the Runs screen shows "
                       "it). Started a new run here.")
        return started

    def _start_sweep(self, spec: SweepSpec, device: str) -> bool:
        """Start the form's grid as a headless `rnn-playground sweep` (it goes on when the app quits); its
        runs show on the Runs screen, grouped."""
        devices, per_device = sweep_devices(device)
        name = spec.default_name()
        runs_dir = Path(self.app.runs_dir)
        try:
            self.sweeps.append(start_sweep(sweep_command(spec, devices, per_device, runs_dir.resolve(), name),
                                           runs_dir, name))
        except OSError as exc:
            self.app.notify(f"Cannot start the sweep: {exc.strerror or exc}.", title="Not started", severity="error")
            return False
        self.app.notify(f"Sweep {name}: {spec.describe()} on {devices}, {per_device} at a time on each, in processes "
                        f"of their own. Its runs show on the Runs screen (5), grouped; its output is in "
                        f"{sweep_folder(runs_dir, name) / SWEEP_LOG}.", title="Sweep started")
        return True

    def _budget_config(self) -> TrainConfig:
        check = self.form.state().check
        assert check.config is not None
        return check.config

    def action_restart(self) -> None:
        self.controller.stop("restart")
        self.form.set_resume(None)
        self.resume_target = None
        self.notify("Edit the settings, then press s (or Enter in a field) to start a new run.")
        refresh_bindings_if_changed(self)

    def action_leave_field(self) -> None:
        self.set_focus(self.query_one("#start"))

    # -- field help

    def _focused_setting(self) -> tuple[str, SettingHelp] | None:
        setting = self.form.setting_of(self.focused)
        if setting is None:
            return None
        label, name = setting
        info = setting_help(name)
        return (label, info) if info is not None else None

    def show_field_help(self) -> None:
        """The focused field's one-line description (its CLI help) under the form and the live view."""
        line = self.query_one("#field-help", Static)
        focused = self._focused_setting()
        line.set_class(focused is not None, "-shown")
        if focused is None:
            return
        label, info = focused
        room = max(self.size.width - len(label) - 4, 10)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label, "bold")
        text.append(f"  {fit_clauses(info.help, room)}")
        if text.cell_len + 12 <= self.size.width - 2:
            text.append("  (F1: more)", "dim")
        line.update(text)

    def help_topic(self) -> Text | None:
        """For F1 in a field: what the setting means at length, with its flag and default."""
        focused = self._focused_setting()
        if focused is None:
            return None
        label, info = focused
        text = Text()
        text.append(label, "bold")
        text.append(f": {with_default(info.help, info.default)}")
        if info.more:
            text.append(f"\n{info.more}")
        text.append(f"\nOn the command line: {info.flag}", "dim")
        return text

    def on_descendant_focus(self) -> None:
        super().on_descendant_focus()
        self.show_field_help()

    def on_descendant_blur(self) -> None:
        super().on_descendant_blur()
        self.show_field_help()

    def on_resize(self) -> None:
        self.show_field_help()

    # -- form events

    @on(TrainFormSubmitted)
    def _form_submitted(self) -> None:
        self.start()

    @on(TrainFormChanged)
    def _form_changed(self) -> None:
        refresh_bindings_if_changed(self)


    # -- resume

    def prepare_resume(self, run_dir: Path, config: dict, step: int) -> None:
        """Fill the form from a run's checkpoint for resuming; model fields are locked."""
        resumed = TrainConfig.from_dict(config)
        kind, budget = budget_of(resumed)
        if kind == "steps" and budget <= step:
            resumed = _with(resumed, steps=step + max(int(budget), 1))  # as many steps again
        resumed = _with(resumed, device=self.form.texts()["device"])
        self.resume_target = run_dir
        self.form.load(resumed)
        self.form.set_resume(run_dir.name, step)
        self.set_focus(self.query_one("#budget"))


def _with(config: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace
    return replace(config, **changes)

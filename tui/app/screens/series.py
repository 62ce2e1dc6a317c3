"""Series: train an RNN on a time series (a built-in signal or a CSV column) with live loss
sparklines, pause and stop as on the Train screen; plot the targets, the one-step predictions
over the validation range and the free-running forecast past the end; metrics against the
naive baselines.

Training runs core's Trainer (SeriesTask) through this screen's own RunController, as the Train
screen's run goes through the app's; its state comes back to `run_state`, which the screen renders.
At each validation and when the run ends, between steps, the run's thread asks core.series.predict
for the plot, so the model is never read while it is being updated.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Select, Static

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.events import Finished, Stopped, ValidationEvent
from rnn_playground.core.model import describe_model
from rnn_playground.core.series_data import SIGNALS
from rnn_playground.tui.viewmodel.controller import InProcessRun, RunController, RunState
from rnn_playground.tui.viewmodel.monitor import RunSnapshot
from rnn_playground.tui.viewmodel.series_view import metric_rows, series_plot
from rnn_playground.tui.viewmodel.settings import AUTO, threads_from_text

from ..messages import RunUpdated, SeriesPredicted
from ..runner import thread_controller
from ..widgets.keybar import KeyBar
from ..widgets.live import LossPanel
from ..widgets.modebar import ModeBar
from ..widgets.plot import LinePlot
from .base import PlaygroundScreen, RunKeys, refresh_bindings_if_changed

SOURCES = tuple((name, name) for name in SIGNALS) + (("CSV file", "csv"),)
PRESETS = (("none", "none"), ("course", "course"))
CELLS = (("LSTM", "lstm"), ("GRU", "gru"), ("RNN (tanh)", "rnn"))
DEFAULTS = {"source": "sine", "csv": "", "column": "", "preset": "none", "cell": "lstm", "hidden": "32",
            "layers": "1", "lr": "0.01", "steps": "500", "forecast": "100", "threads": AUTO}
COURSE = {"cell": "rnn", "hidden": "32", "layers": "1", "lr": "0.01", "steps": "75"}
NUMBERS = {"hidden": int, "layers": int, "lr": float, "steps": int, "forecast": int}


@dataclass(frozen=True)
class SeriesForm:
    """The form's values, parsed; `errors` by field."""
    values: dict
    errors: dict


class SeriesScreen(RunKeys, PlaygroundScreen):
    AUTO_FOCUS = ""
    SUBMIT_DESCRIPTION = "Start"
    COMPONENT_CLASSES = {"series--strong", "series--muted", "series--error"}
    BINDINGS = [
        Binding("s", "start", "Start", id="series.start",
                tooltip="train on the series with the settings in the form (also Enter in a field)"),
        Binding("space", "pause", "Pause", key_display="space", id="series.pause",
                tooltip="pause training at the next step"),
        Binding("space", "resume", "Resume", key_display="space", id="series.resume", tooltip="resume a paused run"),
        Binding("x", "stop", "Stop", id="series.stop", tooltip="stop at the next step, save a checkpoint and plot"),
        Binding("r", "free_run", "Free run", id="series.free_run",
                tooltip="also plot the free run from the split across the validation range"),
        Binding("escape", "leave_field", "Leave field", key_display="esc", id="series.leave_field",
                tooltip="leave the form field"),
        Binding("plus,equals_sign", "zoom(2)", "Zoom in", show=False, key_display="+", id="series.zoom_in",
                tooltip="plot: fewer points, closer (the right edge stays)"),
        Binding("minus", "zoom(0.5)", "Zoom out", show=False, key_display="-", id="series.zoom_out",
                tooltip="plot: more points"),
        Binding("left_square_bracket", "scroll_plot(-1)", "Earlier", show=False, key_display="[", id="series.earlier",
                tooltip="plot: half a window earlier"),
        Binding("right_square_bracket", "scroll_plot(1)", "Later", show=False, key_display="]", id="series.later",
                tooltip="plot: half a window later"),
        Binding("0", "plot_all", "Whole plot", show=False, id="series.plot_all",
                tooltip="plot: every point (the validation range and the forecast)"),
    ]

    def __init__(self, *, name: str | None = None, id: str | None = None, **initial: str) -> None:
        super().__init__(name=name, id=id)
        self._ready = False  # composed and mounted: safe to query widgets
        self.initial = {**DEFAULTS, **initial}
        self.controller: RunController | None = None  # made on mount: the app keeps it, to stop it on quit
        self.run_state = RunState()
        self.generation = 0
        self.predictions = None
        self.prediction_step: int | None = None
        self.show_free_run = False
        self.errors: dict[str, str] = {}
        self._preset = self.initial["preset"]
        self.run_name: str | None = None   # None: a generated name (tests and screenshots fix it)
        self.log_every = 0                 # steps per loss point; 0: about four a second (tests fix it)

    # -- layout

    def _field(self, name: str, label: str, widget) -> ComposeResult:
        with Horizontal(classes="series-row", id=f"series-row-{name}"):
            yield Label(label, classes="series-label")
            yield widget

    def compose(self) -> ComposeResult:
        v = self.initial
        yield ModeBar("series")
        with Horizontal(id="series-body"):
            with VerticalScroll(id="series-form", can_focus=False):
                yield Static("Series run", id="series-form-title")
                yield from self._field("source", "data", Select(SOURCES, value=v["source"], allow_blank=False,
                                                                 id="series-source", compact=True,
                                                                 type_to_search=False))
                yield from self._field("csv", "csv", Input(v["csv"], id="series-csv", compact=True,
                                                           placeholder="path of a CSV file"))
                yield from self._field("column", "column", Input(v["column"], id="series-column", compact=True,
                                                                 placeholder="name or index"))
                yield from self._field("preset", "preset", Select(PRESETS, value=v["preset"], allow_blank=False,
                                                                  id="series-preset", compact=True,
                                                                  type_to_search=False))
                yield from self._field("cell", "model", Select(CELLS, value=v["cell"], allow_blank=False,
                                                               id="series-cell", compact=True, type_to_search=False))
                for name, label in (("hidden", "hidden"), ("layers", "layers"), ("lr", "lr"), ("steps", "steps"),
                                    ("forecast", "forecast"), ("threads", "threads")):
                    yield from self._field(name, label, Input(v[name], id=f"series-{name}", compact=True))
                yield Static("", id="series-error")
                yield Static("", id="series-form-note")
            with Vertical(id="series-live"):
                yield Static("", id="series-status")
                with Horizontal(id="series-losses"):
                    yield LossPanel("train", id="series-train")
                    yield LossPanel("val", id="series-val")
                yield LinePlot(id="series-plot")
                yield Static("", id="series-metrics")
        yield KeyBar()

    @property
    def snapshot(self) -> RunSnapshot:
        return self.run_state.snapshot

    @property
    def running(self) -> bool:
        return self.run_state.active

    def on_mount(self) -> None:
        self.controller = thread_controller(self, self._run_changed, "series-train")
        controllers = getattr(self.app, "controllers", None)
        if controllers is not None:  # the app stops it, with a save, on quit
            controllers.append(self.controller)
        self._ready = True
        self.query_one("#series-plot").border_title = "validation range and forecast"
        self.query_one(LinePlot).clear("Press s to train; the plot appears at the first validation.")
        self._source_changed_display()
        self.render_all()

    # -- the form

    def form(self) -> SeriesForm:
        values: dict = {
            "source": str(self.query_one("#series-source", Select).value),
            "csv": self.query_one("#series-csv", Input).value.strip(),
            "column": self.query_one("#series-column", Input).value.strip(),
            "preset": str(self.query_one("#series-preset", Select).value),
            "cell": str(self.query_one("#series-cell", Select).value),
        }
        errors: dict = {}
        for name, kind in NUMBERS.items():
            text = self.query_one(f"#series-{name}", Input).value.strip()
            try:
                values[name] = kind(text)
            except ValueError:
                errors[name] = f"{name}: '{text}' is not {'a whole number' if kind is int else 'a number'}"
        try:
            values["threads"] = threads_from_text(self.query_one("#series-threads", Input).value)
        except PlaygroundError as exc:
            errors["threads"] = str(exc)
        if values["source"] == "csv" and not values["csv"]:
            errors["csv"] = "csv: give the path of a CSV file"
        if "forecast" in values and values["forecast"] < 0:
            errors["forecast"] = "forecast: 0 or more points"
        return SeriesForm(values, errors)

    def make_config(self, values: dict):
        """A SeriesConfig from the form (raises ConfigError with the engine's message)."""
        from rnn_playground.core.series import make_config
        data = {"csv": values["csv"], "column": values["column"] or None} if values["source"] == "csv" else \
            {"signal": values["source"]}
        return make_config(values["preset"] if values["preset"] != "none" else None, **data, cell=values["cell"],
                           hidden=values["hidden"], layers=values["layers"], lr=values["lr"], steps=values["steps"],
                           threads=values["threads"], device="cpu",
                           runs_dir=str(getattr(self.app, "runs_dir", "")) or None,
                           run_name=self.run_name, log_every=self.log_every or None)

    def validate_form(self) -> tuple[object | None, dict]:
        form = self.form()
        errors = dict(form.errors)
        config = None
        if not errors:
            try:
                config = self.make_config(form.values)
            except PlaygroundError as exc:
                errors["form"] = str(exc)
        self._show_errors(errors)
        return config, form.values

    def _show_errors(self, errors: dict) -> None:
        self.errors = errors
        widget = self.query_one("#series-error", Static)
        widget.update(Text("\n".join(errors.values())))
        widget.set_class(bool(errors), "-shown")
        for name in (*NUMBERS, "threads"):
            self.query_one(f"#series-{name}", Input).set_class(name in errors, "-invalid")
        self.query_one("#series-csv", Input).set_class("csv" in errors, "-invalid")
        refresh_bindings_if_changed(self)

    @on(Input.Changed)
    def _field_changed(self) -> None:
        if not self.running:
            self.validate_form()

    @on(Input.Submitted)
    def _field_submitted(self) -> None:
        self.action_start()

    @on(Select.Changed, "#series-source")
    def _source_changed(self) -> None:
        self._source_changed_display()
        if not self.running and self._ready:
            self.validate_form()

    def _source_changed_display(self) -> None:
        csv = str(self.query_one("#series-source", Select).value) == "csv"
        self.query_one("#series-row-csv").display = csv
        self.query_one("#series-row-column").display = csv

    @on(Select.Changed, "#series-preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if str(event.value) == self._preset:
            return  # the initial value, or no change
        self._preset = str(event.value)
        values = COURSE if str(event.value) == "course" else {k: DEFAULTS[k] for k in COURSE}
        self.query_one("#series-cell", Select).value = values["cell"]
        for name in ("hidden", "layers", "lr", "steps"):
            self.query_one(f"#series-{name}", Input).value = values[name]
        self.render_all()

    # -- training

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.typed_in_field(action):
            return False
        state = self.run_state
        if action == "start":
            return False if state.active else (None if self.errors else True)
        if (applies := self.run_key_applies(action, state)) is not None:
            return applies
        if action == "leave_field":
            return isinstance(self.focused, Input)
        return True

    def start(self) -> bool:
        if self.running:
            return False
        config, values = self.validate_form()
        if config is None:
            self.app.notify("Fix the settings marked in the form first.", title="Cannot start", severity="error")
            return False
        self.generation += 1
        generation, forecast = self.generation, values["forecast"]
        self.predictions = None
        self.prediction_step = None
        self.query_one(LinePlot).clear("training… the plot appears at the first validation")
        self.query_one("#series-metrics", Static).update("")

        def plot(trainer, event) -> None:
            # In the run's thread, between steps (at each validation, and once the run ends): the model
            # is not being updated.
            if isinstance(event, (ValidationEvent, Finished, Stopped)):
                from rnn_playground.core.series import predict
                task = trainer.task
                steps = forecast if task.data.features == 1 else 0
                predictions = predict(task.model, task.data, task.normalizer, config.val_fraction, steps=steps,
                                      period=task.period)
                final = not isinstance(event, ValidationEvent)
                self.post_message(SeriesPredicted(generation, predictions, trainer.progress.step, final))

        def make_trainer(control):
            from rnn_playground.core.series import new_series_trainer
            return new_series_trainer(config, control)

        self.controller.start(InProcessRun(make_trainer, on_event=plot))
        self.set_focus(None)
        return True

    def on_run_updated(self, message: RunUpdated) -> None:
        if message.controller is self.controller:
            self.controller.receive(message.update)  # and on up: the app may be waiting for it to quit

    def _run_changed(self, state: RunState) -> None:
        ended = self.run_state.active and not state.active
        self.run_state = state
        if ended and state.snapshot.status == "error" and state.snapshot.error:
            self._show_errors({"run": state.snapshot.error})
        self.render_all()

    def on_series_predicted(self, message: SeriesPredicted) -> None:
        if message.generation != self.generation:
            return
        self.predictions = message.predictions
        self.prediction_step = message.step
        self.render_plot()
        self.render_all()

    def action_free_run(self) -> None:
        self.show_free_run = not self.show_free_run
        self.render_plot()

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def action_zoom(self, factor: float) -> None:
        self.query_one(LinePlot).zoom(factor)

    def action_scroll_plot(self, direction: int) -> None:
        self.query_one(LinePlot).scroll(direction)

    def action_plot_all(self) -> None:
        self.query_one(LinePlot).show_all()

    def on_unmount(self) -> None:
        if self.controller is not None:
            self.controller.stop("quit")

    # -- rendering

    def render_all(self) -> None:
        if not self._ready:
            return
        snap = self.snapshot
        strong = self.get_component_rich_style("series--strong")
        muted = self.get_component_rich_style("series--muted")
        line = Text(no_wrap=True, overflow="ellipsis")
        status = self.run_state.status
        line.append(status, strong)
        if snap.run_name:
            line.append(f"  {snap.run_name}")
        model = (snap.config or {}).get("model") or {}
        if model:
            line.append(f"  {describe_model(model)}")
        if snap.status != "idle" and snap.step:
            total = f"/{snap.total_steps:,}" if snap.total_steps else ""
            line.append(f"  step {snap.step:,}{total}", muted)
        if snap.progress is not None and self.running:
            line.append(f"  {snap.progress:.0%}", muted)
        if status == "idle":
            line = Text("Choose the data and the model, then press s.", muted)
        self.query_one("#series-status", Static).update(line)
        self.query_one("#series-train", LossPanel).show(snap.train_losses, snap.loss, snap.best_loss,
                                                         snap.step if snap.train_losses else None)
        self.query_one("#series-val", LossPanel).show(snap.val_losses, snap.val_loss, snap.best_val_loss,
                                                       snap.val_steps[-1] if snap.val_steps else None)
        form = self.query_one("#series-form")
        form.disabled = self.running
        note = self.query_one("#series-form-note", Static)
        preset = str(self.query_one("#series-preset", Select).value)
        text = Text("course preset: the lesson's RNN(1, 32) with Adam lr 0.01, one sequence of 20 points, "
                    "75 steps. " if preset == "course" else "", muted)
        text.append("Loss: MSE in standardized units.", muted)
        note.update(text)
        refresh_bindings_if_changed(self)

    def render_plot(self) -> None:
        plot = self.query_one(LinePlot)
        pred = self.predictions
        if pred is None:
            return
        lines = series_plot(pred, free_run=self.show_free_run)
        markers = [(float(pred.split), "validation")]
        if len(pred.forecast):
            markers.append((float(len(pred.series) - 1), "end of data"))
        plot.show(lines, markers)
        plot.border_title = f"validation range and forecast, step {self.prediction_step:,}"
        plot.border_subtitle = "+/- zoom  [ ] scroll  0 all"
        table = Table.grid(padding=(0, 2))
        muted = self.get_component_rich_style("series--muted")
        strong = self.get_component_rich_style("series--strong")
        table.add_column(no_wrap=True)
        for _ in range(3):
            table.add_column(justify="right", no_wrap=True)
        table.add_row(Text("validation", strong), Text("MSE", muted), Text("MAE", muted), Text("MSE/last", muted))
        for row in metric_rows(pred):
            ratio = f"{row.vs_last:.3g}" if row.vs_last is not None else "-"
            table.add_row(row.name, f"{row.mse:.3g}", f"{row.mae:.3g}", ratio)
        self.query_one("#series-metrics", Static).update(table)

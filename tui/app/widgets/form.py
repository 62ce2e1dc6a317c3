"""The run settings form: every field checked as you type with the engine's own errors, shown
beside (under) the field; the corpus checked in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static
from textual.widgets.select import InvalidSelectValueError

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.device import DeviceInfo
from rnn_playground.tui.viewmodel.settings import (
    BUDGET_KINDS,
    FORM_FIELDS,
    CorpusCheck,
    SettingsCheck,
    check_corpus,
    check_settings,
    config_form_values,
    device_choices,
    name_settings,
)
from rnn_playground.tui.viewmodel.sweep import SweepSpec, form_sweep, split_grid

from ..guard import GuardedMessages
from ..messages import CorpusChecked, TrainFormChanged, TrainFormSubmitted

CELLS = (("LSTM", "lstm"), ("GRU", "gru"), ("RNN (tanh)", "rnn"))
LABELS = {"corpus": "corpus", "cell": "model", "hidden": "hidden", "layers": "layers", "embed": "embed",
          "dropout": "dropout", "batch": "batch", "seq": "seq len", "lr": "lr", "ema": "ema",
          "val_every": "eval", "budget": "budget", "seed": "seed", "device": "device", "threads": "threads"}
# How messages name settings here (the engine names them by their CLI flags): as the form
# shows them; the budget's kinds as the budget.
MESSAGE_NAMES = {**LABELS, **{kind: f"budget ({kind})" for kind in BUDGET_KINDS}}
# Fields fixed by a checkpoint: a resumed run keeps them.
MODEL_FIELDS = ("corpus", "cell", "hidden", "layers", "embed", "dropout", "batch", "seq", "lr", "seed")
CORPUS_DEBOUNCE_S = 0.3


@dataclass(frozen=True)
class FormState:
    """What the form holds now: the checked settings and the corpus check (None while pending)."""
    check: SettingsCheck
    corpus: CorpusCheck | None
    device: str
    sweep: SweepSpec | None = None  # fields listing several values ("256,512"): the grid to sweep
    grid_errors: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> dict[str, str]:
        """Errors that stop a run from starting, by field."""
        errors = {**self.grid_errors, **self.check.errors}
        if self.corpus is not None and not self.corpus.ok:
            errors.setdefault(self.corpus.field, self.corpus.message)  # a field's own error comes first
        return {name: name_settings(message, MESSAGE_NAMES) for name, message in errors.items()}


class TrainForm(GuardedMessages, VerticalScroll, can_focus=False):
    """Run settings. Posts `TrainFormChanged` when validity changes and `TrainFormSubmitted`
    when Enter is pressed in a field or the Start button is pressed."""

    def __init__(self, base: TrainConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base = base  # settings the form does not show (embed, val_every, ...) come from here
        self._initial = config_form_values(base)
        self._wanted_device = self._initial["device"]
        self.resume_step: int | None = None
        self.corpus_check: CorpusCheck | None = None
        self._corpus_key: tuple | None = None
        self._debounce = None
        self._errors: dict[str, str] = {}

    # -- layout

    def _row(self, name: str, *widgets: Widget) -> ComposeResult:
        with Horizontal(classes="form-row", id=f"row-{name}"):
            yield Label(LABELS[name], classes="form-label")
            yield from widgets
        yield Static("", id=f"err-{name}", classes="form-error")

    def compose(self) -> ComposeResult:
        v = self._initial
        yield Static("New run", id="form-title")
        yield from self._row("corpus", Input(v["corpus"], id="corpus", compact=True,
                                             placeholder="builtin:python-stdlib, tinyshakespeare, a path"))
        yield Static("", id="corpus-info", classes="form-note")
        yield from self._row("cell", Select(CELLS, value=v["cell"], allow_blank=False, id="cell", compact=True,
                                            type_to_search=False))
        for name in ("hidden", "layers", "embed", "dropout", "batch", "seq", "lr", "ema"):
            yield from self._row(name, Input(v[name], id=name, compact=True))
        yield from self._row("budget",
                             Input(v["budget"], id="budget", compact=True),
                             Select([(k, k) for k in BUDGET_KINDS], value=v["budget_kind"], allow_blank=False,
                                    id="budget_kind", compact=True, type_to_search=False))
        yield from self._row("val_every", Input(v["val_every"], id="val_every", compact=True))
        yield from self._row("seed", Input(v["seed"], id="seed", compact=True))
        yield from self._row("device", Select([("auto", "auto")], value="auto", allow_blank=False, id="device",
                                              compact=True, type_to_search=False))
        yield from self._row("threads", Input(v["threads"], id="threads", compact=True,
                                              placeholder="auto or a number of CPU threads"))
        yield Static("", id="err-form", classes="form-error")
        yield Button("Start  (s)", id="start", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.validate_now()
        self._schedule_corpus_check(0.0)

    # -- values

    def texts(self) -> dict[str, str]:
        values = {name: self.query_one(f"#{name}", Input).value for name in FORM_FIELDS}
        values["corpus"] = self.query_one("#corpus", Input).value
        values["cell"] = str(self.query_one("#cell", Select).value)
        values["budget"] = self.query_one("#budget", Input).value
        values["budget_kind"] = str(self.query_one("#budget_kind", Select).value)
        values["device"] = str(self.query_one("#device", Select).value)
        return values

    def load(self, config: TrainConfig) -> None:
        """Fill the form from a config; fields it does not show keep the config's values."""
        self.base = config
        values = config_form_values(config)
        for name in (*FORM_FIELDS, "corpus", "budget"):
            if name in values:
                self.query_one(f"#{name}", Input).value = values[name]
        for name in ("cell", "budget_kind"):
            if name in values:
                self.query_one(f"#{name}", Select).value = values[name]
        self.select_device(values["device"])
        self.validate_now()
        self._schedule_corpus_check(0.0)

    def select_device(self, spec: str) -> None:
        self._wanted_device = spec
        try:
            self.query_one("#device", Select).value = spec
        except InvalidSelectValueError:
            pass  # not a device this machine has: keep the current choice

    def set_devices(self, devices: list[DeviceInfo], auto: str) -> None:
        select = self.query_one("#device", Select)
        current = select.value
        options = device_choices(devices, auto)
        select.set_options(options)
        select.set_reactive(Select.value, Select.NULL)  # so setting it redraws the (new) label
        legal = {v for _, v in options}
        select.value = self._wanted_device if self._wanted_device in legal else current if current in legal \
            else "auto"

    # -- checking

    def state(self) -> FormState:
        values = self.texts()
        fields = {name: values[name] for name in FORM_FIELDS}
        # Several values in a field make a sweep (not when resuming: a checkpoint fixes them); the form checks
        # each field's first value, the sweep every grid point.
        grid, fields = split_grid(fields) if self.resume_step is None else ({}, fields)
        fields["cell"] = values["cell"]
        fields["corpus"] = values["corpus"].strip()
        check = check_settings(fields, budget_kind=values["budget_kind"], budget=values["budget"],
                               base=self.base, resume_step=self.resume_step)
        corpus = self.corpus_check if self._corpus_key == self._current_corpus_key() else None
        sweep, grid_errors = form_sweep(grid, check.config, values["device"]) if grid and check.config else (None, {})
        return FormState(check, corpus, values["device"], sweep, grid_errors)

    def validate_now(self) -> FormState:
        state = self.state()
        errors = state.blocking
        if self.resume_step is not None:  # only what a resumed run may change is checked
            errors = {k: v for k, v in errors.items() if k in ("budget", "threads", "form")}
        for name in (*LABELS, "form"):
            if name == "device":
                continue
            widget = self.query_one(f"#err-{name}", Static)
            message = errors.get(name, "")
            widget.update(message)
            widget.set_class(bool(message), "-shown")
            if name in FORM_FIELDS or name in ("corpus", "budget"):
                self.query_one(f"#{name}", Input).set_class(bool(message), "-invalid")
        if self.resume_step is None:
            self.query_one("#form-title", Static).update(
                f"New sweep · {state.sweep.describe()}" if state.sweep is not None else "New run")
        if errors != self._errors:
            self._errors = errors
            self.post_message(TrainFormChanged(self))
        return state

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def _current_corpus_key(self) -> tuple:
        values = self.texts()  # a sweep over batch or seq: the corpus is checked with the first values
        return values["corpus"].strip(), values["batch"].split(",")[0].strip(), values["seq"].split(",")[0].strip()

    def _schedule_corpus_check(self, delay: float = CORPUS_DEBOUNCE_S) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(delay, self._start_corpus_check) if delay else None
        if not delay:
            self._start_corpus_check()

    def _start_corpus_check(self) -> None:
        key = self._current_corpus_key()
        if key == self._corpus_key and self.corpus_check is not None:
            return
        spec, batch, seq = key
        try:
            batch_n, seq_n = int(batch), int(seq)
        except ValueError:
            batch_n, seq_n = 1, 1  # their own errors are shown; check the text alone
        self.query_one("#corpus-info", Static).update("checking…")
        self._check_corpus(key, spec, max(batch_n, 1), max(seq_n, 1))

    @work(thread=True, exclusive=True, group="corpus-check", exit_on_error=False)
    def _check_corpus(self, key: tuple, spec: str, batch: int, seq: int) -> None:
        result = check_corpus(spec, batch=batch, seq=seq)
        self.post_message(CorpusChecked(key, result))

    def on_corpus_checked(self, message: CorpusChecked) -> None:
        if message.key != self._current_corpus_key():
            return  # the fields changed since; a newer check is on its way
        self._corpus_key, self.corpus_check = message.key, message.result
        info = self.query_one("#corpus-info", Static)
        info.update(message.result.message if message.result.ok else "")
        self.validate_now()

    # -- events

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.validate_now()
        if event.input.id in ("corpus", "batch", "seq"):
            self.corpus_check = None
            self._corpus_key = None
            self.query_one("#corpus-info", Static).update("")
            self._schedule_corpus_check()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        self.validate_now()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(TrainFormSubmitted())

    @on(Button.Pressed, "#start")
    def _start_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(TrainFormSubmitted())

    # -- modes

    def set_resume(self, run_name: str | None, step: int | None = None) -> None:
        """Resume mode locks what the checkpoint fixes; None returns to a new run."""
        self.resume_step = step if run_name else None
        title = self.query_one("#form-title", Static)
        title.update(f"Resume {run_name} (step {step:,})" if run_name else "New run")
        title.set_class(bool(run_name), "-resume")
        for name in MODEL_FIELDS:
            self.query_one(f"#{name}", Widget).disabled = bool(run_name)
        self.validate_now()

    def setting_of(self, widget: Widget | None) -> tuple[str, str] | None:
        """(label, TrainConfig field) of the form field `widget` is (in), None outside the fields.
        The budget's fields are the setting of the kind chosen (steps, epochs or minutes)."""
        for node in widget.ancestors_with_self if widget is not None else ():
            if node is self:
                break
            if node.id in ("budget", "budget_kind"):
                return LABELS["budget"], str(self.query_one("#budget_kind", Select).value)
            if node.id in LABELS:
                return LABELS[node.id], node.id
        return None

    def first_invalid(self) -> Widget | None:
        for name in self._errors:
            if name in LABELS and name != "device":
                return self.query_one(f"#{name}", Widget)
        return None

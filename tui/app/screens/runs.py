"""Runs: the runs under checkpoints/ from core, details of the selected one, and the selected run watched
through a `RunController` (a `FolderRun`: its metrics.jsonl in, its control channel out), so that a live
run, in this process or another (a headless `rnn-playground train`), is paused (p), saved and stopped here with
the Train screen's keys, or followed on the Train screen (t). Space marks runs; v compares the marked ones
(screens/compare.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.runs import RunDetails, RunInfo, delete_run, run_details, runs_for_display, writer_of
from rnn_playground.tui.viewmodel.compare_view import run_mark
from rnn_playground.tui.viewmodel.controller import RunController, RunState
from rnn_playground.tui.viewmodel.format import fmt_age, fmt_loss, fmt_rate, human_size
from rnn_playground.tui.viewmodel.monitor import RunSnapshot, rank_phrases, system_lines
from rnn_playground.tui.viewmodel.runs_view import ControlReach, control_note, run_state, settings_lines
from rnn_playground.tui.viewmodel.sweep import group_by_sweep, sweep_groups

from ..messages import DetailsLoaded, RunDeleted, RunNotDeleted, RunsListed, RunUpdated
from ..runner import thread_controller
from ..widgets.fitting import append_fitting, pack_phrases
from ..widgets.keybar import KeyBar
from ..widgets.live import LossPanel, set_text
from ..widgets.modebar import ModeBar
from .base import PlaygroundScreen, RunKeys, refresh_bindings_if_changed, run_key_bindings
from .compare import CompareScreen
from .confirm import ConfirmScreen
from .series_gates import SeriesGatesScreen

# The mark column shows once a run is marked; the sweep column only when a listed run belongs to a sweep
# (its name, ★ on the sweep's best).
COLUMNS = (("mark", ""), ("name", "name"), ("sweep", "sweep"), ("kind", "kind"), ("model", "model"), ("step", "step"),
           ("best", "best val"), ("device", "device"), ("size", "size"), ("updated", "updated"), ("live", "live"))
# Where the table is too narrow for every column whole (80 columns, long names), these go first, in
# this order; the details below then show the selected run's size and device.
DROPPED_FIRST = ("size", "device", "updated")
CELL_PADDING = 1  # the DataTable's, each side of a cell
# After the watched run starts or ends, list the runs at every watch tick (not every list_interval)
# for up to this long, until run.json agrees: a trainer writes its closing event to metrics.jsonl
# just before it marks run.json stopped, finished or error.
SETTLE_SECONDS = 5.0
RUN_KEYS = ("pause", "resume", "stop", "save")


def runs_screen_run_keys() -> list[Binding]:
    """The run keys, with pause and resume on p: here space marks runs for comparing."""
    return [replace(binding, key="p", key_display="p") if binding.action in ("pause", "resume") else binding
            for binding in run_key_bindings("runs", "the selected live run")]


class RunsScreen(RunKeys, PlaygroundScreen):
    COMPONENT_CLASSES = {"runs--live", "runs--strong", "runs--note"}
    AUTO_FOCUS = "#runs-table"
    # In the footer's order: a live run's keys first (the run keys, t to follow it), marking and comparing, then
    # the others'.
    BINDINGS = [
        *runs_screen_run_keys(),
        Binding("t", "follow", "Follow on Train", id="runs.follow",
                tooltip="show the selected live run on the Train screen, whose keys then pause, save and stop it "
                        "(s there lets go of it, and it trains on, to start a run of your own)"),
        Binding("space", "mark", "Mark", key_display="space", id="runs.mark",
                tooltip="mark or unmark the selected run for comparing (its mark shows in the first column)"),
        Binding("M", "mark_sweep", "Mark sweep", show=False, id="runs.mark_sweep",
                tooltip="mark every run of the selected run's sweep (v then overlays them; the sweep's best has ★)"),
        Binding("v", "compare", "Compare", id="runs.compare",
                tooltip="compare the marked runs (two or more): their loss curves on one plot, against steps, "
                        "characters or time, and their best values with the settings that differ"),
        Binding("s", "open('sample')", "Sample", id="runs.sample",
                tooltip="open the selected run on the Sample screen"),
        Binding("g", "open('gates')", "Gates", id="runs.gates",
                tooltip="open the selected run on the Gates screen (a time-series run: its own Gates screen)"),
        Binding("t", "train_more", "Train more", id="runs.train_more",
                tooltip="resume training the selected run (on the Train screen: set the budget, press s)"),
        Binding("d,delete", "delete", "Delete", id="runs.delete",
                tooltip="delete the selected run's folder (asks first; a live run cannot be deleted)"),
        Binding("r,f5", "refresh", "Refresh", id="runs.refresh",
                tooltip="list the runs again (also every few seconds on its own)"),
    ]

    BUSY = {"runs-details": "loading…"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.infos: list[RunInfo] = []
        self.sweeps: dict[str, tuple[str, bool]] = {}  # run name: (its sweep, whether it is the sweep's best)
        self._rows: tuple | None = None
        self.selected: Path | None = None
        self.details: RunDetails | None = None
        self.reach: ControlReach | None = None       # whether commands reach the selected run (with its details)
        self.controller: RunController | None = None  # watches the selected run; the app stops it on quit
        self.watch_state = RunState()
        self.watch_snapshot: RunSnapshot | None = None  # the selected run's, once its metrics were read
        self._since_list = 0.0
        self._settle_until = 0.0
        self.marked: list[Path] = []  # the runs marked for comparing, in the order marked (which gives their marks)

    def compose(self) -> ComposeResult:
        yield ModeBar("runs")
        with Vertical(id="runs-body"):
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="runs-empty")
            with Horizontal(id="run-details"):
                yield Static("", id="details-info")
                with Vertical(id="details-curves"):
                    yield Static("", id="details-status")
                    yield LossPanel("train loss", id="details-train")
                    yield LossPanel("val loss", id="details-val")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#runs-table").border_title = f"runs in {self.app.runs_dir_display}"
        self.query_one("#run-details").border_title = "details"
        self.refresh_runs()
        if self.app.watch_interval:
            self.set_interval(self.app.watch_interval, self._tick)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # -- listing

    def refresh_runs(self) -> None:
        self._since_list = 0.0
        self._list_runs(self.app.runs_dir)

    @work(thread=True, exclusive=True, group="runs-list", exit_on_error=False)
    def _list_runs(self, runs_dir: Path) -> None:
        groups = sweep_groups(runs_dir)
        self.post_message(RunsListed(group_by_sweep(runs_for_display(runs_dir), groups), groups))

    def on_runs_listed(self, message: RunsListed) -> None:
        self.infos = message.infos
        listed = {info.path for info in self.infos}
        self.marked = [path for path in self.marked if path in listed]  # a deleted run is no longer marked
        self.sweeps = message.sweeps
        now = self.app.clock()
        rows = tuple(self._row(info, now) for info in self.infos)
        table = self.query_one("#runs-table", DataTable)
        empty = self.query_one("#runs-empty", Static)
        has_runs = bool(self.infos)
        table.display = has_runs
        self.query_one("#run-details").display = has_runs
        empty.display = not has_runs
        if not has_runs:
            empty.update(f"No runs in {self.app.runs_dir_display} yet.\n\nTrain one on the Train screen (press 1), "
                         "or start one headless in another terminal:\n\n    rnn-playground train\n\n"
                         "It appears here, marked live, and its loss curves update as it trains.")
        columns = self._fitting_columns(rows)
        if (rows, columns) != self._rows:
            self._rows = (rows, columns)
            keep = self.selected.name if self.selected is not None else None
            table.clear(columns=True)
            # Widths from the content, given up front: a DataTable that measures them later can
            # draw its first frame with the header's widths and keep it.
            for _, key, label, width in columns:
                table.add_column(label, key=key, width=width)
            for info, row in zip(self.infos, rows, strict=True):
                table.add_row(*(row[index] for index, *_ in columns), key=info.name)
            names = [info.name for info in self.infos]
            if names:
                table.move_cursor(row=names.index(keep) if keep in names else 0)
        if has_runs:
            self._select(self.infos[table.cursor_row].path if 0 <= table.cursor_row < len(self.infos) else None)
        else:
            self._select(None)
        refresh_bindings_if_changed(self)

    def _fitting_columns(self, rows: tuple) -> tuple:
        """(index, key, label, width) of the columns shown: all whose content fits whole in the
        table's width, leaving out DROPPED_FIRST in order until the rest do."""
        widths = [max([1, len(label)] + [Text(c).cell_len if isinstance(c, str) else c.cell_len
                                      for c in (row[index] for row in rows)])
                  for index, (_, label) in enumerate(COLUMNS)]
        table = self.query_one("#runs-table", DataTable)
        # the border, and room for a scroll bar should the rows outgrow the table
        room = (table.size.width or self.app.size.width) - 2 - 2
        shown = [(index, key, label, widths[index]) for index, (key, label) in enumerate(COLUMNS)
                 if (key != "mark" or self.marked)
                 and (key != "sweep" or any(info.name in self.sweeps for info in self.infos))]
        for key in DROPPED_FIRST:
            if sum(width + 2 * CELL_PADDING for *_, width in shown) <= room:
                break
            shown = [column for column in shown if column[1] != key]
        return tuple(shown)

    def on_resize(self) -> None:
        if self.infos:
            self.on_runs_listed(RunsListed(self.infos, self.sweeps))  # the columns that fit the new width
        self._show_details()  # its lines packed to the new width

    def _row(self, info: RunInfo, now: float) -> tuple:
        live = Text("● live", style=self._live_style()) if info.live else Text("")
        model = Text("unreadable", style="bold red") if info.problem else info.model
        mark = Text(run_mark(self.marked.index(info.path)), style="bold") if info.path in self.marked else Text("")
        sweep, best = self.sweeps.get(info.name, ("", False))
        return (mark, info.name, sweep + (" ★" if best else ""), info.kind, model,
                Text(f"{info.step:,}", justify="right"), Text(fmt_loss(info.best_val_loss), justify="right"),
                info.device, Text(human_size(info.size_bytes), justify="right"), fmt_age(now - info.updated), live)

    def _live_style(self):
        return self.get_component_rich_style("runs--live")

    @property
    def selected_info(self) -> RunInfo | None:
        if self.selected is None:
            return None
        return next((info for info in self.infos if info.path == self.selected), None)

    # -- selection and details

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key is not None else None
        info = next((i for i in self.infos if i.name == name), None)
        self._select(info.path if info else None)

    def _select(self, run_dir: Path | None) -> None:
        if run_dir == self.selected and self.controller is not None:
            info = self.selected_info
            if info is not None and info.live and not self.controller.active:
                self._watch(run_dir)  # it trains again (resumed elsewhere): watched afresh
            if self.details is not None and info is not None and (info.step, info.updated, info.live) != (
                    self.details.info.step, self.details.info.updated, self.details.info.live):
                self._load_details(run_dir)  # it moved on: fresh details, the same watch
            return
        self.selected = run_dir
        self.details, self.reach = None, None
        self._watch(run_dir)
        refresh_bindings_if_changed(self)
        if run_dir is None:
            self._show_details()
            return
        self._load_details(run_dir)

    def _watch(self, run_dir: Path | None) -> None:
        """Watch the selected run through a controller of its own (the previous one lets go of its run, which
        trains on): its metrics come in as they are written; the run keys go out through its folder."""
        previous, self.controller = self.controller, None
        controllers = getattr(self.app, "controllers", [])
        again = previous is not None and previous.backend is not None and \
            getattr(previous.backend, "run_dir", None) == run_dir
        if previous is not None:
            previous.stop("quit")  # a watch only stops watching
            if previous in controllers:
                controllers.remove(previous)
        self.watch_state = RunState()
        if not again:  # the same run watched again keeps showing what it showed until the new watch reads it
            self.watch_snapshot = None
        if run_dir is None:
            return
        controller = thread_controller(self, lambda state: self._watch_changed(controller, state), "runs-watch")
        self.controller = controller
        controllers.append(controller)  # quitting lets go of it; only a run of this app's own is stopped
        # watch_interval 0 (timers off): read the metrics once, then wait to be let go
        controller.watch(run_dir, self.app.watch_interval or None)

    @work(thread=True, exclusive=True, group="runs-details", exit_on_error=False)
    def _load_details(self, run_dir: Path) -> None:
        self.post_message(DetailsLoaded(run_dir, run_details(run_dir), ControlReach.of(run_dir)))

    def on_details_loaded(self, message: DetailsLoaded) -> None:
        if message.run_dir != self.selected:
            return
        self.details, self.reach = message.details, message.reach
        self._show_details()
        refresh_bindings_if_changed(self)

    def busy_changed(self) -> None:
        self._show_details()

    def on_run_updated(self, message: RunUpdated) -> None:
        # The watches' own (the app's Train run posts to the app): the current one's, or a late one of a
        # watch let go, whose state no longer matters. On up to the app, which may be waiting to quit.
        state = message.controller.receive(message.update)
        if state is not None and message.controller is self.controller:
            self._follow(state.snapshot)

    def _watch_changed(self, controller: RunController, state: RunState) -> None:
        """The watch's state: an update received, or a command asked (its status word: pausing, stopping)."""
        if controller is not self.controller:
            return
        self.watch_state = state
        self.say_refusals(state)
        if self.watch_snapshot is not None:
            self._show_details()
        refresh_bindings_if_changed(self)

    def _follow(self, snapshot: RunSnapshot) -> None:
        """Show the selected run's latest snapshot. When it has just started or ended (its metrics
        say so), list the runs now, so the live mark, the state and the saved checkpoints follow at
        once rather than at the next periodic listing."""
        before, self.watch_snapshot = self.watch_snapshot, snapshot
        self._show_details()
        if before is not None and before.active != snapshot.active:
            self._settle_until = time.monotonic() + SETTLE_SECONDS
            self.refresh_runs()

    def _out_of_step(self) -> bool:
        """Whether the listing or the details still disagree with the metrics on whether the run is live."""
        snap = self.watch_snapshot
        if snap is None or snap.status == "idle":
            return False
        listed = [self.selected_info, self.details.info if self.details is not None else None]
        return any(info is not None and info.live != snap.active for info in listed)

    def _tick(self) -> None:
        """Timer: now and then list the runs again (the watch reads the selected run's metrics itself)."""
        if not self.is_active:  # also False while the app shuts down (no screen on the stack)
            return
        self._since_list += self.app.watch_interval
        settling = time.monotonic() < self._settle_until and self._out_of_step()
        if self._since_list >= self.app.list_interval or settling:
            self.refresh_runs()

    def on_unmount(self) -> None:
        self._watch(None)  # let go of the selected run (it trains on)

    def control_note(self) -> str:
        """Why the selected live run cannot be steered from here ("" when it can, or is not live)."""
        info = self.selected_info
        return control_note(info is not None and info.live, self.reach, self.watch_state)

    def _show_details(self) -> None:
        info = self.query_one("#details-info", Static)
        status = self.query_one("#details-status", Static)
        details, snap = self.details, self.watch_snapshot
        if details is None:
            set_text(info, self.busy_text("runs-details"))
            set_text(status, "")
            for panel in self.query(LossPanel):
                panel.show((), None, None)
            return
        strong = self.get_component_rich_style("runs--strong")
        width = info.content_size.width
        state, live, step, best = run_state(details, snap)
        # Each line is a list of phrases, packed to the panel's width: a line breaks between
        # phrases ("batch 64", "20,000 steps"), never inside one.
        head = [Text(details.info.name, strong), details.info.model]
        if details.vocab_size is not None:
            head.append(f"vocab {details.vocab_size}")
        status_phrase = Text(state)
        if live:
            status_phrase.append(" live", self._live_style())
        status_phrases = [status_phrase, f"step {step:,}", f"best {fmt_loss(best)}"]
        if snap is not None:
            status_phrases += rank_phrases(snap)  # a distributed run: its ranks and each one's speed
        hidden = {key for key in DROPPED_FIRST} - {key for _, key, *_ in (self._rows or ((), ()))[1]}
        if "device" in hidden:  # a column the table has no room for
            status_phrases.append(details.info.device)
        if "size" in hidden:
            status_phrases.append(human_size(details.info.size_bytes))
        if details.checkpoints:
            status_phrases.append("saved " + ", ".join(name.removesuffix(".safetensors")
                                                       for name in details.checkpoints))
        lines = [head, status_phrases]
        if live and snap is not None:  # the machine while it trains: a line per device, once recorded
            lines += [[line] for line in system_lines(snap, width or 80)]
        if note := self.control_note():
            lines.append([Text(note, self.get_component_rich_style("runs--note"))])
        if details.info.problem:
            lines.insert(1, [Text(f"unreadable: {details.info.problem}", "bold red")])
        lines += settings_lines(details)
        text = Text()
        for n, phrases in enumerate(lines):
            if n:
                text.append("\n")
            text.append_text(pack_phrases(phrases, width, separator=" · " if n else "  "))
        set_text(info, text)
        if snap is not None:
            line = Text(no_wrap=True, overflow="ellipsis")
            word = self.watch_state.status if self.watch_state.active else snap.status  # pausing, stopping…
            line.append(word, self.get_component_rich_style("runs--strong"))
            total = f"/{snap.total_steps:,}" if snap.total_steps else ""
            unit = "points" if details.info.kind == "series" else "chars"
            rate = f"  {fmt_rate(snap.tokens_per_s)} {unit}/s" if snap.tokens_per_s is not None and snap.active else ""
            append_fitting(line, [f"  step {snap.step:,}{total}", rate], status.content_size.width)
            set_text(status, line)
            self.query_one("#details-train", LossPanel).show(snap.train_losses, snap.loss, snap.best_loss,
                                                              snap.step if snap.train_losses else None)
            self.query_one("#details-val", LossPanel).show(snap.val_losses, snap.val_loss, snap.best_val_loss,
                                                            snap.val_steps[-1] if snap.val_steps else None)

    # -- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "compare":
            return True if len(self.marked) >= 2 else None  # greyed until two runs are marked
        if action == "mark_sweep":  # with any run selected: one not in a sweep is told so
            return self.selected_info is not None
        if action in ("open", "mark", "train_more", "follow", "delete", *RUN_KEYS):
            info = self.selected_info
            if info is None:
                return False
            if action == "delete" and info.live:
                return None  # greyed: a live run cannot be deleted
            if action == "follow":
                return info.live  # t: Follow on Train for a live run, Train more for the others
            if action == "train_more":
                if info.live:
                    return False
                train = self.app.train_run
                return None if train.active and not train.watched else True
            if action in RUN_KEYS:
                if not info.live or self.controller is None:
                    return False  # not training: nothing to pause or stop (its state says so)
                if self.control_note():
                    return None if action != "resume" else False  # greyed: the details say why
                return self.run_key_applies(action, self.watch_state)
        return True

    def action_open(self, mode: str) -> None:
        info = self.selected_info
        if info is not None and info.kind == "series" and mode == "gates":
            self.app.push_screen(SeriesGatesScreen(info.path))
            return
        if info is not None and info.kind == "series" and mode == "sample":
            # Refused here, before the screen drops the checkpoint it has open for one it cannot read.
            self.app.notify(f"{info.name} is a time-series run; the {mode.title()} screen reads character models. "
                            f"Forecast it with: rnn-playground series forecast {info.path}",
                            title="Not opened", severity="warning", timeout=10)
            return
        if self.selected is not None:
            self.app.open_run(mode, self.selected)

    def action_follow(self) -> None:
        """The selected live run on the Train screen: the app's Train controller watches it, and the Train
        screen's keys steer it (its own run, if one trains, is not given up for it)."""
        info = self.selected_info
        if info is None or not info.live:
            return
        app = self.app
        train = app.train_controller

        def same(path) -> bool:
            return path is not None and Path(path).resolve() == info.path.resolve()

        if train.active and not train.watching:
            if not same(train.snapshot.run_dir):
                app.notify(f"A run of this app's own is training on the Train screen; stop it there (x) to follow "
                           f"{info.name} instead.", title="Not followed", severity="warning")
                return
        elif not (train.watching and same(train.backend.run_dir)):
            train.watch(info.path, app.watch_interval or None)  # lets go of a run it followed before
        app.switch_mode("train")

    def action_train_more(self) -> None:
        info = self.selected_info
        if info is None:
            return
        train = self.app.train_run
        if train.active and not train.watched:
            self.app.notify("A run is training in this app; stop it first.", severity="warning")
            return
        writer = writer_of(info.path)
        if writer is not None:  # the lock says, even if the listing is a moment old
            self.app.notify(f"{info.name} is being trained by {writer.describe()}, and a run has one writer: "
                            "stop it first (x here) to train more.", severity="warning")
            return
        details = self.details if self.details is not None and self.details.info.path == info.path else None
        if details is None:
            details = run_details(info.path)
        if details is None or not any(name == "last.safetensors" for name in details.checkpoints):
            self.app.notify(f"{info.name} has no checkpoint to resume from.", severity="error")
            return
        if info.kind != "char":
            self.app.notify(f"{info.name} is a {info.kind} run; only character models resume here.",
                            severity="error")
            return
        self.app.prepare_resume(info.path, details.config, details.info.step)

    def action_delete(self) -> None:
        info = self.selected_info
        if info is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(info.path)

        self.app.push_screen(ConfirmScreen(f"Delete run {info.name}?",
                                           f"This removes {info.path} and its checkpoints "
                                           f"({human_size(info.size_bytes)}). It cannot be undone.",
                                           yes="Delete", no="Keep"), confirmed)

    @work(thread=True, exclusive=True, group="runs-delete", exit_on_error=False)
    def _delete(self, run_dir: Path) -> None:
        try:
            delete_run(run_dir, self.app.runs_dir)
        except (PlaygroundError, OSError) as exc:
            self.post_message(RunNotDeleted(run_dir, str(exc)))
            return
        self.post_message(RunDeleted(run_dir))

    def on_run_not_deleted(self, message: RunNotDeleted) -> None:
        self.app.notify(message.reason, title="Not deleted", severity="error")

    def on_run_deleted(self, message: RunDeleted) -> None:
        self.app.notify(f"Deleted {message.run_dir.name}.")
        if self.app.selected_run == message.run_dir:
            self.app.selected_run = None
        self.refresh_runs()

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_mark(self) -> None:
        info = self.selected_info
        if info is None:
            return
        if info.path in self.marked:
            self.marked.remove(info.path)
        else:
            self.marked.append(info.path)
        self.on_runs_listed(RunsListed(self.infos, self.sweeps))  # the mark column, and v's state in the key bar

    def action_mark_sweep(self) -> None:
        info = self.selected_info
        sweep = self.sweeps.get(info.name, ("", False))[0] if info is not None else ""
        if not sweep:
            self.app.notify("The selected run is not part of a sweep.", title="No sweep", severity="warning")
            return
        for other in self.infos:
            if self.sweeps.get(other.name, ("", False))[0] == sweep and other.path not in self.marked:
                self.marked.append(other.path)
        self.on_runs_listed(RunsListed(self.infos, self.sweeps))

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.app.notify("Mark two or more runs with space to compare them.", title="Nothing to compare",
                            severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked)))

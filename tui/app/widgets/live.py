"""Live view of a run: loss sparklines with current and best values, throughput, progress, sample, log."""

from __future__ import annotations

from statistics import fmean

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog, Sparkline, Static

from rnn_playground.core.model import describe_model
from rnn_playground.tui.viewmodel.format import fmt_loss, fmt_rate, format_duration
from rnn_playground.tui.viewmodel.monitor import RunSnapshot, rank_phrases, system_lines

from .fitting import append_fitting

STATUS_MARK = {"idle": "○", "starting": "◌", "training": "●", "paused": "‖", "stopped": "■", "finished": "✓",
               "error": "✗", "pausing": "…", "resuming": "…", "stopping": "…"}


def _mean(values):
    return fmean(values) if values else 0.0


def set_text(widget: Static, content, layout: bool = False) -> None:
    """Update a fixed-size Static only when its text changed, and without a layout pass: at a few
    updates a second, a relayout of the whole screen each time is most of the app's CPU."""
    if getattr(widget, "_shown_content", None) == content:
        return
    widget._shown_content = content
    widget.update(content, layout=layout)


def next_validation(snap: RunSnapshot) -> str:
    """When the next validation (and sample) comes, by steps or by time, while training."""
    if snap.status != "training":
        return ""
    if snap.next_val_step is not None:
        return f"next step {snap.next_val_step:,}"
    if snap.next_val_in_s is not None:
        return f"next in {format_duration(snap.next_val_in_s)}"
    return ""


class LossPanel(Vertical):
    """A labelled sparkline: `train loss 1.2345  best 1.1000  (n points)`."""

    COMPONENT_CLASSES = {"loss--title", "loss--muted"}

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self._shown: tuple | None = None
        self._last: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"{self.title} -", classes="loss-label")
        yield Sparkline([], summary_function=_mean)

    def show(self, values: tuple[float, ...], current: float | None, best: float | None,
             step: int | None = None, note: str = "") -> None:
        self._last = (values, current, best, step, note)
        self._render_label()

    def on_mount(self) -> None:
        self._render_label()

    def on_resize(self) -> None:
        self._render_label()

    def _render_label(self) -> None:
        labels = self.query(Label)
        if self._last is None or not labels:  # nothing to show yet, or not composed yet
            return
        values, current, best, step, note = self._last
        width = self.size.width
        key = (len(values), values[-1] if values else None, current, best, step, note, width)
        if key == self._shown:
            return  # nothing new: no re-render
        self._shown = key
        muted = self.get_component_rich_style("loss--muted")
        label = Text(no_wrap=True, overflow="ellipsis")
        label.append(self.title, self.get_component_rich_style("loss--title"))
        label.append(f" {fmt_loss(current)}")
        # The current value always shows; then best, the note (when the next validation comes) and
        # step, as far as they fit whole. Where best and the note do not both fit, the note wins:
        # while training, when the next validation comes is the news (best is also in the log).
        parts = [f"  best {fmt_loss(best)}"]
        if note:
            if width and label.cell_len + len(parts[0]) + len(note) + 2 > width:
                parts = []
            parts.append(f"  {note}")
        if step is not None:
            parts.append(f"  step {step:,}")
        for part in parts:
            if width and label.cell_len + len(part) > width:
                break
            label.append(part, muted)
        set_text(labels.first(), label)
        # One point has no shape: drawn, it would fill the whole width as a solid block.
        self.query_one(Sparkline).data = list(values) if len(values) > 1 else []


class LiveView(Vertical):
    """Renders a RunSnapshot with its status word (the controller's: 'pausing', 'stopping' before the
    trainer confirms)."""

    COMPONENT_CLASSES = {"live--strong", "live--error", "live--warning"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._log_seq = 0
        self.snapshot = RunSnapshot()
        self._status: str | None = None
        self._elsewhere = False

    def compose(self) -> ComposeResult:
        yield Static("", id="run-title")
        yield Static("", id="run-device")
        yield Static("", id="run-system")  # a line per device (CPU, GPU figures) once the run records them
        yield Static("", id="run-status")
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=True, id="progress")
            yield Static("", id="eta")
        yield LossPanel("train loss", id="train-loss")
        yield LossPanel("val loss", id="val-loss")
        yield Static("", id="sample")
        yield RichLog(id="event-log", max_lines=500, wrap=True, markup=False, min_width=20)

    def on_mount(self) -> None:
        self.query_one("#sample", Static).border_title = "sample"
        self.query_one("#event-log", RichLog).border_title = "log"
        self.show(self.snapshot)

    def show(self, snap: RunSnapshot, status: str | None = None, elsewhere: bool = False) -> None:
        """`status`: the word to show, when not the snapshot's own; `elsewhere`: the run trains in another
        process (followed from the Runs screen)."""
        self.snapshot, self._status, self._elsewhere = snap, status, elsewhere
        status = status or snap.status
        strong = self.get_component_rich_style("live--strong")
        title = Text(no_wrap=True, overflow="ellipsis")
        if snap.run_name:
            title.append(snap.run_name, strong)
            model = (snap.config or {}).get("model") or {}
            # as far as each fits whole: a followed run says so before its model and size
            append_fitting(title, ["  in another process" if elsewhere else "",
                                   f"  {describe_model(model)}" if model else "",
                                   f"  {snap.parameters / 1e6:.2f}M params" if snap.parameters else ""],
                           self.query_one("#run-title", Static).content_size.width)
        elif status == "idle":
            title.append("No run yet. Check the settings, press s.")
        elif status == "error":
            title.append("The run could not start: see the log.")
        else:
            title.append("Preparing the run…")
        set_text(self.query_one("#run-title", Static), title)
        # One line each: what does not fit whole is left out (the log says it too), never cut.
        device_line = self.query_one("#run-device", Static)
        ranks = rank_phrases(snap)  # a distributed run: its ranks' devices and speeds instead of one device
        device = Text(ranks[0] if ranks else f"device {snap.device}" if snap.device else "", no_wrap=True,
                      overflow="ellipsis")
        parts = [f" · {phrase}" for phrase in ranks[1:]]
        if snap.last_checkpoint_step is not None:
            parts.append(f" · saved at step {snap.last_checkpoint_step:,}")
        append_fitting(device, parts, device_line.content_size.width)
        set_text(device_line, device)
        system = self.query_one("#run-system", Static)
        lines = system_lines(snap, system.content_size.width or self.content_size.width) if snap.active else []
        if system.display != bool(lines):
            system.display = bool(lines)
        resized = len(lines) != getattr(system, "_line_count", 0)  # a layout pass only when its height changes
        system._line_count = len(lines)
        set_text(system, Text("\n".join(lines), no_wrap=True, overflow="ellipsis"), layout=resized)

        status_line = self.query_one("#run-status", Static)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{STATUS_MARK.get(status, '?')} {status}", strong)
        if snap.status != "idle":
            total = f"/{snap.total_steps:,}" if snap.total_steps else ""
            rate = f" · {fmt_rate(snap.tokens_per_s)} chars/s" if snap.tokens_per_s is not None else ""
            append_fitting(line, [f"  step {snap.step:,}{total}", rate], status_line.content_size.width)
        set_text(status_line, line)
        bar = self.query_one(ProgressBar)
        progress = round(snap.progress if snap.progress is not None else 0.0, 3)
        if bar.progress != progress:
            bar.update(progress=progress)
        eta = "" if snap.status == "idle" else (
            f"ETA {format_duration(snap.eta_s)}" if snap.eta_s is not None and snap.active else
            f"{format_duration(snap.elapsed_s)}" if snap.elapsed_s is not None else "")
        set_text(self.query_one("#eta", Static), eta)

        self.query_one("#train-loss", LossPanel).show(snap.train_losses, snap.loss, snap.best_loss,
                                                       snap.step if snap.train_losses else None)
        self.query_one("#val-loss", LossPanel).show(snap.val_losses, snap.val_loss, snap.best_val_loss,
                                                     snap.val_steps[-1] if snap.val_steps else None,
                                                     next_validation(snap))
        sample = self.query_one("#sample", Static)
        if snap.sample != getattr(sample, "_shown_content", None):
            # None (a new run with no sample yet) clears the previous run's
            sample.border_title = "sample" if snap.sample is None else f"sample at step {snap.sample_step:,}"
            sample._shown_content = snap.sample
            sample.update(Text(snap.sample or "", no_wrap=False, overflow="fold"), layout=False)
        log = self.query_one("#event-log", RichLog)
        for line_ in snap.log:
            if line_.seq <= self._log_seq:
                continue
            self._log_seq = line_.seq
            if line_.level in ("error", "warning"):
                log.write(Text(f"{line_.level}: {line_.text}", self.get_component_rich_style(f"live--{line_.level}")))
            else:
                log.write(Text(line_.text))

    def on_resize(self) -> None:
        self.show(self.snapshot, self._status, self._elsewhere)  # the lines fit to the new width

    def reset_log(self) -> None:
        """A new session's snapshots number their log lines from 1 again."""
        self._log_seq = 0

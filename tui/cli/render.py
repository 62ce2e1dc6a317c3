"""Rich rendering of training events for the headless `train` commands."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rnn_playground.core.events import (
    CheckpointSaved,
    ErrorEvent,
    Event,
    Finished,
    Paused,
    Resumed,
    RunStarted,
    SampleEvent,
    StepEvent,
    Stopped,
    ValidationEvent,
)
from rnn_playground.tui.viewmodel.format import fmt_loss, fmt_rate, format_duration
from rnn_playground.tui.viewmodel.monitor import describe_val_sample, describe_validation

PLAIN_LINE_SECONDS = 10.0  # without a terminal (nohup, CI logs), one progress line this often


class TrainDisplay:
    """Consumes trainer events; draws a live panel on a terminal, plain lines otherwise."""

    def __init__(self, console: Console, title: str = "training", *, show_samples: bool = True,
                 on_output_lost: Callable[[], None] | None = None):
        self.console = console
        self.title = title
        self.show_samples = show_samples  # series runs' "samples" are metrics the plain lines already give
        self.on_output_lost = on_output_lost  # called once if the console can no longer be written to
        self.output_lost = False
        self.started: RunStarted | None = None
        self.step: StepEvent | None = None
        self.val: ValidationEvent | None = None
        self.sample = ""
        self.status = "starting"
        self.unit = "characters"
        self._live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> TrainDisplay:
        if self.console.is_terminal:
            # Redrawn from this thread on each event (the trainer reports a few times a second), not
            # by Rich's refresh thread, so a terminal that vanishes is noticed here (see _lose_output).
            self._live = Live(self._render(), console=self.console, auto_refresh=False, transient=False)
            try:
                self._live.start(refresh=True)
            except OSError:
                self._lose_output()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            try:
                self._live.update(self._render())
                self._live.stop()
            except OSError:
                self._lose_output()

    def log(self, message: str) -> None:
        if self.output_lost:
            return
        try:
            self.console.print(message, highlight=False)
        except OSError:
            self._lose_output()

    def _lose_output(self) -> None:
        """A closed pipe (`... 2>&1 | head`) or a vanished terminal (EIO): write nothing more and ask
        the run to stop at the next step and save, quietly."""
        first = not self.output_lost
        self.output_lost = True
        live, self._live = self._live, None
        if live is not None:
            try:  # restores stdout/stderr redirection before its last (failing) write
                live.stop()
            except OSError:
                pass
        if first and self.on_output_lost is not None:
            self.on_output_lost()

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started = event
            self.status = "training"
            self.unit = event.unit
            vocab = f"vocab {event.vocab_size}, " if event.vocab_size else ""
            self.log(f"run [bold]{event.run_name}[/] in {event.run_dir} on {event.device}: "
                     f"{event.parameters:,} parameters, {vocab}"
                     f"{event.train_chars:,} train / {event.val_chars:,} validation {event.unit}"
                     + describe_val_sample(event)
                     + (f", resuming at step {event.start_step}" if event.start_step else ""))
        elif isinstance(event, StepEvent):
            self.step = event
            if self._live is None and time.monotonic() - self._last_plain >= PLAIN_LINE_SECONDS:
                self._last_plain = time.monotonic()
                self.log(self._plain_line())
        elif isinstance(event, ValidationEvent):
            self.val = event
            if self._live is None:
                self.log(f"step {event.step}: val loss {fmt_loss(event.val_loss)}{describe_validation(event)} "
                         f"(best {fmt_loss(event.best_val_loss)})")
        elif isinstance(event, SampleEvent):
            self.sample = event.text
            if self._live is None and self.show_samples and event.text:
                self.log(f"sample at step {event.step}:\n{event.text}")
        elif isinstance(event, CheckpointSaved):
            if event.reason in ("requested", "stop", "finish"):
                self.log(f"saved {event.path}")
        elif isinstance(event, Paused):
            self.status = "paused"
        elif isinstance(event, Resumed):
            self.status = "training"
        elif isinstance(event, Finished):
            self.status = "finished"
            best = fmt_loss(event.best_val_loss) if event.best_val_loss is not None else "n/a"
            self.log(f"[green]finished[/] at step {event.step} after {format_duration(event.elapsed_s)}; "
                     f"best val loss {best}")
        elif isinstance(event, Stopped):
            self.status = "stopped"
            self.log(f"[yellow]stopped[/] ({event.reason}) at step {event.step}")
        elif isinstance(event, ErrorEvent):
            self.status = "error"
            self.log(f"[bold red]error:[/] {event.message}")
        if self._live is not None:
            try:
                self._live.update(self._render(), refresh=True)
            except OSError:
                self._lose_output()

    def _plain_line(self) -> str:
        s = self.step
        total = f"/{s.total_steps}" if s.total_steps else ""
        val = f" val {fmt_loss(self.val.val_loss)}" if self.val else ""
        return (f"step {s.step}{total} epoch {s.epoch:.2f} loss {fmt_loss(s.loss)}{val} "
                f"{fmt_rate(s.tokens_per_s)} {self.unit}/s lr {s.lr:.2e} elapsed {format_duration(s.elapsed_s)} "
                f"eta {format_duration(s.eta_s)}")

    def _render(self):
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        s = self.step
        if self.started:
            table.add_row("run", f"{self.started.run_name} on {self.started.device}")
        table.add_row("status", self.status)
        if s is not None:
            total = f" / {s.total_steps}" if s.total_steps else ""
            table.add_row("step", f"{s.step}{total}  (epoch {s.epoch:.2f})")
            table.add_row("loss", fmt_loss(s.loss))
            table.add_row(f"{self.unit}/s", fmt_rate(s.tokens_per_s))
            table.add_row("lr", f"{s.lr:.2e}")
            table.add_row("elapsed / eta", f"{format_duration(s.elapsed_s)} / {format_duration(s.eta_s)}")
            if s.skipped_steps:
                table.add_row("skipped", f"{s.skipped_steps} non-finite steps")
        if self.val is not None:
            table.add_row("val loss", f"{fmt_loss(self.val.val_loss)}  (best {fmt_loss(self.val.best_val_loss)})")
        if s is not None and s.eta_s is not None:
            # A table cell, not a Group item: a bare ProgressBar does not end its line.
            done = s.elapsed_s / max(s.elapsed_s + s.eta_s, 1e-9)
            table.add_row("progress", ProgressBar(total=1.0, completed=done, width=50))
        parts = [table]
        if self.sample:
            parts.append(Panel(Text(self.sample), title="sample", border_style="dim"))
        return Panel(Group(*parts), title=self.title)

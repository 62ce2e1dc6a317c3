"""Rich rendering of a training run for the headless `train` commands: the same RunSnapshot the app shows."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rnn_playground.tui.viewmodel.format import fmt_loss, fmt_rate, format_duration
from rnn_playground.tui.viewmodel.monitor import (
    LogLine,
    RunSnapshot,
    describe_rank_speeds,
    describe_ranks,
    system_lines,
)

PLAIN_LINE_SECONDS = 10.0  # without a terminal (nohup, CI logs), one progress line this often
SYSTEM_LINE_SECONDS = 60.0  # and the system figures (a line per device) this often, the first as soon as read


class TrainDisplay:
    """Shows a run's snapshots: a live panel on a terminal, plain lines otherwise; the run's log lines
    above either (worded by the middle floor, as in the app)."""

    def __init__(self, console: Console, title: str = "training", *, show_samples: bool = True,
                 on_output_lost: Callable[[], None] | None = None):
        self.console = console
        self.title = title
        self.show_samples = show_samples  # series runs' "samples" are metrics the plain lines already give
        self.on_output_lost = on_output_lost  # called once if the console can no longer be written to
        self.output_lost = False
        self.snapshot = RunSnapshot(status="starting")
        self.status = "starting"
        self._live: Live | None = None
        self._last_plain = 0.0
        self._log_seq = 0
        self._sample_step: int | None = None
        self._step_shown: int | None = None
        self._system_shown: tuple | None = None  # the figures last printed
        self._last_system = -SYSTEM_LINE_SECONDS

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

    def show(self, snap: RunSnapshot, status: str | None = None) -> None:
        """Render a snapshot; `status`: the word to show, when not the snapshot's own."""
        self.snapshot, self.status = snap, status or snap.status
        for line in snap.log:
            if line.seq > self._log_seq:
                self._log_seq = line.seq
                self._print_line(line)
        if self._live is None:
            if snap.tokens_per_s is not None and snap.step != self._step_shown \
                    and time.monotonic() - self._last_plain >= PLAIN_LINE_SECONDS:
                self._last_plain = time.monotonic()
                self._step_shown = snap.step
                self.log(self._plain_line())
            if snap.system and snap.system != self._system_shown \
                    and time.monotonic() - self._last_system >= SYSTEM_LINE_SECONDS:
                self._last_system = time.monotonic()
                self._system_shown = snap.system
                for line in system_lines(snap, max(40, self.console.width)):
                    self.log(escape(line))
            if self.show_samples and snap.sample and snap.sample_step != self._sample_step:
                self.log(f"sample at step {snap.sample_step}:\n{escape(snap.sample)}")
        self._sample_step = snap.sample_step
        if self._live is not None:
            try:
                self._live.update(self._render(), refresh=True)
            except OSError:
                self._lose_output()

    def _print_line(self, line: LogLine) -> None:
        if line.kind == "validation" and self._live is not None:
            return  # the panel shows the validation loss
        text = escape(line.text)
        if line.level in ("error", "warning"):
            self.log(f"[{'bold red' if line.level == 'error' else 'yellow'}]{line.level}:[/] {text}")
        elif line.kind in ("finished", "stopped"):
            word, _, rest = text.partition(" ")
            self.log(f"[{'green' if line.kind == 'finished' else 'yellow'}]{word}[/] {rest}")
        else:
            self.log(text)

    def _plain_line(self) -> str:
        s = self.snapshot
        total = f"/{s.total_steps}" if s.total_steps else ""
        val = f" val {fmt_loss(s.val_loss)}" if s.val_loss is not None else ""
        ranks = describe_rank_speeds(s)  # a distributed run: each rank's own speed
        per_rank = f" (ranks {ranks})" if ranks else ""
        return (f"step {s.step}{total} epoch {s.epoch:.2f} loss {fmt_loss(s.loss)}{val} "
                f"{fmt_rate(s.tokens_per_s)} {s.unit}/s{per_rank} lr {s.lr:.2e} "
                f"elapsed {format_duration(s.elapsed_s)} eta {format_duration(s.eta_s)}")

    def _render(self):
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        s = self.snapshot
        if s.run_name:
            table.add_row("run", f"{s.run_name} on {describe_ranks(s.world_size, s.devices) or s.device}")
        table.add_row("status", self.status)
        if s.tokens_per_s is not None:
            total = f" / {s.total_steps}" if s.total_steps else ""
            table.add_row("step", f"{s.step}{total}  (epoch {s.epoch:.2f})")
            table.add_row("loss", fmt_loss(s.loss))
            table.add_row(f"{s.unit}/s", fmt_rate(s.tokens_per_s))
            if ranks := describe_rank_speeds(s):
                table.add_row("per rank", ranks)
            table.add_row("lr", f"{s.lr:.2e}")
            table.add_row("elapsed / eta", f"{format_duration(s.elapsed_s)} / {format_duration(s.eta_s)}")
            if s.skipped_steps:
                table.add_row("skipped", f"{s.skipped_steps} non-finite steps")
        if s.system and s.active:
            table.add_row("system", Text("\n".join(system_lines(s, max(40, self.console.width - 20)))))
        if s.val_loss is not None:
            table.add_row("val loss", f"{fmt_loss(s.val_loss)}  (best {fmt_loss(s.best_val_loss)})")
        if s.progress is not None and s.tokens_per_s is not None:
            # A table cell, not a Group item: a bare ProgressBar does not end its line.
            table.add_row("progress", ProgressBar(total=1.0, completed=s.progress, width=50))
        parts = [table]
        if s.sample:
            parts.append(Panel(Text(s.sample), title="sample", border_style="dim"))
        return Panel(Group(*parts), title=self.title)

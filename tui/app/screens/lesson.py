"""Lesson: the lesson's chapters, one page each, live on the learner's own model.

The pages are plain Python (viewmodel/lesson): each draws itself into a PageView of styled spans, which
this screen renders the same way for all of them. Their model comes from viewmodel/lesson/source.py: the
run open in the app, else the run training, else a demo model trained here in seconds.

Keys: ] and [ move between pages; g opens the screen that goes deeper; a page's own keys (PageKey; Page Up
and Down among them on some pages) reach its `handle` through on_key, ahead of the screen's bindings, and
show in the key bar.
A page with a "type" key gets a text field whose text goes to `handle("type", text)` on Enter, or as it
changes when the page's class sets TYPE_AS_YOU_GO (the Complete page); shown again, the page finds its
`field_text` there (none: empty).

Work a page asks for runs in a thread worker, one job at a time per page. The screen asks the page's `job()` after
set_source, after its keys, after each job ends and on its refresh timer (a few times a second); as one job of a
page runs at a time, keys typed meanwhile are taken together by the next. `job()` returns None, or a job: an
object with `run`, or a callable; either takes nothing, `progress(fraction, words)` (called from the worker; a
page with `progress(fraction, words)` hears it on the UI thread), or `progress` and `stop()` (true once the screen
closes or the page sets its `cancelled` attribute: a long job polls it, so that quitting the app does not wait for
it). Its outcome comes back on the UI thread: `finished(result)` or `finished(job, result)`, `failed(message)` or
`failed(job, message)` (without `failed`, the screen shows the message). The view repaints from the timer while
something is busy, never per step.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.widgets import Input, Static

from rnn_playground.tui.viewmodel.format import error_text
from rnn_playground.tui.viewmodel.lesson import make_pages
from rnn_playground.tui.viewmodel.lesson.page import PageView, Source
from rnn_playground.tui.viewmodel.lesson.source import SourceRequest, choose_source, live_figures, load_source

from ..keys import key_display
from ..messages import LessonJobDone, LessonSourceReady
from ..widgets.heatmap import BARS, Ramp
from ..widgets.keybar import KeyBar
from ..widgets.modebar import ModeBar
from .base import PlaygroundScreen, refresh_bindings_if_changed

TICK_S = 0.2   # the refresh timer: jobs asked for, progress shown


class LessonScreen(PlaygroundScreen):
    AUTO_FOCUS = ""
    SUBMIT_DESCRIPTION = "Done"
    COMPONENT_CLASSES = {"lesson--dim", "lesson--bold", "lesson--accent", "lesson--good", "lesson--bad",
                         "lesson--bar", "lesson--page", "lesson--current"}
    BINDINGS = [
        Binding("right_square_bracket", "page(1)", "Pages", key_display="[ ]", id="lesson.next",
                tooltip="the next page of the lesson"),
        Binding("left_square_bracket", "page(-1)", "Previous page", key_display="[", show=False,
                id="lesson.previous", tooltip="the previous page of the lesson"),
        Binding("g", "deeper", "Deeper", id="lesson.deeper",
                tooltip="open the screen that goes deeper into this page (the Gates page: at the same character)"),
        Binding("escape", "leave_field", "Leave field", key_display="esc", id="lesson.leave_field",
                tooltip="leave the text field"),
    ]

    def __init__(self, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.pages = make_pages(background=True)
        self.index = 0
        self.source: Source | None = None
        self.request_key: tuple | None = None      # the source loaded or loading
        self.pending_source: SourceRequest | None = None
        self.progress = 0.0                         # the demo model's training, written by the worker
        self.source_error = ""
        self._demo: Source | None = None            # trained once, kept in memory
        self._stop = threading.Event()              # set when the screen closes: every job and load stops
        self._load_stop = threading.Event()         # set when a newer load replaces the one running
        self._jobs: set[str] = set()                # pages whose job is running
        self._ready = False
        self.renders = 0                            # frames' worth of drawing asked for (the UI benchmark waits on it)
        self.job_progress: dict[str, tuple[float, str]] = {}  # a running job's (fraction, words) by its page

    @property
    def page(self):
        return self.pages[self.index] if self.pages else None

    def compose(self) -> ComposeResult:
        yield ModeBar("lesson")
        yield Static("", id="lesson-pages")
        yield Static("", id="lesson-title")
        yield Static("", id="lesson-origin")
        yield Static("", id="lesson-caption")
        yield Input("", id="lesson-input", compact=True, placeholder="type here; Enter or Esc leaves the field")
        yield Static("", id="lesson-status")
        yield Static("", id="lesson-body")
        yield KeyBar()

    def on_mount(self) -> None:
        self._ready = True
        self.set_interval(TICK_S, self._tick)
        self._tick()
        self.render_all()

    def on_screen_resume(self) -> None:
        self._tick()
        self.render_all()

    def on_resize(self) -> None:
        self.render_all()

    def on_unmount(self) -> None:
        self._stop.set()

    # -- the model

    def _tick(self) -> None:
        """A few times a second: the source the app now offers, the pages' jobs, the live figures."""
        app = self.app
        request = choose_source(getattr(app, "selected_run", None), getattr(app, "train_run", None))
        key = (request.run_dir, request.origin)
        if key != self.request_key:
            self.request_key = key
            if request.is_demo and self._demo is not None:
                self._load_stop.set()   # a run still loading was closed: its result is not taken
                self.pending_source = None
                self._use(self._demo)
            else:
                self._load(request)
        elif self.source is not None and self.source.live:
            snapshot = getattr(getattr(app, "train_run", None), "snapshot", None)
            if snapshot is not None and snapshot.run_dir and Path(snapshot.run_dir) == self.source.run_dir:
                self.source.live.update(live_figures(snapshot))
        self._show_job_progress()
        self._start_job()
        if self.pending_source is not None or self._jobs or (self.page is not None and self._view_busy()):
            self.render_all()

    def _view_busy(self) -> bool:
        return bool(self._last_view is not None and self._last_view.busy)

    _last_view: PageView | None = None

    def _load(self, request: SourceRequest) -> None:
        self.pending_source, self.progress, self.source_error = request, 0.0, ""
        self._load_stop.set()   # a demo still training for an older request stops rather than run on
        self._load_stop = threading.Event()
        self._load_worker(request, self._load_stop)
        self.render_all()

    @work(thread=True, exclusive=True, group="lesson-source", exit_on_error=False)
    def _load_worker(self, request: SourceRequest, replaced: threading.Event) -> None:
        def progressed(fraction: float) -> None:
            if not replaced.is_set():
                self.progress = fraction  # read by the timer: no message per step

        try:
            source = load_source(request, progressed, lambda: self._stop.is_set() or replaced.is_set())
            self.post_message(LessonSourceReady(request, source))
        except Exception as exc:  # noqa: BLE001 - shown in words; the screen stays usable
            what = "Training the demo model failed" if request.is_demo else f"Opening {request.run_dir} failed"
            self.post_message(LessonSourceReady(request, None, error_text(exc, what)))

    def on_lesson_source_ready(self, message: LessonSourceReady) -> None:
        if message.request is not self.pending_source:
            return  # an older request's (one demo request equals another: a demo stopped early is not kept)
        self.pending_source = None
        if message.source is None:
            self.source_error = message.error or "The model could not be loaded."
            self.render_all()
            return
        if message.request.is_demo:
            self._demo = message.source
        self._use(message.source)

    def _use(self, source: Source) -> None:
        self.source, self.source_error = source, ""
        for page in self.pages:
            try:
                page.set_source(source)
            except Exception as exc:  # noqa: BLE001 - one page's failure leaves the others usable
                self._page_error(page, error_text(exc, f"The {page.title} page failed"))
        self._start_job()
        self.render_all()

    # -- jobs

    def _start_job(self) -> None:
        page = self.page
        if page is None or page.name in self._jobs or self.source is None:
            return
        job = getattr(page, "job", None)
        if job is None:
            return
        try:
            work_fn = job()
        except Exception as exc:  # noqa: BLE001
            self._page_error(page, error_text(exc, f"The {page.title} page failed"))
            return
        if work_fn is None:
            return
        self._jobs.add(page.name)
        self.job_progress.pop(page.name, None)
        self._job_worker(page, work_fn)

    @work(thread=True, group="lesson-job", exit_on_error=False)
    def _job_worker(self, page, job) -> None:
        def progress(fraction: float, words: str = "") -> None:
            self.job_progress[page.name] = (fraction, words)  # read by the timer: no message per step

        def stop() -> bool:
            return self._stop.is_set() or bool(getattr(page, "cancelled", False))

        try:
            # a job object's run or a callable, each taking (), (progress) or (progress, stop)
            call = job.run if hasattr(job, "run") else job
            result = call(*(progress, stop)[:len(inspect.signature(call).parameters)])
            self.post_message(LessonJobDone(page, result, job=job))
        except Exception as exc:  # noqa: BLE001 - the page shows it in words
            self.post_message(LessonJobDone(page, None, error_text(exc, f"The {page.title} page's work failed"),
                                            job=job))

    def _show_job_progress(self) -> None:
        """On the UI thread: a page with `progress(fraction, words)` hears its job's progress."""
        page = self.page
        progress = self.job_progress.get(page.name) if page is not None else None
        if page is not None and page.name in self._jobs and progress is not None and hasattr(page, "progress"):
            page.progress(*progress)

    def on_lesson_job_done(self, message: LessonJobDone) -> None:
        page = message.page
        self._jobs.discard(page.name)
        if message.error:
            self._page_error(page, message.error, message.job)
        elif hasattr(page, "finished"):
            self._call(page.finished, message.job, message.result)
        self._start_job()  # a newer request waited for this one
        self.render_all()

    @staticmethod
    def _call(method, job, value) -> None:
        """A page's finished/failed, with the job first when it takes two arguments (finished(job, result))."""
        if job is not None and len(inspect.signature(method).parameters) >= 2:
            method(job, value)
        else:
            method(value)

    def _page_error(self, page, message: str, job=None) -> None:
        if hasattr(page, "failed"):
            self._call(page.failed, job, message)
        else:
            self.notify(message, title=page.title, severity="error", timeout=10)

    # -- keys

    def page_keys(self):
        return tuple(getattr(self.page, "keys", ())) if self.page is not None else ()

    def _typing_page(self) -> bool:
        return any(key.action == "type" for key in self.page_keys())

    async def on_key(self, event: events.Key) -> None:
        if isinstance(self.focused, Input) or self.source is None:
            return
        for key in self.page_keys():
            if event.key == key.key:
                event.stop()
                event.prevent_default()
                self.page_key(key.action)
                return

    def page_key(self, action: str) -> None:
        if action == "type":
            field = self.query_one("#lesson-input", Input)
            self.set_focus(field)
            return
        try:
            self.page.handle(action)
        except Exception as exc:  # noqa: BLE001 - a page's error in words
            self._page_error(self.page, error_text(exc, f"The {self.page.title} page failed"))
        self._after_key()

    def _after_key(self) -> None:
        """The key's frame first, then the job it asked for: a job's thread (an experiment training in Python)
        competes for the interpreter, and started first it held the frame back by up to 300 ms."""
        self.render_all()
        self.call_after_refresh(self._start_job)

    def action_page_key(self, action: str) -> None:
        self.page_key(action)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The screen's keys, then the current page's (shown in the key bar; on_key routes them)."""
        bindings = dict(super().active_bindings)
        if isinstance(self.focused, Input):
            return bindings
        for key in self.page_keys():
            if key.key not in bindings:
                binding = Binding(key.key, f"page_key({key.action!r})", key.description, id=f"lesson.page.{key.key}",
                                  tooltip=key.description)
                bindings[key.key] = ActiveBinding(self, binding, self.source is not None, key.description)
        return bindings

    def help_topic(self) -> Text | None:
        """Above the help's key table: the current page, what it shows, and its own keys."""
        page, view = self.page, self._last_view
        if page is None:
            return None
        text = Text()
        text.append(f"Lesson, {page.title} page", "bold")
        if view is not None:
            for part in view.caption:
                text.append(f"\n{part}")
        for key in self.page_keys():
            text.append(f"\n{key_display(key.key):>8}  ", "bold")
            text.append(key.description)
        return text

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.typed_in_field(action):
            return False
        if action == "leave_field":
            return isinstance(self.focused, Input)
        if action == "page":
            return len(self.pages) > 1
        if action == "deeper":
            return True if self._last_view is not None and self._last_view.deeper else None
        return True

    def action_page(self, delta: int) -> None:
        if not self.pages:
            return
        self.index = (self.index + delta) % len(self.pages)
        self.set_focus(None)
        # One field serves every page that takes text: it shows this page's own (a Complete page's beginning,
        # not the quiz answer typed on Shapes), set quietly, as the page already has it.
        field = self.query_one("#lesson-input", Input)
        with field.prevent(Input.Changed):
            field.value = str(getattr(self.page, "field_text", ""))
        self._after_key()

    def action_leave_field(self) -> None:
        self.set_focus(None)

    @on(Input.Changed, "#lesson-input")
    def _typed(self, event: Input.Changed) -> None:
        # A page that completes as you type (TYPE_AS_YOU_GO) hears every change; its job starts after the
        # frame, and changes made while it runs wait for the next one. Any other hears the text on Enter (a
        # quiz answer counts once).
        if self.page is not None and self._typing_page() and getattr(self.page, "TYPE_AS_YOU_GO", False):
            self._send_typed(event.value)

    @on(Input.Submitted, "#lesson-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.page is not None and self._typing_page() and not getattr(self.page, "TYPE_AS_YOU_GO", False):
            self._send_typed(event.value)
        self.set_focus(None)

    def _send_typed(self, text: str) -> None:
        try:
            self.page.handle("type", text)
        except Exception as exc:  # noqa: BLE001 - a page's error in words
            self._page_error(self.page, error_text(exc, f"The {self.page.title} page failed"))
        self._after_key()

    def action_deeper(self) -> None:
        view = self._last_view
        if view is None or not view.deeper:
            return
        page, source = self.page, self.source
        if view.deeper == "gates" and source is not None and hasattr(page, "pos") and hasattr(page, "text"):
            if source.run_dir is None:
                self.notify("The demo model lives in memory only: the Gates screen opens saved runs. Train one or "
                            "open a run on the Runs screen (5) to go deeper on it.", title="Gates", timeout=8)
                return
            opener = getattr(self.app, "open_gates_at", None)
            if opener is not None:
                opener(Path(source.run_dir), page.text, page.pos)
                return
        self.app.switch_mode(view.deeper)

    # -- drawing

    def render_all(self) -> None:
        if not self._ready:
            return
        self.renders += 1
        body = self.query_one("#lesson-body", Static)
        width, height = body.content_size.width or self.size.width, body.content_size.height or 10
        self._render_pages()
        page = self.page
        field = self.query_one("#lesson-input", Input)
        field.display = page is not None and self._typing_page()
        status = Text(overflow="ellipsis")
        error = self.source_error
        if page is None:
            view = PageView("Lesson", ("No lesson pages are installed.", ""), ())
        elif self.source is None:
            view = PageView(page.title, ("", ""), ())
        else:
            view = page.view(max(1, width), max(1, height))
            error = error or view.error
        self._last_view = view
        if self.pending_source is not None:
            what = "training the demo model (a few seconds, once)" if self.pending_source.is_demo else \
                f"loading {self.pending_source.run_dir.name}"
            status.append(f"{what} {self.progress:.0%}" if self.pending_source.is_demo else f"{what}…",
                          self._style("lesson--accent"))
        elif error:
            status.append(error, self._style("lesson--bad"))
        elif view.busy:
            progress = self.job_progress.get(page.name) if page is not None and page.name in self._jobs else None
            running = progress is not None and not hasattr(page, "progress")  # such a page says it itself
            status.append(view.busy + (f" {progress[0]:.0%}" if running else ""),
                          self._style("lesson--dim"))
        self.query_one("#lesson-status", Static).update(status)
        title = Text(view.title, self._style("lesson--bold"))
        self.query_one("#lesson-title", Static).update(title)
        self.query_one("#lesson-origin", Static).update(self._origin_text(view))
        caption = Text("\n".join(view.caption), self._style("lesson--dim"))
        self.query_one("#lesson-caption", Static).update(caption)
        body.update(self._body_text(view))
        refresh_bindings_if_changed(self)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name)

    def _render_pages(self) -> None:
        """The pages' titles, the current one marked; when they do not fit, the ones before it give way."""
        bar = self.query_one("#lesson-pages", Static)
        room = (bar.content_size.width or self.size.width) - 4
        entries = [f" {number + 1} {page.title} " for number, page in enumerate(self.pages)]
        first = 0
        while first < self.index and sum(map(len, entries[first:self.index + 1])) + (1 if first else 0) > room:
            first += 1
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("[ ] ", self._style("lesson--bold"))
        if first:
            text.append("…", self._style("lesson--page"))
        for number in range(first, len(entries)):
            current = number == self.index
            text.append(entries[number], self._style("lesson--current" if current else "lesson--page"))
        bar.update(text)

    def _origin_text(self, view: PageView) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        source = self.source
        text.append("model ", self._style("lesson--dim"))
        text.append(source.origin if source is not None else "none yet", self._style("lesson--accent"))
        if source is not None and source.live:
            live = source.live
            text.append(f"  step {live.get('step', 0):,}", self._style("lesson--dim"))
            if "window" in live:
                text.append(f", window {live['window'] + 1:,}/{live['windows_per_epoch']:,}",
                            self._style("lesson--dim"))
        if view.deeper_text:
            room = (self.query_one("#lesson-origin", Static).content_size.width or self.size.width) - len(text) - 6
            deeper = view.deeper_text
            if len(deeper) > room:  # the screen's name, without what it shows, rather than a word cut in two
                deeper = deeper.split(":")[0]
            text.append("  [g] ", self._style("lesson--bold"))
            text.append(deeper, self._style("lesson--dim"))
        return text

    def _body_text(self, view: PageView) -> Text:
        mono = bool(getattr(self.app, "no_color", False))
        ramp = Ramp(bool(getattr(self.app.current_theme, "dark", True))) if not mono else None
        styles = {name: self._style(f"lesson--{name}") for name in ("dim", "bold", "accent", "good", "bad", "bar")}
        text = Text(no_wrap=True, overflow="crop")
        for number, row in enumerate(view.lines):
            if number:
                text.append("\n")
            for span in row:
                if span.style == "heat":
                    if mono:  # the heatmap's NO_COLOR convention: a bar whose height is the value
                        level = min(len(BARS) - 1, int((max(-1.0, min(1.0, span.value)) + 1.0) / 2.0 * len(BARS)))
                        text.append(BARS[level] * len(span.text))
                    else:
                        text.append(span.text, Style(color=ramp.color(span.value)))
                else:
                    text.append(span.text, styles.get(span.style))
        return text

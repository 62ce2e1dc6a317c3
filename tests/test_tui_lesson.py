"""The Lesson screen (key 6) driven by keys: pages, where the model comes from, page keys, errors in words."""

from __future__ import annotations

import threading

import pytest

from rnn_playground.tui.viewmodel.lesson import source as lesson_source
from rnn_playground.tui.viewmodel.lesson.page import PageKey, PageView, line

from .tui_helpers import make_app, press, screen_text, shows, type_into, wait_for


async def to_page(pilot, name: str):
    screen = pilot.app.screen
    for _ in range(len(screen.pages)):
        if screen.page.name == name:
            return screen.page
        await press(pilot, "right_square_bracket")
    raise AssertionError(f"no {name} page")


async def test_key_6_opens_the_lesson_and_trains_the_demo_model(tmp_path, monkeypatch):
    from rnn_playground.tui.app.screens.lesson import LessonScreen
    monkeypatch.setitem(lesson_source.DEMO_SETTINGS, "steps", 20)  # a smaller demo for the test
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "6")
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen), 10, "the Lesson screen")
        screen = app.screen
        await shows(pilot, "6 Lesson")
        assert screen.pending_source is not None and screen.pending_source.is_demo
        await wait_for(pilot, lambda: screen.source is not None, 120, "the demo model")
        assert screen.source.origin.startswith("demo model") and screen.source.run_dir is None
        await shows(pilot, "demo model (20 steps")
        # ] and [ move between pages, wrapping
        first = screen.page.name
        await press(pilot, "right_square_bracket")
        assert screen.page.name != first
        await press(pilot, "left_square_bracket")
        assert screen.page.name == first
        page = await to_page(pilot, "gates_map")
        await shows(pilot, "Remember gate")
        # the Gates page's keys reach it, and show in the key bar
        await press(pilot, "right", "right", "full_stop", "l")
        assert (page.pos, page.unit, page.layer) == (2, 1, 1)
        await shows(pilot, "char 2")
        assert "next character" in screen_text(app) or "←" in screen_text(app)
        # the demo model is in memory only: going deeper says so rather than opening an empty screen
        await press(pilot, "g")
        assert isinstance(app.screen, LessonScreen)
        # leaving and coming back keeps the demo model (trained once)
        demo = screen.source
        await press(pilot, "1", "6")
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen), 10, "the Lesson screen")
        assert screen.source is demo and screen.pending_source is None


async def test_a_run_opened_on_the_runs_screen_becomes_the_source(tmp_path, tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        app.selected_run = tiny_run
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the run's model")
        screen = app.screen
        assert screen.source.run_dir == tiny_run and "tiny" in screen.source.origin
        await shows(pilot, "run tiny (opened on Runs)")
        page = await to_page(pilot, "gates_map")
        await press(pilot, *["right"] * 5)
        assert page.pos == 5
        # g opens the Gates screen on the same run, at the same character
        await press(pilot, "g")
        await wait_for(pilot, lambda: isinstance(app.screen, GatesScreen), 10, "the Gates screen")
        gates = app.screen.gates
        await wait_for(pilot, lambda: gates.trace is not None and gates.pos == 5 and gates.text == page.text, 60,
                       "the Gates screen at the Lesson's character")


async def test_the_complete_page_completes_what_is_typed(tmp_path, tiny_run):
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        app.selected_run = tiny_run
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the run's model")
        page = await to_page(pilot, "complete")
        await press(pilot, "t")
        assert app.screen.focused is app.screen.query_one("#lesson-input")
        await type_into(pilot, "#lesson-input", "The ")
        await wait_for(pilot, lambda: page.completions is not None and page.completions.prefix == "The ", 60,
                       "the completions of the typed text")
        await press(pilot, "enter")
        assert app.screen.focused is None
        text = await shows(pilot, "log p")
        assert text.count("log p") >= 4
        seed = page.seed
        await press(pilot, "r")
        assert page.seed == seed + 1
        await wait_for(pilot, lambda: page.completions.generation == page.generation, 60, "new completions")


async def test_a_broken_run_is_said_in_words(tmp_path):
    run = tmp_path / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "last.safetensors").write_bytes(b"not a checkpoint")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.selected_run = run
        await press(pilot, "6")
        error = await wait_for(pilot, lambda: getattr(app.screen, "source_error", ""), 30, "the error")
        assert "broken" in error and "Traceback" not in error
        text = await shows(pilot, error[:40])
        assert "Traceback" not in text
        assert app.screen.source is None


async def test_every_pages_keys_reach_it_and_show_in_the_key_bar(tmp_path, tiny_run):
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        app.selected_run = tiny_run
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the run's model")
        screen = app.screen
        for _ in range(len(screen.pages)):
            page = screen.page
            reached = []
            real = page.handle
            page.handle = lambda action, argument="", real=real, reached=reached: (reached.append(action),
                                                                                   real(action, argument))
            keys = [key for key in page.keys if key.action != "type"]
            shown = screen_text(app).splitlines()[-1]
            for key in keys:
                await press(pilot, key.key)
            assert reached == [key.action for key in keys], page.name
            # the bar shows as many as fit (the help lists them all): at least the first
            assert not keys or keys[0].description in shown, (page.name, shown)
            del page.handle
            await press(pilot, "right_square_bracket")


async def test_no_color_draws_the_heat_as_bar_heights(tmp_path, tiny_run, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        app.selected_run = tiny_run
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the run's model")
        await to_page(pilot, "gates_map")
        text = await shows(pilot, "Forget gate")
        forget = next(line for line in text.splitlines() if "Forget gate" in line)
        assert any(bar in forget for bar in "▁▂▃▄▅▆▇█")


class WorkingPage:
    """A page whose job reports progress, waits for the test, and returns a result (or fails)."""
    name, title = "working", "Working"

    def __init__(self, fail: bool = False) -> None:
        self.keys = (PageKey("w", "work", "Work"),)
        self.release, self.fail = threading.Event(), fail
        self.wanted, self.result, self.error, self.busy = False, None, "", "working"

    def set_source(self, source) -> None:
        pass

    def handle(self, action: str, argument: str = "") -> None:
        self.wanted = action == "work"

    def job(self):
        if not self.wanted:
            return None
        self.wanted = False

        def work(progress, stop):
            progress(0.5)
            self.release.wait(30)
            if self.fail:
                raise ValueError("the experiment diverged")
            return 42
        return work

    def finished(self, result) -> None:
        self.result = result

    def failed(self, message: str) -> None:
        self.error = message

    def view(self, width: int, height: int):
        busy = self.busy if self.result is None and not self.error else ""
        return PageView("Working", ("a page with a job", "w works"), (line(f"result {self.result}"),),
                        busy=busy, error=self.error)


class WorkingJobPage(WorkingPage):
    """The same, its job an object with run(progress(fraction, words)), its outcome given with the job."""

    def job(self):
        work = super().job()
        if work is None:
            return None

        class Job:
            def run(self, progress):
                progress(0.5, "working")
                return work(lambda fraction: None, lambda: False)
        self.handed = Job()
        return self.handed

    def progress(self, fraction: float, words: str) -> None:
        self.busy = f"{words} {fraction:.0%}"

    def finished(self, job, result) -> None:
        assert job is self.handed
        super().finished(result)

    def failed(self, job, message: str) -> None:
        assert job is self.handed
        super().failed(message)


@pytest.mark.parametrize("kind", [WorkingPage, WorkingJobPage])
async def test_a_pages_job_runs_in_a_worker_with_progress_and_its_error_in_words(tmp_path, tiny_run, kind):
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        app.selected_run = tiny_run
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the run's model")
        screen = app.screen
        for fail in (False, True):
            page = kind(fail)
            screen.pages.append(page)
            while screen.page is not page:
                await press(pilot, "right_square_bracket")
            await press(pilot, "w")
            await shows(pilot, "working 50%")
            assert screen.query_one("#lesson-body").content.plain == "result None"  # the UI is not blocked
            page.release.set()
            if fail:
                text = await shows(pilot, "the experiment diverged")
                assert "Traceback" not in text and page.result is None
            else:
                await shows(pilot, "result 42")
            screen.pages.remove(page)
            screen.index = 0

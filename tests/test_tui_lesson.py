"""The Lesson screen (key 6) driven by keys: pages, where the model comes from, page keys, errors in words."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from rnn_playground.tui.viewmodel.lesson import source as lesson_source
from rnn_playground.tui.viewmodel.lesson.page import PageKey, PageView, line

from .conftest import long_config
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


async def test_a_run_opened_while_the_demo_trains_stops_the_demo(tmp_path, tiny_run, monkeypatch):
    """The demo trains in a temporary folder, removed when train_demo returns: once the run replaces it, the
    demo's training stops rather than taking the CPU for its whole budget."""
    monkeypatch.setitem(lesson_source.DEMO_SETTINGS, "steps", 100_000)   # would train for many minutes
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "progress", 0) > 0, 120, "the demo to train")
        training = list(tmp_path.glob("rnn-playground-lesson-*"))
        assert training
        app.selected_run = tiny_run
        await wait_for(pilot, lambda: getattr(app.screen.source, "run_dir", None) == tiny_run, 60, "the run")
        await wait_for(pilot, lambda: not any(folder.exists() for folder in training), 60, "the demo to stop")


async def test_a_run_closed_while_it_loads_does_not_replace_the_demo(tmp_path, tiny_run, monkeypatch):
    monkeypatch.setitem(lesson_source.DEMO_SETTINGS, "steps", 20)
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 120, "the demo model")
        screen = app.screen
        demo = screen.source
        app.selected_run = tiny_run
        screen._tick()                      # the run starts loading...
        assert screen.pending_source is not None and screen.pending_source.run_dir == tiny_run
        app.selected_run = None
        screen._tick()                      # ...and is closed before it is in: the demo (kept) again
        assert screen.source is demo and screen.pending_source is None
        for _ in range(8):                  # the run's load ends meanwhile; its result is not taken
            await pilot.pause(0.25)
        assert screen.source is demo
        await shows(pilot, "model demo model")


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
        await wait_for(pilot, lambda: app.screen.focused is None, 10, "Enter to leave the field")
        text = await shows(pilot, "log p")
        assert text.count("log p") >= 4
        seed = page.seed
        await press(pilot, "r")
        assert page.seed == seed + 1
        await wait_for(pilot, lambda: page.completions.generation == page.generation, 60, "new completions")
        # in the field, the page's letters r and n are text, not its keys
        samples = page.samples
        await press(pilot, "t", *"rn")
        # (focusing the field selects its text: what is typed replaces it)
        await wait_for(pilot, lambda: page.completions.prefix == "rn", 60, "the completions of the new text")
        assert (page.seed, page.samples) == (seed + 1, samples)


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


class LateReportingPage(WorkingPage):
    """A page named apart whose job reports 90% only once the test says `go`, then waits for `release`."""
    name, title = "late", "Late"

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def job(self):
        if not self.wanted:
            return None
        self.wanted = False

        def work(progress, stop):
            self.go.wait(30)
            progress(0.9)
            self.release.wait(30)
            return 7
        return work


async def test_a_jobs_progress_reaches_its_own_page_only(tmp_path, tiny_run):
    """Two pages' jobs at once: the one left running in the background reports; the page on screen keeps
    saying its own job's progress."""
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        late, working = LateReportingPage(), WorkingPage()
        screen.pages += [late, working]
        while screen.page is not late:
            await press(pilot, "right_square_bracket")
        await press(pilot, "w")                     # its job starts and waits
        await press(pilot, "right_square_bracket")
        await press(pilot, "w")
        await shows(pilot, "working 50%")
        late.go.set()                               # the other page's job reports 90%
        for _ in range(5):                          # a few ticks of the refresh timer
            await pilot.pause(0.25)
        text = screen_text(app)
        assert "working 50%" in text and "90%" not in text
        late.release.set()
        working.release.set()
        await shows(pilot, "result 42")
        await press(pilot, "left_square_bracket")
        await shows(pilot, "result 7")


class StoppableJobPage(WorkingPage):
    """A page whose job object's run takes stop() as well, and works until it is true (or 30 s pass)."""
    name, title = "stoppable", "Stoppable"

    def __init__(self) -> None:
        super().__init__()
        self.started, self.stopped = threading.Event(), threading.Event()

    def job(self):
        if not self.wanted:
            return None
        self.wanted = False
        page = self

        class Job:
            def run(self, progress, stop):
                page.started.set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if stop():
                        page.stopped.set()
                        return None
                    time.sleep(0.02)
                return None
        return Job()


async def test_closing_the_app_stops_a_job_objects_run(tmp_path, tiny_run):
    page = StoppableJobPage()
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        screen.pages.append(page)
        while screen.page is not page:
            await press(pilot, "right_square_bracket")
        await press(pilot, "w")
        await wait_for(pilot, page.started.is_set, 10, "the job to start")
    assert page.stopped.wait(10)


# --------------------------------------------------------------------------- each page, driven by its keys


async def open_lesson(pilot, run):
    """The Lesson screen on `run` (the run open in the app), its model loaded."""
    app = pilot.app
    app.selected_run = run
    await press(pilot, "6")
    await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the run's model")
    return app.screen


def idle(screen) -> bool:
    return not screen._jobs and screen._last_view is not None and not screen._last_view.busy


async def test_the_encoding_page_steps_the_text_and_shows_the_vocabularys_ids(tmp_path, tiny_run):
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        page = await to_page(pilot, "encoding")
        vocab = screen.source.vocab
        await press(pilot, "right", "right", "right")
        assert page.cursor == 3
        await press(pilot, "left")
        assert page.cursor == 2
        encoded = page.encode(page.cursor, 4)
        # the ids are the vocabulary's, and one-hot x W is the embedding lookup, computed
        assert encoded.ids.tolist() == vocab.encode(encoded.chars).tolist()
        weight = screen.source.model.embed.weight.detach()
        assert torch.equal(encoded.lookup, weight[encoded.ids])
        assert torch.allclose(encoded.product, encoded.lookup) and encoded.difference < 1e-6
        text = await shows(pilot, "one-hot")
        assert str(int(encoded.ids[0])) in text
        await press(pilot, "pagedown")
        assert page.cursor > 2


async def test_the_batching_page_moves_its_window_over_the_trainers_batches(tmp_path, tiny_run):
    from rnn_playground.core.model import StreamBatches
    from rnn_playground.tui.viewmodel.format import show_text_char
    from rnn_playground.tui.viewmodel.lesson.batching import training_text
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        page = await to_page(pilot, "batching")
        config = screen.source.config
        assert (page.batch, page.seq) == (config.batch, config.seq)  # the run's own B and T
        await shows(pilot, f"window 1 of {len(page.batches):,}")
        await press(pilot, "right", "right")
        assert page.current() == 2
        await shows(pilot, f"window 3 of {len(page.batches):,}")
        # what the window shows is the trainer's batch: StreamBatches over the training split
        batches = StreamBatches(screen.source.vocab.encode(training_text(screen.source)), page.batch, page.seq)
        x, y = batches.window(2)
        first_x = "".join(show_text_char(screen.source.vocab.chars[i]) for i in x[0].tolist())
        first_y = "".join(show_text_char(screen.source.vocab.chars[i]) for i in y[0].tolist())
        assert first_y[:-1] == first_x[1:]  # y is x shifted by one
        row = next(row for row in screen_text(app).splitlines() if "s1  x " in row)
        shown_x, shown_y = row.split("s1  x ", 1)[1].split("  y ", 1)
        assert shown_x and first_x.startswith(shown_x) and first_y.startswith(shown_y.rstrip("│ ").rstrip())
        await press(pilot, "b")
        assert page.batch < config.batch
        await press(pilot, "f")
        assert (page.batch, page.seq) == (config.batch, config.seq)


async def test_the_shapes_page_reads_the_pass_and_checks_the_quiz(tmp_path, tiny_run):
    from rnn_playground.core.shapes import forward_shapes
    from rnn_playground.tui.viewmodel.lesson.shapes import shape_text
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        page = await to_page(pilot, "shapes")
        await press(pilot, "up")
        await wait_for(pilot, lambda: not page.pending() and idle(screen), 60, "the table at the new B")
        expected = forward_shapes(screen.source.model, page.batch, page.seq)
        text = await shows(pilot, f"B={page.batch} streams")
        for tensor in expected:
            assert any(row.lstrip().startswith(tensor.name) and shape_text(tensor.shape) in row
                       for row in text.splitlines()), (tensor, text)
        # the lesson's question: typed after t, checked on Enter; a wrong answer is explained
        assert any(key.action == "type" for key in page.keys)
        await press(pilot, "t")
        assert screen.focused is screen.query_one("#lesson-input")
        await press(pilot, *"3,1,20", "enter")
        await wait_for(pilot, lambda: screen.focused is None, 10, "Enter to leave the field")
        assert page.verdict is not None and not page.verdict.right
        text = await shows(pilot, "is wrong")
        assert "even with batch_first" in text and "The module returns [1, 3, 20]." in text
        await type_into(pilot, "#lesson-input", "1,3,20")
        await press(pilot, "enter")
        assert page.verdict.right
        await shows(pilot, "is right")
        await press(pilot, "n")
        assert page.asked == 2 and page.verdict is None


async def test_the_train_eval_page_draws_its_samples_without_a_key(tmp_path, tiny_run):
    import torch.nn.functional as F
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        page = await to_page(pilot, "train_eval")
        # the samples are drawn in a thread; the screen's timer shows them when they are done
        await wait_for(pilot, lambda: idle(screen), 60, "the samples")
        eval_text, train_text = page._draw.text(0), page._draw.text(1)
        assert eval_text and train_text
        await shows(pilot, eval_text[:8].replace("\n", "↵"))
        # the eval column's loss is the model's own, in eval mode
        model, vocab = screen.source.model, screen.source.vocab
        passage = page.passage()
        model.eval()
        with torch.no_grad():
            logits, _ = model(vocab.encode(passage[:-1])[None])
        loss = float(F.cross_entropy(logits[0].float(), vocab.encode(passage[1:])))
        await shows(pilot, f"loss {loss:.3f}")
        seed = page.sample_seed
        await press(pilot, "s")
        assert page.sample_seed == seed + 1
        await wait_for(pilot, lambda: idle(screen) and page._draw.key[2] == seed + 1, 60, "the new samples")


async def test_the_sampling_page_takes_a_typed_beginning_and_its_letters_only_outside_the_field(tmp_path, tiny_run):
    from rnn_playground.tui.viewmodel.lesson.sampling_page import SWEEP_TEMPERATURES
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        page = await to_page(pilot, "sampling")
        # the temperature sweep is drawn in a thread and shown when done, without a key
        await wait_for(pilot, lambda: idle(screen), 60, "the sweep")
        sweep = [page._draw.text(part) for part in range(len(SWEEP_TEMPERATURES))]
        text = screen_text(app)
        assert all(sample[:6].replace("\n", "↵") in text for sample in sweep), text
        # e opens the field; the letters typed there are the beginning, not the page's keys
        temperature, top_k = page.temperature, page.top_k
        await press(pilot, "e")
        assert screen.focused is screen.query_one("#lesson-input")
        await press(pilot, *"Tkt", "enter")
        assert (page.temperature, page.top_k) == (temperature, top_k)
        await wait_for(pilot, lambda: screen.focused is None, 10, "Enter to leave the field")
        assert page.prime == "Tkt"
        await shows(pilot, "after Tkt")
        # the raw softmax stage is the model's next-character distribution after the prime
        model, vocab = screen.source.model, screen.source.vocab
        with torch.no_grad():
            logits, _ = model(vocab.encode("Tkt")[None])
        assert torch.allclose(page.stages()[0].probs, logits[0, -1].float().softmax(-1), atol=1e-6)
        # outside the field the letters reach the page
        await press(pilot, "t", "K")
        assert page.temperature < temperature and page.top_k != top_k
        await shows(pilot, f"T={page.temperature:g}")
        # a beginning the vocabulary lacks is refused in words, the last one kept
        await press(pilot, "e", *"#", "enter")
        assert page.prime == "Tkt"
        await shows(pilot, "vocabulary lacks")


async def test_the_memory_page_runs_a_tiny_experiment_and_shows_its_table(tmp_path, tiny_run):
    from rnn_playground.core.memory_task import MemorySettings, cached_result
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        page = await to_page(pilot, "memory")
        # the gradient reach of the run's model comes from a job, shown when it ends
        await wait_for(pilot, lambda: page.source_reach is not None and idle(screen), 60, "the gradient reach")
        await shows(pilot, "reaches k =")
        page.settings = MemorySettings(delays=(1, 4), hidden=8, steps=20, batch=8)  # seconds, not a minute
        page.result = None
        await press(pilot, "r")
        await wait_for(pilot, lambda: page.result is not None and idle(screen), 120, "the experiment")
        result = page.result
        assert result == cached_result(page.settings) or cached_result(page.settings) is not None
        text = await shows(pilot, "LSTM")
        for cell, name in (("rnn", "RNN"), ("gru", "GRU"), ("lstm", "LSTM")):
            row = next(row for row in text.splitlines() if row.strip().startswith(f"{name[0]} {name}"))
            for delay in (1, 4):
                assert f"{result.accuracy(cell, delay):.0%}" in row, (cell, row)
        # the settings change with d and h; a cached result shows at once
        await press(pilot, "h")
        assert page.settings.hidden != 8


async def test_a_run_training_in_the_app_is_the_source_with_its_live_window(tmp_path, tiny_corpus):
    from rnn_playground.tui.viewmodel.lesson.batching import live_window
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus, val_every=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await press(pilot, "s")  # the Train screen starts the run
        controller = app.train_controller
        await wait_for(pilot, lambda: controller.snapshot.last_checkpoint, 60, "the run's first checkpoint")
        await press(pilot, "6")
        await wait_for(pilot, lambda: getattr(app.screen, "source", None) is not None, 60, "the training run's model")
        screen = app.screen
        source = screen.source
        assert "training" in source.origin and source.run_dir == Path(controller.snapshot.run_dir)
        page = await to_page(pilot, "batching")
        assert (page.batch, page.seq) == (8, 16) and page.following
        # the page follows the trainer's window as the run goes on, with no key pressed (each new checkpoint
        # reloads the source; the live figures between them come from the run's snapshot)
        first = screen.source.live["step"]
        await wait_for(pilot, lambda: screen.source.live["step"] >= first + 3, 60, "more steps")
        live = screen.source.live
        windows = live["windows_per_epoch"]
        assert live["window"] == live["step"] % windows
        assert page.current() == live_window(live, len(page.batches))
        await shows(pilot, f"/{windows:,}")   # the origin line: the live run's step and window
        await wait_for(pilot, lambda: f"window {page.current() + 1} of" in screen_text(app)
                       and "the trainer takes window" in screen_text(app), 10, "the trainer's window highlighted")
        controller.stop()
        await wait_for(pilot, lambda: not controller.active, 30, "the run stopped")


async def test_the_text_field_holds_each_pages_own_text(tmp_path, tiny_run):
    """One field serves every page that takes text: a page shown again finds its own text there, never
    what was typed on another page (a beginning as a quiz answer, an answer as a beginning)."""
    app = make_app(tmp_path, runs_dir=tiny_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lesson(pilot, tiny_run)
        field = screen.query_one("#lesson-input")
        complete = await to_page(pilot, "complete")
        await press(pilot, "t", *"the", "escape")
        assert complete.prefix == "the"
        shapes = await to_page(pilot, "shapes")
        await press(pilot, "t")
        assert field.value == ""
        await press(pilot, *"(1, 3, 20)", "enter")
        assert shapes.verdict.right
        await to_page(pilot, "sampling")
        await press(pilot, "e")
        assert field.value == ""        # not the quiz answer
        await press(pilot, "escape")
        await to_page(pilot, "complete")
        await press(pilot, "t")
        assert field.value == "the"
        await press(pilot, "end", "n")   # the field selects its text on focus: typing alone replaces it
        await wait_for(pilot, lambda: complete.prefix == "then", 5, "the beginning typed on")

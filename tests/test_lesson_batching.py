"""The Batching page and `lesson batching`: the windows shown are the trainer's own batches."""

from __future__ import annotations

import pytest
import torch

from rnn_playground.core.corpus import Vocab, load_corpus
from rnn_playground.core.events import StepEvent
from rnn_playground.core.model import CharRNN, StreamBatches
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli import lesson_batching
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.format import show_text_char
from rnn_playground.tui.viewmodel.lesson.batching import BatchingPage
from rnn_playground.tui.viewmodel.lesson.page import Source, line_text
from rnn_playground.tui.viewmodel.lesson.source import live_figures
from rnn_playground.tui.viewmodel.monitor import RunSnapshot

from .conftest import tiny_config


def text_of(ids: torch.Tensor, vocab: Vocab) -> str:
    return "".join(show_text_char(vocab.chars[i]) for i in ids.tolist())


@pytest.fixture
def trainer(tiny_corpus, tmp_path) -> Trainer:
    """A real tiny run's trainer, a few steps in (its task holds the batches training walks)."""
    trainer = Trainer(tiny_config(tiny_corpus, steps=7, val_every=100, runs_dir=str(tmp_path / "runs")))
    return trainer


def source_of(trainer: Trainer, **live) -> Source:
    corpus = load_corpus(trainer.config.corpus)
    return Source(trainer.model, trainer.task.vocab, trainer.config, corpus.text, live=dict(live))


def test_windows_equal_the_trainers_batches(trainer):
    page = BatchingPage(source_of(trainer))
    assert (page.batch, page.seq) == (trainer.config.batch, trainer.config.seq)
    assert len(page.batches) == trainer.task.windows
    for index in (0, 1, 5, trainer.task.windows - 1):
        x, y = page.pairs(index)
        want_x, want_y = trainer.task.batches.window(index)
        assert torch.equal(x, want_x) and torch.equal(y, want_y)


def test_keys_step_the_window_and_recut_the_streams(trainer):
    page = BatchingPage(source_of(trainer))
    vocab = trainer.task.vocab
    page.handle("next")
    page.handle("next")
    assert page.current() == 2
    view = page.view(120, 40)
    x, y = page.pairs(2)
    shown = [line_text(row) for row in view.lines]
    assert any(text_of(x[0], vocab) in row and text_of(y[0], vocab) in row for row in shown)
    page.handle("previous")
    page.handle("previous")
    page.handle("previous")   # wraps to the last window
    assert page.current() == len(page.batches) - 1

    page.handle("more_streams")
    page.handle("shorter")
    assert (page.batch, page.seq) == (12, 10)
    reference = StreamBatches(page.ids, 12, 10)
    assert len(page.batches) == len(reference)
    for index in (0, 3):
        assert all(torch.equal(a, b) for a, b in zip(page.pairs(index), reference.window(index), strict=True))
    page.handle("fewer_streams")
    page.handle("longer")
    assert (page.batch, page.seq) == (8, 16)


def test_too_many_streams_is_an_error_in_words_and_keeps_the_last_cut(trainer):
    page = BatchingPage(source_of(trainer))
    for _ in range(12):
        page.handle("more_streams")
        page.handle("longer")
    view = page.view(80, 24)
    assert "too few for batch" in view.error and f"Keeping B={page.batch}" in view.error
    assert page.batches is not None and view.lines


def test_the_course_wraps_the_last_target_and_ours_does_not(trainer):
    page = BatchingPage(source_of(trainer))
    vocab = trainer.task.vocab
    last = len(page.batches) - 1
    _, targets = page.pairs(last)
    # Ours: the character that follows in the training text; the course's: the stream's first one.
    columns = page.batches.inputs.shape[1]
    assert targets[0, -1].item() == page.ids[columns].item()
    shown = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert f"'{show_text_char(vocab.chars[page.ids[0].item()])}' wrong" in shown
    assert f"'{show_text_char(vocab.chars[page.ids[columns].item()])}' right" in shown


def test_a_live_run_shows_the_window_the_trainer_takes_next(trainer):
    events = [event for event in trainer.run() if isinstance(event, StepEvent)]
    last = events[-1]
    page = BatchingPage(source_of(trainer, step=last.step, epoch=last.epoch))
    assert page.current() == trainer.progress.window == last.step % trainer.task.windows
    shown = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert f"the trainer takes window {trainer.progress.window + 1} next" in shown
    assert f"carried from window {trainer.progress.window} of the same stream" in shown

    page.handle("next")       # looking elsewhere stops following; f follows again
    assert page.current() == trainer.progress.window + 1
    page.handle("follow")
    assert page.current() == trainer.progress.window

    epoch_start = BatchingPage(source_of(trainer, step=trainer.task.windows * 3))
    assert epoch_start.current() == 0
    assert "reset to zeros" in "\n".join(line_text(row) for row in epoch_start.view(80, 24).lines)

    other = BatchingPage(source_of(trainer, step=3))
    other.handle("more_streams")
    assert "The run trains at B=8, T=16: f follows it." in "\n".join(
        line_text(row) for row in other.view(80, 24).lines)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_fits_the_size(trainer, size):
    width, height = size
    view = BatchingPage(source_of(trainer, step=2)).view(width, height)
    assert 0 < len(view.lines) <= height
    assert all(len(line_text(row)) <= width for row in view.lines)
    assert all(len(text) <= 80 for text in view.caption) and len(view.caption) == 2
    assert view.deeper == "train"


def test_page_works_on_an_untrained_model_too():
    text = "abcdefghij" * 30
    vocab = Vocab.from_text(text)
    model = CharRNN(tiny_config("x", batch=4, seq=8).model_config(len(vocab)))
    page = BatchingPage(Source(model, vocab, tiny_config("x", batch=4, seq=8), text))
    assert (page.batch, page.seq) == (4, 8)
    assert line_text(page.view(80, 24).lines[0]).startswith(f"B=4 streams x {page.batches.inputs.shape[1]} columns "
                                                             f"({len(page.ids):,} training characters")


def test_cli_prints_the_trainers_windows(tiny_corpus, capsys):
    assert main(["lesson", "batching", "--corpus", str(tiny_corpus), "--batch", "8", "--seq", "20",
                 "--windows", "2"]) == 0
    out = capsys.readouterr().out
    text = load_corpus(str(tiny_corpus)).text
    vocab = Vocab.from_text(text)
    page = lesson_batching.batching_page(text, 8, 20, 0.1)
    for window in (0, 1):
        assert f"window {window + 1}: columns {window * 20}-{window * 20 + 19}" in out
        x, y = page.pairs(window)
        for row in range(8):
            assert f"s{row + 1:<3}x {text_of(x[row], vocab)}  y {text_of(y[row], vocab)}" in out
    assert "window 3:" not in out and "Course:" in out and "Ours (StreamBatches):" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch", "0"], "--batch must be at least 1, got 0."),
    (["--seq", "5000"], "too few for batch 8 x sequence 5000. Lower --batch or --seq"),
    (["--windows", "0"], "--windows must be at least 1, got 0."),
])
def test_cli_refuses_bad_flags_in_words(tiny_corpus, argv, message, capsys):
    assert main(["lesson", "batching", "--corpus", str(tiny_corpus), *argv]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_run_too_large_for_its_text_can_be_cut_smaller_and_a_foreign_text_is_refused():
    text = "abcdefghij" * 30
    vocab = Vocab.from_text(text)
    page = BatchingPage(Source(None, vocab, tiny_config("x", batch=64, seq=100), text))
    view = page.view(80, 24)
    assert page.batches is None and "too few for batch 64 x sequence 100" in view.error
    assert "Lower B (b) or T (t)" in view.error and view.lines == ()
    for _ in range(4):
        page.handle("fewer_streams")
        page.handle("shorter")
    assert page.batches is not None and page.view(80, 24).error == ""
    assert torch.equal(page.pairs(0)[0], StreamBatches(page.ids, page.batch, page.seq).window(0)[0])

    foreign = BatchingPage(Source(None, Vocab.from_text("abc"), tiny_config("x"), text))
    assert "lacks" in foreign.view(80, 24).error
    foreign.handle("follow")
    foreign.handle("next")
    assert foreign.batches is None


def test_a_live_window_beyond_the_text_the_page_reads_is_said(trainer):
    windows = trainer.task.windows
    page = BatchingPage(source_of(trainer, step=windows * 10 + windows + 3, windows_per_epoch=windows * 10))
    assert page.trainer_window() == windows + 3
    assert page.current() == 0     # the page stays on a window it has
    shown = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert f"window {windows + 4} next, past the text this page has" in shown


def test_a_live_update_keeps_the_page_where_it_is_and_another_run_starts_it_over(trainer):
    page = BatchingPage(source_of(trainer, step=3))
    page.handle("next")
    page.handle("more_streams")
    assert (page.current(), page.batch) == (4, 12)
    page.set_source(source_of(trainer, step=4))
    assert (page.current(), page.batch) == (4, 12)
    text = "abcdefghij" * 300
    page.set_source(Source(None, Vocab.from_text(text), tiny_config("x", batch=4, seq=8), text))
    assert (page.current(), page.batch, page.seq) == (0, 4, 8)


def test_the_live_figures_the_screen_gives_place_a_window_beyond_the_text_past_it(trainer):
    """The screen's Source.live comes from source.live_figures (the run's windows per epoch over its whole
    corpus): a trainer window beyond the page's text is said, not folded into the page's own windows."""
    windows = trainer.task.windows
    snapshot = RunSnapshot(step=windows * 10 + windows + 3, epoch=1.0, status="training",
                           train_chars=trainer.config.batch * trainer.config.seq * windows * 10 + 1,
                           config={"batch": trainer.config.batch, "seq": trainer.config.seq})
    page = BatchingPage(source_of(trainer, **live_figures(snapshot)))
    assert page.trainer_window() == windows + 3
    assert page.current() == 0
    shown = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert f"window {windows + 4} next, past the text this page has" in shown

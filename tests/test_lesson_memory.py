"""The Memory lesson page (tui.viewmodel.lesson.memory) and `lesson memory` on the command line."""

from __future__ import annotations

import json

import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.memory_task import MemoryCancelled, MemorySettings, cached_result, gradient_reach
from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.format import error_text
from rnn_playground.tui.viewmodel.lesson.memory import MemoryJob, MemoryPage, reach_bars
from rnn_playground.tui.viewmodel.lesson.page import PageView, Source, line_text

TINY = MemorySettings(delays=(1, 3), hidden=8, steps=5, batch=8)
TEXT = "the cat sat on the mat. the dog sat on the log. " * 3


def tiny_source(cell: str = "gru") -> Source:
    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, hidden=16, layers=2, embed=8, dropout=0.1)).eval()
    return Source(model, vocab, None, TEXT)


def texts(view: PageView) -> list[str]:
    return [line_text(row) for row in view.lines]


def run_page_job(page: MemoryPage):
    """What the Lesson screen's worker does, in one thread: run each job the page hands out, hand the
    outcome back. Returns the experiment's result (if one ran) and the progress reported."""
    result, reports = None, []
    while (job := page.job()) is not None:
        try:
            outcome = job.run(lambda fraction, words: reports.append((fraction, words)))
        except PlaygroundError as exc:
            page.failed(job, error_text(exc))
            continue
        for fraction, words in reports:
            page.progress(fraction, words)
        page.finished(job, outcome)
        if isinstance(job, MemoryJob):
            result = outcome
    return result, reports


def fits(view: PageView, width: int, height: int) -> None:
    assert len(view.lines) <= height
    assert all(len(line_text(row)) <= width for row in view.lines)
    assert all(len(text) <= width for text in view.caption)


@pytest.mark.parametrize("width, height", [(80, 24), (120, 40)])
def test_page_runs_the_experiment_and_draws_it(width, height):
    page = MemoryPage(TINY)
    page.set_source(tiny_source())
    before = page.view(width, height)
    fits(before, width, height)
    assert any("press r" in text for text in texts(before))
    assert before.deeper == "gates" and page.name == "memory" and page.title == "Memory"
    page.handle("run")
    assert "about" in page.view(width, height).busy
    result, reports = run_page_job(page)
    assert reports[-1][0] == 1.0
    view = page.view(width, height)
    fits(view, width, height)
    assert view.busy == "" and view.error == ""
    body = "\n".join(texts(view))
    # the table has a row per cell with its accuracy at each delay, as the engine measured it
    for cell, marker, name in (("rnn", "R", "RNN"), ("gru", "G", "GRU"), ("lstm", "L", "LSTM")):
        expected = [marker, name, *(f"{result.accuracy(cell, d):.0%}" for d in TINY.delays)]
        assert any(text.split() == expected for text in texts(view)), (expected, body)
    assert "GRU 2x16" in body   # the source model's gradient reach, named by its cell


def test_plot_places_each_cell_at_its_accuracy():
    page = MemoryPage(TINY)
    page.handle("run")
    result, _ = run_page_job(page)
    result.accuracy_table["rnn"] = {1: 1.0, 3: 0.0}
    result.accuracy_table["lstm"] = {1: 1.0, 3: 1.0}
    rows = texts(page.view(80, 24))
    top = next(text for text in rows if text.startswith(" 100%"))
    bottom = next(text for text in rows if text.startswith("   0%"))
    assert top.count("R") == 1 and top.count("L") == 2
    assert bottom.count("R") == 1 and "L" not in bottom


def test_cached_result_shows_at_once():
    first = MemoryPage(TINY)
    first.handle("run")
    run_page_job(first)
    second = MemoryPage(TINY)
    assert second.result is not None and second.result.from_cache
    assert "cached" in texts(second.view(80, 24))[0]
    assert second.result.accuracy_table == first.result.accuracy_table
    second.handle("run")   # r runs it again all the same
    assert second.job() is not None


def test_a_pages_own_cache_folder_is_where_its_experiment_is_stored(tmp_path):
    first = MemoryPage(TINY, cache=tmp_path)
    first.handle("run")
    run_page_job(first)
    assert cached_result(TINY, tmp_path) is not None
    second = MemoryPage(TINY, cache=tmp_path)
    assert second.result is not None and second.result.from_cache


def test_a_cache_the_page_cannot_write_leaves_the_result_shown_and_says_so(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    page = MemoryPage(TINY, cache=blocked)
    page.handle("run")
    run_page_job(page)
    view = page.view(80, 24)
    assert page.result is not None and "Cannot write the memory experiment's cache" in view.error
    assert "not run yet" not in texts(view)[0]


def test_cancel_before_and_while_running():
    page = MemoryPage(MemorySettings(delays=(1,), hidden=8, steps=100_000, batch=8))
    page.handle("run")
    page.handle("cancel")
    assert page.job() is None and page.view(80, 24).busy == ""
    page.handle("run")
    job = page.job()
    page.handle("cancel")
    assert page.view(80, 24).busy == "cancelling..."
    with pytest.raises(MemoryCancelled):
        job.run()
    page.failed(job, "The memory experiment was cancelled.")
    view = page.view(80, 24)
    assert view.busy == "" and "Cancelled" in view.error
    assert cached_result(job.settings) is None


def test_the_screens_stop_ends_a_running_experiment():
    """The screen passes stop() (true once it closes) to a job's run: quitting mid-experiment ends it."""
    job = MemoryJob(MemorySettings(delays=(1,), hidden=8, steps=100_000, batch=8))
    with pytest.raises(MemoryCancelled):
        job.run(None, lambda: True)
    assert cached_result(job.settings) is None


def test_keys_change_the_settings_but_not_while_running():
    page = MemoryPage()
    assert page.settings.delays == (1, 2, 4, 8, 16, 32) and page.settings.hidden == 32
    page.handle("delays")
    assert page.settings.delays == (1, 2, 4, 8, 16)
    page.handle("hidden")
    assert page.settings.hidden == 16
    header = texts(page.view(80, 24))[0]
    assert "hidden 16" in header and "not run yet" in header
    page.handle("run")
    page.handle("hidden")
    assert page.settings.hidden == 16 and "press c" in page.view(80, 24).error
    assert {key.key for key in page.keys} == {"r", "c", "d", "h"}


def test_stale_job_is_ignored():
    page = MemoryPage(TINY)
    page.handle("run")
    job = page.job()
    result = job.run()
    page.handle("cancel")
    page.failed(job, "cancelled")
    page.finished(job, result)   # a job the page no longer waits for
    assert page.error.startswith("Cancelled")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_source_reach_is_the_engines(cell):
    source = tiny_source(cell)
    page = MemoryPage(TINY)
    page.set_source(source)
    assert any("computing" in row for row in texts(page.view(80, 24)))
    run_page_job(page)
    ids = source.vocab.encode(TEXT[:65])
    expected = gradient_reach(source.model, ids)
    assert page.source_reach == pytest.approx(expected)
    assert page.job() is None   # computed once a source
    rows = texts(page.view(120, 40))
    assert any(row.startswith(f"{cell.upper()} 2x16") and reach_bars(expected, 64) in row for row in rows)


def test_source_error_is_words():
    source = tiny_source()
    source.text = "§§§"   # not in the vocabulary
    page = MemoryPage(TINY)
    page.set_source(source)
    run_page_job(page)
    rows = texts(page.view(80, 24))
    assert any("§" in row and "vocabulary" in row for row in rows), rows
    assert page.source_reach is None and page.source_error


def test_reach_bars_log_scale():
    assert reach_bars([1.0, 1e-4, 1e-9, 0.0], 10) == "█▅  "
    assert reach_bars([], 10) == ""


def test_cli_prints_the_table(capsys):
    args = ["lesson", "memory", "--delays", "1,3", "--hidden", "8", "--steps", "5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "RNN" in out and "GRU" in out and "LSTM" in out and "chance 12%" in out
    assert "took" in out
    assert main(args) == 0
    assert "cached" in capsys.readouterr().out


def test_cli_json(capsys):
    assert main(["lesson", "memory", "--delays", "2", "--hidden", "8", "--steps", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["delays"] == [2] and set(data["accuracy"]) == {"rnn", "gru", "lstm"}


def test_cli_prints_what_it_measured_when_the_cache_cannot_be_written(tmp_path, monkeypatch, capsys):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("RNN_PLAYGROUND_CACHE", str(blocked))
    assert main(["lesson", "memory", "--delays", "2", "--hidden", "8", "--steps", "3"]) == 0
    captured = capsys.readouterr()
    assert "Recall after d steps" in captured.out and "LSTM" in captured.out
    assert "Cannot write the memory experiment's cache" in captured.err.replace("\n", " ")


@pytest.mark.parametrize("delays, words", [("1,x", "comma-separated"), (",", "at least one"), ("0,2", "1 to 64")])
def test_cli_bad_delays(delays, words, capsys):
    assert main(["lesson", "memory", "--delays", delays]) == 2
    assert words in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("height", [16, 17, 24, 40])
def test_plot_takes_the_rows_it_is_given(height):
    page = MemoryPage(TINY)
    page.set_source(tiny_source())
    page.handle("run")
    run_page_job(page)
    rows = texts(page.view(80, height))
    assert len(rows) <= height
    assert any(row.startswith("G GRU") for row in rows) and any(row.startswith("LSTM, task d=3") for row in rows)
    plot = [row for row in rows if "┤" in row or "│" in row]
    assert len(plot) == (11 if height == 40 else max(3, len(plot)))
    assert any("What the gradient cannot reach" in row for row in rows) == (height == 40)

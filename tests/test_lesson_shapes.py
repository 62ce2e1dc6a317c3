"""The Shapes lesson page: its table equals the tensors of real passes, its quiz checks answers against real
modules and explains wrong ones, and `rnn-playground lesson shapes` prints the same rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import CELLS, ONEHOT, CharRNN, ModelConfig
from rnn_playground.core.shapes import forward_shapes, module_shapes, pass_device
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.lesson.page import Source, line_text
from rnn_playground.tui.viewmodel.lesson.shapes import (
    LESSON_QUESTION,
    Question,
    ShapesPage,
    explain,
    parse_shape,
    questions,
)

from .conftest import TINY_TEXT

ROOT = Path(__file__).resolve().parents[1]


def real_pass(model: CharRNN, batch: int, seq: int) -> dict[str, tuple[int, ...]]:
    """The tensors of the model's forward pass, computed step by step on the CPU (no hooks), as the lesson
    writes them."""
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    targets = torch.randint(0, model.config.vocab_size, (batch, seq))
    with torch.no_grad():
        embedded = model.embed(ids)
        output, state = model.rnn(embedded)
        reshaped = output.contiguous().view(-1, model.config.hidden)
        logits = model.head(reshaped)
        full_logits, _ = model(ids)
    assert full_logits.flatten(0, 1).shape == logits.shape
    parts = dict(zip(("h", "c"), state if isinstance(state, tuple) else (state,), strict=False))
    return {"ids": tuple(ids.shape), "embedded": tuple(embedded.shape), "output": tuple(output.shape),
            **{k: tuple(v.shape) for k, v in parts.items()}, "reshaped": tuple(reshaped.shape),
            "logits": tuple(logits.shape), "targets": tuple(targets.view(-1).shape)}


def tiny_model(cell: str = "lstm", layers: int = 2, hidden: int = 32, embed: int = 16) -> tuple[CharRNN, Vocab]:
    vocab = Vocab.from_text(TINY_TEXT)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=len(vocab), cell=cell, hidden=hidden, layers=layers, embed=embed)
    return CharRNN(config).eval(), vocab


def source(model: CharRNN, vocab: Vocab, batch: int = 8, seq: int = 16) -> Source:
    return Source(model, vocab, SimpleNamespace(batch=batch, seq=seq), TINY_TEXT)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("layers", [1, 2])
def test_forward_shapes_equal_the_real_passes_tensors(cell, layers):
    model, _ = tiny_model(cell, layers)
    shapes = forward_shapes(model, 5, 7)
    expected = real_pass(model, 5, 7)
    names = ["ids", "embedded", "output", "h", *(["c"] if cell == "lstm" else []), "reshaped", "logits", "targets"]
    assert [t.name for t in shapes] == names
    assert {t.name: t.shape for t in shapes} == expected
    sizes = {"B": 5, "T": 7, "E": 16, "H": 32, "L": layers, "V": model.config.vocab_size, "B*T": 35}
    for tensor in shapes:  # the letters name the sizes the tensor really has
        assert tuple(sizes[d] for d in tensor.dims) == tensor.shape, tensor


def test_a_large_pass_reads_its_shapes_on_the_meta_device():
    model, _ = tiny_model("gru", 1, hidden=256, embed=64)
    assert pass_device("gru", 64, 256, 1, 64, 8) == "meta"
    assert {t.name: t.shape for t in forward_shapes(model, 64, 8)} == real_pass(model, 64, 8)
    assert next(model.parameters()).device.type == "cpu"  # the model itself is untouched


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_module_shapes_equal_a_real_modules(cell, batch_first, layers, device):
    batch, seq, inputs, hidden = 3, 5, 7, 11
    module = CELLS[cell](inputs, hidden, layers, batch_first=batch_first)
    x = torch.randn((batch, seq, inputs) if batch_first else (seq, batch, inputs))
    with torch.no_grad():
        output, state = module(x)
    state = state if isinstance(state, tuple) else (state,)
    shapes = {t.name: t.shape for t in module_shapes(cell, inputs, hidden, layers, batch, seq, batch_first, device)}
    assert shapes == {"input": tuple(x.shape), "output": tuple(output.shape),
                      **{name: tuple(s.shape) for name, s in zip(("h", "c"), state, strict=False)}}
    assert shapes["h"] == (layers, batch, hidden)  # even with batch_first


def test_bad_sizes_are_refused_in_words():
    with pytest.raises(ConfigError, match="hidden for a shapes pass must be a whole number of at least 1"):
        module_shapes("gru", 10, 0, 1, 3, 5, True)
    with pytest.raises(ConfigError, match="Unknown cell type 'transformer'"):
        module_shapes("transformer", 10, 10, 1, 3, 5, True)


class OneHotCharRNN(CharRNN):
    """The course's input: one-hot rows straight into the recurrent module, no embedding weight."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.embed = OneHot(config.vocab_size)
        self.rnn = CELLS[config.cell](config.vocab_size, config.hidden, config.layers, batch_first=True)


class OneHot(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, ids):
        return nn.functional.one_hot(ids, self.size).float()


def test_a_one_hot_model_shows_one_hot_rows():
    vocab = Vocab.from_text(TINY_TEXT)
    model = OneHotCharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", hidden=16, layers=1, embed=1)).eval()
    shapes = {t.name: (t.shape, t.dims) for t in forward_shapes(model, 4, 6)}
    assert "embedded" not in shapes and shapes["one-hot"] == ((4, 6, len(vocab)), ("B", "T", "V"))
    with torch.no_grad():
        assert shapes["output"][0] == tuple(model.rnn(model.embed(torch.zeros(4, 6, dtype=torch.long)))[0].shape)


def test_the_projects_own_onehot_model_shows_one_hot_rows():
    """--embed onehot: core.model.OneHot holds the identity as `weight` (for code reading an embedding's
    table), and the pass still names the recurrent input one-hot [B, T, V], not embedded."""
    vocab = Vocab.from_text(TINY_TEXT)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", hidden=16, layers=2, embed=ONEHOT)).eval()
    shapes = {t.name: (t.shape, t.dims) for t in forward_shapes(model, 3, 5)}
    assert "embedded" not in shapes and shapes["one-hot"] == ((3, 5, len(vocab)), ("B", "T", "V"))


def test_a_runs_model_table_on_the_page_and_through_the_cli(tiny_run, capsys, monkeypatch):
    model, vocab, checkpoint = load_model(tiny_run, "cpu")
    config = checkpoint.meta["config"]
    page = ShapesPage()
    page.set_source(Source(model, vocab, SimpleNamespace(**config), TINY_TEXT, name="tiny", origin="run tiny"))
    expected = real_pass(model, config["batch"], config["seq"])
    assert {row.name: row.shape for row in page.rows()} == expected
    text = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert "LSTM 2x32 run tiny" in text and "[8, 16, 32]" in text and "[2, 8, 32]" in text

    monkeypatch.setenv("COLUMNS", "160")
    assert main(["lesson", "shapes", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert "LSTM 2x32" in out and "batches of 8 sequences of 16 steps" in out
    for name, shape in expected.items():
        assert f"[{', '.join(map(str, shape))}]" in out, name
    assert main(["lesson", "shapes", str(tiny_run), "--batch", "3", "--seq", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {t["name"]: tuple(t["shape"]) for t in data["tensors"]} == real_pass(model, 3, 5)
    assert main(["lesson", "shapes", str(tiny_run), "--cell", "gru"]) == 2
    assert "--cell describe a bare module; a RUN's model describes itself" in capsys.readouterr().err


def test_the_cli_prints_a_modules_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    args = ["lesson", "shapes", "--cell", "gru", "--input", "100", "--hidden", "20", "--layers", "1", "--batch", "3",
            "--batch-first"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "nn.GRU(input_size=100, hidden_size=20, num_layers=1, batch_first=True)" in out
    assert "[1, 3, 20]" in out and "[3, 10, 20]" in out and "even with batch_first" in out
    assert main([*args, "--seq", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    real = {t.name: list(t.shape) for t in module_shapes("gru", 100, 20, 1, 3, 4, True)}
    assert {t["name"]: t["shape"] for t in data["tensors"]} == real
    assert data["module"] == {"cell": "gru", "input": 100, "hidden": 20, "layers": 1, "batch_first": True}
    assert main(["lesson", "shapes", "--batch", "0"]) == 2
    assert "--batch must be a whole number from 1 to 4,096, got 0" in capsys.readouterr().err

    result = subprocess.run([sys.executable, "-m", "rnn_playground.tui", "lesson", "shapes", "--cell", "lstm",
                             "--layers", "2", "--batch", "4"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    assert "nn.LSTM(input_size=100, hidden_size=20, num_layers=2, batch_first=False)" in result.stdout
    assert "[10, 4, 100]" in result.stdout and "[2, 4, 20]" in result.stdout  # input [T, B, I]; h and c


# ---- the quiz ----------------------------------------------------------------------------------------------

def test_the_first_question_is_the_lessons():
    page = ShapesPage()
    question = page.question
    assert question == LESSON_QUESTION and questions(0, 1) == [LESSON_QUESTION]
    assert (question.cell, question.input_size, question.hidden, question.layers, question.batch,
            question.batch_first, question.tensor) == ("gru", 100, 20, 1, 3, True, "h")
    assert question.answer() == (1, 3, 20)
    assert "nn.GRU(input_size=100, hidden_size=20, num_layers=1, batch_first=True)" in question.text()
    for typed in ("(1, 3, 20)", "1,3,20", "1 3 20", "[1, 3, 20]", "torch.Size([1, 3, 20])"):
        assert parse_shape(typed) == (1, 3, 20), typed
    page.handle("type", "1 3 20")
    assert page.verdict.right and page.score == 1 and page.answered == 1
    text = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert "[1, 3, 20] is right" in text and "score 1/1" in text


@pytest.mark.parametrize("typed, words", [
    ("(3, 1, 20)", "hidden is [layers, batch, hidden] even with batch_first=True: batch_first changes the input "
                   "and output only"),
    ("(3, 10, 20)", "You gave the output's shape"),
    ("(1, 10, 20)", "The sequence length is not in the hidden state"),
    ("(3, 20)", "keeps its layer dimension first, even for one layer"),
    ("(1, 3, 100)", "input_size is what the module reads"),
    ("(2, 3, 20)", "The first dimension counts the layers: num_layers=1"),
])
def test_wrong_answers_get_the_right_explanation(typed, words):
    page = ShapesPage()
    verdict = page.answer(typed)
    assert not verdict.right and words in verdict.explanation
    assert page.score == 0 and page.answered == 1
    page.answer("(1, 3, 20)")  # a second try is told it is right, but the first answer is the one scored
    assert page.verdict.right and (page.score, page.answered) == (0, 1)


def test_output_questions_explain_batch_first_and_the_hidden_state():
    q = Question("lstm", input_size=50, hidden=32, layers=2, batch=4, seq=9, batch_first=True, tensor="output")
    assert q.answer() == (4, 9, 32)
    assert "batch_first=True puts the batch first" in explain(q, (9, 4, 32), q.answer())
    assert "You gave the hidden state's shape" in explain(q, (2, 4, 32), q.answer())
    assert "not input_size" in explain(q, (4, 9, 50), q.answer())
    time_major = Question("rnn", input_size=50, hidden=32, layers=2, batch=4, seq=9, batch_first=False, tensor="output")
    assert time_major.answer() == (9, 4, 32)
    assert "time comes first" in explain(time_major, (4, 9, 32), time_major.answer())


def test_an_answer_that_is_not_a_shape_is_told_how_to_type_one():
    page = ShapesPage()
    page.handle("type", "one by three")
    assert not page.verdict.right and "whole numbers, e.g. (1, 3, 20)" in page.verdict.explanation
    assert page.answered == 0  # not scored: the next well-formed answer is


def test_generated_questions_are_reproducible_and_the_module_answers_them():
    first, again, other = questions(7, 25), questions(7, 25), questions(8, 25)
    assert first == again and first != other and first[0] == LESSON_QUESTION
    asked = first[1:]
    assert {q.cell for q in asked} == set(CELLS) and {q.batch_first for q in asked} == {True, False}
    assert {q.tensor for q in asked} == {"output", "h", "c"} and {q.layers for q in asked} >= {1, 2}
    assert all(q.tensor != "c" or q.cell == "lstm" for q in asked)
    page = ShapesPage(seed=7)
    for question in first:
        assert page.question == question
        # The answer from a module built here, not by the page: output [B, T, H] or [T, B, H]; state [L, B, H].
        module = CELLS[question.cell](question.input_size, question.hidden, question.layers,
                                      batch_first=question.batch_first)
        shape = (question.batch, question.seq) if question.batch_first else (question.seq, question.batch)
        with torch.no_grad():
            output, state = module(torch.zeros(*shape, question.input_size))
        state = state if isinstance(state, tuple) else (state,)
        real = {"output": output, "h": state[0], "c": state[-1]}[question.tensor]
        page.handle("type", str(tuple(real.shape)))
        assert page.verdict.right, question
        page.handle("next")
    assert page.score == page.answered == len(first)


# ---- the page ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height", [(80, 24), (120, 40), (80, 16)])
def test_the_page_fits(width, height):
    model, vocab = tiny_model()
    page = ShapesPage()
    page.set_source(source(model, vocab))
    for answer in (None, "(3, 10, 20)", "nonsense"):
        if answer:
            page.handle("type", answer)
        view = page.view(width, height)
        assert len(view.lines) <= height
        assert all(len(line_text(row)) <= width for row in view.lines)
        assert all(len(part) <= width for part in view.caption) and len(view.caption) == 2
        assert view.deeper == "train" and not view.busy and not view.error
        text = "\n".join(line_text(row) for row in view.lines)
        assert "Quiz 1" in text and "nn.GRU" in text
        if height >= 24:
            assert "[2, 8, 32]" in text and "targets" in text  # the whole table stays


def test_keys_change_b_and_t_live():
    model, vocab = tiny_model("gru", 1)
    page = ShapesPage()
    page.set_source(source(model, vocab))
    page.handle("batch_up")
    page.handle("seq_down")
    assert (page.batch, page.seq) == (16, 8)
    assert {row.name: row.shape for row in page.rows()} == real_pass(model, 16, 8)
    assert "B=16 streams, T=8 steps" in line_text(page.view(80, 24).lines[0])
    for _ in range(20):
        page.handle("batch_down")
    assert page.batch == 1
    page.handle("reset")
    assert (page.batch, page.seq) == (8, 16)


def test_in_the_background_the_last_table_shows_until_the_new_one_is_read():
    model, vocab = tiny_model("lstm", 2)
    page = ShapesPage(background=True)
    page.set_source(source(model, vocab))
    page.wait()
    assert not page.pending() and page.rows()[0].shape == (8, 16)
    page.handle("seq_up")
    page.handle("seq_up")
    view = page.view(80, 24)
    if page.pending():  # the new pass may not be read yet: the old table shows, and the page says it is busy
        assert view.busy == "reading the shapes at B=8, T=64"
    page.wait()
    assert not page.pending() and not page.view(80, 24).busy
    assert {row.name: row.shape for row in page.rows()} == real_pass(model, 8, 64)


def test_a_new_model_while_a_pass_runs_shows_the_new_models_table():
    lstm, vocab = tiny_model("lstm", 2)
    gru, _ = tiny_model("gru", 1, hidden=24)
    page = ShapesPage(background=True)
    page.set_source(source(lstm, vocab))
    page.set_source(source(gru, vocab, batch=4, seq=6))  # the LSTM's pass may still be running
    page.wait()
    assert not page.pending()
    assert {row.name: row.shape for row in page.rows()} == real_pass(gru, 4, 6)
    assert "GRU 1x24" in line_text(page.view(80, 24).lines[0])


class SmallBatchCharRNN(CharRNN):
    """A model whose pass refuses batches above 8: a pass that fails at some sizes and not others."""

    def forward(self, ids, *args, **kwargs):
        if ids.shape[0] > 8:
            raise ValueError(f"batch {ids.shape[0]} is over 8")
        return super().forward(ids, *args, **kwargs)


@pytest.mark.parametrize("background", [False, True])
def test_a_failed_pass_is_said_at_its_sizes_only_and_never_shown_as_their_table(background):
    vocab = Vocab.from_text(TINY_TEXT)
    model = SmallBatchCharRNN(ModelConfig(vocab_size=len(vocab), hidden=16, layers=1, embed=8)).eval()
    page = ShapesPage(background=background)
    page.set_source(source(model, vocab))
    page.wait()
    assert page.rows()[0].shape == (8, 16) and not page.view(80, 24).error
    page.handle("batch_up")             # B=16: the pass fails; the last table stays, the error says why
    page.wait()
    view = page.view(80, 24)
    assert "batch 16 is over 8" in view.error and not view.busy and page.rows()[0].shape == (8, 16)
    page.handle("batch_down")           # B=8 again: its own table, no error
    page.wait()
    assert page.rows()[0].shape == (8, 16) and not page.view(80, 24).error
    page.handle("seq_up")               # another table read, then back to B=16 at that T: still the error
    page.handle("batch_up")
    page.wait()
    assert "batch 16 is over 8" in page.view(80, 24).error and not page.pending()


def test_a_long_origin_gives_way_to_b_and_t_in_the_heading():
    """The demo model's origin is long: the heading keeps B and T (the keys change them) and fits."""
    model, vocab = tiny_model()
    page = ShapesPage()
    page.set_source(Source(model, vocab, SimpleNamespace(batch=8, seq=16), TINY_TEXT,
                           origin="demo model (150 steps on the built-in corpus; open a run for yours)"))
    heading = line_text(page.view(80, 24).lines[0])
    assert len(heading) <= 80 and heading.startswith("LSTM 2x32") and "B=8 streams, T=16 steps" in heading
    assert "demo model (150 steps" in line_text(page.view(120, 24).lines[0])

"""Scoring text with a model (core.evaluate), the test split (--test-fraction), and `rnn-playground eval`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rnn_playground.core.chartask import evaluate_char_model
from rnn_playground.core.checkpoint import load_checkpoint, save_checkpoint
from rnn_playground.core.config import TrainConfig
from rnn_playground.core.corpus import split_ids, split_parts
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.evaluate import block_bootstrap, char_surprisals, evaluate_text, unknown_penalty
from rnn_playground.core.loading import load_model
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli.evaluate import marker_lines
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.cli.terminal import EXIT_ERROR
from rnn_playground.tui.viewmodel.eval_view import A_WINS, B_WINS, TIE, diff_spans, summarize_diff

from .conftest import TINY_TEXT, run_to_end, tiny_config

# The batched reading (chunks side by side, each warmed up on the characters before it) against one
# stream, on the tiny trained model: the mean may differ by at most this many nats per character
# (measured: 5e-9 with a 64-character warm-up, 5e-6 with 16; the largest single character 1e-6 and 0.02).
BATCHED_TOLERANCE = 1e-4


@pytest.fixture
def trained(tiny_run):
    model, vocab, checkpoint = load_model(tiny_run, "cpu")
    return model, vocab


# --------------------------------------------------------------------------- surprisals

def test_exact_equals_the_models_own_teacher_forced_loss(trained):
    model, vocab = trained
    text = TINY_TEXT[:1500]
    scores = char_surprisals(model, vocab, text, exact=True)
    ids = vocab.encode(text)
    with torch.inference_mode():
        logits, _ = model(ids[None, :-1])
        forced = F.cross_entropy(logits[0].float(), ids[1:], reduction="none").double().numpy()
    assert len(scores.nats) == len(text) - 1
    np.testing.assert_allclose(scores.nats, forced, atol=1e-5)
    # ... and the trainer's validation loss read as one stream, on the same text.
    assert scores.nats.mean() == pytest.approx(evaluate_char_model(model, ids, streams=1), abs=1e-5)


def test_batched_is_within_the_stated_tolerance_of_one_stream(trained):
    model, vocab = trained
    exact = char_surprisals(model, vocab, TINY_TEXT, exact=True).nats
    batched = char_surprisals(model, vocab, TINY_TEXT, warmup=64, min_chunk=256, max_streams=16).nats
    assert len(batched) == len(exact) == len(TINY_TEXT) - 1
    assert abs(batched.mean() - exact.mean()) < BATCHED_TOLERANCE
    # The first chunk has no warm-up to make: it is the one stream's exactly.
    np.testing.assert_allclose(batched[:200], exact[:200], atol=1e-5)


def test_unknown_characters_are_counted_penalized_and_skipped_as_input(trained):
    model, vocab = trained
    clean = "The quick brown fox jumps over the lazy dog."
    dirty = "The quick brown fox ☃jumps over the lazy dog.é"
    scores = char_surprisals(model, vocab, dirty, exact=True)
    penalty = unknown_penalty(len(vocab))
    assert penalty == pytest.approx(math.log(len(vocab) + 1))
    assert scores.unknown_chars == ("é", "☃") and int(scores.unknown.sum()) == 2
    unknown_at = [i - 1 for i, c in enumerate(dirty) if c in "☃é"]
    assert all(scores.nats[i] == penalty for i in unknown_at)
    # The model never saw them: the known characters score as in the clean text.
    known = np.delete(scores.nats, unknown_at)
    np.testing.assert_allclose(known, char_surprisals(model, vocab, clean, exact=True).nats, atol=1e-6)


def test_a_text_starting_with_unknown_characters_guesses_the_first_known_one_uniformly(trained):
    model, vocab = trained
    scores = char_surprisals(model, vocab, "☃☃The", exact=True)
    assert list(scores.nats[:2]) == [scores.penalty, scores.penalty]  # '☃' then 'T', given nothing known
    assert list(scores.unknown) == [True, False, False, False]


# --------------------------------------------------------------------------- interval

def test_the_bootstrap_interval_contains_the_mean_and_narrows_with_more_text():
    rng = np.random.default_rng(5)
    long = rng.gamma(2.0, 0.7, size=40_000)
    short_low, short_high = block_bootstrap(long[:4_000])
    low, high = block_bootstrap(long)
    assert short_low < long[:4_000].mean() < short_high
    assert low < long.mean() < high
    assert high - low < (short_high - short_low) / 2  # 10x the text: about 1/sqrt(10) the width
    assert block_bootstrap(long) == (low, high)  # seeded


def test_evaluate_text_reports_bits_and_seconds(trained):
    model, vocab = trained
    result = evaluate_text(model, vocab, TINY_TEXT, run="tiny", name="LSTM 2x32")
    assert result.chars == len(TINY_TEXT) - 1 and result.seconds > 0
    assert result.bits_per_char == pytest.approx(result.nats_per_char / math.log(2))
    low, high = result.interval
    assert low < result.bits_per_char < high
    assert json.loads(json.dumps(result.to_json()))["unknown_count"] == 0


# --------------------------------------------------------------------------- test split

def test_without_a_test_fraction_the_split_is_exactly_as_before():
    for n in (0, 1, 7, 1000, 12_345):
        ids = torch.arange(n)
        old_val = int(n * 0.1)
        train, val = split_ids(ids, 0.1)
        assert torch.equal(train, ids[:n - old_val]) and torch.equal(val, ids[n - old_val:])
        assert len(split_parts(ids, 0.1).test) == 0


def test_the_test_split_comes_last_and_the_parts_cover_the_text():
    parts = split_parts("abcdefghij" * 10, 0.2, 0.1)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (70, 20, 10)
    assert "".join(parts) == "abcdefghij" * 10


@pytest.mark.parametrize("test_fraction, val_fraction", [(-0.1, 0.1), (0.8, 0.1), (math.nan, 0.1), (0.5, 0.4)])
def test_a_bad_test_fraction_is_refused_naming_the_flag(test_fraction, val_fraction):
    with pytest.raises(ConfigError, match=r"^--test-fraction must be 0 or more, and with --val-fraction"):
        TrainConfig(test_fraction=test_fraction, val_fraction=val_fraction, device="cpu").validate()


def test_training_never_sees_the_test_split_and_resume_keeps_it(tiny_corpus, tmp_path):
    trainer = Trainer(tiny_config(tiny_corpus, run_name="held", runs_dir=str(tmp_path / "runs"), steps=5,
                                  test_fraction=0.2))
    n = len(TINY_TEXT)
    assert trainer.task.val_chars == int(n * 0.1)
    assert trainer.task.train_chars == n - int(n * 0.1) - int(n * 0.2)
    run_to_end(trainer)
    assert load_checkpoint(trainer.run_dir / "last.safetensors").meta["config"]["test_fraction"] == 0.2
    resumed = Trainer.resume(trainer.run_dir, steps=8)
    assert resumed.config.test_fraction == 0.2 and resumed.task.train_chars == trainer.task.train_chars
    run_to_end(resumed)


def test_a_checkpoint_from_before_test_fraction_reads_as_zero(tiny_run, capsys):
    path = tiny_run / "last.safetensors"
    checkpoint = load_checkpoint(path)
    meta = dict(checkpoint.meta)
    meta["config"] = {k: v for k, v in meta["config"].items() if k != "test_fraction"}
    save_checkpoint(path, dict(checkpoint.tensors), meta)
    assert TrainConfig.from_dict(meta["config"]).test_fraction == 0
    assert main(["eval", str(tiny_run), "--split", "test", "--device", "cpu"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert "--split test: run tiny has no test split" in err and "--test-fraction" in err


# --------------------------------------------------------------------------- diff view

def test_diff_spans_cut_the_text_by_winner_and_size():
    text = "abcdef"
    a = [0.1, 0.1, 3.0, 3.0, 1.0]   # nats for b, c, d, e, f
    b = [2.0, 0.2, 0.1, 0.1, 1.0]
    spans = diff_spans(text, a, b)
    assert "".join(span.text for span in spans) == text
    assert [(s.text, s.winner, s.level) for s in spans] == [
        ("a", TIE, 0), ("b", A_WINS, 2), ("c", TIE, 0), ("de", B_WINS, 2), ("f", TIE, 0)]
    assert "".join(s.marker for s in spans) == " A BB "
    summary = summarize_diff(text, a, b)
    assert (summary.a_better, summary.b_better) == (1, 2)
    assert summary.b_top[0].text == "de" and summary.b_top[0].bits == pytest.approx(-5.8 / math.log(2))
    with pytest.raises(ValueError, match="different texts"):
        diff_spans(text, a, b[:-1])


def test_marker_lines_put_each_marker_under_its_character():
    spans = diff_spans("ab\ncd", [0.0, 0.0, 3.0, 0.0], [2.0, 0.0, 0.0, 0.0])
    assert marker_lines(spans, 80) == [("ab↵", " A "), ("cd", "B ")]
    assert marker_lines(diff_spans("abcde", [0.0] * 4, [0.0] * 4), 2) == [("ab", "  "), ("cd", "  "), ("e", " ")]


# --------------------------------------------------------------------------- command

def test_eval_prints_a_table_and_json(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--device", "cpu", "--exact"]) == 0
    out = capsys.readouterr().out
    assert "bits/char" in out and "95% interval" in out and "val split of tiny.txt" in out
    assert main(["eval", str(tiny_run), "--device", "cpu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["run"] == "tiny" and rows[0]["chars"] == int(len(TINY_TEXT) * 0.1) - 1
    assert rows[0]["interval_bits"][0] < rows[0]["bits_per_char"] < rows[0]["interval_bits"][1]


def test_eval_on_the_test_split(tiny_corpus, tmp_path, capsys):
    trainer = Trainer(tiny_config(tiny_corpus, run_name="held", runs_dir=str(tmp_path / "runs"), steps=3,
                                  test_fraction=0.2))
    run_to_end(trainer)
    assert main(["eval", str(trainer.run_dir), "--split", "test", "--json", "--device", "cpu"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["text"] == "test split of tiny.txt" and row["chars"] == int(len(TINY_TEXT) * 0.2) - 1


def test_eval_scores_the_baselines_of_the_runs_training_text(tiny_run, tiny_corpus, tmp_path, capsys):
    from rnn_playground.core import baselines
    train, val, _ = split_parts(TINY_TEXT, 0.1)
    assert main(["eval", str(tiny_run), "--device", "cpu", "--json"]) == 0
    model, *rest = json.loads(capsys.readouterr().out)
    assert model["kind"] == "model" and [row["kind"] for row in rest] == ["baseline", "baseline"]
    expected = [baselines.unigram(train), baselines.fit_ngram(train, val)]
    for row, baseline in zip(rest, expected, strict=True):  # fitted on the training part, scoring the val part
        assert row["model"] == baseline.name and row["chars"] == len(val) - 1
        assert row["bits_per_char"] == pytest.approx(baseline.bits_per_char(val), abs=1e-12)
    assert main(["eval", str(tiny_run), "--device", "cpu", "--json", "--no-baselines"]) == 0
    assert [row["kind"] for row in json.loads(capsys.readouterr().out)] == ["model"]
    # A file scored while the run's corpus is gone: the run's score stands, the baselines get a note.
    scored = tmp_path / "other.txt"
    scored.write_text(TINY_TEXT[:300], encoding="utf-8")
    tiny_corpus.unlink()
    assert main(["eval", str(tiny_run), "--device", "cpu", "--file", str(scored)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "No baselines for tiny:" in out and "LSTM" in out


@pytest.mark.parametrize("content, message", [
    (None, "--file {path}: cannot read it"),
    (b"", "--file {path} is empty"),
    (b"caf\xe9", "--file {path} is not UTF-8 text: invalid byte 0xe9 at byte offset 3"),
])
def test_a_bad_file_is_one_line_naming_the_flag(tiny_run, tmp_path, capsys, content, message):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    assert main(["eval", str(tiny_run), "--file", str(path), "--device", "cpu"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert message.format(path=path) in err and "Traceback" not in err


def test_file_and_split_together_are_refused(tiny_run, tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("hello")
    with pytest.raises(SystemExit) as info:
        main(["eval", str(tiny_run), "--file", str(path), "--split", "val"])
    assert info.value.code == EXIT_ERROR and "--split: not allowed with argument --file" in capsys.readouterr().err


def test_diff_without_colour_reads_by_markers(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    other = tmp_path / "other"
    other.mkdir()
    checkpoint = load_checkpoint(tiny_run / "last.safetensors")
    tensors = {k: (v * 0.5 if k.startswith("model.") else v) for k, v in checkpoint.tensors.items()}
    save_checkpoint(other / "last.safetensors", tensors, checkpoint.meta)
    path = tmp_path / "t.txt"
    path.write_text(TINY_TEXT[:300] + "☃")
    assert main(["eval", str(tiny_run), str(other), "--file", str(path), "--diff", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "tiny (A) against other (B)" in out and "Where A wins most:" in out
    lines = out.splitlines()
    text_line = lines.index(next(line for line in lines if line.startswith("The quick brown fox")))
    assert set(lines[text_line + 1]) <= set(" aAbB") and len(lines[text_line + 1]) == len(lines[text_line])
    assert "1: ☃" in out  # the character outside both vocabularies, counted


def test_diff_needs_two_runs(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--diff", "--device", "cpu"]) == EXIT_ERROR
    assert "--diff compares two runs; got 1." in capsys.readouterr().err


def test_a_series_run_is_refused_before_any_corpus_loads(tmp_path, capsys):
    from .tui_helpers import series_run
    run = series_run(tmp_path / "runs", "waves")
    assert main(["eval", str(run), "--device", "cpu"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert "not a character model" in err and "Traceback" not in err


def test_diff_of_runs_whose_splits_differ_asks_for_a_file(tiny_run, tiny_corpus, tmp_path, capsys):
    trainer = Trainer(tiny_config(tiny_corpus, run_name="held", runs_dir=str(tmp_path / "runs"), steps=3,
                                  test_fraction=0.2))
    run_to_end(trainer)
    assert main(["eval", str(tiny_run), str(trainer.run_dir), "--diff", "--device", "cpu"]) == EXIT_ERROR
    assert "--diff needs both runs to score the same text" in " ".join(capsys.readouterr().err.split())
    assert main(["eval", str(tiny_run), str(trainer.run_dir), "--device", "cpu"]) == 0  # each on its own split
    assert "not directly comparable" in capsys.readouterr().out

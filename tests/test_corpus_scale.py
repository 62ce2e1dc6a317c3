"""Large corpora: read and encoded in chunks into one compact array, validated on a fixed sample."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_playground.core import corpus as corpus_mod
from rnn_playground.core.chartask import evaluate_char_model, evaluate_streams
from rnn_playground.core.corpus import Corpus, Vocab, compact_dtype, load_corpus, validation_spans
from rnn_playground.core.errors import CorpusError
from rnn_playground.core.events import RunStarted, ValidationEvent
from rnn_playground.core.trainer import Trainer

from .conftest import TINY_TEXT, run_to_end, tiny_config

ROOT = Path(__file__).resolve().parents[1]
MIXED = "Tschüß — 日本語 🙂 tabs\tand\nnewlines, plain ASCII too. " * 7


# --------------------------------------------------------------------------- chunked reading

@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_chunked_reading_matches_the_whole_text(tmp_path, monkeypatch, chunk):
    """Cut anywhere, even inside a 4-byte character, the pieces give the text, its length, characters,
    fingerprint and ids exactly as the whole text does (BOM dropped, folders joined by newlines)."""
    monkeypatch.setattr(corpus_mod, "CHUNK_BYTES", chunk)
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf" + MIXED.encode())
    (tmp_path / "b.txt").write_text("second file: ascii only\n" * 3, encoding="utf-8")
    for spec, text in [(str(tmp_path / "a.txt"), MIXED),
                       (str(tmp_path), MIXED + "\n" + "second file: ascii only\n" * 3)]:
        corpus = load_corpus(spec)
        assert corpus.length == len(text)
        assert corpus.characters == frozenset(text)
        assert corpus.fingerprint == hashlib.sha256(text.encode("utf-8")).hexdigest()
        vocab = Vocab(corpus.characters)
        assert torch.equal(corpus.ids(vocab).long(), vocab.encode(text))
        assert corpus.text == text


@pytest.mark.parametrize("data, offset, byte", [
    (b"abcdefgh\xffdef", 8, "0xff"),
    (b"abc \xe2\x82", 4, "0xe2"),                    # a truncated 3-byte sequence at the end
    (b"\xef\xbb\xbfab\xc3\xa9cd\xffcd", 9, "0xff"),  # offsets count from the file's first byte, BOM included
    (b"ok\xc3\xa9\xe9 then later\x00", 16, None),   # a NUL anywhere wins, as for a whole read
])
def test_chunked_reading_reports_bad_bytes_like_a_whole_read(tmp_path, monkeypatch, data, offset, byte):
    monkeypatch.setattr(corpus_mod, "CHUNK_BYTES", 4)
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    message = str(info.value)
    assert str(path) in message and f"byte offset {offset}" in message
    assert (byte in message) if byte else ("NUL byte" in message)


def test_a_file_corpus_is_not_held_as_a_string(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    corpus = load_corpus(str(path))
    assert corpus.length == len(TINY_TEXT) and corpus._text is None


@pytest.mark.parametrize("size, dtype", [(2, np.uint8), (256, np.uint8), (257, np.int16), (1 << 15, np.int16),
                                         ((1 << 15) + 1, np.int32)])
def test_compact_dtype_holds_every_index(size, dtype):
    assert compact_dtype(size) == dtype
    assert np.iinfo(dtype).max >= size - 1


def test_a_large_vocabulary_encodes_into_two_bytes(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(600)) * 3
    path = tmp_path / "cjk.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(str(path))
    vocab = Vocab(corpus.characters)
    ids = corpus.ids(vocab)
    assert ids.dtype == torch.int16 and torch.equal(ids.long(), vocab.encode(text))


def test_encoding_with_a_vocabulary_that_lacks_characters_is_refused():
    corpus = Corpus("t", "somewhere", "abcz")
    with pytest.raises(CorpusError, match="'z'"):
        corpus.ids(Vocab("abc"))


# --------------------------------------------------------------------------- the trainer

def test_the_trainer_holds_the_corpus_once_in_one_byte_a_character(tiny_corpus):
    trainer = Trainer(tiny_config(tiny_corpus, steps=2, val_every=100))
    task = trainer.task
    assert task.batches.inputs.dtype == torch.uint8 and task.val_ids.dtype == torch.uint8
    # train windows, their targets and the held-out split are views of one array
    storage = task.batches.inputs.untyped_storage().data_ptr()
    assert task.batches.targets.untyped_storage().data_ptr() == storage
    assert task.val_ids.untyped_storage().data_ptr() == storage
    assert task.batches.inputs.untyped_storage().nbytes() == len(TINY_TEXT)
    inputs, targets = task.batches.window(0)
    assert inputs.dtype == targets.dtype == torch.long


def test_peak_memory_grows_by_about_one_byte_a_character(tmp_path):
    """A real process builds the training task of a 24 MB corpus: its peak RSS grows by about a byte a
    character (the compact array, plus a chunk being read), not the 16 that an int64 copy and its
    temporaries cost."""
    path = tmp_path / "big.txt"
    path.write_text(TINY_TEXT * (24_000_000 // len(TINY_TEXT)), encoding="utf-8")
    chars = path.stat().st_size
    script = textwrap.dedent(f"""
        import json, resource, torch
        from rnn_playground.core.chartask import CharTask
        from rnn_playground.core.config import TrainConfig
        from rnn_playground.core.corpus import Vocab, load_corpus
        torch.zeros(1000).sum()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        config = TrainConfig(corpus={str(path)!r}, hidden=8, layers=1, embed=4, batch=16, seq=32, device="cpu")
        corpus = load_corpus(config.corpus)
        task = CharTask(config, corpus, Vocab(corpus.characters), torch.device("cpu"))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"grew_kb": after - before, "train": task.train_chars}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["train"] > 20_000_000
    assert measured["grew_kb"] * 1024 / chars < 2.5, measured


# --------------------------------------------------------------------------- validation sample

def test_validation_spans_are_fixed_spread_and_true_next_characters():
    ids = torch.arange(10_000, dtype=torch.int32)
    inputs, targets = validation_spans(ids, 1000, 4)
    assert inputs.shape == targets.shape == (4, 250)
    assert torch.equal(targets, inputs + 1)                              # each target is the next character
    assert inputs[0, 0] == 0 and targets[-1, -1] == len(ids) - 1         # from the start to the end
    starts = inputs[:, 0].tolist()
    assert all(b - a >= 250 for a, b in zip(starts, starts[1:], strict=False))         # spans do not overlap
    again, _ = validation_spans(ids, 1000, 4)
    assert torch.equal(again, inputs)


def test_a_long_held_out_split_is_validated_on_a_sample_and_whole_at_the_end(tiny_corpus):
    trainer = Trainer(tiny_config(tiny_corpus, steps=20, val_every=10, val_sample=300, val_streams=4))
    events = run_to_end(trainer)
    task = trainer.task
    assert len(task.val_ids) > 300
    started = events[0]
    assert isinstance(started, RunStarted) and started.val_sample == 300
    vals = [e for e in events if isinstance(e, ValidationEvent)]
    assert [(e.step, e.sampled, e.chars) for e in vals] == [(10, True, 300), (20, False, task.val_chars)]
    # the last one is the whole split, the same pass a run with no sample makes
    model = trainer.model
    with trainer._averaged_weights():
        assert vals[-1].val_loss == pytest.approx(evaluate_char_model(model, task.val_ids, 4), abs=1e-6)
        sample = evaluate_streams(model, *validation_spans(task.val_ids, 300, 4))
    assert sample != pytest.approx(vals[-1].val_loss, abs=1e-6)
    lines = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["chars"] for r in lines if r["event"] == "validation"] == [300, task.val_chars]


def test_a_held_out_split_within_the_sample_size_is_read_whole_as_before(tiny_corpus):
    """Small corpora: --val-sample larger than the split, or 0 (the whole split each time), give
    the same validation losses."""
    def losses(**overrides):
        events = run_to_end(Trainer(tiny_config(tiny_corpus, steps=20, val_every=10, **overrides)))
        return [(e.val_loss, e.sampled) for e in events if isinstance(e, ValidationEvent)], events[0].val_sample

    default, sample_size = losses()
    assert sample_size is None and all(not sampled for _, sampled in default)
    assert losses(val_sample=0) == (default, None)


def test_val_sample_must_not_be_negative(tiny_corpus):
    from rnn_playground.core.errors import ConfigError
    with pytest.raises(ConfigError, match="--val-sample"):
        Trainer(tiny_config(tiny_corpus, val_sample=-1))


def test_headless_log_names_the_sample(tiny_corpus, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(tiny_corpus), "--steps", "10",
         "--val-every", "5", "--val-sample", "200", "--val-streams", "4", "--hidden", "16", "--embed", "8",
         "--batch", "8", "--seq", "16", "--sample-chars", "0", "--device", "cpu", "--no-amp",
         "--runs-dir", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # Rich wraps lines to the terminal's width
    assert "each validation reads a fixed sample of 200" in said
    assert "step 5: val loss" in said and "on a sample of 200" in said


def test_the_train_forms_corpus_check_counts_without_holding_the_text(tmp_path):
    """The app checks a corpus as its settings are typed and keeps the last few checked: their
    sizes, not their texts (4 large corpora held as strings would cost gigabytes)."""
    from rnn_playground.tui.viewmodel import settings as watch
    path = tmp_path / "t.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    check = watch.check_corpus(str(path), batch=8, seq=16)
    assert check.ok and check.chars == len(TINY_TEXT) and f"{len(TINY_TEXT):,} characters" in check.message
    assert all(corpus._text is None for corpus in watch._corpus_cache.values())

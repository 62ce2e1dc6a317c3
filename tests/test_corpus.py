"""Corpora on real files: built-in, file, folder, named (cached), decoding errors, sizes, split, vocab."""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rnn_playground.core import corpus as corpus_mod
from rnn_playground.core.corpus import (
    BUILTIN_STDLIB,
    DEFAULT_CORPUS,
    STDLIB_CAP_CHARS,
    Vocab,
    check_size,
    load_corpus,
    minimum_chars,
    split_ids,
    stdlib_files,
)
from rnn_playground.core.download import REMOTE_CORPORA, RemoteFile, cache_dir
from rnn_playground.core.errors import CorpusError, DownloadError
from rnn_playground.core.model import StreamBatches

from .conftest import named_corpus_copy, named_corpus_sources

# --------------------------------------------------------------------------- built-in corpus

@pytest.fixture(scope="module")
def stdlib_corpus():
    return load_corpus(BUILTIN_STDLIB)


def test_default_corpus_is_the_stdlib():
    assert DEFAULT_CORPUS == BUILTIN_STDLIB


def test_stdlib_corpus_is_deterministic_and_capped(stdlib_corpus):
    again = load_corpus(BUILTIN_STDLIB)
    assert again.text == stdlib_corpus.text
    assert again.fingerprint == stdlib_corpus.fingerprint
    assert 500_000 < len(stdlib_corpus.text) <= STDLIB_CAP_CHARS
    assert len(stdlib_corpus.text.encode("utf-8")) < 5 * 1024 * 1024  # "a few MB"
    assert "def " in stdlib_corpus.text and "import " in stdlib_corpus.text


def test_stdlib_files_are_sorted_and_skip_tests():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_files()
    assert files, "the running Python has no stdlib sources?"
    keys = [p.relative_to(root).as_posix() for p in files]
    assert keys == sorted(keys)
    assert all(p.suffix == ".py" for p in files)
    assert not any(part in ("test", "tests", "site-packages", "__pycache__")
                   for p in files for part in p.relative_to(root).parts[:-1])


def test_stdlib_corpus_starts_with_the_first_file(stdlib_corpus):
    first = stdlib_files()[0].read_text(encoding="utf-8")
    assert stdlib_corpus.text.startswith(first)


# --------------------------------------------------------------------------- files and folders

def test_path_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello world\n", encoding="utf-8")
    corpus = load_corpus(str(path))
    assert corpus.text == "hello world\n"
    assert str(path) in corpus.source
    assert corpus.fingerprint == hashlib.sha256(b"hello world\n").hexdigest()


def test_directory_with_glob_is_recursive_and_sorted(tmp_path):
    root = tmp_path / "src"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "z.py").write_text("Z", encoding="utf-8")
    (root / "b" / "deep" / "m.py").write_text("M", encoding="utf-8")
    (root / "a" / "x.py").write_text("X", encoding="utf-8")
    (root / "a" / "notes.txt").write_text("NOT CODE", encoding="utf-8")
    corpus = load_corpus(str(root), glob="*.py")
    assert corpus.text == "X\nM\nZ"  # a/x.py, b/deep/m.py, z.py
    assert "3 files" in corpus.source
    everything = load_corpus(str(root))
    assert "NOT CODE" in everything.text and everything.text.count("\n") == 3


def test_directory_without_matches(tmp_path):
    (tmp_path / "a.txt").write_text("text", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"no files matching '\*\.py'.*--glob"):
        load_corpus(str(tmp_path), glob="*.py")


# --------------------------------------------------------------------------- decoding

def test_bom_is_accepted_and_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfcaf\xc3\xa9\n")
    assert load_corpus(str(path)).text == "café\n"


@pytest.mark.parametrize("data, offset, byte", [
    (b"abc\xffdef", 3, "0xff"),
    ("héllo".encode("latin-1"), 1, "0xe9"),
    (b"ok \xe2\x82", 3, "0xe2"),                    # a truncated 3-byte sequence at the end
    (b"\xef\xbb\xbfab\xffcd", 5, "0xff"),           # offsets count from the file's first byte, BOM included
])
def test_non_utf8_names_file_and_offset(tmp_path, data, offset, byte):
    path = tmp_path / "latin.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    message = str(info.value)
    assert str(path) in message
    assert f"byte offset {offset}" in message
    assert byte in message
    assert "UTF-8" in message and "iconv" in message  # what to do


def test_nul_bytes_name_the_offset(tmp_path):
    path = tmp_path / "binary.dat"
    path.write_bytes(b"text then\x00binary")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert str(path) in str(info.value)
    assert "NUL byte at byte offset 9" in str(info.value)


def test_bad_file_inside_a_directory_is_named(tmp_path):
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\x80")
    with pytest.raises(CorpusError, match=r"bad\.txt.*byte offset 0"):
        load_corpus(str(tmp_path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert str(path) in str(info.value) and "empty" in str(info.value)


def test_file_with_only_a_bom_is_empty(tmp_path):
    path = tmp_path / "bom-only.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(str(path))


def test_unreadable_path_is_unknown(tmp_path):
    with pytest.raises(CorpusError) as info:
        load_corpus(str(tmp_path / "nope.txt"))
    message = str(info.value)
    assert "nope.txt" in message and BUILTIN_STDLIB in message and "tinyshakespeare" in message


def test_unknown_builtin():
    with pytest.raises(CorpusError, match=r"Unknown built-in corpus 'builtin:klingon'.*python-stdlib"):
        load_corpus("builtin:klingon")


# --------------------------------------------------------------------------- sizes

def test_too_small_for_one_batch_gives_the_minimum(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("x" * 500, encoding="utf-8")
    corpus = load_corpus(str(path))
    needed = minimum_chars(8, 64, 0.1)
    with pytest.raises(CorpusError) as info:
        check_size(corpus, batch=8, seq=64, val_fraction=0.1)
    message = str(info.value)
    assert str(path) in message and "500" in message and f"{needed:,}" in message
    assert "--batch" in message and "--seq" in message
    check_size(corpus, batch=2, seq=16, val_fraction=0.1)  # small settings fit


@pytest.mark.parametrize("batch, seq, val_fraction", [(8, 16, 0.1), (64, 100, 0.1), (3, 7, 0.25), (4, 5, 0.0),
                                                      (128, 100, 0.1)])
def test_minimum_is_exact(batch, seq, val_fraction):
    """At the minimum, one training batch and a validation split exist; one character fewer, they don't."""
    needed = minimum_chars(batch, seq, val_fraction)

    def usable(n: int) -> bool:
        train, val = split_ids(torch.arange(n), val_fraction)
        if val_fraction > 0 and len(val) < 2:
            return False
        try:
            StreamBatches(train, batch, seq)
        except Exception:
            return False
        return True

    assert usable(needed)
    assert not usable(needed - 1)
    corpus = corpus_mod.Corpus("t", "t", "y" * needed)
    check_size(corpus, batch, seq, val_fraction)
    with pytest.raises(CorpusError):
        check_size(corpus_mod.Corpus("t", "t", "y" * (needed - 1)), batch, seq, val_fraction)


def test_empty_corpus_check_size():
    with pytest.raises(CorpusError, match="empty"):
        check_size(corpus_mod.Corpus("t", "somewhere.txt", ""), 1, 1, 0.1)


# --------------------------------------------------------------------------- split

def test_split_is_last_ten_percent_by_default():
    ids = torch.arange(1000)
    train, val = split_ids(ids)
    assert torch.equal(train, ids[:900]) and torch.equal(val, ids[900:])


def test_split_is_configurable():
    ids = torch.arange(1000)
    train, val = split_ids(ids, 0.25)
    assert torch.equal(train, ids[:750]) and torch.equal(val, ids[750:])
    train, val = split_ids(ids, 0.0)
    assert torch.equal(train, ids) and len(val) == 0


def test_trainer_default_val_fraction_is_ten_percent():
    from rnn_playground.core.config import TrainConfig
    assert TrainConfig().val_fraction == 0.1


# --------------------------------------------------------------------------- vocab

def test_vocab_is_the_sorted_set_of_characters():
    vocab = Vocab.from_text("hello, wörld\n")
    assert vocab.chars == tuple(sorted(set("hello, wörld\n")))
    assert len(vocab) == len(set("hello, wörld\n"))
    assert vocab == Vocab(reversed("hello, wörld\n"))


def test_vocab_round_trip():
    text = "Tschüß — 日本語 🙂 tabs\tand\nnewlines"
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert ids.min() >= 0 and ids.max() < len(vocab)
    assert [vocab.chars[i] for i in ids.tolist()] == list(text)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    assert vocab.encode("").shape == (0,) and vocab.decode([]) == ""


def test_vocab_reports_missing_characters():
    vocab = Vocab.from_text("abc")
    assert vocab.missing("abcab") == []
    assert vocab.missing("zabxz!") == ["!", "x", "z"]
    with pytest.raises(CorpusError) as info:
        vocab.encode("abz!")
    assert "'!'" in str(info.value) and "'z'" in str(info.value)


def test_missing_characters_list_is_capped():
    vocab = Vocab.from_text("a")
    with pytest.raises(CorpusError, match="and 6 more"):
        vocab.encode("".join(chr(0x4e00 + i) for i in range(26)))


# --------------------------------------------------------------------------- named corpora

def _register(monkeypatch, name: str, text: bytes) -> RemoteFile:
    remote = RemoteFile(name=name, url="http://127.0.0.1:9/never-contacted", size=len(text),
                        sha256=hashlib.sha256(text).hexdigest(), filename=f"{name}.txt")
    monkeypatch.setitem(REMOTE_CORPORA, name, remote)
    return remote


def test_named_corpus_resolves_through_the_cache(monkeypatch, tmp_path):
    text = b"a cached corpus\n" * 10
    _register(monkeypatch, "cached-one", text)
    assert cache_dir() == tmp_path / "cache"  # conftest isolates the cache
    cache_dir().mkdir(parents=True)
    (cache_dir() / "cached-one.txt").write_bytes(text)
    corpus = load_corpus("cached-one")  # the URL is unreachable: only the cache can answer
    assert corpus.text == text.decode()
    assert corpus.source == str(cache_dir() / "cached-one.txt")


def test_named_corpus_with_explicit_cache_dir(monkeypatch, tmp_path):
    text = b"elsewhere\n"
    _register(monkeypatch, "elsewhere", text)
    other = tmp_path / "other-cache"
    other.mkdir()
    (other / "elsewhere.txt").write_bytes(text)
    assert load_corpus("elsewhere", cache=other).text == "elsewhere\n"


def test_named_corpus_not_cached_and_offline_is_a_clear_error(monkeypatch):
    _register(monkeypatch, "offline-one", b"whatever")
    with pytest.raises(DownloadError, match="offline-one"):
        load_corpus("offline-one")
    assert not any(cache_dir().iterdir())


@pytest.mark.parametrize("name, source", named_corpus_sources(REMOTE_CORPORA))
def test_named_corpora_resolve_offline_from_a_verified_copy_in_the_cache(name, source, monkeypatch, tmp_path):
    """Offline, the error says where a copy is accepted; a copy placed there is used only once its
    size and sha256 match (the real file where ../shared/data has it; a generated stand-in with its
    own checksum everywhere, so a fresh clone tests this too)."""
    remote, data = named_corpus_copy(name, source, monkeypatch, tmp_path)
    monkeypatch.setitem(REMOTE_CORPORA, name, replace(remote, url="http://127.0.0.1:9/offline"))
    target = cache_dir() / remote.filename
    with pytest.raises(DownloadError) as info:
        load_corpus(name)
    message = str(info.value)
    assert f"a copy placed at {target}" in message and "RNN_PLAYGROUND_CACHE" in message
    assert f"{remote.size} bytes and sha256 {remote.sha256[:16]}" in message
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[:-1])  # a truncated copy
    with pytest.raises(DownloadError, match=f"the file there now has {len(data) - 1} bytes, so it was not used"):
        load_corpus(name)
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # right size, one bit differs
    with pytest.raises(DownloadError, match="with sha256 [0-9a-f]{16}…, so it was not used"):
        load_corpus(name)
    target.write_bytes(data)
    corpus = load_corpus(name)
    assert corpus.text == data.decode("utf-8-sig") and corpus.source == str(target)
    assert corpus.fingerprint == hashlib.sha256(data.decode("utf-8-sig").encode()).hexdigest()
"""Corpora: where text comes from, how it is decoded, and its character vocabulary."""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .download import REMOTE_CORPORA, ProgressFn, fetch
from .errors import CorpusError

BUILTIN_STDLIB = "builtin:python-stdlib"
DEFAULT_CORPUS = BUILTIN_STDLIB
STDLIB_CAP_CHARS = 3_000_000
DEFAULT_VAL_FRACTION = 0.1  # the last 10% of the text is held out for validation
# Tests and vendored copies make the corpus less like code people write; idlelib and
# turtledemo carry large GUI tables.
_STDLIB_SKIP_DIRS = {"test", "tests", "site-packages", "dist-packages", "idlelib", "turtledemo",
                     "lib2to3", "ensurepip", "__pycache__", "encodings", "pydoc_data"}


class Corpus:
    """A corpus: what the user asked for (`spec`), where it came from (`source`), and its text.

    The text is either held as a str (the built-in corpus, tests) or read from `files` (joined by
    newlines) in chunks: a large corpus is scanned (length, characters, fingerprint) and encoded
    (`ids`) without ever being one Python str, which would cost 1 to 4 bytes a character on top of
    the encoded array. `text` still gives the whole str, read on demand, for small uses."""

    def __init__(self, spec: str, source: str, text: str | None = None, *, files: Sequence[Path] = (),
                 warnings: Sequence[str] = ()):
        self.spec, self.source = spec, source
        self.warnings = tuple(warnings)  # what was skipped on the way, for the user (an unreadable subfolder)
        self._text = text if text is not None or files else ""
        self.files = tuple(files)
        self._summary: _Summary | None = None

    def __repr__(self) -> str:
        return f"Corpus({self.spec!r}, {self.source!r})"

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "\n".join(_read_file(path) for path in self.files)
        return self._text

    @property
    def length(self) -> int:
        """Characters in the text."""
        return self._scan().length

    @property
    def characters(self) -> frozenset[str]:
        """The distinct characters of the text."""
        return self._scan().characters

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the text as UTF-8."""
        return self._scan().fingerprint

    def _scan(self) -> _Summary:
        if self._summary is None:
            digest, length, seen = hashlib.sha256(), 0, set()
            for data, codes in self._pieces():
                digest.update(data)
                length += len(codes)
                if codes.dtype == np.uint8:  # ASCII: count only the bytes not seen yet (translate deletes the rest)
                    codes = np.frombuffer(data.translate(None, bytes(c for c in seen if c < 128)), dtype=np.uint8)
                seen.update(_distinct(codes))
            self._summary = _Summary(length, frozenset(map(chr, seen)), digest.hexdigest())
        return self._summary

    def ids(self, vocab: Vocab) -> torch.Tensor:
        """The text encoded with `vocab` as one compact integer tensor (see compact_dtype), built
        chunk by chunk: about 1 byte a character for a vocabulary of up to 256 characters."""
        lacking = vocab.missing(self.characters)
        if lacking:
            raise CorpusError(f"Corpus {self.source} has characters the vocabulary lacks: {describe_chars(lacking)}.")
        dtype = compact_dtype(len(vocab))
        lookup = np.zeros(max(map(ord, vocab.chars), default=0) + 1, dtype=dtype)
        lookup[[ord(c) for c in vocab.chars]] = np.arange(len(vocab), dtype=dtype)
        # An ASCII piece, with a 1-byte vocabulary, goes through bytes.translate: a table lookup in C.
        table = None
        if dtype == np.uint8:
            table = np.zeros(256, dtype=np.uint8)
            table[:min(128, len(lookup))] = lookup[:128]
            table = table.tobytes()
        out = np.empty(self.length, dtype=dtype)
        position = 0
        for data, codes in self._pieces():
            if position + len(codes) > len(out):
                break
            if table is not None and codes.dtype == np.uint8:
                out[position:position + len(codes)] = np.frombuffer(data.translate(table), dtype=np.uint8)
                position += len(codes)
                continue
            for start in range(0, len(codes), _BLOCK):  # take() makes an int64 copy of its indices
                block = codes[start:start + _BLOCK]
                np.take(lookup, block, out=out[position:position + len(block)])
                position += len(block)
        else:
            if position == len(out):
                return torch.from_numpy(out)
        raise CorpusError(f"Corpus {self.source} changed while it was being read. Load it again.")

    def _pieces(self) -> Iterator[tuple[bytes, np.ndarray]]:
        """The text in order as (UTF-8 bytes, code points) pieces of at most about CHUNK_BYTES."""
        if self._text is not None:
            for start in range(0, len(self._text), CHUNK_BYTES):
                yield _piece(self._text[start:start + CHUNK_BYTES])
            return
        for n, path in enumerate(self.files):
            if n:
                yield b"\n", np.frombuffer(b"\n", dtype=np.uint8)
            yield from _file_pieces(path)


@dataclass(frozen=True)
class _Summary:
    length: int
    characters: frozenset[str]
    fingerprint: str


CHUNK_BYTES = 8 << 20  # a large file is read, checked and encoded this many bytes at a time
_BLOCK = 1 << 20       # numpy calls that copy their input to int64 get this many elements at a time


def compact_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds every index of a vocabulary of this size."""
    if vocab_size <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.int16) if vocab_size <= 1 << 15 else np.dtype(np.int32)


def _piece(text: str) -> tuple[bytes, np.ndarray]:
    if text.isascii():
        data = text.encode("ascii")
        return data, np.frombuffer(data, dtype=np.uint8)
    return text.encode("utf-8"), np.frombuffer(text.encode("utf-32-le"), dtype=np.int32)


def _distinct(codes: np.ndarray, block: int = _BLOCK) -> Iterable[int]:
    """The distinct code points of `codes`, counted a block at a time (bincount works on an int64
    copy of its input)."""
    if not len(codes):
        return []
    if codes.dtype != np.uint8 and int(codes.max()) >= 1 << 16:
        return np.unique(codes).tolist()
    counts = np.zeros(256 if codes.dtype == np.uint8 else 1 << 16, dtype=np.int64)
    for start in range(0, len(codes), block):
        part = codes[start:start + block]
        counts[:int(part.max()) + 1] += np.bincount(part)
    return np.flatnonzero(counts).tolist()


def _file_pieces(path: Path) -> Iterator[tuple[bytes, np.ndarray]]:
    """A UTF-8 file as text pieces (a leading BOM dropped), read CHUNK_BYTES at a time and cut at
    character boundaries. A NUL byte or invalid UTF-8 anywhere gives decode_utf8's own message."""
    try:
        with open(path, "rb") as file:
            carry = b""
            first = True
            while True:
                chunk = file.read(max(CHUNK_BYTES, 3) if first else CHUNK_BYTES)  # a BOM comes whole
                at_end = not chunk
                if first and chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]
                first = False
                if b"\x00" in chunk:
                    _raise_decode_error(path)
                data = carry + chunk
                if data.isascii():
                    carry = b""
                else:
                    cut = len(data) if at_end else _last_char_start(data)
                    data, carry = data[:cut], data[cut:]
                if data:
                    if data.isascii():
                        yield data, np.frombuffer(data, dtype=np.uint8)
                    else:
                        try:
                            text = data.decode("utf-8")
                        except UnicodeDecodeError:
                            _raise_decode_error(path)
                        yield data, np.frombuffer(text.encode("utf-32-le"), dtype=np.int32)
                if at_end:
                    return
    except OSError as exc:
        raise CorpusError(f"Cannot read corpus file {path}: {exc.strerror or exc}.") from None


def _last_char_start(data: bytes) -> int:
    """Where the last (possibly incomplete) UTF-8 character of `data` starts: the piece before it
    holds only whole characters. Looks at most 4 bytes back (no character is longer)."""
    index = len(data) - 1
    while index > len(data) - 4 and index > 0 and data[index] & 0xC0 == 0x80:
        index -= 1
    return index


def _raise_decode_error(path: Path) -> None:
    """Read the whole file again to name the first bad byte exactly as decode_utf8 does (a rare
    path, so its memory does not matter)."""
    decode_utf8(path.read_bytes(), f"Corpus file {path}")
    raise CorpusError(f"Corpus file {path} changed while it was being read. Load it again.")


class Vocab:
    """The sorted set of characters of a corpus; index i is character chars[i]."""

    def __init__(self, chars: Iterable[str]):
        self.chars: tuple[str, ...] = tuple(sorted(set(chars)))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def missing(self, text: str) -> list[str]:
        """Characters of `text` the vocabulary lacks, sorted."""
        return sorted(set(text) - self.index.keys())

    def encode(self, text: str) -> torch.Tensor:
        lacking = self.missing(text)
        if lacking:
            raise CorpusError(f"Text has characters the vocabulary lacks: {describe_chars(lacking)}.")
        if not text:
            return torch.zeros(0, dtype=torch.long)
        lookup = torch.full((max(map(ord, self.chars)) + 1,), -1, dtype=torch.long)
        lookup[torch.tensor([ord(c) for c in self.chars])] = torch.arange(len(self.chars))
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        return lookup[codes]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)


def describe_chars(chars: Iterable[str], limit: int = 20) -> str:
    chars = list(chars)
    shown = ", ".join(repr(c) for c in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return f"{shown}{more}"


def decode_utf8(data: bytes, where: str) -> str:
    """Strict UTF-8 (a leading BOM is dropped); NUL bytes are refused as binary."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(
            f"{where} contains a NUL byte at byte offset {nul}; it looks like a binary file, not text. "
            "Pick a plain-text file.")
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # offsets below count from the file's first byte
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise CorpusError(
            f"{where} is not UTF-8 text: invalid byte 0x{data[offset]:02x} at byte offset {offset}. "
            "Find its encoding (for example with: file -i FILE) and convert it from that to UTF-8 (for example: "
            "iconv -f ENCODING -t utf-8 FILE > FILE.utf8), or pick another file."
        ) from None


def _read_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"Cannot read corpus file {path}: {exc.strerror or exc}.") from None
    return decode_utf8(data, f"Corpus file {path}")


def stdlib_files() -> list[Path]:
    """The running Python's standard-library sources, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py")
             if not _STDLIB_SKIP_DIRS.intersection(p.relative_to(root).parts[:-1])]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _stdlib_text(cap: int = STDLIB_CAP_CHARS) -> str:
    parts: list[str] = []
    total = 0
    for path in stdlib_files():
        try:
            text = decode_utf8(path.read_bytes(), str(path))
        except (OSError, CorpusError):
            continue  # a damaged or non-UTF-8 stdlib file is skipped, not fatal
        joined = len(text) + (1 if parts else 0)  # files are joined with a newline
        if total + joined > cap:
            break
        parts.append(text)
        total += joined
    if not parts:
        raise CorpusError("Found no readable Python standard-library sources for the built-in corpus; "
                          "pass a text file with --corpus instead.")
    return "\n".join(parts)


def _unreadable_folders(root: Path) -> list[tuple[Path, str]]:
    """Subfolders of a corpus folder that cannot be listed, with the cause; CorpusError if `root` cannot."""
    problems: list[tuple[Path, str]] = []
    for _ in os.walk(root, onerror=lambda exc: problems.append((Path(exc.filename), exc.strerror or str(exc)))):
        pass
    if problems and problems[0][0] == root:
        raise CorpusError(f"Cannot read the corpus folder {root}: {problems[0][1]}. Make it readable, or pick "
                          "another folder.")
    return problems


def absolute_spec(spec: str) -> str:
    """A corpus spec that names a file or folder, as an absolute path, so a run resumed from another
    working folder finds it again; built-in and named corpora stay as they are."""
    if spec.startswith("builtin:"):
        return spec
    path = Path(spec).expanduser()
    return os.path.abspath(path) if path.exists() else spec


def load_corpus(spec: str = DEFAULT_CORPUS, *, glob: str = "*", cache: Path | None = None,
                progress: ProgressFn | None = None) -> Corpus:
    """Resolve a corpus spec: `builtin:python-stdlib`, a named download, a file, or a directory."""
    if spec == BUILTIN_STDLIB:
        return Corpus(spec, "Python standard library sources", _stdlib_text())
    if spec.startswith("builtin:"):
        raise CorpusError(f"Unknown built-in corpus '{spec}'. Available: {BUILTIN_STDLIB}.")
    path = Path(spec).expanduser()
    if path.is_file():
        corpus = Corpus(spec, str(path), files=[path])
        if not corpus.length:
            raise CorpusError(f"Corpus file {path} is empty. Pick a file with some text in it.")
        return corpus
    if path.is_dir():
        skipped = _unreadable_folders(path)  # rglob passes over them without a word
        files = sorted((p for p in path.rglob(glob) if p.is_file()), key=lambda p: p.as_posix())
        if not files:
            raise CorpusError(f"Directory {path} has no files matching '{glob}'. Pass --glob with a pattern "
                              "that matches your files (for example '*.txt').")
        corpus = Corpus(spec, f"{path} ({len(files)} files matching {glob})", files=files,
                        warnings=[f"Skipped the corpus subfolder {folder}: {cause}." for folder, cause in skipped])
        if corpus.length == len(files) - 1:  # nothing but the newlines that join the files
            raise CorpusError(f"Every file in {path} matching '{glob}' is empty. Pick a folder with some text in it.")
        return corpus
    if spec in REMOTE_CORPORA:
        local = fetch(REMOTE_CORPORA[spec], cache, progress=progress)
        corpus = Corpus(spec, str(local), files=[local])
        _ = corpus.length  # reads it now, so a damaged file is reported here
        return corpus
    raise CorpusError(
        f"--corpus '{spec}' is neither a file, a directory, nor a known name. Use {BUILTIN_STDLIB}, "
        f"{', '.join(REMOTE_CORPORA)}, or a path to a UTF-8 text file or a folder.")


def _fits(total: int, train_needed: int, val_fraction: float, test_fraction: float = 0.0) -> bool:
    n_val, n_test = int(total * val_fraction), int(total * test_fraction)
    return (total - n_val - n_test >= train_needed and (val_fraction <= 0 or n_val >= 2)
            and (test_fraction <= 0 or n_test >= 2))


def minimum_chars(batch: int, seq: int, val_fraction: float = DEFAULT_VAL_FRACTION, test_fraction: float = 0.0) -> int:
    """The smallest corpus that gives one full training batch and some validation (and test) text (exact)."""
    train_needed = batch * seq + 1
    low, high = train_needed, train_needed
    while not _fits(high, train_needed, val_fraction, test_fraction):  # the training part grows with the total,
        low, high = high, high * 2                      # so a binary search finds the exact minimum
    while low < high:
        middle = (low + high) // 2
        if _fits(middle, train_needed, val_fraction, test_fraction):
            high = middle
        else:
            low = middle + 1
    return high


def check_size(corpus: Corpus, batch: int, seq: int, val_fraction: float = DEFAULT_VAL_FRACTION,
               test_fraction: float = 0.0) -> None:
    if not corpus.length:
        raise CorpusError(f"Corpus {corpus.source} is empty. Pick a file with some text in it.")
    needed = minimum_chars(batch, seq, val_fraction, test_fraction)
    if corpus.length < needed:
        test = f" and {test_fraction:.0%} for testing" if test_fraction > 0 else ""
        raise CorpusError(
            f"Corpus {corpus.source} has {corpus.length:,} characters, but batch {batch} x sequence {seq} "
            f"with {val_fraction:.0%} held out for validation{test} needs at least {needed:,}. "
            "Use a larger text, or lower --batch or --seq.")


class Splits(NamedTuple):
    """Parts of the type split (a tensor of ids or a str); not Generic: Python 3.10 has no generic NamedTuple."""
    train: Any
    val: Any
    test: Any


def split_parts(ids: torch.Tensor | str, val_fraction: float = DEFAULT_VAL_FRACTION,
                test_fraction: float = 0.0) -> Splits:
    """A text (ids or a str) as train, validation and test parts, in that order, unshuffled: the test part
    is the last `test_fraction`, the validation part the `val_fraction` before it (both of the whole).
    With no test part the split is exactly split_ids' of old."""
    n_val, n_test = int(len(ids) * val_fraction), int(len(ids) * test_fraction)
    val_start, test_start = len(ids) - n_test - n_val, len(ids) - n_test
    return Splits(ids[:val_start], ids[val_start:test_start], ids[test_start:])


def split_ids(ids: torch.Tensor, val_fraction: float = DEFAULT_VAL_FRACTION,
              test_fraction: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Train on the first part, validate on the next `val_fraction` (no shuffling across the split);
    the last `test_fraction` is neither (split_parts)."""
    train, val, _ = split_parts(ids, val_fraction, test_fraction)
    return train, val


def validation_spans(ids: torch.Tensor, limit: int, streams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of at most `limit` predicted characters of `ids` (a held-out split longer than
    that): `streams` spans spread evenly from its start to its end, as (inputs, targets) rows, each
    target the true next character. The same every time, so validations stay comparable."""
    streams = max(1, min(streams, limit // 2))
    span = limit // streams
    room = len(ids) - (span + 1)
    starts = [i * room // (streams - 1) for i in range(streams)] if streams > 1 else [0]
    rows = torch.stack([ids[start:start + span + 1] for start in starts])
    return rows[:, :-1], rows[:, 1:]

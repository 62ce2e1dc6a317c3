"""Corpora: where text comes from, how it is decoded, and its character vocabulary."""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

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


@dataclass(frozen=True)
class Corpus:
    spec: str          # what the user asked for
    source: str        # where the text came from, for messages
    text: str
    warnings: tuple[str, ...] = ()  # what was skipped on the way, for the user (an unreadable subfolder)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class Vocab:
    """The sorted set of characters of a corpus; index i is character chars[i]."""

    def __init__(self, chars: Iterable[str]):
        self.chars: tuple[str, ...] = tuple(sorted(set(chars)))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
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
        text = _read_file(path)
        if not text:
            raise CorpusError(f"Corpus file {path} is empty. Pick a file with some text in it.")
        return Corpus(spec, str(path), text)
    if path.is_dir():
        skipped = _unreadable_folders(path)  # rglob passes over them without a word
        files = sorted((p for p in path.rglob(glob) if p.is_file()), key=lambda p: p.as_posix())
        if not files:
            raise CorpusError(f"Directory {path} has no files matching '{glob}'. Pass --glob with a pattern "
                              "that matches your files (for example '*.txt').")
        texts = [_read_file(p) for p in files]
        if not any(texts):
            raise CorpusError(f"Every file in {path} matching '{glob}' is empty. Pick a folder with some text in it.")
        return Corpus(spec, f"{path} ({len(files)} files matching {glob})", "\n".join(texts),
                      tuple(f"Skipped the corpus subfolder {folder}: {cause}." for folder, cause in skipped))
    if spec in REMOTE_CORPORA:
        local = fetch(REMOTE_CORPORA[spec], cache, progress=progress)
        return Corpus(spec, str(local), _read_file(local))
    raise CorpusError(
        f"--corpus '{spec}' is neither a file, a directory, nor a known name. Use {BUILTIN_STDLIB}, "
        f"{', '.join(REMOTE_CORPORA)}, or a path to a UTF-8 text file or a folder.")


def _fits(total: int, train_needed: int, val_fraction: float) -> bool:
    n_val = int(total * val_fraction)
    return total - n_val >= train_needed and (val_fraction <= 0 or n_val >= 2)


def minimum_chars(batch: int, seq: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> int:
    """The smallest corpus that gives one full training batch and some validation text (exact)."""
    train_needed = batch * seq + 1
    low, high = train_needed, train_needed
    while not _fits(high, train_needed, val_fraction):  # the training part grows with the total,
        low, high = high, high * 2                      # so a binary search finds the exact minimum
    while low < high:
        middle = (low + high) // 2
        if _fits(middle, train_needed, val_fraction):
            high = middle
        else:
            low = middle + 1
    return high


def check_size(corpus: Corpus, batch: int, seq: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> None:
    if not corpus.text:
        raise CorpusError(f"Corpus {corpus.source} is empty. Pick a file with some text in it.")
    needed = minimum_chars(batch, seq, val_fraction)
    if len(corpus.text) < needed:
        raise CorpusError(
            f"Corpus {corpus.source} has {len(corpus.text):,} characters, but batch {batch} x sequence {seq} "
            f"with {val_fraction:.0%} held out for validation needs at least {needed:,}. "
            "Use a larger text, or lower --batch or --seq.")


def split_ids(ids: torch.Tensor, val_fraction: float = DEFAULT_VAL_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """Train on the first part, validate on the last `val_fraction` (no shuffling across the split)."""
    n_val = int(len(ids) * val_fraction)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]

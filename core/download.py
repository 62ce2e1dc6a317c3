"""Fetch named corpora once into a user cache, verified by size and sha256."""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import atomic_writer
from .errors import DownloadError

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    sha256: str
    size: int
    filename: str


REMOTE_CORPORA: dict[str, RemoteFile] = {
    "tinyshakespeare": RemoteFile(
        name="tinyshakespeare",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1115394,
        filename="tinyshakespeare.txt",
    ),
    "anna": RemoteFile(
        name="anna",
        url="https://raw.githubusercontent.com/udacity/deep-learning-v2-pytorch/master/recurrent-neural-networks/char-rnn/data/anna.txt",
        sha256="568bb39fc78aca98e9db91c4329dcd1aa5ec4c3df3aca2064ce5d6f023ae16c9",
        size=2025486,
        filename="anna.txt",
    ),
}


def cache_dir() -> Path:
    """Where downloaded corpora live: $RNN_PLAYGROUND_CACHE, else the XDG cache."""
    override = os.environ.get("RNN_PLAYGROUND_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rnn-playground"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _placed_copy(target: Path, size: int) -> tuple[int, str | None] | None:
    """(size, sha256) of the file already at `target` (the sha256 only when the size is `size`: no
    need to read a file that cannot match), or None when there is none to read."""
    try:
        if not target.is_file():
            return None
        found = target.stat().st_size
        return found, _sha256_file(target) if found == size else None
    except OSError:
        return None


def _offline_hint(remote: RemoteFile, target: Path, placed: tuple[int, str | None] | None) -> str:
    """What a user without network can do instead: put a copy where the cache looks for it."""
    hint = (f"Offline, a copy placed at {target} (the folder is $RNN_PLAYGROUND_CACHE when set) is accepted "
            f"once it matches the expected {remote.size} bytes and sha256 {remote.sha256[:16]}…")
    if placed is not None:
        found = f"{placed[0]} bytes" + (f" with sha256 {placed[1][:16]}…" if placed[1] else "")
        hint += f"; the file there now has {found}, so it was not used"
    return hint + "."


def _download(remote: RemoteFile, out, timeout: float, progress: ProgressFn | None, offline: str) -> None:
    """Stream `remote` into the open file `out`; a DownloadError unless it arrives whole, with the
    expected size and sha256."""
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or remote.size)
            if progress:
                progress(0, total)
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                if done + len(block) > remote.size:
                    raise DownloadError(
                        f"Download of corpus '{remote.name}' from {remote.url} is larger than the expected "
                        f"{remote.size} bytes; the server sent something else. Nothing was saved.")
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"Download of corpus '{remote.name}' from {remote.url} failed: HTTP {exc.code} {exc.reason}. "
            f"Try again later or pass a local file path instead. Nothing was saved. {offline}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)):  # while connecting, reading headers or body
            raise DownloadError(
                f"Download of corpus '{remote.name}' from {remote.url} timed out after {timeout:g} s "
                f"({done} bytes received). Check the network and try again, or pass a local file path "
                f"instead. Nothing was saved. {offline}") from exc
        raise DownloadError(
            f"Cannot download corpus '{remote.name}' from {remote.url}: {reason}. Without network "
            f"access, pass a local text file path instead (for example --corpus path/to/{remote.filename}). "
            f"Nothing was saved. {offline}") from exc
    if done != remote.size or digest.hexdigest() != remote.sha256:
        raise DownloadError(
            f"Download of corpus '{remote.name}' from {remote.url} failed verification: got {done} bytes "
            f"with sha256 {digest.hexdigest()[:16]}…, expected {remote.size} bytes with sha256 "
            f"{remote.sha256[:16]}…. The file was discarded; try again later.")


def fetch(remote: RemoteFile, directory: Path | None = None, *, timeout: float = 30.0,
          progress: ProgressFn | None = None) -> Path:
    """Return the verified local copy of `remote`, downloading it if needed.

    The download goes to a temporary file beside the target and is renamed only
    after its size and sha256 match, so the cache never holds a partial file.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    target = directory / remote.filename
    placed = _placed_copy(target, remote.size)
    if placed == (remote.size, remote.sha256):
        return target
    offline = _offline_hint(remote, target, placed)
    try:
        # A unique temporary name beside the target, so two downloads at once never share a partial file.
        with atomic_writer(target, suffix=".part") as out:
            _download(remote, out, timeout, progress, offline)
    except OSError as exc:  # the cache folder or the temporary file in it, not the network
        raise DownloadError(
            f"Cannot write to the download cache {directory}: {exc.strerror or exc}. Set RNN_PLAYGROUND_CACHE "
            "to a writable folder, or pass a local file path instead.") from None
    return target

"""The downloader against a real HTTP server on 127.0.0.1 (a thread, an ephemeral port)."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from rnn_playground.core.download import REMOTE_CORPORA, RemoteFile, cache_dir, fetch
from rnn_playground.core.errors import CorpusError, DownloadError

from .conftest import named_corpus_copy, named_corpus_sources

REGISTRY = dict(REMOTE_CORPORA)  # the real entries, before any test registers a stand-in
PAYLOAD = bytes(range(256)) * 1200  # 300 KiB, several read blocks
TEXT = b"To be, or not to be\n" * 50


class _Handler(http.server.BaseHTTPRequestHandler):
    release: threading.Event  # set at teardown so stalled handlers end

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, body: bytes, length: int | None = None):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()

    def do_GET(self):
        if self.path == "/file":
            self._send(PAYLOAD)
            self.wfile.write(PAYLOAD)
        elif self.path == "/text":
            self._send(TEXT)
            self.wfile.write(TEXT)
        elif self.path == "/short":
            self._send(PAYLOAD[:1000])
            self.wfile.write(PAYLOAD[:1000])
        elif self.path == "/long":
            self._send(PAYLOAD + b"extra")
            self.wfile.write(PAYLOAD + b"extra")
        elif self.path == "/stall-headers":
            self.release.wait(10)  # never answers in time
        elif self.path == "/stall-body":
            self._send(PAYLOAD)
            self.wfile.write(PAYLOAD[:70_000])
            self.wfile.flush()
            self.release.wait(10)
        else:
            self.send_error(404, "Not Found")


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    class Server:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"

        @staticmethod
        def stop():
            release.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)

    yield Server
    Server.stop()


def remote_for(url: str, data: bytes = PAYLOAD, name: str = "tiny") -> RemoteFile:
    return RemoteFile(name=name, url=url, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                      filename=f"{name}.txt")


def assert_no_leftovers(directory: Path, allowed: tuple[str, ...] = ()):
    left = sorted(p.name for p in directory.iterdir()) if directory.exists() else []
    assert left == sorted(allowed), f"unexpected files in the cache: {left}"


def test_success_then_reused_offline(server, tmp_path):
    remote = remote_for(server.base + "/file")
    path = fetch(remote, tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny.txt"
    assert path.read_bytes() == PAYLOAD
    assert_no_leftovers(tmp_path / "cache", ("tiny.txt",))
    mtime = path.stat().st_mtime_ns
    server.stop()
    again = fetch(remote, tmp_path / "cache", timeout=0.5)  # the server is gone: only the cache can answer
    assert again == path and again.read_bytes() == PAYLOAD
    assert path.stat().st_mtime_ns == mtime


def test_default_directory_is_the_user_cache(server, tmp_path):
    path = fetch(remote_for(server.base + "/file"))
    assert path.parent == cache_dir() == tmp_path / "cache"


def test_progress_callback(server, tmp_path):
    calls: list[tuple[int, int]] = []
    fetch(remote_for(server.base + "/file"), tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, len(PAYLOAD))
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert len(calls) > 2
    done = [d for d, _ in calls]
    assert done == sorted(done)


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    remote = RemoteFile(name="tiny", url=server.base + "/file", sha256="0" * 64, size=len(PAYLOAD),
                        filename="tiny.txt")
    with pytest.raises(DownloadError) as info:
        fetch(remote, tmp_path / "cache")
    message = str(info.value)
    assert "tiny" in message and "verification" in message and "sha256" in message
    assert_no_leftovers(tmp_path / "cache")


def test_a_corrupt_cached_copy_is_replaced(server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny.txt").write_bytes(b"damaged")
    path = fetch(remote_for(server.base + "/file"), cache)
    assert path.read_bytes() == PAYLOAD
    assert_no_leftovers(cache, ("tiny.txt",))


def test_short_download_is_a_size_error(server, tmp_path):
    with pytest.raises(DownloadError, match=f"got 1000 bytes.*expected {len(PAYLOAD)} bytes"):
        fetch(remote_for(server.base + "/short"), tmp_path)
    assert_no_leftovers(tmp_path)


def test_long_download_is_a_size_error(server, tmp_path):
    with pytest.raises(DownloadError, match=f"larger than the expected {len(PAYLOAD)} bytes"):
        fetch(remote_for(server.base + "/long"), tmp_path)
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("route", ["/stall-headers", "/stall-body"])
def test_stalling_server_times_out(server, tmp_path, route):
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(remote_for(server.base + route), tmp_path, timeout=0.3)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "timed out after 0.3 s" in message and "tiny" in message and server.base in message
    assert "Nothing was saved" in message
    assert_no_leftovers(tmp_path)


def test_connection_refused(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(DownloadError) as info:
        fetch(remote_for(f"http://127.0.0.1:{port}/file"), tmp_path / "cache", timeout=2)
    message = str(info.value)
    assert "Cannot download corpus 'tiny'" in message and f"127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "local text file" in message  # what to do
    assert_no_leftovers(tmp_path / "cache")


def test_http_404(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        fetch(remote_for(server.base + "/gone"), tmp_path)
    assert "HTTP 404" in str(info.value) and "/gone" in str(info.value)
    assert_no_leftovers(tmp_path)


def test_download_error_is_a_corpus_error():
    assert issubclass(DownloadError, CorpusError)


def test_corpus_loader_downloads_named_corpora_once(server, monkeypatch):
    from rnn_playground.core.corpus import load_corpus
    monkeypatch.setitem(REMOTE_CORPORA, "loopback", remote_for(server.base + "/text", TEXT, "loopback"))
    calls = []
    corpus = load_corpus("loopback", progress=lambda done, total: calls.append(done))
    assert corpus.text == TEXT.decode() and calls[-1] == len(TEXT)
    server.stop()
    assert load_corpus("loopback").text == TEXT.decode()


@pytest.mark.parametrize("name, source", named_corpus_sources(REGISTRY))
def test_named_corpus_downloads_are_verified_against_the_registry(name, source, monkeypatch, tmp_path):
    """Each registry entry is well formed, and a download of the corpus is kept only when it has the
    entry's size and sha256: with the real file where ../shared/data has it, and everywhere with a
    generated stand-in under the same file name and its own checksum, served from a file:// URL."""
    real = REGISTRY[name]
    assert real.url.startswith("https://") and re.fullmatch(r"[0-9a-f]{64}", real.sha256) and real.size > 0
    assert real.filename == Path(real.filename).name
    remote, data = named_corpus_copy(name, source, monkeypatch, tmp_path)
    assert remote.size == len(data) and remote.sha256 == hashlib.sha256(data).hexdigest()
    cache = tmp_path / "cache"
    path = fetch(remote, cache)
    assert path == cache / real.filename and path.read_bytes() == data
    path.unlink()
    (tmp_path / "origin" / real.filename).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit differs
    with pytest.raises(DownloadError, match="failed verification"):
        fetch(remote, cache)
    assert_no_leftovers(cache)


def test_registry_has_the_course_corpora():
    assert {"tinyshakespeare", "anna"} <= set(REMOTE_CORPORA)


def test_unwritable_cache_is_a_clear_error(server, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DownloadError, match="Cannot write to the download cache.*RNN_PLAYGROUND_CACHE"):
        fetch(remote_for(server.base + "/file"), blocker / "cache")


def test_a_downloaded_corpus_gets_the_umasks_permissions(server, tmp_path):
    previous = os.umask(0o022)
    try:
        path = fetch(remote_for(server.base + "/file"), tmp_path / "cache")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644  # as every other file; mkstemp alone gives 0600

"""Checkpoints as single .safetensors files, written atomically, read without unpickling.

Tensors hold weights, optimizer state, RNG state and the carried hidden state;
JSON metadata holds everything else. A digest over both (stored in the metadata)
makes any flipped bit a clear error instead of silently wrong weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError

FORMAT = "rnn-playground/1"
_MAX_HEADER = 100 * 1024 * 1024
WEIGHT_PREFIXES = ("model.", "raw.")  # the model's weights (and, with averaging, the raw ones)
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors whose names start with `prefix.`, with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


    def check_weights(self, described: int, prefix: str = "model") -> None:
        """Checked before a model is built, so that sizes in the metadata never allocate much more than the
        file really holds: a described model far larger than the file's weights is refused here; one near
        their size is built, and load_into names the tensors that differ."""
        held = sum(t.numel() for t in self.group(prefix).values())
        if described > 2 * held + 2**20:
            raise CheckpointError(f"{self.path}: its metadata describes a model of {described:,} weights but the "
                                  f"file holds {held:,}. The file was changed or written by other code; use a "
                                  "checkpoint rnn-playground saved.")

    def load_into(self, model: torch.nn.Module, prefix: str = "model") -> None:
        """Load the `prefix` group into `model`; a mismatch is a CheckpointError naming what differs."""
        try:
            model.load_state_dict(self.group(prefix))
        except RuntimeError as exc:
            # torch's message: a headline, then one line per missing/unexpected key or size mismatch.
            details = [line.strip().rstrip(".") for line in str(exc).splitlines()[1:] if line.strip()]
            shown = "; ".join(details[:3]) + (f"; and {len(details) - 3} more" if len(details) > 3 else "")
            raise CheckpointError(f"{self.path}: the weights do not fit the model its metadata describes "
                                  f"({shown or str(exc).strip()}). The file was changed or written by other "
                                  "code; use a checkpoint rnn-playground saved.") from None


def _digest(tensors: dict[str, torch.Tensor], meta_json: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(meta_json):
        digest.update(f"{key}\0{meta_json[key]}\0".encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_file_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file next to `path` (for an atomic replace), with the permissions the user's umask
    gives every other file: mkstemp alone makes it 0600. Returns (fd, name); the caller removes it on failure."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    except OSError:
        os.close(fd)
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return fd, tmp_name


@contextmanager
def atomic_writer(path: Path | str, mode: str = "wb", *, suffix: str = ".tmp",
                  encoding: str | None = None) -> Iterator[IO]:
    """`with atomic_writer(path) as f:` writes `path` whole or not at all. The block writes a temporary
    file beside it (see temp_file_beside); when the block succeeds the file is flushed, fsynced and
    renamed over `path`, so readers see the old file or the new, never half of one. When anything
    fails, in the block or after it, the temporary is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = temp_file_beside(path, suffix)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def save_checkpoint(path: Path | str, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                    *, finite_prefixes: tuple[str, ...] = ("model.",)) -> Path:
    """Write tensors and JSON-serialisable metadata. Refuses non-finite weights."""
    path = Path(path)
    reserved = {"format", "digest"}.intersection(meta)
    if reserved:
        raise CheckpointError(f"Cannot save {path}: metadata keys {sorted(reserved)} are reserved for the "
                              "checkpoint format.")
    for name, tensor in tensors.items():
        if name.startswith(finite_prefixes) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"Refusing to save {path}: weight '{name}' holds NaN or infinite values.")
    cpu = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    meta_json = {key: json.dumps(value, sort_keys=True) for key, value in meta.items()}
    meta_json["format"] = json.dumps(FORMAT)
    meta_json["digest"] = _digest(cpu, meta_json)
    data = st_save(cpu, metadata=meta_json)
    try:
        with atomic_writer(path) as handle:
            handle.write(data)
    except OSError as exc:
        raise CheckpointError(f"Cannot write checkpoint {path}: {exc.strerror or exc}. Any previous checkpoint "
                              "there is unchanged; free some space or pick another --runs-dir.") from None
    return path


def read_metadata(path: Path | str) -> dict[str, Any]:
    """Only the JSON metadata (cheap: reads the header, not the tensors). Not integrity-checked."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            header = _parse_header(path, head, handle.read(_header_length(path, head)))
    except OSError as exc:
        raise CheckpointError(f"Cannot read checkpoint {path}: {exc.strerror or exc}.") from None
    raw = header.get("__metadata__") or {}
    return _decode_meta(path, {k: v for k, v in raw.items() if k != "digest"})


def _header_length(path: Path, head: bytes) -> int:
    # A plausible length first: a safetensors header of 0x80 + 256n bytes starts with the byte a
    # pickle does, and the low bytes of a length can spell "PK" (a zip). Read as a length, what
    # those files really start with is far beyond any header.
    length = struct.unpack("<Q", head)[0] if len(head) == 8 else None
    if length is not None and 2 <= length <= _MAX_HEADER:
        return length
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path} is a PyTorch pickle (.pt/.pth) file, not a safetensors checkpoint. rnn-playground never "
            "unpickles files, because loading a pickle can run arbitrary code. Use a checkpoint written by "
            "rnn-playground (.safetensors).")
    if length is None:
        raise CheckpointError(f"{path} is truncated or not a checkpoint: it is only {len(head)} bytes long.")
    raise CheckpointError(f"{path} is not a safetensors checkpoint (its header length {length} is impossible).")


def _parse_header(path: Path, head: bytes, body: bytes) -> dict:
    length = _header_length(path, head)
    if len(body) < length:
        raise CheckpointError(f"{path} is truncated: its header needs {length} bytes but the file ends early.")
    try:
        header = json.loads(body[:length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is damaged: its header is not valid JSON.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is damaged: its header is not a JSON object.")
    return header


def _decode_meta(path: Path, raw: dict) -> dict[str, Any]:
    if raw.get("format") != json.dumps(FORMAT):
        raise CheckpointError(f"{path} is a safetensors file but not an rnn-playground checkpoint "
                              f"(format {raw.get('format')!r}, expected {FORMAT!r}).")
    try:
        return {key: json.loads(value) for key, value in raw.items() if key != "format"}
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is damaged: its metadata is not valid JSON.") from None


def load_checkpoint(path: Path | str) -> Checkpoint:
    path = Path(path)
    return checkpoint_from_bytes(path, read_checkpoint_file(path))


def read_checkpoint_file(path: Path) -> bytes:
    """The bytes of a checkpoint file, or a CheckpointError saying why they cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}. Pass a run folder or a .safetensors file.") from None
    except OSError as exc:
        raise CheckpointError(f"Cannot read checkpoint {path}: {exc.strerror or exc}.") from None


def checkpoint_from_bytes(path: Path, data: bytes) -> Checkpoint:
    """A checkpoint from the bytes of its file (read elsewhere: another rank's), checked as load_checkpoint checks."""
    header = _parse_header(path, data[:8], data[8:])
    raw = header.get("__metadata__")
    if not isinstance(raw, dict) or "digest" not in raw:
        raise CheckpointError(f"{path} is a safetensors file but not an rnn-playground checkpoint (no metadata).")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types for every malformed layout
        raise CheckpointError(f"{path} is damaged or truncated: {exc}.") from None
    stored = raw.get("digest")
    meta_json = {k: v for k, v in raw.items() if k != "digest"}
    if _digest(tensors, meta_json) != stored:
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum written with it "
                              "(a flipped bit or a partial copy). Use another checkpoint, such as best or last.")
    for name, tensor in tensors.items():  # what save_checkpoint refuses to write is refused on reading too
        if name.startswith(WEIGHT_PREFIXES) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: weight '{name}' holds NaN or infinite values, so the model would "
                                  "predict nothing but NaN. Use another checkpoint, such as best or last.")
    return Checkpoint(path, tensors, _decode_meta(path, meta_json))

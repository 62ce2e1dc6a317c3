"""Checkpoints on real files: exact round trips, atomic saves, and damaged or foreign files refused."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rnn_playground.core import checkpoint as ckpt
from rnn_playground.core.checkpoint import atomic_writer, load_checkpoint, read_metadata, save_checkpoint
from rnn_playground.core.errors import CheckpointError

META = {
    "kind": "char",
    "vocab": ["\n", " ", "a", "é", "日", "🙂", "\"", "\\"],
    "progress": {"step": 40, "epoch": 1, "window": 3, "tokens": 5120},
    "best_val_loss": 1.2345678901234567,
    "config": {"hidden": 32, "lr": 0.003, "steps": None, "amp": False, "name": "brisk-otter"},
    "saved_at": 1700000000.25,
}


def sample_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "model.embed.weight": torch.randn(7, 5, generator=g),
        "model.rnn.weight_hh_l0": torch.randn(12, 3, generator=g).to(torch.bfloat16),
        "model.half": torch.randn(4, generator=g).to(torch.float16),
        "model.double": torch.randn(3, 2, generator=g, dtype=torch.float64),
        "model.transposed": torch.randn(4, 6, generator=g).t(),  # not contiguous
        "optim.0.step": torch.tensor(40.0),                        # 0-dim
        "optim.0.exp_avg": torch.full((3,), float("nan")),         # only model.* must be finite
        "rng.torch": torch.randint(0, 256, (64,), dtype=torch.uint8, generator=g),
        "ints64": torch.tensor([-(2**62), 0, 2**62 + 7], dtype=torch.int64),
        "ints32": torch.tensor([-5, 2**31 - 1], dtype=torch.int32),
        "ints16": torch.tensor([-300, 300], dtype=torch.int16),
        "ints8": torch.tensor([-128, 127], dtype=torch.int8),
        "flags": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "negzero": torch.tensor([-0.0, 0.0]),
    }


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    a, b = a.contiguous().view(-1), b.contiguous().view(-1)
    if a.is_floating_point():
        return torch.equal(a.view(torch.uint8), b.view(torch.uint8))  # NaN and -0.0 included
    return torch.equal(a, b)


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "run" / "last.safetensors", sample_tensors(), META)


# --------------------------------------------------------------------------- round trip

def test_round_trip_is_bit_for_bit(saved):
    original = sample_tensors()
    loaded = load_checkpoint(saved)
    assert loaded.path == saved
    assert set(loaded.tensors) == set(original)
    for name, tensor in original.items():
        assert same_bits(loaded.tensors[name], tensor), name
        assert loaded.tensors[name].dtype == tensor.dtype
    assert loaded.tensors["model.rnn.weight_hh_l0"].dtype == torch.bfloat16
    assert loaded.tensors["ints64"].dtype == torch.int64
    assert torch.equal(loaded.tensors["model.rnn.weight_hh_l0"], original["model.rnn.weight_hh_l0"])
    assert torch.equal(loaded.tensors["ints64"], original["ints64"])
    assert loaded.meta == META


def test_group(saved):
    loaded = load_checkpoint(saved)
    assert set(loaded.group("model")) == {"embed.weight", "rnn.weight_hh_l0", "half", "double", "transposed"}
    assert set(loaded.group("optim")) == {"0.step", "0.exp_avg"}


def test_read_metadata(saved):
    assert read_metadata(saved) == META


def test_a_real_model_round_trips(tmp_path):
    from rnn_playground.core.model import CharRNN, ModelConfig
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=9, hidden=16, layers=2, embed=4))
    path = save_checkpoint(tmp_path / "m.safetensors", {f"model.{k}": v for k, v in model.state_dict().items()},
                           {"model": model.config.to_dict()})
    loaded = load_checkpoint(path)
    clone = CharRNN(ModelConfig.from_dict(loaded.meta["model"]))
    clone.load_state_dict(loaded.group("model"))
    for (name, a), (_, b) in zip(model.state_dict().items(), clone.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_reserved_metadata_keys_are_refused(tmp_path):
    for key in ("format", "digest"):
        with pytest.raises(CheckpointError, match=key):
            save_checkpoint(tmp_path / "x.safetensors", {"a": torch.zeros(1)}, {key: 1})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- atomic saves

def _folder(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_failure_mid_write_keeps_the_previous_checkpoint(saved, monkeypatch):
    before = saved.read_bytes()

    def broken_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    changed = {**sample_tensors(), "model.embed.weight": torch.ones(7, 5)}
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(saved, changed, {**META, "progress": {"step": 80}})
    assert str(saved) in str(info.value) and "No space left" in str(info.value)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert load_checkpoint(saved).meta == META
    assert _folder(saved) == ["last.safetensors"]  # no temporary files left behind


def test_failure_at_rename_keeps_the_previous_checkpoint(saved, monkeypatch):
    before = saved.read_bytes()

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CheckpointError):
        save_checkpoint(saved, sample_tensors(), {**META, "best_val_loss": 0.5})
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert _folder(saved) == ["last.safetensors"]


def test_interrupt_mid_write_keeps_the_previous_checkpoint(saved, monkeypatch):
    before = saved.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(saved, sample_tensors(), META)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert _folder(saved) == ["last.safetensors"]


def test_a_first_save_that_fails_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path / "new.safetensors", sample_tensors(), META)
    assert list(tmp_path.iterdir()) == []


def test_saved_file_has_ordinary_permissions(saved):
    umask = os.umask(0)
    os.umask(umask)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_writer_replaces_the_file_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "notes.txt"
    with atomic_writer(target, "w", encoding="utf-8") as out:
        out.write("first")
    with atomic_writer(target, "w", encoding="utf-8") as out:
        out.write("héllo")
        assert target.read_text(encoding="utf-8") == "first"  # the new text is not visible while it is written
    assert target.read_text(encoding="utf-8") == "héllo"
    assert _folder(target) == ["notes.txt"]


def test_atomic_writer_keeps_the_old_file_and_no_temporary_when_the_block_fails(tmp_path):
    target = tmp_path / "status.json"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="half way"):
        with atomic_writer(target) as out:
            out.write(b"new, but only half")
            raise ValueError("half way")
    assert target.read_bytes() == b"old"
    assert _folder(target) == ["status.json"]


def test_atomic_writer_files_get_the_umasks_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    with atomic_writer(tmp_path / "a.bin") as out:
        out.write(b"x")
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's own 0600


def test_overwrite_replaces(saved):
    save_checkpoint(saved, {"model.w": torch.ones(2)}, {"progress": {"step": 2}})
    loaded = load_checkpoint(saved)
    assert set(loaded.tensors) == {"model.w"} and loaded.meta == {"progress": {"step": 2}}
    assert _folder(saved) == ["last.safetensors"]


# --------------------------------------------------------------------------- non-finite weights

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_non_finite_weights_are_never_saved(saved, bad, dtype):
    before = saved.read_bytes()
    tensors = sample_tensors()
    weight = torch.zeros(3, 3, dtype=dtype)
    weight[1, 2] = bad
    tensors["model.rnn.weight_ih_l1"] = weight
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(saved, tensors, META)
    assert "model.rnn.weight_ih_l1" in str(info.value) and str(saved) in str(info.value)
    assert saved.read_bytes() == before
    assert _folder(saved) == ["last.safetensors"]


# --------------------------------------------------------------------------- damaged files

def _header_length(path: Path) -> int:
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_truncated_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    header_end = 8 + _header_length(saved)
    cuts = sorted({0, 1, 7, 8, 9, 20, header_end // 2, header_end - 1, header_end, header_end + 1,
                   (header_end + len(data)) // 2, len(data) - 4, len(data) - 1})
    for cut in cuts:
        broken = tmp_path / f"cut-{cut}.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(broken)
        assert str(broken) in str(info.value), cut


def test_trailing_bytes_are_refused(saved, tmp_path):
    broken = tmp_path / "long.safetensors"
    broken.write_bytes(saved.read_bytes() + b"\0" * 16)
    with pytest.raises(CheckpointError, match="long.safetensors"):
        load_checkpoint(broken)


def test_bit_flips_anywhere_are_refused(tmp_path):
    tensors = {**sample_tensors(), "model.big": torch.randn(32, 32, generator=torch.Generator().manual_seed(1))}
    saved = save_checkpoint(tmp_path / "big.safetensors", tensors, META)
    data = saved.read_bytes()
    header_end = 8 + _header_length(saved)
    assert len(data) - header_end > 4000, "the sample should have a real tensor section"
    positions = sorted({round(i * (len(data) - 1) / 199) for i in range(200)} | set(range(16)))
    assert any(p < 8 for p in positions) and any(8 <= p < header_end for p in positions)
    assert sum(p >= header_end for p in positions) > 50
    broken = tmp_path / "flipped.safetensors"
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << (position % 8)
        broken.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(broken)
        assert str(broken) in str(info.value), position


def test_every_header_byte_is_covered(saved, tmp_path):
    """Flip one bit in each byte of the length field and the JSON header (metadata, names, dtypes, offsets)."""
    data = saved.read_bytes()
    broken = tmp_path / "header-flip.safetensors"
    for position in range(8 + _header_length(saved)):
        flipped = bytearray(data)
        flipped[position] ^= 1 << (position * 5 % 8)
        broken.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError):
            load_checkpoint(broken)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at .*nothing.safetensors"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    with pytest.raises(CheckpointError, match="nothing.safetensors"):
        read_metadata(tmp_path / "nothing.safetensors")


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        load_checkpoint(tmp_path)


# --------------------------------------------------------------------------- foreign files

class Payload:
    """Unpickling this creates `marker`: proof that code in the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    files = {}
    files["torch zip"] = tmp_path / "model.pt"
    torch.save({"weights": Payload(marker), "w": torch.ones(2)}, files["torch zip"])
    files["torch legacy"] = tmp_path / "legacy.pth"
    torch.save({"weights": Payload(marker)}, files["torch legacy"], _use_new_zipfile_serialization=False)
    for protocol in (2, 4, 5):
        files[f"pickle {protocol}"] = tmp_path / f"raw-{protocol}.safetensors"  # a misleading name, too
        files[f"pickle {protocol}"].write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    return files


@pytest.mark.parametrize("first_bytes", [b"\x80", b"PK"])
def test_a_checkpoint_whose_header_length_looks_like_a_pickle_loads(tmp_path, first_bytes):
    # The header length is the file's first 8 bytes (little-endian): 0x80 + 256n starts as a
    # pickle does, 0x4b50 + 65536n as a zip. Such a checkpoint is still a checkpoint.
    def save(padding: int) -> Path:
        return save_checkpoint(tmp_path / "c.safetensors", sample_tensors(), {**META, "note": "x" * padding})

    base = struct.unpack("<Q", save(0).read_bytes()[:8])[0]
    wanted, modulus = (0x80, 256) if first_bytes == b"\x80" else (0x4B50, 65536)
    aim = (wanted - base) % modulus  # each padding character adds one byte (before 8-byte alignment)
    for padding in range(max(aim - 8, 0), aim + 9):
        path = save(padding)
        if path.read_bytes()[:len(first_bytes)] == first_bytes:
            break
    else:
        pytest.fail("no padding gave the wanted first bytes")
    assert load_checkpoint(path).meta["note"] == "x" * padding
    assert read_metadata(path)["note"] == "x" * padding


def test_pickles_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "PWNED"
    files = _pickle_files(tmp_path, marker)
    for kind, path in files.items():
        for reader in (load_checkpoint, read_metadata):
            with pytest.raises(CheckpointError) as info:
                reader(path)
            message = str(info.value)
            assert str(path) in message and "pickle" in message, (kind, message)
            assert not marker.exists(), f"{kind}: reading it ran code"
    # the control: these files really would run code if they were unpickled
    with zipfile.ZipFile(files["torch zip"]) as archive:
        inner = next(name for name in archive.namelist() if name.endswith("data.pkl"))
        data = archive.read(inner)

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            return None  # tensor storages are irrelevant here

    try:
        Loader(io.BytesIO(data)).load()
    except Exception:
        pass  # the tensor cannot be rebuilt without its storage, but the payload ran before that
    assert marker.exists()
    marker.unlink()
    pickle.loads(files["pickle 4"].read_bytes())
    assert marker.exists()


def test_foreign_safetensors_without_our_metadata(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.ones(2, 2)}, str(plain))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(plain)
    assert str(plain) in str(info.value) and "not an rnn-playground checkpoint" in str(info.value)
    with pytest.raises(CheckpointError, match="not an rnn-playground checkpoint"):
        read_metadata(plain)

    tagged = tmp_path / "tagged.safetensors"
    save_file({"weight": torch.ones(2, 2)}, str(tagged), metadata={"format": "pt", "author": "someone"})
    with pytest.raises(CheckpointError, match="not an rnn-playground checkpoint"):
        load_checkpoint(tagged)
    with pytest.raises(CheckpointError, match="not an rnn-playground checkpoint"):
        read_metadata(tagged)


def test_a_newer_format_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "FORMAT", "rnn-playground/99")
    path = save_checkpoint(tmp_path / "future.safetensors", {"model.w": torch.ones(1)}, {})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="rnn-playground/99"):
        load_checkpoint(path)


def test_text_and_json_files_are_refused(tmp_path):
    for name, data in (("notes.txt", b"hello, this is not a checkpoint at all\n"),
                       ("config.json", json.dumps({"a": 1}).encode()),
                       ("tiny", b"\x02\x00\x00\x00\x00\x00\x00\x00{}"),
                       ("zeros", bytes(64))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(path)


def test_weights_that_do_not_fit_the_described_model_are_named(tiny_run):
    """A checkpoint whose metadata describes one model and whose weights are another's (edited, or
    written by other code): loading, resuming and tracing say which tensors differ."""
    from rnn_playground.core.errors import CheckpointError
    from rnn_playground.core.gates import GateTracer
    from rnn_playground.core.loading import load_model
    from rnn_playground.core.trainer import Trainer
    original = load_checkpoint(tiny_run / "last.safetensors")
    tensors = dict(original.tensors)
    for group in ("model", "raw"):
        tensors[f"{group}.rnn.weight_hh_l0"] = tensors[f"{group}.rnn.weight_hh_l0"][:, :-1].clone()
        tensors[f"{group}.extra"] = torch.zeros(2)
        del tensors[f"{group}.head.bias"]
    edited = tiny_run.parent / "edited.safetensors"
    meta = {k: v for k, v in original.meta.items() if k not in ("format", "digest")}
    save_checkpoint(edited, tensors, meta)
    for load in (lambda: load_model(edited, "cpu"), lambda: Trainer.resume(edited, steps=1),
                 lambda: GateTracer.from_checkpoint(edited)):
        with pytest.raises(CheckpointError) as refused:
            load()
        message = str(refused.value)
        assert message.startswith(f"{edited}: the weights do not fit the model its metadata describes")
        assert "head.bias" in message and "extra" in message and "rnn.weight_hh_l0" in message
        assert "use a checkpoint rnn-playground saved" in message

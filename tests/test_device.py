"""Device parsing and listing on this machine (CPU; GPU cases are checked against what is really here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnn_playground.core.device import describe_device, list_devices, resolve_device, supports_bf16
from rnn_playground.core.errors import DeviceError

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def test_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA or HAS_MPS, reason="auto picks an accelerator on this machine")
def test_auto_is_cpu_here():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU here")
def test_auto_picks_the_gpu_with_most_free_memory():
    gpus = [d for d in list_devices() if d.kind == "cuda"]
    assert resolve_device("auto").type == "cuda"
    assert str(resolve_device("auto")) in {d.spec for d in gpus}
    assert resolve_device("cuda") == torch.device("cuda:0")


def _assert_lists_available(message: str):
    assert "Available" in message or "Use one of" in message
    for info in list_devices():
        assert info.spec in message
    assert "auto" in message and "cpu" in message


@pytest.mark.parametrize("spec", ["tpu", "cuda:banana", "gpu", "cuda:-1", "cuda:0:1", "cpu:0x", "metal"])
def test_unknown_devices(spec):
    with pytest.raises(DeviceError) as info:
        resolve_device(spec)
    message = str(info.value)
    assert f"'{spec}'" in message and "Unknown device" in message
    _assert_lists_available(message)


def test_absent_cuda_device():
    index = torch.cuda.device_count() if HAS_CUDA else 7
    with pytest.raises(DeviceError) as info:
        resolve_device(f"cuda:{index}")
    message = str(info.value)
    assert f"'cuda:{index}'" in message and "not available" in message
    _assert_lists_available(message)


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is present here")
def test_plain_cuda_when_absent():
    with pytest.raises(DeviceError, match="'cuda:0' is not available.*cpu"):
        resolve_device("cuda")


@pytest.mark.skipif(HAS_MPS, reason="MPS is present here")
def test_mps_when_absent():
    with pytest.raises(DeviceError) as info:
        resolve_device("mps")
    assert "'mps' is not available" in str(info.value)
    _assert_lists_available(str(info.value))


def test_cuda_index_is_normalised():
    if HAS_CUDA:
        assert resolve_device("cuda:00") == torch.device("cuda:0")
    else:
        with pytest.raises(DeviceError, match="'cuda:7' is not available"):
            resolve_device("CUDA:007")


def test_list_devices_has_cpu_first_with_memory():
    devices = list_devices()
    cpu = devices[0]
    assert cpu.spec == "cpu" and cpu.kind == "cpu"
    assert cpu.name and "threads" in cpu.name
    assert isinstance(cpu.total_memory, int) and cpu.total_memory > 100 * 1024**2
    assert isinstance(cpu.free_memory, int) and 0 < cpu.free_memory <= cpu.total_memory
    specs = [d.spec for d in devices]
    assert len(specs) == len(set(specs))
    assert [d.spec for d in devices if d.kind == "cuda"] == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    for gpu in devices[1:]:
        if gpu.kind == "cuda":
            assert gpu.total_memory > 0 and 0 <= gpu.free_memory <= gpu.total_memory


def test_describe_device():
    assert describe_device(torch.device("cpu")).startswith("cpu (")


def test_bf16_on_this_cpu_follows_the_bf16_matrix_units_the_kernel_lists():
    """Read /proc/cpuinfo here independently (every CPU's flags line): bf16 autocast is chosen exactly
    when the CPU has amx_bf16 or avx512_bf16, and then torch agrees that it computes in bf16 here."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo on this system")
    flags = {flag for line in cpuinfo.read_text().splitlines() if line.startswith("flags")
             for flag in line.partition(":")[2].split()}
    has_units = bool(flags & {"amx_bf16", "avx512_bf16"})
    assert supports_bf16(torch.device("cpu")) is has_units
    if has_units:
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            product = torch.ones(8, 8) @ torch.ones(8, 8)
        assert product.dtype == torch.bfloat16 and torch.equal(product.float(), torch.full((8, 8), 8.0))


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 fma", False),
    ("fpu avx2 avx512f avx512bw avx512_vnni", False),       # AVX-512 without its bf16 instructions
    ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("fpu avx2 amx_tile amx_bf16 amx_int8", True),
    ("fpu avx512_bf16x", False),                             # a whole flag, not a part of one
])
def test_bf16_on_a_cpu_is_chosen_by_its_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some cpu\nflags\t\t: {flags}\n\n")
    assert supports_bf16(torch.device("cpu"), cpuinfo=str(cpuinfo)) is expected


def test_bf16_without_a_cpu_feature_list_or_on_other_devices_is_off(tmp_path):
    assert supports_bf16(torch.device("cpu"), cpuinfo=str(tmp_path / "absent")) is False
    (tmp_path / "no-flags").write_text("processor\t: 0\n")
    assert supports_bf16(torch.device("cpu"), cpuinfo=str(tmp_path / "no-flags")) is False
    assert supports_bf16(torch.device("meta")) is False


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU here")
def test_bf16_on_a_gpu_is_what_torch_reports_and_runs():
    device = torch.device("cuda:0")
    assert supports_bf16(device) is torch.cuda.is_bf16_supported()
    if supports_bf16(device):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            product = torch.ones(8, 8, device=device) @ torch.ones(8, 8, device=device)
        assert product.dtype == torch.bfloat16 and torch.equal(product.float().cpu(), torch.full((8, 8), 8.0))


@pytest.mark.parametrize("spec", ["cpu:0", "CPU:0"])
def test_torchs_spelling_of_the_cpu_is_the_cpu(spec):
    assert resolve_device(spec) == torch.device("cpu")


def test_another_cpu_index_is_refused():
    with pytest.raises(DeviceError, match="Unknown device 'cpu:1'"):
        resolve_device("cpu:1")

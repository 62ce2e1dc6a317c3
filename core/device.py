"""Devices: what this machine offers, and turning a --device string into a torch.device."""

from __future__ import annotations

import os
import platform
import re
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .errors import ConfigError, DeviceError


@dataclass(frozen=True)
class DeviceInfo:
    spec: str                 # what --device accepts: "cpu", "cuda:0", "mps"
    name: str
    total_memory: int | None  # bytes
    free_memory: int | None   # bytes

    @property
    def kind(self) -> str:
        return self.spec.split(":")[0]


def _cpu_info() -> DeviceInfo:
    name = platform.processor() or platform.machine()
    total = free = None
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        total = int(fields["MemTotal"].split()[0]) * 1024
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    return DeviceInfo("cpu", f"{name} ({os.cpu_count()} threads)", total, free)


def list_devices() -> list[DeviceInfo]:
    """CPU first, then every CUDA GPU by index, then MPS where present."""
    devices = [_cpu_info()]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append(DeviceInfo(f"cuda:{index}", torch.cuda.get_device_name(index), total, free))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)", None, None))
    return devices


def _available(devices: list[DeviceInfo]) -> str:
    return ", ".join(["auto"] + [d.spec for d in devices])


def pick_auto_device(devices: list[DeviceInfo]) -> str:
    """What `auto` means among `devices`: the CUDA GPU with the most free memory, else MPS,
    else the CPU. Takes a list so a picker can say what auto means without probing again."""
    gpus = [d for d in devices if d.kind == "cuda"]
    if gpus:
        return max(gpus, key=lambda d: d.free_memory or 0).spec
    if any(d.kind == "mps" for d in devices):
        return "mps"
    return "cpu"


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` picks the CUDA GPU with the most free memory, else MPS, else CPU."""
    spec = (spec or "auto").strip().lower()
    devices = list_devices()
    if spec == "auto":
        return torch.device(pick_auto_device(devices))
    if spec == "cuda":
        spec = "cuda:0"
    if spec in ("cpu:0", "mps:0"):  # torch's own spellings of the one CPU and the one MPS device
        spec = spec[:-2]
    if not re.fullmatch(r"cpu|mps|cuda:\d+", spec):
        raise DeviceError(f"Unknown device '{spec}'. Use one of: {_available(devices)}.")
    if spec.startswith("cuda:"):
        spec = f"cuda:{int(spec[5:])}"  # cuda:01 is cuda:1
    if spec not in {d.spec for d in devices}:
        raise DeviceError(f"Device '{spec}' is not available on this machine. Available: {_available(devices)}.")
    return torch.device(spec)


def device_for_flag(spec: str, flag: str = "--device") -> torch.device:
    """resolve_device, with a refusal that names the flag it came from."""
    try:
        return resolve_device(spec)
    except DeviceError as exc:
        raise DeviceError(f"{flag} must name a device of this machine: {exc}") from None


def free_memory(device: torch.device) -> int | None:
    """Bytes free for a new model on `device` (the CPU: MemAvailable); None where unknown (MPS)."""
    if device.type == "cpu":
        return _cpu_info().free_memory
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device.index or 0)[0]
    return None


def describe_device(device: torch.device) -> str:
    for info in list_devices():
        if info.spec == str(device) or (device.type == "cuda" and info.spec == f"cuda:{device.index or 0}"):
            return f"{info.spec} ({info.name})"
    return str(device)


BF16_MATRIX_FLAGS = ("amx_bf16", "avx512_bf16")  # x86 features that make bf16 matrix products fast


def supports_bf16(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether bf16 autocast is a win here: a GPU that has it, or a CPU with bf16 matrix units (as
    `cpuinfo`, the kernel's list of CPU features, names them)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            with open(cpuinfo) as handle:
                flags = next((line for line in handle if line.startswith("flags")), "")
        except OSError:
            return False
        return any(flag in flags.split() for flag in BF16_MATRIX_FLAGS)
    return False


# -- CPU threads
#
# torch's default (one OpenMP thread per core) collapses when other processes share the cores:
# its workers spin while they wait for each other, so one busy neighbour can make a small model
# train several times slower. Figures behind these rules: benchmarks/README.md ("Threads").

# A second thread pays only when each time step's matrix product is this large:
# batch x hidden x hidden (measured by benchmarks/bench_threads.py).
TWO_THREADS_FROM_WORK = 128 * 256 * 256


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(value, flag: str = "--threads", *, zero: str | None = None,
                  advice: str = " Leave it out for the automatic choice.", error=ConfigError) -> None:
    """Refuse a thread count that is not a whole number from 1 to the usable CPUs: more threads
    than CPUs only slow a run down (and torch crashes on absurd counts). `zero`: what 0 means,
    where 0 is allowed; `error`: the PlaygroundError class to raise."""
    cpus = usable_cpus()
    if isinstance(value, bool) or not isinstance(value, int) or not (0 if zero else 1) <= value <= cpus:
        allowed = f"0 ({zero}) or 1 to {cpus}" if zero else f"a whole number from 1 to {cpus}"
        raise error(f"{flag} must be {allowed} (the CPUs this machine lets the run use), got {value}.{advice}")


def step_work(batch: int, hidden: int) -> int:
    """The size of one time step's recurrent matrix product, which decides whether threads pay."""
    return max(1, batch) * max(1, hidden) ** 2


def default_threads(work: int, cpus: int, load: float, device_type: str = "cpu", reserve: int = 0,
                    share: int = 1) -> int:
    """The automatic thread count: 1, unless the run is on the CPU, each step's work is large
    enough for a second thread to pay, and cores are free (CPUs minus the load average, minus the
    `reserve` kept for other work of this process, such as the app's UI); then one thread per
    free core, those cores `share`d by that many processes of one run on this machine (ranks). A GPU
    run's CPU only feeds the device: 1."""
    if device_type != "cpu" or cpus < 2 or work < TWO_THREADS_FROM_WORK:
        return 1
    free = round(cpus - reserve - max(load, 0.0))  # the 1-minute load average: processes running or waiting
    return max(1, min(cpus, free) // max(1, share))


def choose_threads(requested: int | None, work: int, device_type: str = "cpu", reserve: int = 0,
                   share: int = 1) -> int:
    """`requested` when given (checked), else the automatic choice for this machine now, keeping
    `reserve` cores for the rest of this process (the app keeps one for its UI) and sharing the
    rest among `share` ranks of one run on this machine."""
    if requested is not None:
        check_threads(requested)
        return requested
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average here: assume the cores are busy
        load = float(usable_cpus())
    return default_threads(work, usable_cpus(), load, device_type, reserve, share)


@contextmanager
def torch_threads(threads: int | None):
    """Run the body on `threads` torch threads, then restore the setting (None: leave torch alone).

    With torch's OpenMP builds the setting belongs to the calling thread (and seeds threads that
    first use torch later), so a run in a worker thread does not throttle another running beside it."""
    previous = None
    if threads:
        current = torch.get_num_threads()
        if current != threads:
            previous = current
            torch.set_num_threads(threads)
    try:
        yield
    finally:
        if previous is not None:
            torch.set_num_threads(previous)

"""System figures while a run trains: the process's CPU and memory (psutil) and, per CUDA device the run
uses, utilisation, memory, power and temperature (NVML), read by a daemon thread every few seconds.

Nothing here runs inside the training step. The thread keeps its latest reading; the trainer takes it at the
next step boundary (`SystemSampler.take`, a lock and an attribute) and records it as a SystemEvent, so the run's
metrics.jsonl keeps its one writer. The thread never touches the device's work queue: NVML asks the driver,
and torch.cuda.max_memory_allocated reads the caching allocator's counters on the host, so no reading waits
for the GPU (none syncs it).

psutil is a dependency; nvidia-ml-py (`pynvml`) is not: it is imported on the thread, and where it is missing
or fails the GPU figures NVML gives are left out and the first reading says why in words (`note`), once.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
import time

import torch

DEFAULT_EVERY = 5.0   # seconds between readings (--system-every)
NO_NVML = "no NVML"   # how a note about missing GPU figures starts


def environment(devices: list[str]) -> dict:
    """What a run trains with, for run.json: versions (None where there is no CUDA), the GPUs' names,
    Python, the host and the command line."""
    cuda = torch.version.cuda
    cudnn = torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None
    gpus = []
    for spec in dict.fromkeys(devices):  # in order, each once (ranks may share a device name)
        device = torch.device(spec)
        if device.type == "cuda" and torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count():
            gpus.append(torch.cuda.get_device_name(device))
    return {"torch": torch.__version__, "cuda": cuda, "cudnn": cudnn, "gpus": gpus,
            "python": platform.python_version(), "host": socket.gethostname(), "argv": list(sys.argv)}


class SystemSampler:
    """A daemon thread reading the system every `every` seconds; `take()` hands over the latest reading
    (a dict of SystemEvent's fields but the step) once, or None when there is no new one."""

    def __init__(self, every: float, device: torch.device):
        self.every = every
        self.device = device
        self._latest: dict | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-metrics", daemon=True)
        self._note_given = False

    def start(self) -> SystemSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)  # a reading takes milliseconds; a stuck driver call must not hold the run

    def take(self) -> dict | None:
        with self._lock:
            reading, self._latest = self._latest, None
        return reading

    def _run(self) -> None:
        try:
            reader = _Reader(self.device)
        except Exception:  # figures are a nice extra: a machine that refuses them never stops the run
            return
        while not self._stop.wait(self.every):
            try:
                reading = reader.read()
            except Exception:
                continue
            if reader.notes and not self._note_given:
                reading["note"] = " ".join(reader.notes)
                self._note_given = True
            with self._lock:
                self._latest = reading


class _Reader:
    """One reading of the process and the run's GPU; built on the sampler's thread (NVML starts there)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.notes: list[str] = []
        self._process = None
        self._psutil = None
        try:
            import psutil
        except ImportError:
            self.notes.append("no psutil: install it (pip install psutil) for the CPU and memory figures.")
        else:
            self._psutil = psutil
            self._process = psutil.Process(os.getpid())
            # The first call of each starts its interval (and says 0): the next reading covers `every`.
            self._process.cpu_percent(None)
            psutil.cpu_percent(None)
        self._nvml = None
        self._handle = None
        if device.type == "cuda":
            self._start_nvml()

    def _start_nvml(self) -> None:
        try:
            import pynvml
        except ImportError:
            self.notes.append(f"{NO_NVML}: nvidia-ml-py is not installed, so {self.device}'s utilisation, power "
                              "and temperature are not recorded (pip install nvidia-ml-py); its memory peak still is.")
            return
        try:
            pynvml.nvmlInit()
            self._handle = _nvml_handle(pynvml, self.device)
            self._nvml = pynvml
        except Exception as exc:  # NVMLError and its many subclasses; a driver mismatch
            self.notes.append(f"{NO_NVML}: NVML did not start ({exc}), so {self.device}'s utilisation, power and "
                              "temperature are not recorded; its memory peak still is.")

    def read(self) -> dict:
        reading: dict = {"time": time.time(), "process_cpu_percent": None, "rss_bytes": None,
                         "system_cpu_percent": None, "gpus": None}
        if self._process is not None:
            try:
                reading.update(process_cpu_percent=self._process.cpu_percent(None),
                               rss_bytes=self._process.memory_info().rss,
                               system_cpu_percent=self._psutil.cpu_percent(None))
            except Exception:  # psutil.Error: the figures are left out this time, never an error
                pass
        if self.device.type == "cuda":
            reading["gpus"] = [self._read_gpu()]
        return reading

    def _read_gpu(self) -> dict:
        device = self.device
        gpu: dict = {"device": str(device), "name": None, "util_percent": None, "mem_used_bytes": None,
                     "mem_total_bytes": None, "power_w": None, "temp_c": None, "peak_allocated_bytes": None}
        try:
            # The allocator's counters, read on the host: no device sync.
            gpu["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
            properties = torch.cuda.get_device_properties(device)
            gpu.update(name=properties.name, mem_total_bytes=properties.total_memory)
        except Exception:
            pass
        nvml, handle = self._nvml, self._handle
        if nvml is None:
            return gpu
        for key, read in (("util_percent", lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                          ("mem_used_bytes", lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used),
                          ("mem_total_bytes", lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total),
                          ("power_w", lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000),
                          ("temp_c", lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))):
            try:
                gpu[key] = read()
            except Exception:  # not supported on this GPU (power on some boards): left out
                pass
        return gpu


def _nvml_handle(pynvml, device: torch.device):
    """NVML's handle for torch's `device`: by UUID, since torch counts only the visible GPUs
    (CUDA_VISIBLE_DEVICES) and NVML counts them all; by index where torch does not give the UUID."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)

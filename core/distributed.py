"""Training in several processes with torch.distributed: the ranks of a run and what they agree on.

A run of W processes (ranks) is started by torchrun (`torch.distributed.run`), which sets RANK,
WORLD_SIZE, LOCAL_RANK and the rendezvous in each process's environment; `join_from_environment`
joins its process group (NCCL on CUDA, gloo on the CPU). Gradients are averaged by DDP
(`torch.nn.parallel.DistributedDataParallel`); this module adds only the small collectives the
training loop needs besides: the per-step agreement on what to do next (rank 0 reads the clock and
the control channel, any rank may ask to stop), sums for losses, and gathers for checkpoints.

`Solo` is the one-process group: the same calls, at no cost, so the loop has one shape.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from .errors import ConfigError, PlaygroundError

T = TypeVar("T")
DEFAULT_RANK_TIMEOUT_S = 180.0  # a collective not answered this long means a rank died or hangs
TIMEOUT_ENV = "RNN_PLAYGROUND_RANK_TIMEOUT"  # the launcher passes --rank-timeout to the ranks this way


class RankError(PlaygroundError):
    """Another rank of the run failed, hung or left: this one cannot go on."""


class MainRankError(RankError):
    """What rank 0 did for every rank failed there; rank 0 says why (this rank need not say it again)."""


def launched_by_torchrun() -> bool:
    """True in a process torchrun started (it sets these for every worker)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def restart_count() -> int:
    """How many times this machine's torchrun restarted its workers (--max-restarts); 0 at first. On several
    machines a machine whose own processes did not fail keeps 0: TorchGroup.attempt is the run's count."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


@dataclass
class Solo:
    """The one process of a run that trains alone."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    attempt: int = 1  # torchrun's start of this run's processes: 2 and up after --max-restarts restarted them

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def agree(self, flags: list[int]) -> list[int]:
        """The flags every rank acts on: each the largest any rank gave (a stop from any rank stops all)."""
        return flags

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks, in float64."""
        return values

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's equally shaped `tensor`, concatenated along `dim` in rank order."""
        return tensor

    def gather_tensors(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's 1-D `tensor` (any length, one dtype), by rank."""
        return [tensor]

    def gather_text(self, text: str) -> list[str]:
        return [text]

    def from_main(self, work: Callable[[], bytes]) -> bytes:
        """`work()` done on rank 0 alone, its result given to every rank (a run folder's name, a checkpoint
        read once for every machine). When it fails there, every rank raises: rank 0 its own error,
        the others a MainRankError with its message, so no rank waits for an answer that never comes."""
        return work()

    def main_first(self, work: Callable[[], T]) -> T:
        """`work()` on rank 0, then on the others once it succeeded there (one download of a corpus, and
        its error said once: the others raise a MainRankError)."""
        done: list[T] = []
        self.from_main(lambda: done.append(work()) or b"")
        return done[0] if done else work()

    def lost(self, exc: Exception, what: str) -> Exception:
        return exc  # alone, nothing can be lost: the error is what it says

    def close(self) -> None:
        pass


class TorchGroup(Solo):
    """This process's place in a torch.distributed process group (torchrun's workers)."""

    def __init__(self, device: torch.device, timeout_s: float) -> None:
        import torch.distributed as dist

        self._dist = dist
        backend = "nccl" if device.type == "cuda" else "gloo"
        # A rank's collectives wait for the others at most timeout_s: a dead or hung rank ends the
        # run with a RankError instead of hanging it forever.
        timeout = datetime.timedelta(seconds=timeout_s)
        store, rank, world_size, attempt = None, -1, -1, 1 + restart_count()
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # torchrun's own store, under a prefix of this attempt: after a --max-restarts restart it is the same
            # store, and gloo (torch 2.13) would find the previous attempt's addresses there and never connect.
            # Every attempt starts every rank once, so a count of this rank's joins names the attempt alike on
            # every machine (torchrun's restart count does not: a machine whose processes did not fail keeps 0).
            agent_store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                                        timeout=timeout)
            rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            attempt = agent_store.add(f"rnn-playground/joins/rank{rank}", 1)
            store = dist.PrefixStore(f"rnn-playground/attempt{attempt}", agent_store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout,
                                device_id=device if device.type == "cuda" else None)
        self._store = store if store is not None else dist.distributed_c10d._get_default_store()
        super().__init__(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                         int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())), attempt)
        # This module's own collectives are small and go through gloo on the CPU, also beside NCCL (which
        # DDP uses for the gradients): a CUDA tensor here would make every step wait for the device.
        self._cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
        self.timeout_s = timeout_s

    def _collective(self, what: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (RuntimeError, ValueError) as exc:  # DistBackendError and gloo's own are RuntimeErrors
            raise self.lost(exc, what) from None

    def lost(self, exc: Exception, what: str) -> RankError:
        """The error to raise when a collective failed (ours, or DDP's all-reduce in backward), naming the
        ranks that stopped answering where the rendezvous store can tell."""
        silent = self._silent_ranks()
        if silent:
            names = ", ".join(map(str, silent))
            who = (f"rank{'s' if len(silent) > 1 else ''} {names} stopped answering: died, was stopped, or hung for "
                   f"more than {self.timeout_s:g} s (--rank-timeout)")
        else:
            who = f"another rank died, was stopped or hung for more than {self.timeout_s:g} s (--rank-timeout)"
        return RankError(f"Rank {self.rank} lost the other ranks of the run while {what}: {who}. "
                         f"The backend said: {_cause(exc)}.")

    def _silent_ranks(self) -> list[int]:
        """The ranks that do not report a lost collective within a few seconds through torchrun's store
        (every rank still alive reports one when a collective fails, so the silent ones are the cause)."""
        try:
            self._store.set(f"lost/{self.rank}", "1")
            deadline = time.monotonic() + min(5.0, self.timeout_s)
            while True:
                silent = [r for r in range(self.world_size) if not self._store.check([f"lost/{r}"])]
                if not silent or time.monotonic() >= deadline:
                    return silent
                time.sleep(0.1)
        except (RuntimeError, ValueError):
            return []  # the store is gone too (the launcher's machine): nothing to tell

    def agree(self, flags: list[int]) -> list[int]:
        tensor = torch.tensor(flags, dtype=torch.int32)
        self._collective("agreeing on the next step", self._dist.all_reduce, tensor,
                         op=self._dist.ReduceOp.MAX, group=self._cpu_group)
        return tensor.tolist()

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        self._collective("summing", self._dist.all_reduce, tensor, group=self._cpu_group)
        return tensor.tolist()

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        local = tensor.detach().cpu().contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        self._collective("gathering state", self._dist.all_gather, parts, local, group=self._cpu_group)
        return torch.cat(parts, dim).to(tensor.device)

    def gather_tensors(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        local = tensor.detach().reshape(-1).cpu()
        lengths = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        self._collective("gathering", self._dist.all_gather, lengths,
                         torch.tensor([local.numel()], dtype=torch.int64), group=self._cpu_group)
        longest = max(int(n) for n in lengths)
        padded = torch.zeros(longest, dtype=local.dtype)
        padded[:local.numel()] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._collective("gathering", self._dist.all_gather, parts, padded, group=self._cpu_group)
        return [part[:int(n)].cpu() for part, n in zip(parts, lengths, strict=True)]

    def gather_text(self, text: str) -> list[str]:
        data = torch.frombuffer(bytearray(text.encode() or b" "), dtype=torch.uint8)
        return [bytes(part.tolist()).decode().strip() for part in self.gather_tensors(data)]

    def from_main(self, work: Callable[[], bytes]) -> bytes:
        if not self.is_main:
            answer = self._broadcast(None)
            if answer[:1] != b"\0":
                raise MainRankError(f"Rank 0 failed: {answer[1:].decode(errors='replace')}")
            return answer[1:]
        try:
            data = work()
        except Exception as exc:
            self._broadcast(b"\1" + (str(exc) or type(exc).__name__).encode())
            raise
        self._broadcast(b"\0" + data)
        return data

    def _broadcast(self, data: bytes | None) -> bytes:
        """Rank 0's `data`, on every rank: its length, then its bytes."""
        length = torch.tensor([len(data) if self.is_main and data else 0], dtype=torch.int64)
        self._collective("waiting for rank 0", self._dist.broadcast, length, 0, group=self._cpu_group)
        buffer = torch.zeros(int(length), dtype=torch.uint8)
        if self.is_main and data:
            buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        if int(length):
            self._collective("waiting for rank 0", self._dist.broadcast, buffer, 0, group=self._cpu_group)
        return bytes(buffer.cpu().numpy().tobytes())

    def close(self) -> None:
        if self._dist.is_initialized():
            try:
                self._dist.destroy_process_group()
            except (RuntimeError, ValueError):
                pass  # the group is broken already (a rank died): nothing left to tidy


def _cause(exc: Exception) -> str:
    """The backend's own words, without its source location and boilerplate advice."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\] ", "", text)  # gloo's "[.../pair.cc:537] "
    return text.split(". This is typically")[0].rstrip(".")


def rank_timeout_s() -> float:
    """The collective timeout the launcher asked for (--rank-timeout), else the default."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_RANK_TIMEOUT_S))
    except ValueError:
        return DEFAULT_RANK_TIMEOUT_S
    return value if value > 0 else DEFAULT_RANK_TIMEOUT_S


def join_from_environment(device: torch.device) -> Solo:
    """This process's group: torchrun's when it started this process with more than one rank, else Solo."""
    if not launched_by_torchrun() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Solo()
    return TorchGroup(device, rank_timeout_s())


def rank_device(devices: list[str], local_rank: int) -> str:
    """The device of the local rank `local_rank`, from the --devices list (one entry: shared by all)."""
    return devices[local_rank] if len(devices) > 1 else devices[0]


def check_split(batch: int, world_size: int) -> None:
    """A batch of streams splits evenly across the processes (each carries the same number), or a ConfigError."""
    if batch % world_size:
        raise ConfigError(f"--batch {batch} does not split evenly across {world_size} processes: each carries "
                          f"the same number of streams. Use a multiple of {world_size}, such as "
                          f"{max(world_size, batch // world_size * world_size)}.")


def split_rows(rows: int, rank: int, world_size: int) -> slice:
    """The rows of `rows` that `rank` of `world_size` carries: contiguous blocks in rank order, the
    first ones a row longer when they do not divide evenly."""
    base, extra = divmod(rows, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))

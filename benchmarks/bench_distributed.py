"""Training in several processes on the CPU: what DDP over gloo costs, and what the per-step agreement costs.

    python -m benchmarks.bench_distributed [--rounds 2] [--seconds 15] [--sizes 512,128] [--busy-sizes 128]

Speed. The real `rnn-playground train` on tinyshakespeare at the same global batch (128 streams), three
ways: one process of 1 thread, one process of 2 threads (`--threads 2`), and 2 gloo ranks of 1 thread
each (`--devices cpu --nproc 2 --threads 1`: torchrun's standalone launch, 64 streams per rank, DDP
averaging the gradients). Each run trains for `--seconds` (a time budget, so slow and fast models
cost alike) with a step event per step; characters per second come from metrics.jsonl between the
third and the last step event (start-up, the first steps' warm-up and the validation at the end left
out). Models: LSTM 2xH for each H in `--sizes` (512 is TrainConfig's default model; bf16 autocast
where the CPU has it, as a plain `train` runs). The ways alternate within each round (forward, then
backward), so a shared machine's drifting load falls on all alike; figures are medians over
`--rounds`. `--busy-sizes` repeats those sizes beside a busy neighbour (a process spinning on one of
the cores). Ratios, measured in the same run: 2 ranks against one process of 2 threads (the same two
cores used the other way), and against one thread (what the second rank buys: its scaling
efficiency is this ratio / 2).

Agreement. Twice per step every rank calls TorchGroup.agree (an all-reduce of six int32 flags: stop,
pause, save, time up, validation due, report due). Timed alone, quiet and beside a busy neighbour:
2 gloo ranks launched by torchrun (`python -m torch.distributed.run --standalone`) call it `--calls`
times in a loop; also the sum and gather each step event adds (about four a second, or every step
with --log-every 1). The per-step figure is set against the default model's step on 2 ranks,
measured above; for scale, a byte's round trip between two processes over TCP on this machine
(the floor under any exchange between ranks) is timed beside it. The gathers of a checkpoint or a
validation are not per step and not timed here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import BusyNeighbour, chars_per_second, print_table, require_data, runs_dir

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HIDDEN = 512  # TrainConfig's
ONE_THREAD, TWO_THREADS, TWO_RANKS = "1 process, 1 thread", "1 process, 2 threads", "2 ranks, 1 thread each"
CASES = ((ONE_THREAD, ["--threads", "1"]), (TWO_THREADS, ["--threads", "2"]),
         (TWO_RANKS, ["--devices", "cpu", "--nproc", "2", "--threads", "1"]))
FLAGS = 6  # the trainer's agreement: stop, pause, save, time up, validation due, report due


def train(corpus: Path, hidden: int, seconds: float, case_flags: list[str], tries: int = 2) -> Path:
    """One run of the real CLI; its run folder. A failed run is said and tried once more (a crowded
    machine has made a rank fail now and then); a second failure ends the benchmark."""
    folder = runs_dir()
    command = [sys.executable, "-m", "rnn_playground.tui", "train", "--corpus", str(corpus), "--hidden", str(hidden),
               "--minutes", f"{seconds / 60:.6f}", "--log-every", "1", "--val-every", "1000000", "--val-seconds", "0",
               "--sample-chars", "0", "--val-fraction", "0.002", "--runs-dir", folder, "--name", "bench",
               "--rank-timeout", "60", *case_flags]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        said = f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        if tries <= 1:
            raise SystemExit(said)
        print(f"{said}\n(trying once more)", flush=True)
        return train(corpus, hidden, seconds, case_flags, tries - 1)
    return Path(folder) / "bench"


def agree_worker(calls: int) -> None:
    """One rank of the agreement timing (started by torchrun): rank 0 prints the seconds per call."""
    import torch

    from rnn_playground.core.distributed import TorchGroup

    torch.set_num_threads(1)
    group = TorchGroup(torch.device("cpu"), timeout_s=60.0)
    try:
        flags = [0] * FLAGS
        for _ in range(min(calls, 500)):  # the connection's first messages, the allocator
            group.agree(flags)
        began = time.perf_counter()
        for _ in range(calls):
            group.agree(flags)
        agree_s = (time.perf_counter() - began) / calls
        reports = max(calls // 4, 1)
        began = time.perf_counter()
        for _ in range(reports):  # what each step event adds: the loss summed, each rank's speed gathered
            group.sum([1.0])
            group.gather_tensors(torch.tensor([1.0]))
        report_s = (time.perf_counter() - began) / reports
        if group.is_main:
            print("RESULT " + json.dumps({"agree_s": agree_s, "report_s": report_s}), flush=True)
    finally:
        group.close()


def loopback_round_trip(trips: int) -> float:
    """Seconds for one byte to go to another process over TCP on this machine and back: the floor
    under any exchange between two ranks, for scale."""
    server = socket.create_server(("127.0.0.1", 0))
    child = subprocess.Popen([sys.executable, "-c", ECHO, str(server.getsockname()[1])])
    try:
        peer, _ = server.accept()
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):
            peer.sendall(b"x")
            peer.recv(1)
        began = time.perf_counter()
        for _ in range(trips):
            peer.sendall(b"x")
            peer.recv(1)
        return (time.perf_counter() - began) / trips
    finally:
        server.close()
        child.kill()
        child.wait()


ECHO = """import socket, sys
peer = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while data := peer.recv(1):
    peer.sendall(data)
"""


def time_agreement(calls: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", LOGLEVEL="CRITICAL")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "benchmarks.bench_distributed", "--agree-worker", str(calls)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not found:
        raise SystemExit(f"the agreement timing failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-4000:]}")
    return json.loads(found[0][len("RESULT "):])


def model_label(hidden: int) -> str:
    return f"LSTM 2x{hidden}" + (" (default)" if hidden == DEFAULT_HIDDEN else "")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each case (medians reported)")
    parser.add_argument("--seconds", type=float, default=15.0, help="training time of each run")
    parser.add_argument("--sizes", default="512,128", help="hidden sizes of the LSTM 2xH models")
    parser.add_argument("--busy-sizes", default="", help="sizes also measured beside a busy neighbour ('' none)")
    parser.add_argument("--calls", type=int, default=5000, help="agreement calls timed per round")
    parser.add_argument("--agree-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.agree_worker is not None:
        agree_worker(args.agree_worker)
        return

    corpus = require_data()
    sizes = [int(h) for h in args.sizes.split(",") if h]
    busy_sizes = [int(h) for h in args.busy_sizes.split(",") if h]
    settings = [(h, False) for h in sizes] + [(h, True) for h in busy_sizes]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} CPUs; {args.rounds} rounds of {args.seconds:g} s per run; load average at start "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    rates: dict[tuple, list[float]] = {}
    agreements: dict[bool, list[dict]] = {False: [], True: []}
    for round_ in range(args.rounds):
        order = CASES if round_ % 2 == 0 else CASES[::-1]
        for hidden, busy in settings:
            with BusyNeighbour(busy):
                for label, flags in order:
                    run_dir = train(corpus, hidden, args.seconds, flags)
                    rate, steps = chars_per_second(run_dir)
                    shutil.rmtree(run_dir.parent, ignore_errors=True)
                    rates.setdefault((hidden, busy, label), []).append(rate)
                    print(f"round {round_ + 1} {model_label(hidden):22} {'busy' if busy else 'quiet':5} {label:24} "
                          f"{rate:9,.0f} chars/s over {steps} steps", flush=True)
        for busy in (False, True):
            with BusyNeighbour(busy):
                agreements[busy].append(time_agreement(args.calls) | {"loopback_s": loopback_round_trip(args.calls)})
        print(f"round {round_ + 1}: agreement {agreements[False][-1]['agree_s'] * 1e6:.1f} us quiet, "
              f"{agreements[True][-1]['agree_s'] * 1e6:.1f} us busy; load average {os.getloadavg()[0]:.2f}",
              flush=True)

    def rate(key) -> float:
        return statistics.median(rates[key])

    rows = []
    for hidden, busy in settings:
        single, threads, ranks = (rate((hidden, busy, label)) for label in (ONE_THREAD, TWO_THREADS, TWO_RANKS))
        rows.append([model_label(hidden), "busy neighbour" if busy else "quiet", f"{single:,.0f}", f"{threads:,.0f}",
                     f"{ranks:,.0f}", " / ".join(f"{r:,.0f}" for r in rates[(hidden, busy, TWO_RANKS)]),
                     f"{(ranks / threads - 1) * 100:+.1f}%", f"{ranks / single:.2f}x"])
    if rows:
        print_table(f"chars/s at a global batch of 128, median of {args.rounds}",
                    ["model", "neighbour", ONE_THREAD, TWO_THREADS, TWO_RANKS, "2 ranks per round",
                     "2 ranks vs 2 threads", "2 ranks / 1 thread"], rows)

    step_key = (DEFAULT_HIDDEN, False, TWO_RANKS)
    step_s = 128 * 100 / rate(step_key) if step_key in rates else None  # TrainConfig's batch x seq per step
    rows = []
    for busy in (False, True):
        agree_s = statistics.median(a["agree_s"] for a in agreements[busy])
        report_s = statistics.median(a["report_s"] for a in agreements[busy])
        loopback_s = statistics.median(a["loopback_s"] for a in agreements[busy])
        share = f"{2 * agree_s / step_s:.4%}" if step_s else "-"
        rows.append(["busy neighbour" if busy else "quiet", f"{agree_s * 1e6:.1f}", f"{2 * agree_s * 1e6:.1f}",
                     share, f"{report_s * 1e6:.1f}", f"{loopback_s * 1e6:.1f}", f"{agree_s / loopback_s:.0f}x"])
    if step_s:
        print(f"\nA default-model step on 2 ranks: {step_s * 1e3:.0f} ms (from the speed above)")
    print_table(f"Per-step agreement, 2 gloo ranks, {args.calls:,} calls, median of {args.rounds}",
                ["neighbour", "us per agree", "us per step (2 calls)", "of a default step",
                 "us per step event (sum + gather)", "us per TCP round trip", "agree / round trip"], rows)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""A big corpus: peak memory, time to the first step, and what one validation costs.

    python -m benchmarks.bench_big_corpus [--mb 200] [--baseline REV] [--rounds 1]

Builds a corpus of `--mb` megabytes in a temporary folder (tinyshakespeare repeated) and runs the
real `rnn-playground train` on it in a fresh process, once with this tree's code and once with the
code of git revision `--baseline` (default: the commit before the compact corpus; `--baseline ''`
skips it), one after the other. Each run is `train --steps 1000 --val-every 1` with a small model
(LSTM 1x128, so the baseline's pass over every held-out character ends in a minute or two); when
the first step event appears in metrics.jsonl the process gets SIGINT (Ctrl+C), so it stops and
saves right after its first validation. Measured:

- peak RSS at the first step (the process's VmHWM, polled) and over its whole life (ru_maxrss
  from wait4: the corpus load, the first step, one validation and the save),
- time from starting the process to its first step event (Python and torch imports included),
- the first validation: its seconds and how many held-out characters it read.

OMP_NUM_THREADS=1 in both, so a busy shared machine moves the times less.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from .common import print_table, require_data

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "7c615cd"  # the last commit whose trainer held the corpus as a str and int64 ids
MODEL_FLAGS = ["--hidden", "128", "--layers", "1", "--embed", "16", "--batch", "32", "--seq", "100",
               "--sample-chars", "0", "--device", "cpu"]


def build_corpus(folder: Path, megabytes: float) -> Path:
    data = require_data().read_bytes()
    path = folder / "big.txt"
    with path.open("wb") as out:
        for _ in range(max(1, round(megabytes * 1e6 / len(data)))):
            out.write(data)
    return path


def baseline_tree(revision: str, folder: Path) -> Path | None:
    """The code of `revision` (core/ and tui/) extracted into `folder`; None when git cannot give it."""
    archive = folder / "baseline.tar"
    with archive.open("wb") as out:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "core", "tui"], stdout=out,
                              stderr=subprocess.PIPE)
    if done.returncode:
        print(f"baseline {revision!r} unavailable: {done.stderr.decode().strip()}")
        return None
    tree = folder / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    if (tree / "tui" / "launch.py").exists():  # a revision that installs as rnn_playground: lay it out so
        package = tree / "rnn_playground"     # PYTHONPATH finds it before the installed tree
        package.mkdir()
        for folder_name in ("core", "tui"):
            (tree / folder_name).rename(package / folder_name)
    return tree


def vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def records(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return out


def measure(code: Path, corpus: Path, work: Path, label: str) -> dict:
    runs = work / f"runs-{label}-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    # Revisions before the rnn_playground package ran as top-level `tui`.
    module = "rnn_playground.tui" if code == ROOT or (code / "rnn_playground").is_dir() else "tui"
    command = [sys.executable, "-m", module, "train", "--corpus", str(corpus), "--steps", "1000", "--val-every", "1",
               "--runs-dir", str(runs), "--name", "big", *MODEL_FLAGS]
    log = work / f"{label}.log"
    started = time.time()
    with log.open("wb") as stderr_file:  # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=stderr_file)
    metrics = runs / "big" / "metrics.jsonl"
    peak_at_step = 0
    while proc.poll() is None:
        seen = records(metrics)
        if any(r["event"] == "step" for r in seen):
            peak_at_step = vm_hwm_kb(proc.pid)
            proc.send_signal(signal.SIGINT)  # stop after the validation under way, and save
            break
        peak_at_step = vm_hwm_kb(proc.pid) or peak_at_step
        time.sleep(0.05)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = log.read_text(errors="replace")
    seen = records(metrics)
    step = next((r for r in seen if r["event"] == "step"), None)
    validation = next((r for r in seen if r["event"] == "validation"), None)
    begun = next((r for r in seen if r["event"] == "started"), None)
    if step is None or validation is None:
        raise SystemExit(f"{label}: the run ended (status {proc.returncode}) before its first validation:\n"
                         f"{stderr[-2000:]}")
    return {"peak_at_step_mb": peak_at_step / 1024, "peak_mb": usage.ru_maxrss / 1024,
            "first_step_s": step["time"] - started, "validation_s": validation["time"] - step["time"],
            "validation_chars": validation.get("chars") or begun["val_chars"], "chars": begun["train_chars"]
            + begun["val_chars"]}


def interpreter_mb(code: Path) -> float:
    """Peak RSS of a process that only imports what `train` imports (torch imports torch._dynamo
    for the first optimizer): what any run costs."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    packaged = code == ROOT or (code / "rnn_playground").is_dir()
    modules = ("rnn_playground.core.trainer, rnn_playground.tui.cli.commands, rnn_playground.tui.cli.render"
               if packaged else "core.trainer, tui.cli, tui.commands, tui.headless")
    proc = subprocess.Popen([sys.executable, "-c", f"import torch, {modules}; "
                             "torch.optim.Adam([torch.zeros(1000, requires_grad=True)])"], env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_maxrss / 1024


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="corpus size in megabytes")
    parser.add_argument("--baseline", default=BASELINE, help="git revision measured as 'before' ('' = none)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each, alternating (medians shown)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rnn-playground-big-") as folder:
        work = Path(folder)
        corpus = build_corpus(work, args.mb)
        trees = {"after": ROOT}
        base = baseline_tree(args.baseline, work) if args.baseline else None
        if base is not None:
            trees = {"before": base, **trees}
        results: dict[str, list[dict]] = {label: [] for label in trees}
        for _ in range(args.rounds):
            for label, tree in trees.items():
                results[label].append(measure(tree, corpus, work, label))
        print(f"corpus: {corpus.stat().st_size / 1e6:.0f} MB ({results['after'][0]['chars']:,} characters), "
              f"LSTM 1x128, OMP_NUM_THREADS=1; medians of {args.rounds}")
        keys = [("peak RSS at the first step (MB)", "peak_at_step_mb"), ("peak RSS, whole run (MB)", "peak_mb"),
                ("start to first step (s)", "first_step_s"), ("first validation (s)", "validation_s"),
                ("held-out chars it read", "validation_chars")]
        rows = []
        for name, key in keys:
            values = {label: sorted(r[key] for r in runs)[len(runs) // 2] for label, runs in results.items()}
            row = [name] + [values[label] for label in trees]
            if "before" in values and values["after"]:
                row.append(f"{values['before'] / values['after']:.1f}x")
            rows.append(row)
        # What the corpus costs: the peak above an interpreter that has imported the same modules.
        per_char = {label: (sorted(r["peak_mb"] for r in runs)[len(runs) // 2] - interpreter_mb(trees[label]))
                    * 2**20 / runs[0]["chars"] for label, runs in results.items()}
        rows.append(["peak above the imports, bytes/char"] + [f"{per_char[label]:.2f}" for label in trees]
                    + ([f"{per_char['before'] / per_char['after']:.1f}x"] if "before" in per_char else []))
        print_table("big corpus: before / after", ["measure", *trees, *(["before/after"] if base else [])], rows)
        # What start-up costs whatever the corpus (imports; torch imports torch._dynamo for the first
        # optimizer): the same run on tinyshakespeare itself, this tree's code.
        small = measure(ROOT, require_data(), work, "small")
        print(f"\nthe same with tinyshakespeare (1 MB), this tree: first step after {small['first_step_s']:.1f} s, "
              f"peak RSS {small['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()

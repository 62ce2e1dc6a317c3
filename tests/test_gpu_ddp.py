"""benchmarks/gpu_ddp.py, the prepared several-GPU benchmark, where no GPU is: its arguments, its figures, and
its whole code path run on CPU processes (--cpu-dry-run: the real CLI, torchrun and gloo)."""

from __future__ import annotations

import re
import tempfile

import pytest
import torch

from benchmarks import gpu_ddp

from .conftest import TINY_TEXT


def test_the_figures_compare_each_count_with_one_gpu_at_the_same_per_gpu_batch():
    # 8 streams x 10 characters per GPU: one GPU 1,000 chars/s (80 ms a step), two 1,600 (100 ms a step).
    one, two = gpu_ddp.scaling({1: 1000.0, 2: 1600.0}, per_gpu_batch=8, seq=10)
    assert (one.step_ms, one.efficiency, one.added_ms, one.all_reduce_share) == pytest.approx((80, 1, 0, 0))
    assert two.per_gpu_chars_per_s == 800
    assert two.step_ms == pytest.approx(100)
    assert two.efficiency == pytest.approx(0.8)
    assert two.added_ms == pytest.approx(20)
    assert two.all_reduce_share == pytest.approx(0.2)
    # Without a one-GPU run there is nothing to compare with.
    (alone,) = gpu_ddp.scaling({2: 1600.0}, per_gpu_batch=8, seq=10)
    assert (alone.efficiency, alone.added_ms, alone.all_reduce_share) == (None, None, None)


def test_the_default_gpu_counts_double_up_to_every_gpu():
    assert gpu_ddp.default_counts(1) == [1]
    assert gpu_ddp.default_counts(3) == [1, 2, 3]
    assert gpu_ddp.default_counts(8) == [1, 2, 4, 8]


@pytest.mark.parametrize("argv, said", [
    (["--gpus", "0,2"], "give whole numbers of 1 or more"),
    (["--gpus", "two"], "is not a comma list of whole numbers"),
    (["--per-gpu-batch", ""], "give whole numbers of 1 or more"),
    (["--steps", "0"], "--steps must be above 0"),
    (["--steps", "50", "--warmup", "40"], "--warmup 40 leaves fewer than two step events"),
])
def test_bad_arguments_are_refused_saying_which(capsys, argv, said):
    with pytest.raises(SystemExit) as stopped:
        gpu_ddp.parse_args(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_stops_with_a_message_naming_the_dry_run():
    with pytest.raises(SystemExit) as stopped:
        gpu_ddp.main(["--gpus", "1,2"])
    assert "no CUDA GPU is visible here" in str(stopped.value.code)
    assert "--cpu-dry-run" in str(stopped.value.code)


@pytest.mark.timeout(240)
def test_the_dry_run_trains_one_and_two_processes_and_prints_their_scaling(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the runs' folders, removed with tmp_path
    gpu_ddp.main(["--cpu-dry-run", "--gpus", "1,2", "--hidden", "16", "--per-gpu-batch", "4", "--seq", "8",
                  "--steps", "8", "--warmup", "2", "--log-every", "1", "--precision", "fp32",
                  "--corpus", str(corpus)])
    out = capsys.readouterr().out
    # Each run's metrics.jsonl says how many processes trained: one, then two (torchrun, gloo).
    assert re.search(r"fp32, 1 device: [\d,]+ chars/s over 5 steps, 1 process\n", out), out
    assert re.search(r"fp32, 2 devices: [\d,]+ chars/s over 5 steps, 2 processes\n", out), out
    table = out.split("LSTM 2x16, seq 8, 4 streams per GPU, fp32\n", 1)[1].splitlines()
    one, two = (row.split() for row in table[2:4])
    assert one[:2] == ["1", "4"] and one[5:] == ["1.00", "+0.0", "0.0%"]
    assert two[:2] == ["2", "8"]
    rate_one, rate_two = (float(row[2].replace(",", "")) for row in (one, two))
    assert float(two[5]) == pytest.approx(rate_two / (2 * rate_one), abs=0.006)
    assert list(tmp_path.iterdir()) == [corpus]  # the benchmark removed its runs

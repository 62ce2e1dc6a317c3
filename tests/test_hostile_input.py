"""Input chosen to break things: values that overflow, and the messages bad input gets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from core.series_data import Normalizer, SeriesData, SeriesError
from tui.cli import EXIT_ERROR, main

TINY_SERIES = ["--steps", "2", "--hidden", "4", "--batch", "2", "--device", "cpu", "--val-every", "1"]


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # Rich wraps at the terminal width; keep messages on one line


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning leaking out fails the test
        code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_values_whose_spread_overflows_are_refused_naming_the_column(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "huge.csv"
    path.write_text("t,level\n" + "".join(f"{i},{v:.6e}\n" for i, v in enumerate(rng.uniform(1, 9, 300) * 1e300)))
    code, out, err = run_cli(capsys, "series", "train", "--csv", str(path), "--column", "level", *TINY_SERIES)
    assert code == EXIT_ERROR
    assert "column 'level' cannot be standardized" in err and "Rescale" in err
    assert "inf" not in out and "nan" not in out and not list((tmp_path / "runs").glob("*/*.safetensors"))


def test_noise_that_overflows_a_signal_is_refused(capsys):
    code, _, err = run_cli(capsys, "series", "train", "--signal", "noisy-sine", "--noise", "1e308", *TINY_SERIES)
    assert code == EXIT_ERROR and "cannot be standardized" in err and "--noise" in err


def test_large_values_that_fit_train_to_finite_metrics(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "large.csv"
    path.write_text("v\n" + "".join(f"{v:.6e}\n" for v in rng.uniform(1, 9, 300) * 1e120))
    code, out, err = run_cli(capsys, "series", "train", "--csv", str(path), *TINY_SERIES)
    assert code == 0, err
    assert " inf " not in out and "nan" not in out


def test_a_value_beyond_float32_after_standardizing_is_named():
    train = np.linspace(0.0, 1.0, 50)
    normalizer = Normalizer.fit(train)
    data = SeriesData(np.concatenate([train, [1e300]]), ("v",), "file.csv")
    with pytest.raises(SeriesError, match=r"file.csv: column 'v' holds 1e\+300 at point 50"):
        normalizer.standardize(data)
    assert normalizer.standardize(SeriesData(train, ("v",), "x")).dtype == np.float32

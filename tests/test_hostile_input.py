"""Input chosen to break things: values that overflow, and the messages bad input gets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnn_playground.core.series_data import Normalizer, SeriesData, SeriesError
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.cli.terminal import EXIT_ERROR

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


# --------------------------------------------------------------------------- messages that mislead


def quote_left_open(path, lines=400, at=21):
    rows = ["t,v"] + [f"{i},{i * 0.5}" for i in range(1, lines)]
    rows[at - 1] = f'{at - 1},"{(at - 1) * 0.5}'  # a quote opened on line `at`, never closed
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_quote_left_open_is_reported_where_it_opened_with_a_short_excerpt(tmp_path, capsys):
    path = quote_left_open(tmp_path / "quote.csv")
    code, _, err = run_cli(capsys, "series", "train", "--csv", str(path), "--column", "v", *TINY_SERIES)
    message = " ".join(err.split())
    assert code == EXIT_ERROR
    assert "line 21, column 'v' opens a quote (\") that is not closed before line 400" in message
    assert "line 400," not in message and len(message) < 600  # was: line 400, and 5.7 KB of the file


def test_forecast_suggests_only_flags_it_has(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text("v\n" + "".join(f"{i % 7}\n" for i in range(200)))
    assert main(["series", "train", "--csv", str(good), "--name", "r", *TINY_SERIES]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("v\n" + "".join(f"{i % 7}\n" if i != 50 else "oops\n" for i in range(200)))
    capsys.readouterr()
    code, _, err = run_cli(capsys, "series", "forecast", str(tmp_path / "runs" / "r"), "--csv", str(bad))
    assert code == EXIT_ERROR and "line 52, column 'v' holds 'oops'" in err
    assert "--drop-bad-rows" not in err and "--header" not in err
    code, _, err = run_cli(capsys, "series", "train", "--csv", str(bad), *TINY_SERIES)  # train has the flag
    assert code == EXIT_ERROR and "--drop-bad-rows" in err


def test_a_big5_corpus_is_told_to_find_its_encoding(tmp_path, capsys):
    path = tmp_path / "big5.txt"
    path.write_bytes(("繁體中文的文字，" * 200).encode("big5"))
    code, _, err = run_cli(capsys, "train", "--corpus", str(path), "--device", "cpu")
    message = " ".join(err.split())
    assert code == EXIT_ERROR and "file -i" in message and "iconv -f ENCODING" in message
    assert "latin1" not in message


def test_resume_from_another_folder_finds_a_corpus_given_as_a_relative_path(tmp_path, monkeypatch, capsys):
    from rnn_playground.core.checkpoint import read_metadata

    from .conftest import TINY_TEXT
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    (start / "tiny.txt").write_text(TINY_TEXT, encoding="utf-8")
    monkeypatch.chdir(start)
    tiny = ["--hidden", "8", "--layers", "1", "--embed", "4", "--batch", "4", "--seq", "8", "--val-every", "5",
            "--sample-chars", "0", "--device", "cpu", "--no-amp"]
    assert main(["train", "--corpus", "tiny.txt", "--steps", "5", "--name", "rel", *tiny]) == 0
    run = tmp_path / "runs" / "rel"
    assert read_metadata(run / "last.safetensors")["config"]["corpus"] == str(start / "tiny.txt")
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--resume", str(run), "--steps", "8"]) == 0
    assert "finished at step 8" in " ".join(capsys.readouterr().err.split())


def test_the_fingerprint_decides_whether_a_resumed_text_is_the_same(tmp_path):
    from rnn_playground.core.trainer import Trainer

    from .conftest import TINY_TEXT, tiny_config
    first = tmp_path / "a.txt"
    first.write_text(TINY_TEXT, encoding="utf-8")
    trainer = Trainer(tiny_config(first, run_name="fp", runs_dir=str(tmp_path / "runs"), steps=5, val_every=5,
                                  sample_chars=0))
    list(trainer.run())
    saved_window = trainer.progress.window
    assert saved_window > 0
    same = tmp_path / "copy-of-a.txt"  # another path, the same text: the run goes on where it was
    same.write_text(TINY_TEXT, encoding="utf-8")
    assert Trainer.resume(trainer.run_dir, corpus=str(same)).progress.window == saved_window
    other = tmp_path / "b.txt"  # another text (same characters): its own next epoch, from its start
    other.write_text(TINY_TEXT[::-1], encoding="utf-8")
    resumed = Trainer.resume(trainer.run_dir, corpus=str(other))
    assert resumed.progress.window == 0 and resumed.progress.epoch == trainer.progress.epoch + 1


def test_series_resume_from_another_folder_finds_a_csv_given_as_a_relative_path(tmp_path, monkeypatch, capsys):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    (start / "data.csv").write_text("v\n" + "".join(f"{i % 9}\n" for i in range(200)))
    monkeypatch.chdir(start)
    assert main(["series", "train", "--csv", "data.csv", "--name", "rel", *TINY_SERIES]) == 0
    monkeypatch.chdir(elsewhere)
    assert main(["series", "train", "--resume", str(tmp_path / "runs" / "rel"), "--steps", "4"]) == 0
    assert main(["series", "forecast", str(tmp_path / "runs" / "rel")]) == 0

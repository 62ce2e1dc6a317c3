"""Every flag of every command, fed hostile values: NaN, infinities, negatives, zero, huge numbers and the
wrong type. The flags come from the real argparse parsers, so a flag added later is covered without
editing this file. Each case must end in a clean accept (exit 0) or a one-line refusal (exit 2) that
names the flag, before any work is saved; never a traceback."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from rnn_playground.tui.cli.main import build_parser, main
from rnn_playground.tui.cli.terminal import EXIT_ERROR

from .conftest import TINY_TEXT

HUGE_INT = "1" + "0" * 30
INT_VALUES = ("nan", "inf", "-1", "0", HUGE_INT, "1e23", "abc", "1.5")
FLOAT_VALUES = ("nan", "inf", "-inf", "-1", "0", "1e308", "abc")
TEXT_VALUES = ("", "nan", "-1")
EXTRA_VALUES = {"--glob": ("/etc/*", "../*", "**/../*")}  # patterns that would reach outside the corpus folder


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for every parser that runs something, found by walking the subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, path + (name,))
    if path and parser.get_default("func") is not None:
        yield path, parser


def takes_value(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.nargs != 0 and not isinstance(
        action, (argparse._HelpAction, argparse._VersionAction, argparse.BooleanOptionalAction))


def values_for(action: argparse.Action) -> tuple[str, ...]:
    if action.type is int:
        return INT_VALUES
    if action.type is float:
        return FLOAT_VALUES
    return TEXT_VALUES + EXTRA_VALUES.get(action.option_strings[0], ())


def cases():
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if takes_value(action):
                for value in values_for(action):
                    yield pytest.param(path, action.option_strings[0], value,
                                       id=f"{' '.join(path)} {action.option_strings[0]}={value}")


CASES = list(cases())


def test_the_table_covers_every_command():
    covered = {path for path, _, _ in (case.values for case in CASES)}
    assert {("train",), ("sample",), ("gates",), ("eval",), ("series", "train"), ("series", "forecast")} <= covered
    assert len(CASES) > 200


@pytest.fixture(scope="module")
def runs_made(tmp_path_factory):
    """A tiny character run and a tiny series run, for the commands that read a checkpoint."""
    import torch
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("flags")
    corpus = folder / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    csv = folder / "series.csv"
    csv.write_text("t,v,w\n" + "".join(f"{i},{(i * 7) % 13},{i % 5}\n" for i in range(300)))
    runs = folder / "runs"
    old = os.environ.get("RNN_PLAYGROUND_RUNS")
    os.environ["RNN_PLAYGROUND_RUNS"] = str(runs)
    try:
        assert main(["train", "--corpus", str(corpus), *TINY_CHAR, "--name", "char"]) == 0
        assert main(["series", "train", "--csv", str(csv), "--column", "v", *TINY_SERIES, "--name", "series"]) == 0
    finally:
        if old is None:
            os.environ.pop("RNN_PLAYGROUND_RUNS")
        else:
            os.environ["RNN_PLAYGROUND_RUNS"] = old
    return {"corpus": corpus, "csv": csv, "char": runs / "char", "series": runs / "series"}


TINY_CHAR = ["--hidden", "4", "--layers", "1", "--embed", "4", "--batch", "2", "--seq", "8", "--steps", "2",
             "--minutes", "0.05", "--val-every", "1", "--sample-chars", "3", "--device", "cpu", "--no-amp"]
TINY_SERIES = ["--steps", "2", "--minutes", "0.05", "--hidden", "4", "--batch", "2", "--device", "cpu",
               "--val-every", "1"]


def base_argv(path: tuple[str, ...], flag: str, made: dict) -> list[str]:
    """A command line that runs quickly on tiny data, for the flag under test to be added to."""
    if path == ("train",):
        return ["train", "--corpus", str(made["corpus"]), *TINY_CHAR]
    if path == ("sample",):
        return ["sample", str(made["char"]), "--length", "5", "--device", "cpu"]
    if path == ("gates",):
        text = [] if flag in ("--text", "--file") else ["--text", "the quick fox"]  # one of the two is required
        return ["gates", str(made["char"]), *text]
    if path == ("series", "train"):
        from rnn_playground.core.series import SeriesConfig
        csv_only = flag.lstrip("-").replace("-", "_") in SeriesConfig.CSV_ONLY or flag == "--csv"
        source = ["--csv", str(made["csv"]), "--column", "v"] if csv_only else ["--signal", "sine", "--length", "200"]
        return ["series", "train", *source, *TINY_SERIES]
    if path == ("eval",):
        return ["eval", str(made["char"]), "--device", "cpu"]
    if path == ("sweep",):  # checked as a real sweep is, but nothing trains
        return ["sweep", "--corpus", str(made["corpus"]), *without(TINY_CHAR, "--device"), "--devices", "cpu",
                "--dry-run"]
    if path == ("lesson", "batching"):
        return ["lesson", "batching", "--corpus", str(made["corpus"]), "--batch", "2", "--seq", "4"]
    if path == ("lesson", "memory"):  # an experiment of a few steps
        return ["lesson", "memory", "--delays", "1", "--hidden", "4", "--steps", "2", "--no-cache"]
    if path == ("series", "forecast"):
        return ["series", "forecast", str(made["series"]), "--steps", "3"]
    return list(path)


def without(argv: list[str], flag: str) -> list[str]:
    """argv with `flag` and its value removed, so the flag under test is the only one of its kind."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == flag:
            skip = True
            continue
        out.append(token)
    return out


@pytest.mark.parametrize("path, flag, value", CASES)
def test_every_flag_refuses_bad_values_up_front(path, flag, value, runs_made, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # flags naming files (--runs-dir nan, --csv-out -1) write here
    monkeypatch.setenv("COLUMNS", "400")
    argv = without(base_argv(path, flag, runs_made), flag)
    if flag == "--csv":
        argv = without(argv, "--column")
    argv.append(f"{flag}={value}")
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals (a wrong type, a bad choice)
        code = exc.code
    out, err = capsys.readouterr()
    err_line = " ".join(err.split())
    assert "Traceback" not in err + out
    assert code in (0, EXIT_ERROR), f"exit {code}: {err_line[-500:]}"
    if code == EXIT_ERROR:
        assert flag in err_line, f"the refusal does not name {flag}: {err_line[-500:]}"
        made_here = [p for p in Path(tmp_path).rglob("*.safetensors")]
        made_in_runs = [p for p in (Path(os.environ["RNN_PLAYGROUND_RUNS"])).rglob("*.safetensors")]
        assert not made_here and not made_in_runs, "work was saved before the refusal"


@pytest.mark.parametrize("argv, message", [
    (["--sample-chars", "-1"], "--sample-chars must be from 0 to 100,000 (0 = none), got -1."),
    (["--clip", "nan"], "--clip must be a positive number, got nan."),
    (["--minutes", "nan"], "--minutes must be a positive number"),
    (["--epochs", "nan"], "--epochs must be a positive number"),
    (["--lr-half-life", "-10"], "--lr-half-life must be at least 0 (0 = off), got -10."),
    (["--seed", "1" + "0" * 23], "--seed must be from 0 to 9,223,372,036,854,775,807"),
    (["--glob", "/etc/*"], "--glob must be a file pattern inside the corpus folder, such as '*.txt', got '/etc/*'."),
    (["--dropout", "nan"], "--dropout must be in [0, 1), got nan."),
    (["--cell", "lstmx"], "--cell must be one of lstm, gru, rnn, got 'lstmx'."),
])
def test_the_reported_settings_are_refused_before_the_corpus_loads(argv, message, capsys, tmp_path):
    # The corpus does not exist: a refusal that names the flag came before anything was loaded.
    code = main(["train", "--corpus", str(tmp_path / "not-there.txt"), "--device", "cpu", *argv])
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_ERROR and message in err and "not-there" not in err


def test_series_data_seed_must_not_be_negative(capsys):
    assert main(["series", "train", "--signal", "noisy-sine", "--data-seed", "-1"]) == EXIT_ERROR
    assert "--data-seed must be from 0 to" in capsys.readouterr().err


def test_a_model_too_large_for_memory_is_refused_with_its_size_before_allocating():
    from rnn_playground.core.config import TrainConfig
    from rnn_playground.core.errors import ConfigError
    config = TrainConfig(hidden=100_000_000, device="cpu")
    weights, activations = config.training_bytes()
    assert weights > 10**17  # 4 x 10^16 LSTM weights of 4 bytes, four times over with Adam, and the average
    with pytest.raises(ConfigError, match=rf"need about {weights + activations:,} bytes to train .* bytes free on cpu"):
        config.validate()
    TrainConfig(hidden=512, device="cpu").validate()  # the default size fits

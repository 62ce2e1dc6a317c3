"""Checkpoints crafted by someone who recomputed the checksum (anyone can, with the project's own function):
huge sizes, odd vocabularies, wrong types and NaN weights are refused with a named error before anything
is allocated, by every command that reads a checkpoint; never a traceback, never a hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnn_playground.core.checkpoint import FORMAT, _digest, _parse_header
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.cli.terminal import EXIT_ERROR

from .conftest import TINY_TEXT, tiny_config


def craft(source: Path, target: Path, edit_meta=None, edit_tensors=None) -> Path:
    """A copy of `source` with its metadata and tensors edited and the checksum recomputed, so that the
    only thing wrong with it is what the edit did."""
    data = source.read_bytes()
    raw = _parse_header(source, data[:8], data[8:])["__metadata__"]
    meta = {key: json.loads(value) for key, value in raw.items() if key not in ("digest", "format")}
    tensors = dict(st_load(data))
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    meta_json = {key: json.dumps(value, sort_keys=True) for key, value in meta.items()}
    meta_json["format"] = json.dumps(FORMAT)
    meta_json["digest"] = _digest(tensors, meta_json)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(st_save(tensors, metadata=meta_json))
    return target


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny character run and a tiny series run to craft from."""
    from rnn_playground.core.series import make_config, new_series_trainer
    from rnn_playground.core.trainer import Trainer
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("crafted")
    corpus = folder / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    char = Trainer(tiny_config(corpus, run_name="char", runs_dir=str(folder / "runs"), hidden=8, steps=4,
                               val_every=2, sample_chars=0))
    list(char.run())
    series = new_series_trainer(make_config(signal="sine", length=200, steps=2, hidden=4, batch=2, device="cpu",
                                            run_name="series", runs_dir=str(folder / "runs")))
    list(series.run())
    return {"char": char.run_dir / "last.safetensors", "series": series.run_dir / "last.safetensors"}


def set_in(*path_and_value):
    """An edit setting meta[a][b]... = value, given as set_in(a, b, ..., value)."""
    *path, value = path_and_value

    def edit(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def nan_weight(tensors):
    name = next(k for k in tensors if k.startswith("model.") and k.endswith("weight"))
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0] = float("nan")


CHAR_COMMANDS = {
    "sample": lambda path: ["sample", str(path), "--length", "5", "--device", "cpu"],
    "gates": lambda path: ["gates", str(path), "--text", "the fox"],
    "resume": lambda path: ["train", "--resume", str(path), "--steps", "6", "--device", "cpu"],
}

CHAR_CASES = [
    ("huge hidden", set_in("model", "hidden", 10**9), None, "describes a model of"),
    ("a million layers", set_in("model", "layers", 10**6), None, "describes a model of"),
    ("huge vocab size", set_in("model", "vocab_size", 10**12), None, "vocabulary"),
    ("two-character vocab entry", lambda m: m["vocab"].__setitem__(3, "ab"), None, "single characters"),
    ("number in the vocab", lambda m: m["vocab"].__setitem__(3, 7), None, "single characters"),
    ("vocab not a list", set_in("vocab", "abc"), None, "single characters"),
    ("repeated vocab entry", lambda m: m["vocab"].__setitem__(1, m["vocab"][0]), None, "sorted, distinct"),
    ("hidden as text", set_in("model", "hidden", "8"), None, "lacks a usable model description"),
    ("model as a list", set_in("model", [1, 2]), None, "lacks a usable model description"),
    ("NaN weight", None, nan_weight, "holds NaN or infinite values"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", list(CHAR_COMMANDS))
@pytest.mark.parametrize("name, edit_meta, edit_tensors, message", CHAR_CASES, ids=[c[0] for c in CHAR_CASES])
def test_crafted_character_checkpoints_are_refused(made, tmp_path, capsys, monkeypatch, command, name, edit_meta,
                                                    edit_tensors, message):
    monkeypatch.setenv("COLUMNS", "400")
    path = craft(made["char"], tmp_path / "run" / "last.safetensors", edit_meta, edit_tensors)
    assert main(CHAR_COMMANDS[command](path)) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err, err


RESUME_CASES = [
    ("negative step", set_in("progress", "step", -5), "progress counters"),
    ("step as text", set_in("progress", "step", "x"), "progress counters"),
    ("best loss as text", set_in("best_val_loss", "low"), "progress counters"),
    ("huge hidden in the settings", set_in("config", "hidden", 10**9), "stored settings are unusable"),
    ("settings as a list", set_in("config", []), "stored settings are unusable"),
    ("NaN clip in the settings", set_in("config", "clip", float("nan")), "stored settings are unusable"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name, edit_meta, message", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_crafted_progress_and_settings_are_refused_on_resume(made, tmp_path, capsys, monkeypatch, name, edit_meta,
                                                             message):
    monkeypatch.setenv("COLUMNS", "400")
    path = craft(made["char"], tmp_path / "run" / "last.safetensors", edit_meta)
    assert main(CHAR_COMMANDS["resume"](path)) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err, err


def test_a_crafted_optimizer_tensor_name_is_refused(made, tmp_path, capsys):
    def rename(tensors):
        name = next(k for k in tensors if k.startswith("optim."))
        tensors["optim.x." + name.split(".", 2)[2]] = tensors.pop(name)
    path = craft(made["char"], tmp_path / "run" / "last.safetensors", edit_tensors=rename)
    assert main(CHAR_COMMANDS["resume"](path)) == EXIT_ERROR
    assert "optimizer state does not fit" in capsys.readouterr().err


SERIES_CASES = [
    ("huge inputs", set_in("model", "inputs", 10**9), "describes a model of"),
    ("huge hidden", set_in("model", "hidden", 10**8), "describes a model of"),
    ("zero spread", set_in("normalizer", "std", [0.0]), "normalization statistics"),
    ("negative data seed", set_in("series", "data_seed", -1), "lacks usable series settings"),
    ("length as text", set_in("series", "length", "many"), "lacks usable series settings"),
    ("period as text", set_in("data", "period", "weekly"), "lacks usable series settings"),
    ("data as a list", set_in("data", [3]), "lacks usable series settings"),
]
SERIES_COMMANDS = {
    "forecast": lambda path: ["series", "forecast", str(path), "--steps", "3", "--device", "cpu"],
    "resume": lambda path: ["series", "train", "--resume", str(path), "--steps", "4", "--device", "cpu"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", list(SERIES_COMMANDS))
@pytest.mark.parametrize("name, edit_meta, message", SERIES_CASES, ids=[c[0] for c in SERIES_CASES])
def test_crafted_series_checkpoints_are_refused(made, tmp_path, capsys, monkeypatch, command, name, edit_meta,
                                                message):
    monkeypatch.setenv("COLUMNS", "400")
    path = craft(made["series"], tmp_path / "run" / "last.safetensors", edit_meta)
    assert main(SERIES_COMMANDS[command](path)) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err, err


def test_an_untouched_copy_still_loads(made, tmp_path, capsys):
    """The crafting itself changes nothing: an unedited copy samples and forecasts."""
    assert main(CHAR_COMMANDS["sample"](craft(made["char"], tmp_path / "c" / "last.safetensors"))) == 0
    assert main(SERIES_COMMANDS["forecast"](craft(made["series"], tmp_path / "s" / "last.safetensors"))) == 0


@pytest.mark.parametrize("name, edit_meta", [
    ("model-a-list", lambda m: m["config"].__setitem__("model", [1, 2])),
    ("config-a-list", lambda m: m.__setitem__("config", ["lstm"])),
    ("step-a-word", lambda m: m["progress"].__setitem__("step", "many")),
], ids=["model-a-list", "config-a-list", "step-a-word"])
def test_crafted_metadata_lists_the_run_as_unreadable_beside_the_others(made, tmp_path, capsys, name, edit_meta):
    """`runs` and the Runs screen's details read the checkpoint's metadata too: odd metadata there marks
    that one run unreadable (and why); the runs beside it list normally."""
    import shutil

    from rnn_playground.core.runs import list_runs, run_details
    runs_dir = tmp_path / "runs"
    shutil.copytree(made["char"].parent, runs_dir / "good")
    (runs_dir / "bad").mkdir()
    craft(made["char"], runs_dir / "bad" / "last.safetensors", edit_meta)
    infos = {info.name: info for info in list_runs(runs_dir)}
    assert infos["good"].problem is None and infos["bad"].problem
    run_details(runs_dir / "bad")  # no exception: the details panel shows what it can
    assert main(["runs", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "unreadable bad:" in out and "Traceback" not in out

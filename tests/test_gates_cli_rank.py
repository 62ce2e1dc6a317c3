"""`rnn-playground gates RUN --rank`: units ranked by the effect of silencing them, headless, on a model
with a unit planted to carry "inside quotes"; the JSON equals core.ablation.rank_units on the same tracer."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rnn_playground.core.ablation import rank_units
from rnn_playground.core.checkpoint import save_checkpoint
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import text_feature
from rnn_playground.tui.cli import gates as gates_cli
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.cli.terminal import EXIT_ERROR

from .conftest import PLANT_TEXT, ablation_vocab, planted_quote_model

UNIT = 3


@pytest.fixture
def planted(tmp_path):
    """The planted model saved as a float32 checkpoint, as the CLI reads any run's."""
    model = planted_quote_model(unit=UNIT).float()
    return save_checkpoint(tmp_path / "planted.safetensors", {f"model.{k}": v for k, v in model.state_dict().items()},
                           {"model": model.config.to_dict(), "vocab": list(ablation_vocab().chars)})


def table_rows(out: str, title: str) -> list[list[str]]:
    """The cells of the Rich table under `title`, row by row (its header and box lines dropped)."""
    lines = out[out.index(title):].splitlines()[1:]
    rows = []
    for line in lines:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_rank_with_a_feature_names_the_planted_unit_first(planted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    out_json = tmp_path / "rank.json"
    assert main(["gates", str(planted), "--text", PLANT_TEXT, "--rank", "--find", "inside-quotes", "--top", "3",
                 "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(r"ranked 6 units over 87 characters in [\d.]+ s", captured.err)
    assert "wrote the full trace and the ranking to" in captured.err
    assert "units that best track inside-quotes" in out  # the correlation search, as --find alone prints it
    by_text = table_rows(out, "the 3 units whose silencing raises the loss over the text most")
    by_feature = table_rows(out, "the 3 units whose silencing raises the loss over the characters inside-quotes")
    assert [row[:3] for row in by_text[:1]] == [["1", "1 of 1", str(UNIT)]]
    assert [row[:3] for row in by_feature[:1]] == [["1", "1 of 1", str(UNIT)]]
    assert len(by_text) == 3 and len(by_text[0]) == 5  # rank, layer, unit, Δloss text, Δloss feature
    groups = table_rows(out, "the 3 units that best track inside-quotes against the top 3 by Δloss")
    assert groups[0][:3] == ["found by correlation, and matter", "1 of 1", str(UNIT)]
    assert any(row[0] == "matter, missed by correlation" for row in groups)

    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert data["text"] == PLANT_TEXT and set(data["values"]) >= {"c", "h"}  # the trace is still all there
    ranking = data["ranking"]
    tracer = GateTracer.from_checkpoint(planted)
    feature = text_feature(PLANT_TEXT, "inside-quotes")
    expected = rank_units(tracer, PLANT_TEXT, feature=feature)
    assert ranking["baseline"] == expected.baseline and ranking["predictions"] == len(PLANT_TEXT) - 1
    assert ranking["precision"] == expected.precision == "exact"  # a 6-unit model ranks exactly
    assert np.array_equal(np.array(ranking["change"]), expected.change)
    assert np.shape(ranking["change"]) == (1, 6)
    assert ranking["feature"]["name"] == "inside-quotes" and ranking["feature"]["regex"] is None
    assert ranking["feature"]["marked"] == expected.marked == int((feature[1:] > 0).sum())
    assert ranking["feature"]["baseline"] == expected.feature_baseline
    assert np.array_equal(np.array(ranking["feature"]["change"]), expected.feature_change)
    assert int(np.argmax(ranking["change"][0])) == UNIT
    comparison = ranking["comparison"]
    assert comparison["by"] == "feature"
    assert (comparison["both"][0]["layer"], comparison["both"][0]["unit"]) == (0, UNIT)
    assert comparison["both"][0]["change"] == expected.feature_change[0, UNIT]


def test_rank_alone_ranks_by_the_text_and_shows_no_step_table(planted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.setattr(gates_cli, "RANK_PROGRESS_S", 0.0)  # every progress report prints a line
    text = PLANT_TEXT * 4  # long enough for a report before the end (rank_units reports every 256 steps)
    out_json = tmp_path / "rank.json"
    assert main(["gates", str(planted), "--text", text, "--rank", "--top", "2", "--threads", "0",
                 "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "ranking units by the effect of silencing them… 73%" in captured.err  # step 255 of 347
    rows = table_rows(out, "the 2 units whose silencing raises the loss over the text most")
    assert rows[0][:3] == ["1", "1 of 1", str(UNIT)] and len(rows) == 2 and len(rows[0]) == 4
    assert "Silencing a unit sets its h and c to 0 at every step" in out
    assert "top 3 predictions" not in out and "gate saturation" not in out and "correlation" not in out
    ranking = json.loads(out_json.read_text(encoding="utf-8"))["ranking"]
    assert ranking["feature"] is None and ranking["comparison"] is None
    expected = rank_units(GateTracer.from_checkpoint(planted), text)
    assert np.allclose(ranking["change"], expected.change, rtol=0, atol=1e-5)  # torch's threads may round apart


@pytest.mark.parametrize("extra, message", [
    (["--intervene", "L1:U3:c=0"], "--rank cannot be combined with --intervene"),
    (["--layer", "1"], "--layer does not apply to --rank"),
    (["--regex", "z"], "--regex 'z'"),  # marks nothing: the correlation search refuses first, naming the flag
])
def test_rank_refusals_name_the_flag(planted, capsys, extra, message):
    assert main(["gates", str(planted), "--text", PLANT_TEXT, "--rank", *extra]) == EXIT_ERROR
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert message in err and "Traceback" not in err + captured.out


def test_rank_on_one_character_says_why(planted, capsys):
    assert main(["gates", str(planted), "--text", "a", "--rank"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert "--rank: Ranking units needs a text of at least 2 characters" in err


def test_rank_on_a_series_run_is_refused(tmp_path, capsys):
    assert main(["series", "train", "--signal", "sine", "--length", "200", "--steps", "2", "--minutes", "0.05",
                 "--hidden", "4", "--batch", "2", "--device", "cpu", "--val-every", "1", "--name", "wave"]) == 0
    capsys.readouterr()
    assert main(["gates", str(tmp_path / "runs" / "wave"), "--rank"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert "--rank ranks the units of a character model" in err and "not built yet" in err


def test_threads_default_to_one_for_tracing_and_the_free_cores_for_ranking(planted, monkeypatch):
    """The tracer's small steps keep one thread; the ranking's 512-copy products take the free cores, as
    choose_threads counts them now, unless --threads says otherwise (0: torch's default)."""
    import argparse

    import torch

    from rnn_playground.core import device
    from rnn_playground.core.device import usable_cpus
    tracer = GateTracer.from_checkpoint(planted)
    given = argparse.Namespace(threads=None)
    assert gates_cli.tracing_threads(given) == 1
    assert gates_cli.ranking_threads(given, tracer) == 1  # 6 units: too little work for a second thread
    large = argparse.Namespace(hidden=512)  # all ranking_threads reads of a tracer
    monkeypatch.setattr(device.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # an idle machine: every core
    assert gates_cli.ranking_threads(given, large) == usable_cpus()
    monkeypatch.setattr(device.os, "getloadavg", lambda: (float(usable_cpus()), 0.0, 0.0))  # all busy: one
    assert gates_cli.ranking_threads(given, large) == 1
    assert gates_cli.tracing_threads(argparse.Namespace(threads=0)) is None
    assert gates_cli.ranking_threads(argparse.Namespace(threads=0), tracer) == torch.get_num_threads()
    assert gates_cli.ranking_threads(argparse.Namespace(threads=1), tracer) == 1

"""The one home of each piece of formatting both faces show: model names, sizes, rates, error text."""

from __future__ import annotations

import pytest

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.model import CharRNN, ModelConfig, describe_model
from rnn_playground.core.runs import RunInfo
from rnn_playground.core.series import SeriesModelConfig
from rnn_playground.tui.cli.commands import run_json
from rnn_playground.tui.viewmodel.format import error_text, fmt_rate, human_size


def test_a_model_is_named_the_same_from_a_config_a_tracer_and_a_checkpoints_mapping():
    config = ModelConfig(vocab_size=5, cell="gru", hidden=33, layers=3, embed=4)
    tracer = GateTracer(CharRNN(config), Vocab("abcde"))
    assert describe_model(config) == describe_model(tracer) == describe_model(config.to_dict()) == "GRU 3x33"
    assert tracer.describe() == "GRU 3x33, 5 characters"
    assert describe_model(SeriesModelConfig(inputs=1, cell="lstm", hidden=8, layers=2)) == "LSTM 2x8"


def test_a_partial_or_odd_model_mapping_shows_question_marks():
    assert describe_model({}) == "? ?x?"
    assert describe_model({"cell": "lstm", "hidden": 512}) == "LSTM ?x512"
    assert describe_model({"cell": 7, "layers": 2, "hidden": 4}) == "7 2x4"  # run.json can hold anything


@pytest.mark.parametrize("size, text", [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"), (5 * 2**20, "5.0 MB"),
    (3 * 2**30, "3.0 GB"), (2**40, "1.0 TB"), (2048 * 2**40, "2048.0 TB"),
])
def test_sizes_are_shown_in_binary_units_up_to_terabytes(size, text):
    assert human_size(size) == text


def test_the_runs_listing_json_keeps_the_model_name(tmp_path):
    info = RunInfo(name="r", path=tmp_path, model=describe_model({"cell": "lstm", "layers": 2, "hidden": 512}),
                   step=3, best_val_loss=None, device="cpu", size_bytes=2**40, updated=0.0, live=False, kind="char")
    assert run_json(info)["model"] == "LSTM 2x512" and run_json(info)["size_bytes"] == 2**40


def test_rates_are_whole_numbers_with_thousands_separators():
    assert fmt_rate(1234567.6) == "1,234,568" and fmt_rate(None) == "-"


def test_an_engine_error_is_shown_as_its_own_message_and_anything_else_with_its_type():
    assert error_text(ConfigError("Batch must be at least 1.")) == "Batch must be at least 1."
    assert error_text(ConfigError("Batch must be at least 1."), "Tracing failed") == "Batch must be at least 1."
    assert error_text(ValueError("bad")) == "ValueError: bad"
    assert error_text(ValueError("bad"), "Tracing failed") == "Tracing failed: ValueError: bad"

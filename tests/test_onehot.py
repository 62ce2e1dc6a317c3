"""--embed onehot: the course's exact input (one-hot rows into the recurrent layer, no embedding layer)
trains, checkpoints, resumes, samples (fp32 and int8) and traces like an embedded model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnn_playground.core.checkpoint import load_checkpoint
from rnn_playground.core.config import TrainConfig, embed_from_text
from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import ConfigError
from rnn_playground.core.events import StepEvent
from rnn_playground.core.gates import GateTracer
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import ONEHOT, CharRNN, ModelConfig, OneHot, describe_model
from rnn_playground.core.sampling import Sampler, SampleSettings
from rnn_playground.core.trainer import Trainer
from rnn_playground.tui.cli.main import main
from rnn_playground.tui.viewmodel.settings import check_settings, config_form_values

from .conftest import long_config, run_to_end, tiny_config
from .tui_helpers import make_app, press, type_into, wait_for

TEXT = "hello world, hello one-hot\n"


def onehot_model(cell: str = "lstm", hidden: int = 12, layers: int = 2) -> tuple[CharRNN, Vocab]:
    torch.manual_seed(0)
    vocab = Vocab(sorted(set(TEXT)))
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, hidden=hidden, layers=layers, embed=ONEHOT,
                                dropout=0.0))
    return model.eval(), vocab


def test_the_input_is_the_one_hot_row_and_nothing_is_learned_before_the_recurrent_layer():
    model, vocab = onehot_model()
    assert isinstance(model.embed, OneHot) and model.rnn.input_size == len(vocab)
    ids = vocab.encode(TEXT)
    rows = model.embed(ids)
    assert torch.equal(rows, torch.nn.functional.one_hot(ids, len(vocab)).float())
    assert not any(name.startswith("embed.") for name in model.state_dict())
    assert model.config.parameter_count() == sum(p.numel() for p in model.parameters())
    assert describe_model(model.config) == "LSTM 2x12 onehot"
    assert describe_model(model.config.to_dict()) == "LSTM 2x12 onehot"


def step_losses(events) -> dict[int, float]:
    return {e.step: e.loss for e in events if isinstance(e, StepEvent)}


def test_trains_checkpoints_and_resumes_bit_for_bit(tiny_corpus):
    whole_trainer = Trainer(tiny_config(tiny_corpus, embed=ONEHOT, dropout=0.3, batch=4, seq=32, steps=50,
                                        val_every=7))
    whole = step_losses(run_to_end(whole_trainer))
    first, last = np.mean([whole[s] for s in range(1, 6)]), np.mean([whole[s] for s in range(46, 51)])
    assert last < 0.9 * first, (first, last)  # fixed seed: 3.74 -> 3.25
    assert isinstance(whole_trainer.model.embed, OneHot)
    checkpoint = load_checkpoint(whole_trainer.run_dir / "last.safetensors")
    assert checkpoint.meta["model"]["embed"] == ONEHOT
    assert not [name for name in checkpoint.tensors if ".embed." in name or name.startswith("model.embed")]
    # the loaded model holds exactly the saved weights
    model, _, _ = load_model(whole_trainer.run_dir, "cpu")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, checkpoint.tensors[f"model.{name}"]), name
    # resumed from the middle, it continues exactly
    split = Trainer(tiny_config(tiny_corpus, embed=ONEHOT, dropout=0.3, batch=4, seq=32, steps=23, val_every=7,
                                run_name="split"))
    run_to_end(split)
    resumed = step_losses(run_to_end(Trainer.resume(split.run_dir, steps=50)))
    assert sorted(resumed) == list(range(24, 51))
    assert all(resumed[s] == whole[s] for s in resumed)
    other = load_checkpoint(split.run_dir / "last.safetensors")
    names = {k for k in checkpoint.tensors if k.startswith(("model.", "raw."))}
    assert names == {k for k in other.tensors if k.startswith(("model.", "raw."))}
    assert all(torch.equal(checkpoint.tensors[k], other.tensors[k]) for k in names)


def test_samples_in_fp32_and_int8():
    model, vocab = onehot_model(hidden=16)
    with torch.no_grad():
        logits, _ = model(vocab.encode(TEXT).unsqueeze(0))
    expected = torch.softmax(logits[0, :-1], -1)
    fp32 = Sampler(model, vocab, "fp32")
    assert torch.allclose(fp32.teacher_forced(TEXT), expected, atol=1e-6)
    text = fp32.generate(SampleSettings(prime="hello", length=30, seed=3))
    assert len(text) == 30 and not vocab.missing(text)  # the continuation of the prime
    if not hasattr(torch, "_weight_int8pack_mm"):
        pytest.skip("this torch lacks the int8 weight kernel")
    int8 = Sampler(model, vocab, "int8")
    assert int8.weights == "int8"
    assert float((int8.teacher_forced(TEXT) - expected).abs().max()) < 0.05
    assert len(int8.generate(SampleSettings(prime="he", length=20, seed=3))) == 20


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_gate_tracer_equals_the_modules_forward(cell):
    model, vocab = onehot_model(cell)
    tracer = GateTracer(model, vocab)
    assert tracer.embed == ONEHOT and tracer.describe().startswith(f"{cell.upper()} 2x12 onehot")
    trace = tracer.trace(TEXT)
    with torch.no_grad():
        out, _ = model.rnn(model.embed(vocab.encode(TEXT).unsqueeze(0)))
        logits, _ = model(vocab.encode(TEXT).unsqueeze(0))
    assert np.abs(trace.values("h")[:, -1] - out[0].numpy()).max() < 1e-6
    assert np.abs(trace.probs - torch.softmax(logits[0], -1).numpy()).max() < 1e-6


def test_the_cli_trains_samples_and_lists_a_onehot_run(tiny_corpus, tmp_path, capsys):
    runs_dir = tmp_path / "cli-runs"
    code = main(["train", "--corpus", str(tiny_corpus), "--steps", "12", "--name", "hot", "--runs-dir", str(runs_dir),
                 "--hidden", "16", "--embed", "onehot", "--batch", "8", "--seq", "16", "--val-every", "6",
                 "--sample-chars", "10", "--device", "cpu", "--no-amp"])
    assert code == 0
    meta = load_checkpoint(runs_dir / "hot" / "last.safetensors").meta
    assert meta["model"]["embed"] == ONEHOT and meta["config"]["embed"] == ONEHOT
    capsys.readouterr()
    assert main(["runs", str(runs_dir)]) == 0
    assert "LSTM 2x16 onehot" in capsys.readouterr().out
    assert main(["sample", str(runs_dir / "hot"), "--prime", "The ", "--length", "20", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("The ")
    # the app launches runs with the flags of its settings: 0 is one-hot too
    assert embed_from_text("0") == embed_from_text("onehot") == embed_from_text(" OneHot ") == ONEHOT


@pytest.mark.parametrize("value", ["big", "one hot", "6.5"])
def test_a_bad_embed_is_refused_in_words(tiny_corpus, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--corpus", str(tiny_corpus), "--embed", value, "--steps", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "--embed must be an embedding size (a whole number, such as 64) or onehot" in err and value in err


def test_a_negative_embed_is_refused_in_words(tiny_corpus, capsys):
    assert main(["train", "--corpus", str(tiny_corpus), "--embed", "-3", "--steps", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--embed must be an embedding size of at least 1, or onehot" in err and "Traceback" not in err


def test_a_negative_embed_is_refused_by_the_configs():
    with pytest.raises(ConfigError, match="--embed must be an embedding size of at least 1, or onehot"):
        TrainConfig(embed=-1, device="cpu").validate()
    with pytest.raises(ConfigError, match="embed must be at least 1, or 0 for one-hot input"):
        ModelConfig(vocab_size=5, embed=-1)


def test_the_form_reads_and_shows_onehot():
    check = check_settings({"embed": "onehot"}, budget="1")
    assert check.ok and check.config.embed == ONEHOT
    assert config_form_values(check.config)["embed"] == "onehot"
    assert config_form_values(TrainConfig())["embed"] == "64"
    bad = check_settings({"embed": "hot"}, budget="1")
    assert "--embed must be an embedding size" in bad.errors["embed"]


async def test_typing_onehot_in_the_train_form_starts_a_onehot_run(tmp_path, tiny_corpus):
    app = make_app(tmp_path, initial_config=long_config(tiny_corpus))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await type_into(pilot, "#embed", "onehotx")
        await wait_for(pilot, lambda: "embed must be an embedding size" in str(app.screen.query_one("#err-embed")
                                                                               .content), 5, "embed error")
        await type_into(pilot, "#embed", "onehot")
        await wait_for(pilot, lambda: not str(app.screen.query_one("#err-embed").content), 5, "embed accepted")
        await press(pilot, "escape")
        await wait_for(pilot, lambda: app.screen.focused is app.screen.query_one("#start"), 5, "out of the field")
        await press(pilot, "s")
        await wait_for(pilot, lambda: app.train_controller.active, 30, "the run started")
        await wait_for(pilot, lambda: getattr(app.train_controller.backend, "trainer", None) is not None
                       and app.train_controller.snapshot.step > 0, 60, "a step")
        trainer = app.train_controller.backend.trainer
        assert trainer.config.embed == ONEHOT and isinstance(trainer.model.embed, OneHot)
        await press(pilot, "x")
        await wait_for(pilot, lambda: not app.train_controller.active, 30, "stopped")

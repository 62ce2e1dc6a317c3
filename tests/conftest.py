"""Shared fixtures: small real corpora and tiny real models, trained on the CPU in a second or two."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_TEXT = (
    "The quick brown fox jumps over the lazy dog. \"Quoted words\" (and parens) follow.\n"
    "def f(x):\n    return [x, (x + 1), {'k': x}]\n"
) * 60


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test gets its own runs folder and download cache, and a fixed thread count."""
    monkeypatch.setenv("RNN_PLAYGROUND_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("RNN_PLAYGROUND_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


def tiny_config(corpus: Path, **overrides):
    from rnn_playground.core.config import TrainConfig
    # Validation by steps alone (val_seconds=0): a loaded machine must not add validations by time.
    settings = dict(corpus=str(corpus), hidden=32, layers=2, embed=16, batch=8, seq=16, steps=40,
                    val_every=20, val_seconds=0, log_every=1, sample_chars=20, lr=1e-2, warmup=5, amp=False,
                    device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def long_config(tiny_corpus, **overrides):
    """A tiny model with a budget long enough that the test decides when it ends."""
    settings = dict(steps=100_000, val_every=25, log_every=0)
    settings.update(overrides)
    return tiny_config(settings.pop("corpus", tiny_corpus), **settings)


def run_to_end(trainer) -> list:
    return list(trainer.run())


@pytest.fixture
def tiny_run(tiny_corpus, tmp_path) -> Path:
    """A finished tiny LSTM run folder (last and best checkpoints, metrics.jsonl)."""
    from rnn_playground.core.trainer import Trainer
    trainer = Trainer(tiny_config(tiny_corpus, run_name="tiny", runs_dir=str(tmp_path / "runs")))
    run_to_end(trainer)
    return trainer.run_dir


@pytest.fixture
def deterministic(monkeypatch, tmp_path):
    """For pictures: no animations, colour on, and the test's folder as the working directory (the
    runs folder shows as the relative "runs")."""
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def snap_compare(snap_compare):
    """pytest-textual-snapshot's `snap_compare`, with every text input's cursor held steady before
    the capture: a blinking cursor hides itself every 0.5 s, so on a loaded machine the picture
    would depend on how long `run_before` took."""
    import inspect

    from textual.widgets import Input

    def compare(app, *args, run_before=None, **kwargs):
        async def steady_run_before(pilot):
            if run_before is not None:
                result = run_before(pilot)
                if inspect.isawaitable(result):
                    await result
            for text_input in pilot.app.screen.query(Input):
                text_input.cursor_blink = False  # shows the cursor where the input has focus
            await pilot.pause()

        return snap_compare(app, *args, run_before=steady_run_before, **kwargs)

    return compare


# --------------------------------------------------------------------------- named corpora offline

def named_corpus_sources(registry: dict) -> list[tuple[str, str]]:
    """(name, source) for the named-corpus tests: every name with a generated stand-in, so a fresh
    clone tests the verification path; and with the real file where ../shared/data has it."""
    return [(name, source) for name in sorted(registry) for source in ("generated", "shared")
            if source == "generated" or (SHARED_DATA / registry[name].filename).is_file()]


def named_corpus_copy(name: str, source: str, monkeypatch, tmp_path: Path):
    """Register named corpus `name` so that its "download" is a local file:// URL, and return
    (entry, bytes). "shared": the real registry entry (real size and sha256) over the shared copy;
    "generated": a generated text with its own size and sha256, under the real file name."""
    import hashlib
    from dataclasses import replace

    from rnn_playground.core.download import REMOTE_CORPORA, RemoteFile
    real = REMOTE_CORPORA[name]
    if source == "shared":
        data = (SHARED_DATA / real.filename).read_bytes()
    else:
        data = "".join(f"{name} line {i}: the quick brown fox, {i * i % 97} lazy dogs.\n"
                       for i in range(2000)).encode()
    origin = tmp_path / "origin" / real.filename
    origin.parent.mkdir(parents=True, exist_ok=True)
    origin.write_bytes(data)
    entry = (replace(real, url=origin.as_uri()) if source == "shared" else
             RemoteFile(name=name, url=origin.as_uri(), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                        filename=real.filename))
    monkeypatch.setitem(REMOTE_CORPORA, name, entry)
    return entry, data


@pytest.fixture(autouse=True)
def _no_unexpected_errors():
    """The app reports an unexpected error and carries on (tui/app/guard.py, report_unexpected):
    a test that met one still fails, with its traceback."""
    from rnn_playground.tui.app.guard import UNEXPECTED_ERRORS
    UNEXPECTED_ERRORS.clear()
    yield
    errors, UNEXPECTED_ERRORS[:] = list(UNEXPECTED_ERRORS), []
    assert not errors, "unexpected errors in the app:\n" + "\n".join(errors)


# ----- tiny constructed models for ranking units by effect (tests/test_ablation.py, the gates CLI's --rank)

ABLATION_TEXT = 'a "bab" ba "ab" bb "aba" a b "b" ab "bba" ' * 3
PLANT_TEXT = 'bb"aaa"bbb"aa"b "aaaa"bb b"a"' * 3  # inside quotes only a, outside b and spaces


def ablation_vocab():
    from rnn_playground.core.corpus import Vocab
    return Vocab.from_text(ABLATION_TEXT)


def ablation_model(cell: str, layers: int, hidden: int = 6, seed: int = 2):
    """A random float64 CharRNN over ablation_vocab(), its weights doubled so that units differ clearly."""
    from rnn_playground.core.model import CharRNN, ModelConfig
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=len(ablation_vocab()), cell=cell, hidden=hidden, layers=layers, embed=4,
                                dropout=0.0))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2.0)
    return model.double().eval()


def planted_quote_model(unit: int = 3, hidden: int = 6):
    """A 1-layer LSTM whose unit `unit` is +1 inside quotes and -1 outside (a quote flips it), and an
    output layer that predicts a inside and b outside from it; the other units are small and random, and
    blind to a and b (their embedding is zero), so only the planted unit tells inside from outside."""
    vocab = ablation_vocab()
    model = ablation_model("lstm", 1, hidden, seed=5)
    quote, a, b = vocab.index['"'], vocab.index["a"], vocab.index["b"]
    rnn = model.rnn
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.1)
        model.embed.weight.zero_()
        model.embed.weight[quote, 0] = 1.0  # embedding dimension 0: "this is a quote"
        rows = {name: slice(k * hidden + unit, k * hidden + unit + 1) for k, name in enumerate("ifgo")}
        for name in "ifgo":
            rnn.weight_ih_l0[rows[name]] = 0
            rnn.weight_hh_l0[rows[name]] = 0
            rnn.bias_hh_l0[rows[name]] = 0
        # f = 1 and i = 0 except at a quote, where f = 0, i = 1 and g = -sign(c): the cell flips
        rnn.bias_ih_l0[rows["f"]] = 20.0
        rnn.weight_ih_l0[rows["f"], 0] = -40.0
        rnn.bias_ih_l0[rows["i"]] = -20.0
        rnn.weight_ih_l0[rows["i"], 0] = 40.0
        rnn.bias_ih_l0[rows["o"]] = 20.0
        rnn.bias_ih_l0[rows["g"]] = 0.0
        rnn.weight_hh_l0[rows["g"], unit] = -40.0  # g = -tanh(40 h): the opposite of the current sign
        rnn.bias_ih_l0[rows["g"]] = 10.0           # ... starting from outside (c = 0 reads as outside)
        model.head.weight[:, unit] = 0.0
        model.head.weight[a, unit] = 2.0           # inside quotes, a is likely
        model.head.weight[b, unit] = -2.0          # outside, b is
    return model

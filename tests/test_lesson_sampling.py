"""The Sampling page: each stage is core.sampling.next_distribution on the model's own logits."""

from __future__ import annotations

import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.core.sampling import Sampler, SampleSettings, next_distribution
from rnn_playground.tui.viewmodel.lesson.page import Source, line_text
from rnn_playground.tui.viewmodel.lesson.sampling_page import SWEEP_TEMPERATURES, SamplingPage, sweep_length

from .conftest import TINY_TEXT, tiny_config
from .tui_helpers import until


@pytest.fixture
def source() -> Source:
    vocab = Vocab.from_text(TINY_TEXT)
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(len(vocab), hidden=24, layers=2, embed=8, dropout=0.2)).eval()
    return Source(model, vocab, tiny_config("x"), TINY_TEXT)


def model_logits(source: Source, prime: str) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = source.model(source.vocab.encode(prime)[None])
    return logits[0, -1]


def spread(logits: torch.Tensor, settings: SampleSettings) -> torch.Tensor:
    probs, indices = next_distribution(logits[None], settings)
    if indices is None:
        return probs[0]
    full = torch.zeros(logits.shape[-1])
    full[indices[0]] = probs[0]
    return full


def test_each_stage_is_next_distribution_on_the_models_logits(source):
    page = SamplingPage(source)
    page.handle("type", "def f(x")
    for action in ("warmer", "warmer", "more_k", "more_k", "more_k", "more_k", "narrower_p", "narrower_p"):
        page.handle(action)
    assert (page.temperature, page.top_k, page.top_p) == (1.0, 5, 0.9)
    logits = model_logits(source, "def f(x")
    wanted = [SampleSettings(temperature=1.0), SampleSettings(temperature=1.0),
              SampleSettings(temperature=1.0, top_k=5), SampleSettings(temperature=1.0, top_k=5, top_p=0.9)]
    stages = page.stages()
    for stage, settings in zip(stages, wanted, strict=True):
        expected = spread(logits, settings)
        assert torch.allclose(stage.probs, expected, atol=1e-6)
        kept = expected[expected > 0].double()
        assert stage.entropy_bits == pytest.approx(float(-(kept * kept.log2()).sum()), abs=1e-6)
    assert int((stages[2].probs > 0).sum()) == 5
    assert stages[3].entropy_bits <= stages[2].entropy_bits <= stages[1].entropy_bits + 1e-9

    page.handle("cooler")
    page.handle("cooler")
    page.handle("cooler")
    colder = page.stages()[1]
    assert colder.settings.temperature == pytest.approx(0.7)
    assert colder.entropy_bits < stages[1].entropy_bits   # a lower temperature sharpens the distribution
    shown = "\n".join(line_text(row) for row in page.view(120, 40).lines)
    assert f"{colder.entropy_bits:.2f} bits" in shown and "top-k 5" in shown and "top-p 0.9" in shown


def test_typing_a_prime_with_unknown_characters_is_refused_in_words(source):
    page = SamplingPage(source)
    page.handle("type", "def")
    before = page.stages()[0].probs
    page.handle("type", "dé€")
    view = page.view(80, 24)
    assert "lacks" in view.error and "é" in view.error and page.prime == "def"
    assert torch.equal(page.stages()[0].probs, before)
    page.handle("type", "")
    assert "at least one character" in page.view(80, 24).error
    page.handle("type", "x")
    assert page.view(80, 24).error == ""


def test_the_sweep_is_the_samplers_text_at_each_temperature_from_one_seed(source):
    page = SamplingPage(source)
    page.handle("type", "The ")
    sweep = page.sweep(40)
    assert [temperature for temperature, _ in sweep] == list(SWEEP_TEMPERATURES)
    sampler = Sampler(source.model, source.vocab)
    for temperature, text in sweep:
        settings = SampleSettings(prime="The ", temperature=temperature, length=40, seed=page.seed)
        assert text == sampler.generate(settings)
    assert len({text for _, text in sweep}) > 1
    page.handle("reseed")
    assert page.sweep(40) != sweep


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_fits_the_size(source, size):
    width, height = size
    view = SamplingPage(source).view(width, height)
    assert 0 < len(view.lines) <= height
    assert all(len(line_text(row)) <= width for row in view.lines)
    assert len(view.caption) == 2 and all(len(text) <= 80 for text in view.caption)
    assert view.deeper == "sample"
    assert any(line_text(row).startswith("T=1.5") for row in view.lines)


def test_k_and_p_keys_mark_the_sweep_stale_and_s_or_typing_redraws_it(source):
    page = SamplingPage(source)
    length = sweep_length(80)
    first = page.sweep(length)
    page.handle("more_k")
    page.handle("more_k")
    text = "\n".join(line_text(row) for row in page.view(80, 24).lines)
    assert "(top-k off, top-p 1: s redraws)" in text
    sweep, stale, draw = page.drawn_sweep(length)
    assert stale and draw.done and sweep == first
    page.handle("reseed")
    view = until(lambda: next((v for v in [page.view(80, 24)] if not v.busy), None), what="the sweep")
    text = "\n".join(line_text(row) for row in view.lines)
    assert "s redraws" not in text and f"Seed {page.seed}" in text
    assert all(sample in text.replace("↵", "\n") for _, sample in page.drawn_sweep(length)[0])
    page.handle("more_k")
    page.handle("type", "def ")
    sweep, stale, draw = page.drawn_sweep(length)
    assert not stale and draw.wait(60)
    assert page.drawn_sweep(length)[0] == page.sweep(length)


def test_the_first_prime_keeps_to_the_vocabulary(source):
    page = SamplingPage(Source(source.model, source.vocab, source.config, "déjà vu, the end"))
    assert page.prime and not source.vocab.missing(page.prime)
    assert page.view(80, 24).error == ""


def test_a_prime_typed_before_the_model_comes_is_kept_for_it(source):
    """The screen shows the page's text field while the model loads: an answer typed then is no error."""
    page = SamplingPage()
    page.handle("type", "the ")
    assert page.error == "" and page.view(80, 24).error == "No model to sample from."
    page.set_source(source)
    assert page.prime == "the " and torch.equal(page.stages()[0].probs, model_logits(source, "the ").softmax(-1))


def test_a_new_model_clears_the_refusal_of_a_prime_typed_for_the_last(source):
    page = SamplingPage(source)
    page.handle("type", "#")
    assert "vocabulary lacks" in page.view(80, 24).error
    torch.manual_seed(4)
    other = CharRNN(ModelConfig(len(source.vocab), hidden=16, layers=1, embed=8)).eval()
    page.set_source(Source(other, source.vocab, source.config, source.text))
    assert page.view(80, 24).error == ""

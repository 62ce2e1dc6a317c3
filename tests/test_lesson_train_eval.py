"""The Train vs eval page: its distributions, losses and samples are the real model's in each mode."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.model import CharRNN, DropoutKey, ModelConfig
from rnn_playground.core.sampling import Sampler, SampleSettings
from rnn_playground.tui.viewmodel.lesson.page import Source, line_text
from rnn_playground.tui.viewmodel.lesson.train_eval import MASKS, PASSAGE, TrainEvalPage

from .conftest import TINY_TEXT, tiny_config
from .tui_helpers import until


def make_source(dropout: float) -> Source:
    vocab = Vocab.from_text(TINY_TEXT)
    torch.manual_seed(5)
    model = CharRNN(ModelConfig(len(vocab), hidden=24, layers=2, embed=8, dropout=dropout)).eval()
    return Source(model, vocab, tiny_config("x"), TINY_TEXT)


def recomputed(source: Source, passage: str, dropout: float, mask_seed: int) -> list[tuple[torch.Tensor, float]]:
    """(next-character probabilities, loss) in eval mode, then in training mode under each mask."""
    ids = source.vocab.encode(passage)
    inputs, targets = ids[:-1][None], ids[1:]
    model = CharRNN(replace(source.model.config, dropout=dropout))
    model.load_state_dict(source.model.state_dict())
    out = []
    with torch.no_grad():
        for mask in (None, *range(1, MASKS + 1)):
            if mask is None:
                logits = model.eval()(inputs)[0][0]
            else:
                # Mask m is stream m - 1 of the seed's step-0 masks: drawn alone here, in one batch by the page.
                logits = model.train()(inputs, dropout_key=DropoutKey(mask_seed, 0, first_stream=mask - 1))[0][0]
            out.append((logits[-1].softmax(-1), float(F.cross_entropy(logits, targets))))
    return out


def shown(page: TrainEvalPage, width: int = 120, height: int = 40) -> str:
    return "\n".join(line_text(row) for row in page.view(width, height).lines)


def test_distributions_and_losses_are_the_models_in_each_mode():
    source = make_source(0.3)
    page = TrainEvalPage(source)
    page.handle("next")
    assert page.passage() == TINY_TEXT[PASSAGE:2 * PASSAGE + 1]
    results = page.results()
    wanted = recomputed(source, page.passage(), 0.3, mask_seed=0)
    assert [label for label, _, _ in results] == ["eval", *(f"train {m}" for m in range(1, MASKS + 1))]
    for (_, probs, loss), (want_probs, want_loss) in zip(results, wanted, strict=True):
        assert torch.allclose(probs, want_probs, atol=1e-6)
        assert loss == pytest.approx(want_loss, abs=1e-6)
    # Each mask gives its own distribution and loss, none of them eval mode's.
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not torch.allclose(results[i][1], results[j][1], atol=1e-4)
            assert results[i][2] != results[j][2]
    text = shown(page)
    assert all(f"{loss:.3f}" in text for _, _, loss in results)
    assert not source.model.training   # the page never switches the source's model out of eval mode

    page.handle("masks")
    again = page.results()
    assert torch.allclose(again[0][1], results[0][1])           # eval mode has no mask
    assert not torch.allclose(again[1][1], results[1][1], atol=1e-4)
    assert torch.allclose(again[1][1], recomputed(source, page.passage(), 0.3, mask_seed=1)[1][0], atol=1e-6)


def test_samples_share_the_seed_and_the_eval_one_is_the_sample_screens():
    source = make_source(0.3)
    page = TrainEvalPage(source)
    eval_text, train_text = page.samples(60)
    settings = SampleSettings(prime=page.passage(), temperature=0.8, length=60, seed=page.sample_seed)
    assert eval_text == Sampler(source.model, source.vocab).generate(settings)
    assert train_text != eval_text and len(train_text) == 60
    assert page.samples(60) == (eval_text, train_text)          # the training-mode masks are seeded too

    view = until(lambda: next((v for v in [page.view(120, 40)] if not v.busy), None), what="the samples")
    text = "\n".join(line_text(row) for row in view.lines)
    half = (120 - 3) // 2
    eval_text, train_text = page.samples(half * 2)
    assert f"{eval_text[:half]} | {train_text[:half]}" in text.replace("↵", "\n")
    assert f"from seed {page.sample_seed}" in text and "earlier settings" not in text
    page.handle("next")
    assert "earlier settings: s draws again" in shown(page)   # the samples are for the first passage
    page.handle("reseed")
    assert f"from seed {page.sample_seed}" in shown(page) and "earlier settings" not in shown(page)


def test_dropout_zero_is_said_and_a_demonstration_dropout_can_be_set():
    source = make_source(0.0)
    page = TrainEvalPage(source)
    assert "This model has dropout 0" in shown(page)
    results = page.results()
    assert all(torch.allclose(probs, results[0][1]) for _, probs, _ in results)
    eval_text, train_text = page.samples(60)
    assert eval_text == train_text      # the same seed and draws: without dropout the modes agree

    page.handle("dropout")
    assert page.dropout == 0.1 and source.model.config.dropout == 0.0
    assert "dropout 0.1 (demonstration; the model's: 0)" in shown(page)
    demo = page.results()
    wanted = recomputed(source, page.passage(), 0.1, mask_seed=0)
    assert torch.allclose(demo[0][1], results[0][1], atol=1e-6)   # eval mode is unchanged
    assert torch.allclose(demo[1][1], wanted[1][0], atol=1e-6)
    assert not torch.allclose(demo[1][1], demo[0][1], atol=1e-5)
    for _ in range(3):
        page.handle("dropout")
    assert page.dropout == 0.0


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_fits_the_size(size):
    width, height = size
    view = TrainEvalPage(make_source(0.3)).view(width, height)
    assert 0 < len(view.lines) <= height
    assert all(len(line_text(row)) <= width for row in view.lines)
    assert len(view.caption) == 2 and all(len(text) <= 80 for text in view.caption)
    assert view.deeper == "sample" and view.error == ""
    assert "So sampling runs in eval mode" in "\n".join(line_text(row) for row in view.lines)


def test_a_passage_the_vocabulary_lacks_is_said_in_words():
    source = make_source(0.3)
    page = TrainEvalPage(Source(source.model, source.vocab, source.config, "déjà vu " * 20))
    view = page.view(80, 24)
    assert "vocabulary lacks" in view.error and "left/right" in view.error and view.lines == ()


def test_a_newer_model_of_the_same_text_keeps_the_passage():
    source = make_source(0.0)
    page = TrainEvalPage(source)
    page.handle("next")
    page.handle("dropout")
    newer = make_source(0.0)
    page.set_source(newer)
    assert page.position == PASSAGE and page.dropout == 0.1
    assert torch.allclose(page.results()[0][1], recomputed(newer, page.passage(), 0.1, 0)[0][0], atol=1e-6)
    page.set_source(Source(newer.model, newer.vocab, newer.config, TINY_TEXT[5:]))
    assert page.position == 0 and page.passage() == TINY_TEXT[5:5 + PASSAGE + 1]
    page.handle("next")
    other = make_source(0.3)
    page.set_source(Source(other.model, other.vocab, other.config, TINY_TEXT))
    assert page.position == 0 and page.dropout == 0.3

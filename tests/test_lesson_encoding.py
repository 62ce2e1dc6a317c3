"""The Encoding page: its ids are the vocabulary's, its one-hot rows hold a 1 at the id, and one-hot x W
equals the embedding (recomputed here from the model); keys move the cursor and scroll the vocabulary;
it fits 80x24 and 120x40, for embedded and one-hot models."""

from __future__ import annotations

import pytest
import torch

from rnn_playground.core.corpus import Vocab
from rnn_playground.core.model import ONEHOT, CharRNN, ModelConfig
from rnn_playground.tui.viewmodel.lesson.encoding import EncodingPage
from rnn_playground.tui.viewmodel.lesson.page import PageView, Source, line_text

TEXT = ("def encode(text):\n    return [vocab.index[ch] for ch in text]\n"
        "The quick brown fox jumps over the lazy dog; THE QUICK BROWN FOX! 0123456789 {}<>|~\n") * 3
BODY = {(80, 24): 18, (120, 40): 34}  # the Lesson screen's body at each terminal size


def source_for(text: str = TEXT, embed: int = 8, hidden: int = 8) -> Source:
    torch.manual_seed(0)
    vocab = Vocab(text)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=hidden, layers=1, embed=embed, dropout=0.0)).eval()
    return Source(model, vocab, None, text, name="tiny", origin="a tiny model")


def texts(view: PageView) -> list[str]:
    return [line_text(row) for row in view.lines]


def row_after(view: PageView, label: str) -> list[str]:
    """The cells of the body line starting with `label` ("char", "id"), split on whitespace."""
    return next(text for text in texts(view) if text.startswith(label)).split()[1:]


def test_ids_are_the_vocabularys_encoding_of_the_slice():
    source = source_for()
    page = EncodingPage(source)
    view = page.view(80, 18)
    ids = [int(i) for i in row_after(view, "id ")]
    assert len(ids) >= 10
    assert ids == source.vocab.encode(TEXT[:len(ids)]).tolist()
    chars = row_after(view, "char")
    assert chars[:3] == list("def") and "↵" in chars  # the newline made visible
    # the character under the cursor is the accent one, in both rows
    accents = [span.text.strip() for row in view.lines[1:3] for span in row if span.style == "accent"]
    assert accents == ["d", str(source.vocab.index["d"])]


def test_one_hot_rows_hold_their_one_at_the_id():
    source = source_for()
    page = EncodingPage(source)
    page.handle("right")
    encoded = page.encode(page.cursor, 3)
    expected = source.vocab.encode(TEXT[1:4])
    assert torch.equal(encoded.ids, expected)
    assert torch.equal(encoded.onehot, torch.eye(len(source.vocab))[expected])
    view = page.view(120, 34)  # the whole row fits at 120: the 1 stands at the id's column
    start = texts(view).index(next(t for t in texts(view) if t.startswith("one-hot"))) + 1
    for row, i in zip(view.lines[start:start + 3], expected.tolist(), strict=True):
        label = len(row[0].text)
        text = line_text(row)
        assert text[label:].strip() == "0" * i + "1" + "0" * (len(source.vocab) - i - 1)
        assert [span.text for span in row if span.style == "accent"] == ["1"]


def test_one_hot_times_w_equals_the_embedding_computed():
    source = source_for()
    page = EncodingPage(source)
    for _ in range(5):
        page.handle("right")
    encoded = page.encode(page.cursor, 4)
    weight = source.model.embed.weight.detach()
    ids = source.vocab.encode(TEXT[5:9])
    with torch.no_grad():
        looked_up = source.model.embed(ids)
    product = torch.nn.functional.one_hot(ids, len(source.vocab)).float() @ weight
    assert torch.equal(product, looked_up) and torch.equal(encoded.product, product)
    assert torch.equal(encoded.lookup, looked_up) and encoded.difference == 0.0
    view = page.view(80, 18)
    lines = texts(view)
    first = lines.index(next(t for t in lines if t.startswith("embedding"))) + 1
    values = [float(v) for v in lines[first].split()[2:]]
    assert values == pytest.approx(looked_up[0, :len(values)].tolist(), abs=0.006)
    heat = [span for span in view.lines[first] if span.style == "heat"]
    assert len(heat) == len(values) and all(-1 <= span.value <= 1 for span in heat)
    assert heat[0].value == pytest.approx(float(torch.tanh(looked_up[0, 0])), abs=1e-6)
    check = view.lines[-1]
    assert line_text(check).startswith("one-hot x W = embedding lookup W[id]: max |difference| 0")
    assert [span.text for span in check if span.style == "good"] == ["0"]


def test_keys_move_the_cursor_and_scroll_the_vocabulary():
    source = source_for()
    page = EncodingPage(source)
    page.handle("left")
    assert page.cursor == 0  # the start stays the start
    page.handle("right")
    page.handle("right")
    assert page.cursor == 2
    view = page.view(80, 18)
    assert [s.text.strip() for s in view.lines[1] if s.style == "accent"] == ["f"]
    slice_len = len(row_after(view, "id "))
    page.handle("page_down")
    assert page.cursor == 2 + slice_len
    view = page.view(80, 18)
    first_shown = int(view.lines[0][1].text.split("-")[0].replace(",", ""))
    assert first_shown == slice_len + 1  # the next slice, 1-based
    assert [int(i) for i in row_after(view, "id ")] == source.vocab.encode(TEXT[slice_len:2 * slice_len]).tolist()
    page.handle("page_up")
    assert page.cursor == 2
    for _ in range(len(TEXT) + 5):
        page.handle("right")
    assert page.cursor == len(TEXT) - 1  # the end stays the end
    # the vocabulary scrolls by rows and back; it starts at the cursor's character's row
    page = EncodingPage(source)

    def vocab_rows() -> list[str]:
        return [t for t in texts(page.view(80, 18)) if t[:3].strip().isdigit()]
    before = vocab_rows()
    top = page.vocab_top
    assert top > 0 and str(source.vocab.index["d"]) in before[0].split()
    page.handle("vocab_up")
    assert page.vocab_top == top - 1 and vocab_rows()[1] == before[0]
    for _ in range(50):
        page.handle("vocab_up")
    assert page.vocab_top == 0 and vocab_rows()[0].split()[0] == "0"
    for _ in range(50):
        page.handle("vocab_down")
    assert vocab_rows()[-1].split()[-2] == str(len(source.vocab) - 1)  # the last id, in the bottom row
    for _ in range(50):
        page.handle("vocab_up")
    page.handle("right")  # moving the cursor brings its character's row back into view
    view = page.view(80, 18)
    assert page.vocab_top > 0 and any(span.style == "accent" and span.text.strip() == "e"
                                      for row in view.lines[4:8] for span in row)


@pytest.mark.parametrize("size", sorted(BODY))
@pytest.mark.parametrize("embed", [8, ONEHOT])
def test_every_line_fits_the_screen(size, embed):
    width, _ = size
    height = BODY[size]
    wide = TEXT + "".join(chr(c) for c in range(0x100, 0x1A0)) + "漢字é\u0301"  # a large vocabulary, wide chars
    page = EncodingPage(source_for(wide, embed=embed, hidden=64))
    for _ in range(len(wide) - 10):
        page.handle("right")
    for view in (page.view(width, height), EncodingPage(source_for(embed=embed)).view(width, height)):
        assert 0 < len(view.lines) <= height
        assert all(len(text) <= width for text in texts(view)), [t for t in texts(view) if len(t) > width]
        assert all(len(text) <= 78 for text in view.caption) and view.deeper == "gates"
    assert len(page.view(120, 34).lines) > len(page.view(80, 18).lines)  # more room: more rows


def test_a_one_hot_model_has_no_embedding_and_its_first_layer_reads_a_column():
    source = source_for(embed=ONEHOT)
    page = EncodingPage(source)
    page.handle("right")
    view = page.view(80, 18)
    assert "one-hot row is the input" in view.caption[0] and view.title.endswith("the first layer")
    lines = texts(view)
    assert any(t.startswith("first layer no embedding") for t in lines)
    ids = source.vocab.encode(TEXT[1:4])
    w_ih = source.model.rnn.weight_ih_l0.detach()
    encoded = page.encode(page.cursor, 3)
    recomputed = torch.nn.functional.one_hot(ids, len(source.vocab)).float() @ w_ih.t()
    assert torch.equal(encoded.product, recomputed) and torch.equal(recomputed, w_ih[:, ids].t())
    assert lines[-1].startswith("one-hot x W_ih^T = column id of W_ih: max |difference| 0")
    assert [span.text for span in view.lines[-1] if span.style == "good"] == ["0"]


def test_no_model_yet_and_a_mismatched_one_are_said_in_words():
    page = EncodingPage()
    view = page.view(80, 18)
    assert view.busy == "waiting for a model" and not view.lines
    source = source_for()
    page.set_source(Source(source.model, Vocab("ab"), None, "abba", name="odd"))
    view = page.view(80, 18)
    assert "the model reads" in view.error and "its vocabulary has 2" in view.error and not view.busy

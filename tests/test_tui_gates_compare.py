"""The Gates screen's compare view on real tiny runs: A (the open run) against B (the n-gram of its
training text by default, or another run) over the screen's text. The figures are the engine's
(core.evaluate.char_surprisals, core.baselines), the span keys move the cursor, a run whose corpus is
gone still compares with the other runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rnn_playground.core.checkpoint import read_metadata
from rnn_playground.core.evaluate import baseline_models, char_surprisals, run_corpus
from rnn_playground.core.loading import load_model
from rnn_playground.core.runs import list_runs, resolve_checkpoint
from rnn_playground.tui.viewmodel.eval_view import BASELINE, COLOUR_BITS, TIE_BITS

from .conftest import tiny_config
from .tui_helpers import Host, wait_for

pytestmark = pytest.mark.timeout(180)


def model_nats(run: Path, text: str) -> np.ndarray:
    model, vocab, _ = load_model(run, "cpu")
    return char_surprisals(model, vocab, text, exact=True).nats


def ngram_nats(run: Path, text: str) -> np.ndarray:
    corpus = run_corpus(read_metadata(resolve_checkpoint(run)), run.name, "test")
    return baseline_models(corpus)[1].surprisals(text)


@pytest.fixture
def other_run(tiny_corpus, tmp_path) -> Path:
    """A second finished tiny run, a GRU of another size, in the same runs folder as tiny_run."""
    from rnn_playground.core.trainer import Trainer
    trainer = Trainer(tiny_config(tiny_corpus, cell="gru", hidden=24, steps=10, val_every=10, run_name="other",
                                  runs_dir=str(tmp_path / "runs")))
    list(trainer.run())
    return trainer.run_dir


async def compared(pilot, screen, b_name: str):
    await wait_for(pilot, lambda: screen.gates.comparison is not None and b_name in screen.gates.comparison.b.name,
                   60, f"the comparison with {b_name}")
    await pilot.pause()
    return screen.gates.comparison


async def test_compare_view_shows_the_engines_surprisals_and_jumps_to_spans(tiny_run, other_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss", runs_dir=tiny_run.parent).run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen.gates.trace is not None, 30, "the trace")
        await pilot.press("d")
        assert screen.gates.view == "compare"
        comparison = await compared(pilot, screen, "gram")
        text = screen.gates.text
        assert comparison.text == text
        # A is the run's model over the text read as one stream, B the n-gram of its training text
        assert np.allclose(comparison.a.nats, model_nats(tiny_run, text), rtol=0, atol=1e-9)
        assert np.allclose(comparison.b.nats, ngram_nats(tiny_run, text), rtol=0, atol=1e-9)
        a_bits = comparison.a.nats.sum() / math.log(2) / (len(text) - 1)
        b_bits = comparison.b.nats.sum() / math.log(2) / (len(text) - 1)
        panel = screen.query_one("#gates-compare-panel").content.plain
        assert f"{a_bits:.3f} bits/char" in panel and f"{b_bits:.3f} bits/char" in panel
        assert f"A-B {a_bits - b_bits:+.3f} bits/char" in panel
        assert "text red: A predicts better, blue: B does" in panel
        # the text is coloured by who predicts each character better
        saved = (comparison.b.nats - comparison.a.nats) / math.log(2)
        expected = np.where(np.abs(saved) < TIE_BITS, 0.0, np.clip(saved / COLOUR_BITS, -1, 1))
        strip = screen.query_one("#gates-text")
        assert strip.value_offset == 0 and np.allclose(strip.values[1:], expected[:len(strip.values) - 1])
        # B's choices: the n-gram first, then the other run (not A itself)
        assert [c.key for c in screen.gates.compare_choices] == [BASELINE, str(other_run)]
        # at the cursor: the character's surprisal under each model, in bits, and its probability
        await pilot.press("right", "right", "right")
        nats_a, nats_b = comparison.a.nats[2], comparison.b.nats[2]
        cursor = screen.query_one("#gates-compare-panel").content.plain
        assert f"A {nats_a / math.log(2):.2f} bits (p {math.exp(-nats_a):.3f})" in cursor
        assert f"B {nats_b / math.log(2):.2f} bits (p {math.exp(-nats_b):.3f})" in cursor
        # n and N: the cursor to the start of the next and previous top span, in text order
        starts = [span.start for span in comparison.jumps]
        assert starts == sorted(starts) and starts
        pos = screen.gates.pos
        after = [s for s in starts if s > pos]
        await pilot.press("n")
        await wait_for(pilot, lambda: screen.gates.pending is None)
        assert screen.gates.pos == (after[0] if after else starts[0])
        await pilot.press("n")
        await wait_for(pilot, lambda: screen.gates.pending is None)
        second = screen.gates.pos
        await pilot.press("N")
        await wait_for(pilot, lambda: screen.gates.pending is None)
        assert screen.gates.pos == max([s for s in starts if s < second] or [starts[-1]])
        # another run as B changes B's figures, not A's
        screen.query_one("#gates-compare-b").value = str(other_run)
        other = await compared(pilot, screen, "other")
        assert np.allclose(other.a.nats, comparison.a.nats, rtol=0, atol=1e-9)
        assert np.allclose(other.b.nats, model_nats(other_run, text), rtol=0, atol=1e-9)
        assert not np.allclose(other.b.nats, comparison.b.nats)
        assert "other GRU 2x24" in screen.query_one("#gates-compare-panel").content.plain
        # a new text is compared again with the B chosen
        await pilot.press("o")
        screen.query_one("#gates-source-kind").value = "text"
        screen.query_one("#gates-source-value").value = "def f(x):\n    return (x + 1)\n"
        screen.set_focus(screen.query_one("#gates-source-value"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.gates.comparison is not None
                       and screen.gates.comparison.text == "def f(x):\n    return (x + 1)\n", 60, "the new text")
        assert np.allclose(screen.gates.comparison.b.nats, model_nats(other_run, screen.gates.text), atol=1e-9)


async def test_a_run_whose_corpus_is_gone_compares_with_the_other_runs(tiny_run, other_run, tiny_corpus, monkeypatch):
    """At 80x24 without colour, too: the legend names the strip's mono marks."""
    from rnn_playground.tui.app.screens.gates import GatesScreen
    monkeypatch.setenv("NO_COLOR", "1")
    tiny_corpus.unlink()
    text = "The quick brown fox jumps over the lazy dog."
    screen = GatesScreen(tiny_run, text=text)
    async with Host(screen, "gates.tcss", runs_dir=tiny_run.parent).run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.gates.trace is not None, 30, "the trace")
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.gates.baseline_error is not None, 60, "the baseline's failure")
        await wait_for(pilot, lambda: screen.gates.compare_choices and screen.gates.compare_choices[0].key != BASELINE,
                       30, "the runs listed")
        panel = screen.query_one("#gates-compare-panel").content.plain
        assert "No n-gram baseline" in panel and "Pick a run to compare with" in panel
        assert [c.key for c in screen.gates.compare_choices] == [str(other_run)]
        screen.query_one("#gates-compare-b").value = str(other_run)
        comparison = await compared(pilot, screen, "other")
        assert np.allclose(comparison.b.nats, model_nats(other_run, text), rtol=0, atol=1e-9)
        assert np.allclose(comparison.a.nats, model_nats(tiny_run, text), rtol=0, atol=1e-9)
        panel = screen.query_one("#gates-compare-panel").content.plain
        assert "text underlined: A better by 2+ bits" in panel and "dim: B better by 2+" in panel
        assert "B other GRU 2x24" in panel


def test_the_session_runs_one_comparison_at_a_time_and_drops_stale_ones(tiny_run, other_run):
    """The middle floor alone: a B chosen, or a text loaded, while a comparison runs waits for it; its
    stale result is dropped (its loaded models kept) and the wanted comparison starts."""
    from rnn_playground.tui.viewmodel.gates_session import (
        CompareJob,
        GatesSession,
        TextRequest,
        load_tracer,
        open_text,
        run_comparison,
    )
    session = GatesSession(run=tiny_run)
    tracer, meta = load_tracer(tiny_run)
    session.loaded(session.start_load(), open_text(tracer, meta, TextRequest("text", "The lazy dog. (x)")))
    [first] = session.set_view("compare")
    assert isinstance(first, CompareJob) and first.choice.key == BASELINE and session.comparing
    session.runs_listed([])  # B's choices come from the runs folder; the n-gram is always first
    assert [c.key for c in session.compare_choices] == [BASELINE]
    session.runs_listed(list_runs(tiny_run.parent))
    assert session.choose(str(other_run)) == []           # waits for the running one
    [second] = session.compared(run_comparison(first))    # stale: B changed meanwhile
    assert session.comparison is None and second.choice.key == str(other_run)
    assert str(tiny_run) in second.scorers                # A's model, loaded once, goes to the next job
    session.loaded(session.start_load(), open_text(tracer, meta, TextRequest("text", "def f(x): return x")))
    [third] = session.compared(run_comparison(second))    # stale: the text changed meanwhile
    assert third.text == "def f(x): return x" and session.comparison is None
    session.compared(run_comparison(third))
    comparison = session.comparison
    assert comparison.text == "def f(x): return x" and not session.comparing
    assert np.allclose(comparison.b.nats, model_nats(other_run, comparison.text), rtol=0, atol=1e-9)
    # the jumps: the next and previous top span round the ends of the text
    starts = [span.start for span in comparison.jumps]
    session.move_to(0)
    session.jump(1)
    assert session.pos == starts[0]
    session.jump(-1)
    assert session.pos == starts[-1]


def test_diff_values_follow_the_ties_and_the_scale():
    from rnn_playground.tui.viewmodel.eval_view import diff_values
    values = diff_values(np.array([0.1, -0.4, 1.0, -2.0, 8.0, -5.0]))
    assert np.allclose(values, [0.0, 0.0, 0.0, 1.0 / COLOUR_BITS, -2.0 / COLOUR_BITS, 1.0, -1.0])

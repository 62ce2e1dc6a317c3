"""Interventions on the Gates screen: a silence added by its keys is listed in the CLI's syntax, the numbers
the screen draws are Trace.intervened's at that step, the effect view compares them with the original,
and removing it brings the original back. A snapshot at 80x24 with one active."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnn_playground.core.gates import GateTracer
from rnn_playground.core.intervene import Intervention

from .tui_helpers import Host, plain_app, screen_text, wait, wait_for, write_char_checkpoint

pytestmark = pytest.mark.timeout(120)


def numbers(trace, step: int, layer: int, unit: int) -> dict[str, str]:
    return {q.key: f"{float(trace.at(step, layer, q.key)[unit]):+.4f}" for q in trace.quantities}


async def opened(pilot, screen):
    await wait_for(pilot, lambda: screen.gates.trace is not None or screen.gates.error, what="the trace")
    assert screen.gates.error is None, screen.gates.error
    await pilot.pause()


async def test_silence_a_unit_then_remove_it(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 32)) as pilot:
        await opened(pilot, screen)
        text = screen.gates.text
        await pilot.press(*["right"] * 10, "full_stop", "full_stop", "l")   # layer 1, unit 2
        original = GateTracer.from_checkpoint(tiny_run).trace(text[:13])
        assert screen.unit_numbers() == numbers(original, 10, 0, 2)
        # i opens the intervene view with the CLI's syntax prefilled for this unit, layer and position
        await pilot.press("i")
        field = screen.query_one("#gates-intervene-spec")
        assert screen.focused is field and field.value == "L1:U2:c=0@10"
        field.value = "L1:U2:h=0@10"      # silence the unit's h from here on
        await pilot.press("enter")
        assert screen.gates.interventions == [Intervention(0, (2,), "h", 0.0, 10)]
        listed = screen.query_one("#gates-interventions")
        assert [str(listed.get_option_at_index(n).prompt) for n in range(listed.option_count)] == ["L1:U2:h=0@10"]
        assert "what if: 1 intervention" in screen.query_one("#gates-header").content.plain
        # the view's numbers: the change of c and h here, after - before
        changed = original.intervened(screen.gates.interventions)
        effect = screen.query_one("#gates-effect").content.plain
        before, after = original.surprisal_bits[10], changed.surprisal_bits[10]
        assert f"{before:.2f} → {after:.2f} bits" in effect and "max|Δ|" in effect
        delta = changed.at(10, 0, "h") - original.at(10, 0, "h")
        assert delta[2] != 0 and screen.unit_numbers()["h"] == f"{delta[2]:+.4f}"
        # the cell view draws the intervened trace, step after step
        await pilot.press("c", "right", "right")
        changed = GateTracer.from_checkpoint(tiny_run).trace(text[:15]).intervened(screen.gates.interventions)
        assert screen.unit_numbers() == numbers(changed, 12, 0, 2)
        assert screen.unit_numbers()["h"] == "+0.0000"
        assert numbers(changed, 12, 1, 0) != numbers(original.tracer.trace(text[:15]), 12, 1, 0)
        await pilot.press("l")
        assert screen.unit_numbers() == numbers(changed, 12, 1, 2)
        # the continuation from the cursor with and without, the same seed
        await pilot.press("t")
        await wait_for(pilot, lambda: screen.gates.continued is not None, what="the continuation")
        pos, without, with_ = screen.gates.continued
        shown = screen.gates.shown_trace()
        assert without == screen.gates.trace.continuation(12, 60, 0, 0.8)
        assert with_ == shown.continuation(12, 60, 0, 0.8)
        assert pos == 12 and len(without) == len(with_) == 60
        drawn = screen.query_one("#gates-effect").content.plain
        assert without[:20].replace("\n", "⏎") in drawn and with_[:20].replace("\n", "⏎") in drawn
        # u removes the selected one: the original numbers again
        await pilot.press("u")
        assert screen.gates.interventions == [] and screen.gates.changed is None
        await pilot.press("c")
        plain = GateTracer.from_checkpoint(tiny_run).trace(text[:15])
        assert screen.unit_numbers() == numbers(plain, 12, 1, 2)
        assert "what if" not in screen.query_one("#gates-header").content.plain


async def test_bad_intervention_says_what_is_wrong_and_clear_all(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 32)) as pilot:
        await opened(pilot, screen)
        await pilot.press("right", "right", "i")
        field = screen.query_one("#gates-intervene-spec")
        field.value = "L7:U2:c=0@1"
        await pilot.press("enter")
        assert screen.gates.interventions == []
        assert "layer 7 does not exist" in screen.query_one("#gates-effect").content.plain
        assert screen.focused is field   # left there to correct
        for spec in ("L2:U0-3:f=1@0", "L1:U5:o=0@2"):
            field.value = spec
            await pilot.press("enter")
            await pilot.press("i")
        assert [iv.describe() for iv in screen.gates.interventions] == ["L2:U0-3:f=1@0", "L1:U5:o=0@2"]
        await pilot.press("escape", "U")
        assert screen.gates.interventions == [] and screen.gates.changed is None
        assert "No intervention" in screen_text(pilot.app)


def test_long_recomputation_runs_in_a_worker_and_equals_the_whole(tiny_run):
    """Past INLINE_INTERVENE steps the session hands out a job; its chunked result equals intervened() (to
    float32 rounding: an upper layer's input projection over a chunk of steps sums in another order)."""
    from rnn_playground.tui.viewmodel.gates_session import GatesSession, InterveneJob, run_intervention
    tracer = GateTracer.from_checkpoint(tiny_run)
    text = ("the quick brown fox jumps over the lazy dog. " * 12)
    text = "".join(ch for ch in text if ch in tracer.vocab.index) or tracer.vocab.chars * 50
    session = GatesSession(run=tiny_run, tracer=tracer, trace=tracer.trace(text), text=text)
    jobs = session.add_intervention("L2:U1:c=0.5@3")
    assert len(jobs) == 1 and isinstance(jobs[0], InterveneJob) and session.intervening
    changed = run_intervention(jobs[0])
    session.intervention_done(jobs[0], changed)
    whole = session.trace.intervened(session.interventions)
    for key in ("i", "f", "g", "o", "c", "h"):
        np.testing.assert_allclose(changed.values(key), whole.values(key), rtol=1e-5, atol=1e-6)
    assert np.array_equal(changed.values("c")[:3], session.trace.values("c")[:3])  # before it: copied
    assert not session.intervening and session.shown_trace() is changed


def test_a_late_intervention_on_a_long_text_copies_the_steps_before_in_a_worker(tiny_run, monkeypatch):
    """Few steps to recompute, but many to copy before them (gigabytes for a large model on a long text):
    the copy is not made on the UI thread either. copy_bytes counts every stored value of those steps."""
    from rnn_playground.tui.viewmodel import gates_session
    from rnn_playground.tui.viewmodel.gates_session import GatesSession, InterveneJob, run_intervention
    tracer = GateTracer.from_checkpoint(tiny_run)
    text = ("".join(tracer.vocab.chars) * 40)[:300]
    trace = tracer.trace(text)
    layers, hidden, vocab = tracer.layers, tracer.hidden, len(tracer.vocab)
    per_step = 4 * (layers * hidden * (4 + 1 + 1) + vocab)  # float32 gates i f g o, c, h, and log-probs
    assert trace.copy_bytes(290) == 290 * per_step and trace.copy_bytes(10**6) == 300 * per_step
    session = GatesSession(run=tiny_run, tracer=tracer, trace=trace, text=text)
    assert session.add_intervention("L1:U0:h=0@290") == [] and session.changed is not None  # small: at once
    monkeypatch.setattr(gates_session, "INLINE_COPY_BYTES", 100 * per_step)
    session = GatesSession(run=tiny_run, tracer=tracer, trace=trace, text=text)
    [job] = session.add_intervention("L1:U0:h=0@290")
    assert isinstance(job, InterveneJob) and session.intervening
    changed = run_intervention(job)
    session.intervention_done(job, changed)
    assert session.shown_trace() is changed and np.array_equal(changed.values("h")[:290], trace.values("h")[:290])


def test_gates_screen_intervention_snapshot(snap_compare, deterministic):
    run = write_char_checkpoint(Path("runs") / "brisk-otter")

    async def run_before(pilot):
        from rnn_playground.tui.app.screens.gates import GatesScreen
        app = pilot.app
        app.open_run("gates", run)
        await wait(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace is not None)
        screen = app.screen
        await pilot.press(*["right"] * 20, "full_stop", "full_stop", "full_stop", "i")
        screen.query_one("#gates-intervene-spec").value = "L2:U3:c=0@20"
        await pilot.press("enter", "right", "t")
        await wait(pilot, lambda: screen.gates.continued is not None and screen.gates.pos == 21)

    assert snap_compare(plain_app(), terminal_size=(80, 24), run_before=run_before)


async def test_rank_view_lists_units_by_effect_beside_the_correlation_search(tiny_run):
    from rnn_playground.core.ablation import rank_units
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 32)) as pilot:
        await opened(pilot, screen)
        await pilot.press("f")
        await wait_for(pilot, lambda: screen.gates.matches, what="the unit search")
        await pilot.press("escape", "r")
        assert screen.gates.view == "rank"
        await wait_for(pilot, lambda: screen.gates.ranking is not None, what="the ranking")
        ranking = screen.gates.ranking
        expected = rank_units(screen.gates.tracer, screen.gates.text, "",
                              screen.gates.trace.feature("inside-quotes"))
        np.testing.assert_allclose(ranking.loss, expected.loss, rtol=1e-6)
        drawn = screen.query_one("#gates-rank").content.plain
        best = ranking.ranked(by="feature", top=1)[0]
        assert f"u{best.unit:<5}{best.change:>+11.4f}{best.feature_change:>+16.4f}" in drawn
        comparison = screen.gates.effect_comparison()
        assert comparison is not None and "found by correlation, and matter:" in drawn
        assert "matter, missed by correlation:" in drawn
        for row in comparison.effect_only[:2]:
            assert f"L{row.layer + 1}:u{row.unit} {row.change:+.3f}" in drawn
        # R cancels a ranking under way (its result, when it comes, is dropped), and ranks again
        screen.action_rank_again()
        assert screen.gates.ranking is None and screen.gates.ranking_running
        screen.action_rank_again()
        assert not screen.gates.ranking_running and "cancelled" in screen.query_one("#gates-rank").content.plain
        await pilot.pause()
        assert screen.gates.ranking is None
        await pilot.press("R")
        await wait_for(pilot, lambda: screen.gates.ranking is not None, what="the ranking again")
        np.testing.assert_allclose(screen.gates.ranking.loss, expected.loss, rtol=1e-6)


def test_the_effect_at_the_cursor_is_the_two_traces(tiny_run):
    """gates_frame's effect: probabilities before and after are the original's and the intervened trace's,
    the true next character among them, the state changes their difference (through tanh on the heatmap)."""
    from rnn_playground.tui.viewmodel.gates_session import GatesSession, gates_frame
    tracer = GateTracer.from_checkpoint(tiny_run)
    text = "".join(ch for ch in "the cat sat on the mat, then ran." if ch in tracer.vocab.index)
    session = GatesSession(run=tiny_run, tracer=tracer, trace=tracer.trace(text), text=text, pos=12, layer=1,
                           unit=4, view="intervene")
    assert gates_frame(session, 40).effect is None
    assert session.add_intervention("L2:U0-15:h=0@5") == []       # short: at once
    frame = gates_frame(session, 40)
    changed = session.trace.intervened([Intervention(1, tuple(range(16)), "h", 0.0, 5)])
    effect = frame.effect
    assert effect.specs == ("L2:U0-15:h=0@5",)
    index = tracer.vocab.index
    for row in effect.rows:
        assert row.before == pytest.approx(float(session.trace.probs[12, index[row.char]]), rel=1e-6)
        assert row.after == pytest.approx(float(changed.probs[12, index[row.char]]), rel=1e-6)
    assert [row.char for row in effect.rows if row.is_true] == [text[13]]
    assert effect.after_bits == pytest.approx(float(changed.surprisal_bits[12]))
    delta_h = changed.at(12, 1, "h") - session.trace.at(12, 1, "h")
    assert [row.key for row in frame.rows] == ["c", "h"]
    np.testing.assert_allclose(frame.rows[1].values, np.tanh(delta_h), atol=1e-6)
    assert frame.rows[1].raw == pytest.approx(float(delta_h[4]))
    assert effect.largest == pytest.approx(float(max(np.abs(delta_h).max(),
                                                     np.abs(changed.at(12, 1, "c") - session.trace.at(12, 1, "c"))
                                                     .max())))
    # the screen's numbers are the intervened trace's
    assert np.array_equal(frame.info.values["h"], changed.at(12, 1, "h"))
    session.clear_interventions()
    assert gates_frame(session, 40).effect is None


def test_a_gru_intervenes_on_h_and_its_gates(tmp_path):
    """For a GRU the prefill silences h; r and z can be forced; c is refused with what a GRU has."""
    from rnn_playground.tui.viewmodel.gates_session import GatesSession, gates_frame
    run = write_char_checkpoint(tmp_path / "runs" / "calm-heron", cell="gru", hidden=16, layers=1,
                                corpus=str(tmp_path / "corpus.txt"))   # not into the working directory
    tracer = GateTracer.from_checkpoint(run)
    text = "".join(ch for ch in "the cat sat on the mat." if ch in tracer.vocab.index)
    session = GatesSession(run=run, tracer=tracer, trace=tracer.trace(text), text=text, pos=6, unit=3)
    assert session.intervention_prefill() == "L1:U3:h=0@6"
    session.add_intervention("L1:U3:c=0@6")
    assert session.interventions == [] and "a GRU has no quantity 'c'" in session.intervene_note
    session.add_intervention("L1:U3-5:z=1@4")
    assert session.intervene_note == "" and session.changed is not None
    frame = gates_frame(session, 20)
    assert np.array_equal(frame.info.values["z"][3:6], np.ones(3, dtype=frame.info.values["z"].dtype))
    assert np.array_equal(frame.info.values["h"], session.trace.intervened(session.interventions).at(6, 0, "h"))

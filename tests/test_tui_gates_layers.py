"""The Gates screen's all-layers view (every layer's strips over the text around the cursor) and match view
(LSTMVis's span match), on a real tiny checkpoint: what they draw is the core trace's and match_spans'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .tui_helpers import Host, cuts, pinned_app, screen_text, wait_for, write_char_checkpoint

pytestmark = pytest.mark.timeout(120)


async def opened(pilot, screen):
    await wait_for(pilot, lambda: screen.gates.trace is not None or screen.gates.error, what="the trace")
    assert screen.gates.error is None, screen.gates.error
    await pilot.pause()


async def test_all_layers_view_shows_each_layers_values_around_the_cursor(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.widgets.layerstrips import LayerStrips
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        await pilot.press(*["right"] * 30, "a")
        assert screen.gates.view == "layers"
        strips = screen.query_one(LayerStrips)
        view = await wait_for(pilot, lambda: strips.view and len(strips.view.chars) > 1 and strips.view,
                              what="the strips")
        assert strips.display and not screen.query_one("#gates-heatmap").display
        text, pos = screen.gates.text, screen.gates.pos
        trace = screen.gates.trace   # the screen's own (core's, as test_tui_gates shows)
        assert len(trace) == pos + 2
        assert view.key == "c" and [s.label for s in view.strips] == ["L1", "L2"]
        assert view.chars == text[view.start:view.start + len(view.chars)] and view.start + view.cursor == pos
        assert len(view.chars) == strips.columns and view.last_unit - view.first_unit == strips.units_per_page(2)
        traced = len(trace) - view.start
        for layer, strip in enumerate(view.strips):
            expected = trace.values("c")[view.start:len(trace), layer, view.first_unit:view.last_unit].T
            np.testing.assert_array_equal(strip.raw[:, :traced], expected)
            assert np.isnan(strip.raw[:, traced:]).all()   # not traced yet: blank
            assert strip.selected == float(trace.at(pos, layer, "c")[0])
        drawn = screen_text(pilot.app)
        assert "L1 " in drawn and "L2 " in drawn and "units 0-" in drawn
        # the next page of units, another quantity: the strips follow
        await pilot.press("right_square_bracket", "v")
        view = strips.view
        per_page = strips.units_per_page(2)
        assert (view.first_unit, screen.gates.unit) == (per_page, per_page) and view.key == screen.gates.colour_key
        key = view.key
        for layer, strip in enumerate(view.strips):
            values = trace.cell_update(key, view.start, len(trace), layer) if key in ("kept", "written") \
                else trace.values(key)[view.start:len(trace), layer]
            np.testing.assert_array_equal(strip.raw[:, :traced], values[:, per_page:2 * per_page].T)


async def test_all_layers_view_without_colour_draws_bars(tiny_run, monkeypatch):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.widgets.heatmap import BARS
    from rnn_playground.tui.app.widgets.layerstrips import LayerStrips
    monkeypatch.setenv("NO_COLOR", "1")
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        await pilot.press("a")
        strips = screen.query_one(LayerStrips)
        view = await wait_for(pilot, lambda: strips.view and len(strips.view.chars) > 1 and strips.view,
                              what="the strips")
        assert strips.mono and strips.units_per_page(2) == strips.lines_per_strip(2)
        lines = strips.render().plain.splitlines()
        rows = [line for line in lines[1:-1]]
        assert len(rows) == 2 * (view.last_unit - view.first_unit)   # one unit a line in each layer
        assert rows[0].startswith("L2 ") and any(row.startswith("L1 ") for row in rows)
        assert all(ch in BARS for ch in rows[0][4:6]) and "▀" not in "".join(rows)
        assert "2 a line" not in lines[-1]


async def test_select_a_span_match_it_and_jump_to_a_match(tiny_run):
    from rnn_playground.core.gates_analysis import match_spans
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.viewmodel.gates_view import span_text
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        await pilot.press("m")   # nothing selected yet: the view says how to select
        assert "select a span first" in screen.query_one("#gates-match-note").content.plain
        await pilot.press(*["right"] * 10, "x", "right", "right", "shift+right")
        assert screen.gates.selection() == (10, 14)
        assert "span 10-13 [m]" in screen.query_one("#gates-step").content.plain
        await pilot.press(*["less_than_sign"] * 4)   # 90th percentile down to the 50th: more units are on
        assert screen.gates.percentile == 50.0
        await pilot.press("m")
        result = await wait_for(pilot, lambda: screen.gates.span_matches, what="the matches")
        assert screen.gates.mark is None and screen.gates.span == (10, 14)
        text = screen.gates.text
        trace = screen.gates.trace
        assert len(trace) == len(text)   # the whole text was traced first
        expected = match_spans(trace, 10, 14, key="c", layer=1, percentile=50.0, top=20)
        assert result == expected
        assert result.matches, "the tiny model's text repeats: some span matches"
        assert all(m.end <= 10 or m.start >= 14 for m in result.matches)
        listed = screen.query_one("#gates-span-matches")
        shown = [str(listed.get_option_at_index(i).prompt) for i in range(listed.option_count)]
        assert len(shown) == len(result.matches)
        best = result.matches[0]
        assert shown[0] == f"{best.score:.2f}  {best.shared}/{len(result.units)} of {best.active} on  " \
                           f"{span_text(text, best.start, best.end)}"
        note = screen.query_one("#gates-match-note").content.plain
        assert f"p50 = {result.threshold:+.4f}" in note and f"{len(result.units)} units on" in note
        # the threshold one step up: matched again, with the 75th percentile
        await pilot.press("greater_than_sign")
        await wait_for(pilot, lambda: screen.gates.span_matches.percentile == 75.0, what="the new threshold")
        higher = match_spans(trace, 10, 14, key="c", layer=1, percentile=75.0, top=20)
        assert screen.gates.span_matches == higher
        assert "p75 = " in screen.query_one("#gates-match-note").content.plain
        await pilot.press("less_than_sign")
        await wait_for(pilot, lambda: screen.gates.span_matches.percentile == 50.0, what="the threshold back")
        # Enter on the second match jumps there; the span matched stays
        await pilot.pause()
        if len(screen.gates.span_matches.matches) > 1:
            await pilot.press("down")
        index = listed.highlighted
        await pilot.press("enter")
        target = screen.gates.span_matches.matches[index].start
        await wait_for(pilot, lambda: screen.gates.pos == target, what="the jump")
        assert screen.gates.span == (10, 14)
        assert screen.query_one("#gates-text").selection == (10, 14)


def test_layers_view_data_for_the_cell_update_and_the_text_edges():
    """The middle floor alone: kept/written strips are core's cell_update; the window stays inside the text."""
    import torch

    from rnn_playground.core.corpus import Vocab
    from rnn_playground.core.gates import GateTracer
    from rnn_playground.core.model import CharRNN, ModelConfig
    from rnn_playground.tui.viewmodel.gates_view import diverging, layers_view, window_start
    text = "the cat sat on the mat, the end"
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", hidden=10, layers=3, embed=4)).eval()
    trace = GateTracer(model, vocab).trace(text[:20])   # the rest not traced yet
    assert window_start(0, 12, len(text)) == 0 and window_start(len(text) - 1, 12, len(text)) == len(text) - 12
    assert window_start(15, 12, len(text)) == 11 and window_start(3, 100, len(text)) == 0
    view = layers_view(trace, text, "kept", 15, 12, unit=7, per_page=4)
    assert (view.start, view.chars, view.cursor) == (11, text[11:23], 4)
    assert (view.first_unit, view.last_unit) == (4, 8) and [s.label for s in view.strips] == ["L1", "L2", "L3"]
    for layer, strip in enumerate(view.strips):
        kept = trace.cell_update("kept", 11, 20, layer)[:, 4:8].T
        np.testing.assert_array_equal(strip.raw[:, :9], kept)
        assert np.isnan(strip.raw[:, 9:]).all() and (strip.values[:, 9:] == 0).all()
        np.testing.assert_array_equal(strip.values[:, :9], diverging(kept, "derived"))
        assert strip.selected == float(trace.cell_update("kept", 15, 16, layer)[0, 7])
    # the cursor past the trace: no value selected; the last page may be short
    view = layers_view(trace, text, "i", 25, 12, unit=9, per_page=4)
    assert (view.first_unit, view.last_unit) == (8, 10) and all(s.selected is None for s in view.strips)


@pytest.mark.usefixtures("deterministic")
@pytest.mark.timeout(180)
async def test_both_views_show_whole_words_and_numbers_at_80x24():
    from rnn_playground.tui.app.screens.gates import GatesScreen
    run = write_char_checkpoint(Path("runs") / "plucky-quokka-4821")
    app = pinned_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run("gates", run)
        screen = await wait_for(pilot, lambda: isinstance(app.screen, GatesScreen) and app.screen.gates.trace
                                is not None and app.screen, what="the gates trace")
        await pilot.press(*["right"] * 20, "a")
        await wait_for(pilot, lambda: screen.query_one("#gates-layers").view is not None, what="the strips")
        await pilot.pause()
        assert not cuts(app), "\n".join(cuts(app)) + "\n" + screen_text(app)
        await pilot.press("x", *["right"] * 3, *["less_than_sign"] * 4, "m")
        await wait_for(pilot, lambda: screen.gates.span_matches, what="the matches")
        await pilot.pause()
        assert not cuts(app), "\n".join(cuts(app)) + "\n" + screen_text(app)


def test_the_session_selects_traces_matches_and_jumps_without_a_terminal(tiny_run):
    from rnn_playground.core.gates_analysis import match_spans
    from rnn_playground.tui.viewmodel.gates_session import (
        ExtendJob,
        GatesSession,
        MatchJob,
        TextRequest,
        extend_trace,
        load_tracer,
        open_text,
        run_span_match,
    )
    text = "abc xyz abc xyz abd xyz abc " * 8
    session = GatesSession(run=tiny_run)
    tracer, meta = load_tracer(tiny_run)
    session.start_load()
    session.loaded(session.generation, open_text(tracer, meta, TextRequest("text", text)))
    session.move_to(6)
    session.toggle_mark()
    session.step(-2)   # the span runs from the cursor back up to the mark, both in
    assert session.selection() == (4, 7) and session.mark == 6
    session.toggle_mark()
    assert session.mark is None and session.selection() is None
    jobs = session.extend_selection(1)   # shift+right: a mark where the cursor was, then one step
    assert session.selection() == (4, 6) and jobs == []
    session.extend_selection(1)
    jobs = session.set_view("match")     # the span is taken, the mark dropped, the whole text traced first
    assert session.span == (4, 7) and session.mark is None and session.selection() == (4, 7)
    assert [type(job) for job in jobs] == [ExtendJob] and session.match_note.startswith("tracing")
    extend_trace(jobs[0])
    jobs = session.extended(session.generation, True)
    assert [type(job) for job in jobs] == [MatchJob] and len(session.trace) == len(text)
    job = jobs[0]
    assert (job.start, job.end, job.key, job.layer, job.percentile) == (4, 7, "c", 1, 90.0)
    session.matched(job, run_span_match(job), None)
    expected = match_spans(session.trace, 4, 7, "c", 1, 90.0, top=20)
    assert session.span_matches == expected and session.match_note == ""
    assert session.match() == []   # the same question again: nothing to do
    # a lower threshold asks again; a stale answer (the job it replaced) is dropped
    stale = job
    (job,) = session.change_percentile(-1)
    assert job.percentile == 85.0
    session.matched(stale, run_span_match(stale), None)
    assert session.span_matches == expected and session.match_note == "matching…"
    session.matched(job, run_span_match(job), None)
    assert session.span_matches.percentile == 85.0
    if session.span_matches.matches:
        session.jump_to_match(0)
        assert session.pos == session.span_matches.matches[0].start and session.span == (4, 7)
    assert session.jump_to_match(99) == []

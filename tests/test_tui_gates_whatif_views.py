"""Interventions beside the all-layers view and span match: the layers view draws what is at the cursor, so
it reads the intervened trace like every other number there; span match is an analysis of the whole text,
so like saturation, the unit search and the ranking it reads the model as trained (the original trace)."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_playground.core.gates import GateTracer
from rnn_playground.core.gates_analysis import match_spans
from rnn_playground.core.intervene import Intervention

pytestmark = pytest.mark.timeout(120)


def session_on(run, text: str, **kwargs):
    from rnn_playground.tui.viewmodel.gates_session import GatesSession
    tracer = GateTracer.from_checkpoint(run)
    text = "".join(ch for ch in text if ch in tracer.vocab.index)
    return GatesSession(run=run, tracer=tracer, trace=tracer.trace(text), text=text, colour_key="c", **kwargs), text


def test_the_layers_view_reads_the_intervened_trace(tiny_run):
    from rnn_playground.tui.viewmodel.gates_session import gates_frame
    session, text = session_on(tiny_run, "the cat sat on the mat, then ran off to the barn.", pos=20, layer=0,
                               unit=3, view="layers")
    strips = (30, 8)   # characters shown, units a page

    def shown_strips():
        return gates_frame(session, 40, strips=strips).layers

    before = shown_strips()
    assert session.add_intervention("L1:U0-7:c=0@5") == []      # short: recomputed at once
    changed = session.trace.intervened([Intervention(0, tuple(range(8)), "c", 0.0, 5)])
    view = shown_strips()
    assert (view.start, view.first_unit, view.last_unit) == (before.start, 0, 8)
    traced = min(len(session.trace), view.start + len(view.chars)) - view.start
    assert traced > 5 - view.start
    for layer, strip in enumerate(view.strips):
        expected = changed.values("c")[view.start:view.start + traced, layer, 0:8].T
        np.testing.assert_array_equal(strip.raw[:, :traced], expected)
        assert strip.selected == float(changed.at(session.pos, layer, "c")[3])
    # layer 1's silenced units are 0 from position 5 on; layer 2, fed by them, moved too
    silenced = view.strips[0].raw[:, 5 - view.start:traced]
    assert np.array_equal(silenced, np.zeros_like(silenced))
    assert not np.array_equal(view.strips[1].raw[:, :traced], before.strips[1].raw[:, :traced])
    # removed: the original again
    session.clear_interventions()
    for strip, original in zip(shown_strips().strips, before.strips, strict=True):
        np.testing.assert_array_equal(strip.raw, original.raw)


def test_span_match_reads_the_model_as_trained(tiny_run):
    from rnn_playground.tui.viewmodel.gates_session import MATCH_AS_TRAINED, MatchJob, run_span_match
    session, text = session_on(tiny_run, "abc xyz abc xyz abd xyz abc " * 6, layer=1)
    assert len(session.trace) == len(text)   # traced whole: the match needs nothing more
    hidden = session.tracer.hidden
    # silence every unit of the top layer from the start: matched on that trace, no unit would be on
    assert session.add_intervention(f"L2:U0-{hidden - 1}:c=0@0") == []   # short: recomputed at once
    assert session.changed is not None and session.shown_trace() is session.changed
    session.move_to(4)
    session.toggle_mark()   # the span: the character at 4 alone, so that at p50 about half the units are on
    session.percentile = 50.0
    (job,) = session.set_view("match")
    assert isinstance(job, MatchJob) and job.trace is session.trace and job.trace is not session.changed
    session.matched(job, run_span_match(job), None)
    expected = match_spans(session.trace, 4, 5, "c", 1, 50.0, top=20)
    assert session.span_matches == expected and expected.units
    # on the intervened trace the top layer's c is 0 throughout: the match there would differ
    silenced = match_spans(session.changed, 4, 5, "c", 1, 50.0, top=20)
    assert silenced != expected
    assert "as trained" in MATCH_AS_TRAINED and "interventions" in MATCH_AS_TRAINED
    # adding or removing an intervention leaves the match as it was: nothing to recompute
    session.clear_interventions()
    assert session.match() == [] and session.span_matches == expected


def test_a_new_text_clears_the_span_and_the_interventions(tiny_run):
    """Both name positions of the text they were made on: a new text drops both."""
    from rnn_playground.tui.viewmodel.gates_session import (
        TextRequest,
        gates_frame,
        load_tracer,
        open_text,
        run_span_match,
    )
    session, text = session_on(tiny_run, "abc xyz abc xyz abd xyz abc " * 4, layer=1)
    session.add_intervention("L1:U0:c=0@3")
    session.move_to(4)
    session.toggle_mark()
    session.percentile = 50.0
    (job,) = session.set_view("match")
    session.matched(job, run_span_match(job), None)
    session.move_to(10)
    session.toggle_mark()
    assert session.span == (4, 5) and session.span_matches is not None and session.mark == 10
    assert session.interventions and session.changed is not None
    tracer, meta = load_tracer(tiny_run)
    session.start_load()
    session.loaded(session.generation, open_text(tracer, meta, TextRequest("text", "the cat sat on the mat.")))
    assert (session.mark, session.span, session.span_matches, session.match_note) == (None, None, None, "")
    assert (session.interventions, session.changed, session.continued, session.intervene_note) == ([], None, None, "")
    session.view = "intervene"
    assert session.selection() is None and gates_frame(session, 20).effect is None

"""The Gates session's what-if paths at their edges (a review of issue 17's work): a continuation asked for
while the intervened trace is recomputed, a bad spec typed meanwhile, an intervention past the traced part,
a new text in the rank view, a failed extension in the match view."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_playground.core.gates import GateTracer

from .tui_helpers import Host, wait_for

pytestmark = pytest.mark.timeout(120)

LONG = "the quick brown fox jumps over the lazy dog. " * 12   # past INLINE_INTERVENE: recomputed in a worker


def session_on(run, text: str, traced: int | None = None, **kwargs):
    """A session on `text` (its characters the model knows), traced whole or its first `traced` characters."""
    from rnn_playground.tui.viewmodel.gates_session import GatesSession
    tracer = GateTracer.from_checkpoint(run)
    text = "".join(ch for ch in text if ch in tracer.vocab.index)
    trace = tracer.trace(text if traced is None else text[:traced])
    return GatesSession(run=run, tracer=tracer, trace=trace, text=text, **kwargs), text


def test_a_continuation_asked_for_while_recomputing_is_drawn_with_the_interventions(tiny_run):
    """Drawn at once it would take the original trace for both sides ('with' equal to 'without'): it waits
    for the recomputed trace and starts when that is back."""
    from rnn_playground.tui.viewmodel.gates_session import (
        CONTINUE_CHARS,
        ContinueJob,
        InterveneJob,
        run_continuation,
        run_intervention,
    )
    session, text = session_on(tiny_run, LONG, pos=10)
    hidden = session.tracer.hidden
    (job,) = session.add_intervention(f"L2:U0-{hidden - 1}:c=0@3")
    assert isinstance(job, InterveneJob) and session.intervening
    assert session.continue_text() == [] and session.continuing   # waits, and says so
    (continuation,) = session.intervention_done(job, run_intervention(job))
    assert isinstance(continuation, ContinueJob) and continuation.at == 10
    without, with_ = run_continuation(continuation)
    assert without == session.trace.continuation(10, CONTINUE_CHARS, 0, 0.8)
    assert with_ == session.changed.continuation(10, CONTINUE_CHARS, 0, 0.8)
    assert with_ != without   # every unit of the top layer silenced: the model writes something else
    session.continued_text(continuation, (without, with_))
    assert session.continued == (10, without, with_) and not session.continuing


def test_a_continuation_without_interventions_says_to_add_one(tiny_run):
    session, _ = session_on(tiny_run, "the cat sat on the mat.", pos=3)
    assert session.continue_text() == [] and not session.continuing
    assert "add an intervention" in session.intervene_note


def test_a_bad_spec_typed_while_recomputing_keeps_its_message(tiny_run):
    """The note says what is wrong with the spec; the recomputation finishing does not wipe it."""
    from rnn_playground.tui.viewmodel.gates_session import run_intervention
    session, _ = session_on(tiny_run, LONG)
    (job,) = session.add_intervention("L1:U0:c=0@3")
    assert session.intervening and session.intervene_note == ""
    assert "recomputing the trace from position 3" in session.recompute_note
    assert session.add_intervention("L9:U0:c=0@3") == []
    assert "layer 9 does not exist" in session.intervene_note and len(session.interventions) == 1
    assert session.intervention_done(job, run_intervention(job)) == []
    assert "layer 9 does not exist" in session.intervene_note and session.changed is not None
    assert session.recompute_note == ""


def test_an_intervention_past_the_traced_part_says_so(tiny_run):
    """Not 'outside the text' with the traced length as the last position: the text goes on."""
    session, text = session_on(tiny_run, LONG, traced=20)
    assert session.add_intervention("L1:U0:c=0@100") == []
    note = session.intervene_note
    assert "outside the text" not in note and "not traced yet" in note and "100" in note
    assert session.interventions == []
    assert session.add_intervention(f"L1:U0:c=0@{len(text)}") == []
    assert f"positions run from 0 to {len(text) - 1}" in session.intervene_note


def test_a_new_text_in_the_rank_view_ranks_it(tiny_run):
    """As the saturation, search and compare views do: not a blank panel with nothing running."""
    from rnn_playground.tui.viewmodel.gates_session import RankingJob, TextRequest, load_tracer, open_text
    session, _ = session_on(tiny_run, "the cat sat on the mat.")
    (first,) = session.set_view("rank") or session.rank_units()
    tracer, meta = load_tracer(tiny_run)
    session.start_load()
    (job,) = session.loaded(session.generation, open_text(tracer, meta, TextRequest("text", "a dog ran off.")))
    assert isinstance(job, RankingJob) and job.text == "a dog ran off." and session.ranking_running
    assert first.cancel.is_set()


def test_a_failed_extension_leaves_no_match_waiting(tiny_run):
    """The match view said 'tracing the whole text first…' for ever after the trace failed."""
    from rnn_playground.tui.viewmodel.gates_session import ExtendJob
    session, text = session_on(tiny_run, LONG, traced=20, view="match", span=(2, 5))
    (job,) = session.match()
    assert isinstance(job, ExtendJob) and "tracing" in session.match_note
    session.extended(job.generation, True, "Tracing failed: RuntimeError: simulated")
    assert session.match_note == "" and session.error is not None and not session.extending


def test_a_regex_nested_too_deeply_is_refused_with_a_message(tiny_run, capsys, monkeypatch):
    """Python's re raises RecursionError, not re.error, for deep nesting: the unit search's worker died on it
    (the note said 'searching…' for ever) and the CLI printed a traceback."""
    from rnn_playground.core.errors import TraceError
    from rnn_playground.core.gates_analysis import text_feature
    from rnn_playground.tui.cli.main import main
    from rnn_playground.tui.viewmodel.gates_session import run_analysis
    deep = "(" * 1000 + "a" + ")" * 1000
    with pytest.raises(TraceError, match="nested too deeply"):
        text_feature("abc", regex=deep)
    session, _ = session_on(tiny_run, "the cat sat on the mat.", feature="regex", regex=deep)
    (job,) = session.search()
    with pytest.raises(TraceError, match="nested too deeply"):
        run_analysis(job)
    monkeypatch.setenv("COLUMNS", "240")
    assert main(["gates", str(tiny_run), "--text", "abc", "--regex", deep]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err


async def test_the_search_view_shows_a_regex_nested_too_deeply(tiny_run):
    """End to end: the unit search's note says what is wrong, not 'searching…' for ever."""
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen.gates.trace is not None or screen.gates.error, what="the trace")
        await pilot.press("f")
        await wait_for(pilot, lambda: screen.gates.matches, what="the units")
        field = screen.query_one("#gates-regex")
        screen.set_focus(field)
        field.value = "(" * 1000 + "a" + ")" * 1000
        await pilot.press("enter")
        await wait_for(pilot, lambda: "nested too deeply" in screen.gates.analysis_note, what="the message")
        await pilot.pause()
        assert "nested too deeply" in screen.query_one("#gates-search-note").content.plain


def test_a_series_trace_refuses_interventions_and_continuations_clearly():
    """Inherited from the character Trace they failed with AttributeError ('SeriesTracer' has no 'encode');
    like the other character-only readings they say why."""
    import torch

    from rnn_playground.core.errors import TraceError
    from rnn_playground.core.intervene import Intervention
    from rnn_playground.core.series import SeriesModelConfig, SeriesRNN
    from rnn_playground.core.series_data import Normalizer
    from rnn_playground.core.series_gates import SeriesTracer
    torch.manual_seed(0)
    model = SeriesRNN(SeriesModelConfig(inputs=1, cell="lstm", hidden=4, layers=1)).eval()
    trace = SeriesTracer(model, Normalizer((0.0,), (1.0,))).trace(np.linspace(-1.0, 1.0, 12))
    for attempt in (lambda: trace.intervened([Intervention(0, (1,), "c", 0.0, 3)]),
                    lambda: trace.continuation(3, 5), lambda: trace.continuation_from(3)):
        with pytest.raises(TraceError, match="applies to character models only"):
            attempt()


def test_a_match_tracing_the_whole_text_leaves_the_search_note_alone(tiny_run):
    """need_full('match') set the search view's note to 'tracing the whole text…', which nothing cleared."""
    from rnn_playground.tui.viewmodel.gates_session import MatchJob, extend_trace
    session, text = session_on(tiny_run, LONG, traced=20, view="match", span=(2, 5))
    (job,) = session.match()
    extend_trace(job)
    (match,) = session.extended(job.generation, True)
    assert isinstance(match, MatchJob) and session.traced() == len(text)
    assert session.analysis_note == ""


def test_play_moves_at_the_speed_shown():
    """Above MAX_TICKS a tick moves several characters: 50/s moved 2 every 1/30 s, 60 a second."""
    from rnn_playground.tui.viewmodel.gates_session import MAX_TICKS, SPEEDS, GatesSession
    session = GatesSession()
    for speed in SPEEDS:
        session.speed = speed
        assert session.steps_per_tick / session.tick_s == pytest.approx(speed)
        assert 1 / session.tick_s <= MAX_TICKS + 1e-9 and session.steps_per_tick >= 1


@pytest.mark.parametrize("spec", ["L1:U3:c=0@", "L1:U3:c=0@ "])
def test_an_empty_position_is_refused_not_read_as_zero(spec):
    from rnn_playground.core.errors import TraceError
    from rnn_playground.tui.viewmodel.intervene import parse_intervention
    with pytest.raises(TraceError, match="the position must be a character index"):
        parse_intervention(spec, "lstm", 2, 8, 50)
    assert parse_intervention("L1:U3:c=0", "lstm", 2, 8, 50).start == 0


def test_only_the_last_continuation_asked_for_is_shown(tiny_run):
    """t pressed at 3, then at 9: the first, finishing last, is not shown over the second (nor ends 'continuing')."""
    from rnn_playground.tui.viewmodel.gates_session import run_continuation
    session, _ = session_on(tiny_run, "the cat sat on the mat, then ran off.", pos=3)
    assert session.add_intervention("L1:U0-7:c=0@1") == []   # short: recomputed at once
    (first,) = session.continue_text()
    session.move_to(9)
    (second,) = session.continue_text()
    session.continued_text(second, run_continuation(second))
    assert session.continued[0] == 9 and not session.continuing
    shown = session.continued
    session.continued_text(first, run_continuation(first))
    assert session.continued == shown


async def test_a_new_text_in_the_match_view_says_how_to_select_a_span(tiny_run):
    """The span went with the old text: the view says how to pick one, not nothing at all."""
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.viewmodel.gates_session import SELECT_SPAN, TextRequest
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen.gates.trace is not None or screen.gates.error, what="the trace")
        await pilot.press("right", "x", "right", "right", "m")
        await wait_for(pilot, lambda: screen.gates.span_matches is not None, what="the match")
        screen.load(TextRequest("text", "the cat sat on the mat."))
        await wait_for(pilot, lambda: screen.gates.text == "the cat sat on the mat." and screen.gates.trace
                       is not None, what="the new text")
        await pilot.pause()
        assert screen.gates.span is None
        assert SELECT_SPAN[:30] in screen.query_one("#gates-match-note").content.plain


def test_a_huge_unit_range_is_refused_before_it_is_spelled_out():
    """'U0-999999999999' built a list of a trillion unit numbers (on the UI thread) before the range check."""
    from rnn_playground.core.errors import TraceError
    from rnn_playground.tui.viewmodel.intervene import parse_intervention
    with pytest.raises(TraceError, match="unit 8 is out of range; the layer has units 0 to 7"):
        parse_intervention("L1:U0-999999999999:c=0", "lstm", 2, 8, 50)
    with pytest.raises(TraceError, match="unit 12 is out of range; the layer has units 0 to 7"):
        parse_intervention("L1:U3,12-99999999999999:c=0", "lstm", 2, 8, 50)
    assert parse_intervention("L1:U5-7,2:c=0", "lstm", 2, 8, 50).units == (5, 6, 7, 2)


def test_progress_of_a_replaced_recomputation_is_not_shown(tiny_run):
    """The screen kept the last progress it was sent, from whichever job: a replaced job's count (or the
    previous job's last one) showed for the new recomputation."""
    session, _ = session_on(tiny_run, LONG)
    (old,) = session.add_intervention("L1:U0:c=0@3")
    session.intervention_progressed(old, 300, 540)
    assert session.recompute_progress == (300, 540)
    (new,) = session.add_intervention("L2:U1:h=0@5")
    assert session.recompute_progress == (0, 0)
    session.intervention_progressed(old, 500, 540)
    assert session.recompute_progress == (0, 0)
    session.intervention_progressed(new, 100, 540)
    assert session.recompute_progress == (100, 540)


def test_an_interventions_spec_reads_back_as_the_same_intervention():
    """describe() wrote the value with 6 digits: 'c=0.333333' for a third, so the list, the JSON's spec and
    a spec copied back gave another intervention (and two close values looked the same)."""
    from rnn_playground.core.intervene import Intervention
    from rnn_playground.tui.viewmodel.intervene import parse_intervention
    for value in (0.0, 1.0, -2.5, 1 / 3, 0.1234567, 1e-9, 12345678.9):
        intervention = Intervention(1, (3, 4, 5, 9), "c", value, 7)
        assert parse_intervention(intervention.describe(), "lstm", 2, 16, 50) == intervention
    assert Intervention(0, (42,), "c", 0.0, 120).describe() == "L1:U42:c=0@120"
    assert Intervention(0, (1,), "h", -2.5).describe() == "L1:U1:h=-2.5@0"


def test_an_extension_running_when_the_interventions_change_extends_the_current_intervened_trace(tiny_run):
    """The extension reads the session's intervened trace as it goes: one dropped meanwhile is left alone
    (extending it was wasted work), and one recomputed meanwhile is the one kept up."""
    from rnn_playground.tui.viewmodel.gates_session import ExtendJob, extend_trace
    session, text = session_on(tiny_run, LONG, traced=20)
    assert session.add_intervention("L1:U0:c=0@3") == []  # short: recomputed at once
    dropped = session.changed
    (job,) = [job for job in session.move_to(200) if isinstance(job, ExtendJob)]
    session.clear_interventions()
    assert session.add_intervention("L1:U1:h=0@5") == []
    current = session.changed
    extend_trace(job)
    assert len(session.trace) > 200 and len(dropped) == 20
    assert len(current) == len(session.trace)
    np.testing.assert_array_equal(current.values("h")[:, 0, 1][5:], 0.0)

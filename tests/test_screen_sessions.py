"""The Gates and Sample screens' state machines driven without Textual, on a real tiny model: the
Gates cursor and its trace extension, a sample stream and a complete-as-you-type continuation."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_playground.core.gates import GateTracer
from rnn_playground.core.sampling import Sampler, SampleSettings
from rnn_playground.tui.viewmodel.gates_session import (
    INLINE_STEPS,
    SPEEDS,
    AnalysisJob,
    ExtendJob,
    GatesSession,
    TextRequest,
    extend_trace,
    gates_frame,
    load_tracer,
    open_text,
    run_analysis,
    step_line,
)
from rnn_playground.tui.viewmodel.gates_view import next_word, previous_word, quantity_labels
from rnn_playground.tui.viewmodel.sample_session import (
    GHOST_CHARS,
    GhostCompletion,
    StreamSession,
    beam_progress,
    beam_rows,
    complete,
    output_parts,
    pane_parts,
    stream_chunks,
)

from .conftest import TINY_TEXT

TEXT = TINY_TEXT[:600]


def opened_session(run, text: str = TEXT) -> GatesSession:
    session = GatesSession()
    assert session.select_run(run)
    generation = session.start_load()
    tracer, meta = load_tracer(session.run)
    assert session.loaded(generation, open_text(tracer, meta, TextRequest("text", text))) == []
    return session


def run_jobs(session: GatesSession, jobs) -> list:
    """Run the jobs as the screen's workers would, handing each result back; the jobs that follow."""
    follow = []
    for job in jobs:
        if isinstance(job, ExtendJob):
            extend_trace(job)
            follow += session.extended(job.generation, True)
        else:
            session.analysed(job, run_analysis(job), None)
    return follow


def test_the_gates_cursor_moves_by_steps_words_pages_and_ends(tiny_run):
    session = opened_session(tiny_run)
    trace = session.trace
    assert len(trace) == 2 and session.text == TEXT and not session.is_loading
    assert (session.layer, session.unit, session.colour_key) == (1, 0, "c")
    assert not session.select_run(tiny_run)  # already open: nothing to load
    for _ in range(12):
        assert session.step(1) == []  # short steps extend the trace at once, one past the cursor
    assert session.pos == 12 and len(trace) == 14
    assert session.step(-2) == [] and session.pos == 10 and len(trace) == 14  # back steps only read it
    assert session.word(1) == [] and session.pos == next_word(TEXT, 10)
    assert session.word(-1) == [] and session.pos == previous_word(TEXT, next_word(TEXT, 10))
    # a page further than INLINE_STEPS: the cursor waits while a worker extends the trace
    start = session.pos
    [job] = session.page(1, INLINE_STEPS * 2)
    assert isinstance(job, ExtendJob) and job.target == start + INLINE_STEPS * 2 + 1
    assert session.pos == start and session.pending == start + INLINE_STEPS * 2 and session.extending
    assert step_line(session).goal == session.pending
    # moving on while it extends asks for more: the running job keeps its target, its end asks for the rest
    assert session.edge(1) == [] and session.target == len(TEXT) - 1 and session.cursor == len(TEXT) - 1
    extend_trace(job)
    assert len(trace) == job.target + 1
    [rest] = session.extended(job.generation, True)
    assert rest.target == len(TEXT) - 1 and session.pending == len(TEXT) - 1
    assert run_jobs(session, [rest]) == []
    assert session.pos == len(TEXT) - 1 and session.pending is None and not session.extending
    assert len(trace) == len(TEXT) and step_line(session).goal is None
    assert session.edge(-1) == [] and session.pos == 0


def test_the_gates_frame_is_the_engines_trace_at_the_cursor(tiny_run):
    session = opened_session(tiny_run)
    for _ in range(20):
        session.step(1)
    session.change_unit(3)
    session.change_layer(-1)
    expected = GateTracer.from_checkpoint(tiny_run).trace(TEXT[:22])
    frame = gates_frame(session, span=40)
    assert [row.key for row in frame.rows] == [q.key for q in quantity_labels("lstm")]
    for row in frame.rows:
        assert row.raw == pytest.approx(float(expected.at(20, 0, row.key)[3]), abs=1e-5)
        assert np.all(np.abs(row.values) <= 1.0)
    kept, written, c = frame.update
    assert kept + written == pytest.approx(c, abs=1e-5)
    assert frame.next_chars.true_char == TEXT[21] and frame.info.char == TEXT[20]
    assert frame.colours_start == 0 and len(frame.colours) == len(session.trace)
    line = step_line(session)
    assert (line.pos, line.last, line.traced) == (20, len(TEXT) - 1, 22)


def test_saturation_and_search_trace_the_whole_text_first(tiny_run):
    session = opened_session(tiny_run)
    [job] = session.set_view("saturation")
    assert isinstance(job, ExtendJob) and job.target == len(TEXT) - 1
    assert session.analysis_note == "tracing the whole text…" and session.after_full == ["saturation"]
    [analysis] = run_jobs(session, [job])
    assert isinstance(analysis, AnalysisJob) and analysis.kind == "saturation"
    run_jobs(session, [analysis])
    expected = GateTracer.from_checkpoint(tiny_run).trace(TEXT)
    assert np.allclose(session.saturation.left["f"], expected.saturation().left["f"])
    assert gates_frame(session, span=40).fraction
    [search] = session.set_view("search")  # the text is traced: searching starts at once
    assert (search.name, search.key) == ("inside-quotes", "c") and session.analysis_note == "searching…"
    run_jobs(session, [search])
    assert [(m.layer, m.unit) for m in session.matches] == \
        [(m.layer, m.unit) for m in expected.find_units(name="inside-quotes", key="c", top=10)]
    session.select_match(session.matches[1])
    assert (session.layer, session.unit) == (session.matches[1].layer, session.matches[1].unit)
    session.feature, session.regex = "regex", ""
    assert session.search() == [] and "regular expression" in session.analysis_note


def test_a_new_text_cancels_the_extension_of_the_old_one(tiny_run):
    session = opened_session(tiny_run)
    [job] = session.edge(1)
    generation = session.start_load()
    assert job.cancel.is_set() and not session.extending
    assert extend_trace(job) == 2  # stops before its first chunk
    assert session.extended(job.generation, True) == []  # an old text's result is dropped
    tracer = session.tracer
    assert session.loaded(generation, open_text(tracer, session.meta, TextRequest("text", "def f(x):"))) == []
    assert session.text == "def f(x):" and session.pos == 0 and session.pending is None
    # an error while loading keeps the text there is
    generation = session.start_load()
    assert session.loaded(generation, None, "The text is empty", tracer, session.meta) == []
    assert session.error == "The text is empty" and session.text == "def f(x):"


def test_play_steps_at_its_speed_and_stops_at_the_end(tiny_run):
    session = opened_session(tiny_run, "abc def ghi")
    session.change_speed(1)
    assert session.speed == SPEEDS[SPEEDS.index(10) + 1]
    session.toggle_play()
    assert session.playing and session.tick_s == pytest.approx(1 / 20)
    session.tick()
    assert session.pos == 1
    while session.playing:
        session.tick()
    assert session.pos == len("abc def ghi") - 1
    session.toggle_play()  # from the end it starts again at the start
    assert session.playing and session.pos == 0
    session.step(1)
    assert not session.playing  # a key moving the cursor stops play


def test_a_sample_stream_is_the_samplers_text_and_says_how_it_went(tiny_run):
    sampler = Sampler.from_checkpoint(tiny_run, "cpu")
    stream = StreamSession(length=200)
    stream.toggle_seed_mode()
    assert stream.seed_fixed and stream.next_seed() == stream.seed
    settings = stream.settings("The ", stream.next_seed())
    job = stream.start(settings, "tiny (LSTM 2x32)")
    assert stream.streaming and output_parts(stream, GhostCompletion(stream), "The ") == ("The ", "", "", True)
    for chunk in stream_chunks(sampler, job.settings, job.stop, pace=job.pace):
        assert stream.add(job.generation, chunk)
    assert not stream.streaming
    assert stream.generated == sampler.generate(settings)
    line = stream.result_line()
    assert line.state == "done" and line.count.startswith("200 chars in ") and line.rate.endswith("chars/s")
    assert f"seed {settings.seed}" in line.made_with and line.made_with[-1] == "tiny (LSTM 2x32)"
    # chunks of a stream that has been replaced are dropped
    assert not stream.add(job.generation - 1, chunk)


def test_stop_ends_a_stream_early(tiny_run):
    sampler = Sampler.from_checkpoint(tiny_run, "cpu")
    stream = StreamSession(length=10_000, pace=1000.0)  # ten seconds at a typewriter's 1,000 chars/s
    job = stream.start(stream.settings("", 5), "tiny")
    for chunk in stream_chunks(sampler, job.settings, job.stop, pace=job.pace):
        stream.add(job.generation, chunk)
        stream.stop()
    assert not stream.streaming and stream.last_chunk.stopped and 0 < len(stream.generated) < 10_000
    assert stream.result_line().state == "stopped"
    assert stream.generated == sampler.generate(SampleSettings(length=len(stream.generated), seed=5))


def test_a_continuation_made_stale_by_typing_is_dropped(tiny_run):
    sampler = Sampler.from_checkpoint(tiny_run, "cpu")
    stream = StreamSession()
    ghost = GhostCompletion(stream)
    assert ghost.job("de") is None  # off
    ghost.toggle()
    generation, settings = ghost.job("de")
    assert (settings.prime, settings.length, settings.seed) == ("de", GHOST_CHARS, 0)
    chunk = complete(sampler, settings)
    assert not ghost.ready(generation, settings, chunk, None, prime="def")  # typed on meanwhile
    assert ghost.text == ""
    generation, settings = ghost.job("def")
    assert ghost.ready(generation, settings, complete(sampler, settings), None, prime="def")
    expected = sampler.generate(SampleSettings(prime="def", temperature=0.8, length=GHOST_CHARS, seed=0))
    assert ghost.text == expected and ghost.prime == "def"
    assert output_parts(stream, ghost, "def") == ("def", "", expected, False)
    what, rate, made_with = ghost.caption()
    assert what == f"the model's continuation, {GHOST_CHARS} chars" and "seed 0" in made_with
    # one asked for before a result came is dropped: the result stays
    generation, settings = ghost.job("def ")
    job = stream.start(stream.settings("def ", 1), "tiny")
    for chunk in stream_chunks(sampler, job.settings, job.stop):
        stream.add(job.generation, chunk)
    assert not ghost.ready(generation, settings, complete(sampler, settings), None, prime="def ")
    assert output_parts(stream, ghost, "def ")[1] == stream.generated
    # its error is shown in its place
    generation, settings = ghost.job("def ")
    assert ghost.ready(generation, settings, None, "RuntimeError: broke", prime="def ")
    assert ghost.error == "RuntimeError: broke" and ghost.text == ""


def test_several_samples_are_the_engines_streams_each_with_its_log_probability(tiny_run):
    sampler = Sampler.from_checkpoint(tiny_run, "cpu")
    stream = StreamSession(length=120, samples=4, top_p=0.9, repetition_penalty=1.2, stop_text="/e[ .]/",
                           min_length=10)
    settings = stream.settings("The ", 7)
    assert (settings.stop, settings.stop_regex, settings.min_length) == ("e[ .]", True, 10)
    job = stream.start(settings, "tiny")
    chunks = list(stream_chunks(sampler, job.settings, job.stop, pace=job.pace))
    for chunk in chunks:
        assert stream.add(job.generation, chunk)
    expected = sampler.sample_many(settings)
    assert stream.texts == [result.text for result in expected]
    assert chunks[-1].results == tuple(expected) and all(not chunk.results for chunk in chunks[:-1])
    assert chunks[-1].chars == sum(result.length for result in expected)
    panes = pane_parts(stream, GhostCompletion(stream), "The ")
    assert [(prime, body) for prime, body, _, _, _ in panes] == [("The ", r.text) for r in expected]
    assert panes[2][4].startswith(f"#3 · {expected[2].total:,.1f} nats · {expected[2].bits_per_char:.2f} bits/char")
    line = stream.result_line()
    assert "(4 samples)" in line.count and line.score == ""  # each pane has its own
    assert "top-p 0.90" in line.made_with and "stop /e[ .]/" in line.made_with and "4 samples" in line.made_with


def test_a_single_streams_result_line_states_its_log_probability(tiny_run):
    sampler = Sampler.from_checkpoint(tiny_run, "cpu")
    stream = StreamSession(length=80)
    job = stream.start(stream.settings("de", 3), "tiny")
    for chunk in stream_chunks(sampler, job.settings, job.stop):
        stream.add(job.generation, chunk)
    [expected] = sampler.sample_many(SampleSettings(prime="de", length=80, seed=3))
    assert stream.generated == expected.text
    assert stream.result_line().score == f"log-prob {expected.total:,.1f} nats · {expected.bits_per_char:.2f} bits/char"


def test_a_beam_search_in_snapshots_ends_with_core_beam_search(tiny_run):
    import threading

    from rnn_playground.core.beam import beam_search
    sampler = Sampler.from_checkpoint(tiny_run, "cpu")
    stream = StreamSession(length=60, beam_on=True, beam_width=4)
    job = stream.start(stream.settings("The ", 1), "tiny")
    assert job.beam == 4
    ticks = iter(range(10**6))
    snapshots = list(beam_progress(sampler, job.settings, job.beam, job.stop, clock=lambda: next(ticks) * 0.05))
    assert 1 < len(snapshots) < 60 and snapshots[-1].done and not any(s.done for s in snapshots[:-1])
    for progress in snapshots:
        assert stream.beam_added(job.generation, progress)
    expected = beam_search(sampler, sampler.vocab, "The ", 4, 60)
    assert not stream.streaming and stream.generated == expected.best.text
    assert [row[4] for row in beam_rows(stream.beam_step)] == [beam.text for beam in expected.beams]
    line = stream.result_line()
    assert line.state == "done" and line.rate.endswith("steps/s") and line.made_with[0] == "beam 4"
    assert line.score.startswith(f"log-prob {expected.best.logprob:,.1f} nats")
    # asked to stop, a search ends at once, saying so
    stop = threading.Event()
    stop.set()
    *_, last = beam_progress(sampler, job.settings, 4, stop)
    assert last.done and last.stopped and last.step.step == 1

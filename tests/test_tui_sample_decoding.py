"""The Sample screen's decoding settings (top-p, repetition penalty, stop text, several samples, beam
search), driven by keys with Textual's Pilot on a real tiny checkpoint: what appears on screen is what
core's sampler (or beam search) makes for the same seed and settings."""

from __future__ import annotations

import pytest

from rnn_playground.core.beam import beam_search
from rnn_playground.core.sampling import Sampler, SampleSettings, stop_rule

from .tui_helpers import Host, cuts, press, screen_text, wait_for

pytestmark = pytest.mark.timeout(120)


async def open_screen(pilot, screen):
    await wait_for(pilot, lambda: screen.checkpoint is not None or screen.load_error, what="the checkpoint")
    assert screen.load_error is None


def settings_line(screen) -> str:
    return screen.query_one("#sample-settings").content.plain


def result_text(screen) -> str:
    return screen.query_one("#sample-result").content.plain


def panes(screen):
    """The sample panes on show (the grid holding them is hidden with one sample)."""
    if not screen.query_one("#sample-panes").display:
        return []
    return [pane for pane in screen.query(".sample-pane") if pane.display]


async def test_each_decoding_key_changes_its_setting_and_the_line(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, screen)
        stream = screen.stream
        line = settings_line(screen)
        assert "top-p off [u/U]" in line and "penalty off [e/E]" in line and "samples 1 [n/N]" in line
        assert "beam search off [b]" in line and "stop" not in line  # the stop's settings show once there is one
        await press(pilot, "u", "u")
        assert stream.top_p == 0.9 and "top-p 0.90 [u/U]" in settings_line(screen)
        await press(pilot, "U")
        assert stream.top_p == 0.95 and "top-p 0.95" in settings_line(screen)
        await press(pilot, "e", "e", "e", "E")
        assert stream.repetition_penalty == 1.2 and "penalty 1.2 [e/E]" in settings_line(screen)
        await press(pilot, "n", "n", "n", "n")  # clamped at 8
        assert stream.samples == 8 and "samples 8 [n/N]" in settings_line(screen)
        await press(pilot, "N")
        assert stream.samples == 4 and "samples 4" in settings_line(screen)
        # the stop field (o): a text, and its include toggle (i) and min-length (j/J) once there is one
        await press(pilot, "i", "j", "[")  # before a stop text (and out of beam mode) they do nothing
        assert (stream.include_stop, stream.min_length, stream.beam_width) == (False, 0, 4)
        await press(pilot, "o")
        assert screen.focused is screen.stop_input
        await press(pilot, *"the", "escape")
        assert screen.focused is None and stream.stop_text == "the"
        assert "stop 'the' cut [o i]" in settings_line(screen) and "min-length 0 [j/J]" in settings_line(screen)
        await press(pilot, "i", "j", "j", "j", "J")
        assert stream.include_stop and stream.min_length == 20
        assert "stop 'the' kept" in settings_line(screen) and "min-length 20" in settings_line(screen)
        # beam search (b) and its width ([ ]): the sampling settings are said not to apply
        await press(pilot, "b")
        line = settings_line(screen)
        assert stream.beam_on and "beam search on [b]  beams 4 [[ ]]" in line and "not used by beam search" in line
        assert "top-p" not in line.split("(")[0]
        await press(pilot, "t", "u")  # not used by beam search: greyed out, the keys do nothing
        assert (stream.temperature, stream.top_p) == (0.8, 0.95)
        await press(pilot, "]", "]", "[", "[", "[")
        assert stream.beam_width == 2 and "beams 2 [[ ]]" in settings_line(screen)
        await press(pilot, "b")
        assert not stream.beam_on and "beam search off" in settings_line(screen)


async def test_top_p_penalty_and_stop_give_the_engines_text_and_log_probability(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, screen)
        # top-p 0.9, penalty 1.2, length 200, a regex stop after 10 characters, seed fixed
        await press(pilot, "u", "u", "e", "e", "L", "s", "o", *"/e[ .]/", "escape", "j")
        await press(pilot, "g")
        await wait_for(pilot, lambda: not screen.stream.streaming and screen.stream.results, what="the sample")
        seed = screen.stream.seed
        settings = SampleSettings(prime="", temperature=0.8, length=200, seed=seed, top_p=0.9,
                                  repetition_penalty=1.2, stop="e[ .]", stop_regex=True, min_length=10)
        [expected] = Sampler.from_checkpoint(tiny_run, "cpu").sample_many(settings)
        assert screen.stream.generated == expected.text
        assert screen.query_one("#sample-output").text == expected.text
        result = result_text(screen)
        assert f"log-prob {expected.total:,.1f} nats · {expected.bits_per_char:.2f} bits/char" in result
        assert "top-p 0.90" in result and "penalty 1.20" in result and "stop /e[ .]/" in result
        if expected.stop_reason == "stop":
            assert "(at the stop text)" in result


async def test_four_samples_are_the_engines_four_streams_side_by_side(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, screen)
        await press(pilot, "n", "n", "L", "L", "s", "p", *"The ", "enter")
        await wait_for(pilot, lambda: not screen.stream.streaming and screen.stream.results, what="the samples")
        expected = Sampler.from_checkpoint(tiny_run, "cpu").sample_many(
            SampleSettings(prime="The ", temperature=0.8, length=100, seed=screen.stream.seed, samples=4))
        assert screen.stream.texts == [result.text for result in expected]
        await wait_for(pilot, lambda: all(pane.region.height for pane in panes(screen)), what="the panes laid out")
        shown = panes(screen)
        assert len(shown) == 4 and not screen.query_one("#sample-output").display
        assert [pane.text for pane in shown] == ["The " + result.text for result in expected]
        for pane, result in zip(shown, expected, strict=True):
            assert pane.border_title.startswith(f"#{result.index + 1} · {result.total:,.1f} nats · "
                                                f"{result.bits_per_char:.2f} bits/char")
        # 2x2 at 80 columns: two panes a row, each about half the width
        assert {pane.region.width for pane in shown} <= {39, 40} and len({pane.region.y for pane in shown}) == 2
        assert "4 samples" in result_text(screen)
        assert screen.stream.chunks_drawn < 20  # batched chunks, never one a character
        assert not cuts(pilot.app)  # every pane's title and the result lines shown whole at 80x24
        # back to one sample: the single view returns
        await press(pilot, "escape", "N", "N", "g")
        await wait_for(pilot, lambda: not screen.stream.streaming and len(screen.stream.texts) == 1)
        assert screen.query_one("#sample-output").display and not panes(screen)


async def test_complete_as_you_type_with_several_samples_shows_each_continuation(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.viewmodel.sample_session import GHOST_CHARS
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(120, 40)) as pilot:
        await open_screen(pilot, screen)
        await press(pilot, "n", "n", "a", *"def")
        expected = Sampler.from_checkpoint(tiny_run, "cpu").sample_many(
            SampleSettings(prime="def", temperature=0.8, length=GHOST_CHARS, seed=0, samples=4))
        await wait_for(pilot, lambda: screen.ghost.texts == [r.text for r in expected], what="the continuations")
        await wait_for(pilot, lambda: len(panes(screen)) == 4 and all(pane.region.height for pane in panes(screen)),
                       what="the panes laid out")
        for pane, result in zip(panes(screen), expected, strict=True):
            assert pane.text == "def" + result.text and pane.tail_start == 3  # dimmed after the prime
            assert f"{result.total:,.1f} nats" in pane.border_title
        # 2x2 at 120 columns: lines long enough to read (laid out on a later frame than the panes' mount)
        await wait_for(pilot, lambda: len({pane.region.y for pane in panes(screen)}) == 2, what="the 2x2 layout")
        await wait_for(pilot, lambda: "the model's 4 continuations" in result_text(screen), what="the result line")


async def test_a_bad_stop_regex_is_said_under_the_field_and_nothing_starts(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(80, 24)) as pilot:
        await open_screen(pilot, screen)
        await press(pilot, "o", *"/(ab/")
        error = screen.query_one("#sample-error")
        assert error.display and "--stop '(ab' is not a regular expression" in error.content.plain
        assert "\n" not in error.content.plain
        await press(pilot, "enter")
        assert not screen.stream.streaming and screen.stream.generated == ""
        assert "not a regular expression" in screen_text(pilot.app)
        # a stop matching empty text is refused the same way
        await press(pilot, "home", "ctrl+k", *"/x*/")
        assert "matches empty text" in error.content.plain
        # fixed, the error goes and Enter generates
        await press(pilot, "home", "ctrl+k", *"/x/", "escape", "L", "L", "L")
        assert not error.display
        await press(pilot, "g")
        await wait_for(pilot, lambda: not screen.stream.streaming and screen.stream.results, what="the sample")
        assert screen.stream.results[0].length <= 50


async def test_beam_view_best_is_core_beam_search_and_its_beams_show_live(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, screen)
        await press(pilot, "b", "L", "L", "p", *"The ", "escape", "g")
        await wait_for(pilot, lambda: not screen.stream.streaming and screen.stream.beam_step, what="the search")
        sampler = Sampler.from_checkpoint(tiny_run, "cpu")
        expected = beam_search(sampler, sampler.vocab, "The ", 4, 100)
        assert screen.stream.generated == expected.best.text
        assert screen.query_one("#sample-output").text == "The " + expected.best.text
        beams = screen.query_one("#sample-beams")
        lines = beams.content.plain.splitlines()
        assert beams.display and len(lines) == 4
        for line, beam in zip(lines, expected.beams, strict=False):
            assert f"{beam.logprob:,.1f} nats" in line and ("■" in line) == beam.finished
        result = result_text(screen)
        assert "done 100 chars" in result and "beam 4" in result
        assert not cuts(pilot.app)
        assert f"log-prob {expected.best.logprob:,.1f} nats" in result
        # a stop text ends the beams: the best is core's with the same stop rule
        await press(pilot, "o", *"e", "escape", "[", "g")
        await wait_for(pilot, lambda: not screen.stream.streaming and screen.stream.result_beam == 2, what="search")
        settings = SampleSettings(prime="The ", length=100, stop="e")
        expected = beam_search(sampler, sampler.vocab, "The ", 2, 100, stop=stop_rule(settings))
        assert screen.stream.generated == expected.best.text


async def test_more_beams_during_a_search_start_it_again_with_them(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(100, 30)) as pilot:
        await open_screen(pilot, screen)
        await press(pilot, "b", *"llll", "g")  # 10,000 characters: long enough to be under way
        await wait_for(pilot, lambda: screen.stream.beam_step is not None, what="the first beams")
        generation = screen.stream.generation
        await press(pilot, "]")
        assert screen.stream.beam_width == 8 and screen.stream.generation == generation + 1
        assert screen.stream.streaming and screen.stream.result_beam == 8
        await wait_for(pilot, lambda: screen.stream.beam_step is not None and screen.stream.beam_step.width == 8,
                       what="the wider search")
        await press(pilot, "x")
        await wait_for(pilot, lambda: not screen.stream.streaming, timeout=5, what="the stop")
        assert screen.stream.last_chunk.stopped and "stopped" in result_text(screen)


async def test_keys_while_eight_samples_stream_are_handled_at_once(tiny_run):
    from rnn_playground.tui.app.screens.sample import SampleScreen
    screen = SampleScreen(tiny_run)
    async with Host(screen, "sample.tcss").run_test(size=(120, 40)) as pilot:
        await open_screen(pilot, screen)
        await press(pilot, *"nnn", *"llll", "g")  # 8 x 10,000 characters
        await wait_for(pilot, lambda: len(screen.stream.generated) >= 20, what="some text")
        assert screen.stream.streaming
        for key, check in [("t", lambda s: s.temperature == 0.9), ("u", lambda s: s.top_p == 0.95),
                           ("e", lambda s: s.repetition_penalty == 1.1), ("T", lambda s: s.temperature == 0.8)]:
            await press(pilot, key)
            await wait_for(pilot, lambda check=check: check(screen.stream), timeout=2, what=f"the key {key}")
        drawn = screen.stream.chunks_drawn
        await wait_for(pilot, lambda: screen.stream.chunks_drawn > drawn, timeout=5, what="the streams to go on")
        await press(pilot, "x")
        await wait_for(pilot, lambda: not screen.stream.streaming, timeout=5, what="the stop")
        assert screen.stream.last_chunk.stopped
        lengths = {len(text) for text in screen.stream.texts}
        assert len(screen.stream.texts) == 8 and max(lengths) < 10_000

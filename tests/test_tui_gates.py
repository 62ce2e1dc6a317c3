"""The Gates screen on real tiny checkpoints: the numbers it renders are the core trace's, the
trace grows as the cursor moves, unit search lists the engine's units, saturation is core's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnn_playground.core.gates import GateTracer
from rnn_playground.tui.viewmodel.gates_view import next_word

from .conftest import tiny_config
from .tui_helpers import Host, screen_text, wait_for

pytestmark = pytest.mark.timeout(120)

async def opened(pilot, screen):
    await wait_for(pilot, lambda: screen.gates.trace is not None or screen.gates.error, what="the trace")
    assert screen.gates.error is None, screen.gates.error
    await pilot.pause()


def expected_numbers(run: Path, text: str, step: int, layer: int, unit: int) -> dict[str, str]:
    trace = GateTracer.from_checkpoint(run).trace(text[:step + 1])
    return {q.key: f"{float(trace.at(step, layer, q.key)[unit]):+.4f}" for q in trace.quantities}


async def test_after_n_steps_the_screen_shows_the_core_trace(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 30)) as pilot:
        await opened(pilot, screen)
        trace = screen.gates.trace
        assert len(trace) == 2 and screen.gates.source.description.startswith("corpus tiny.txt")
        text = screen.gates.text
        await pilot.press(*["right"] * 12)
        assert screen.gates.pos == 12
        assert screen.gates.trace is trace and len(trace) == 14  # extended step by step, one past the cursor
        numbers = screen.unit_numbers()
        assert numbers == expected_numbers(tiny_run, text, 12, 1, 0)
        assert set(numbers) == {"i", "f", "g", "o", "c", "h", "kept", "written"}
        drawn = screen_text(pilot.app)
        for value in numbers.values():
            assert value in drawn
        # layers are counted from 1, as people count them: the top one of two is layer 2
        assert "layer 2 of 2" in screen.query_one("#gates-header").content.plain
        # another unit and the other layer
        await pilot.press("full_stop", "full_stop", "full_stop", "l")
        assert (screen.gates.layer, screen.gates.unit) == (0, 3)
        assert "layer 1 of 2" in screen.query_one("#gates-header").content.plain
        assert screen.unit_numbers() == expected_numbers(tiny_run, text, 12, 0, 3)
        # the next-character distribution: the true next character with core's probability and rank
        info = GateTracer.from_checkpoint(tiny_run).trace(text[:14]).step_info(12, layer=0)
        bars = screen.query_one("#gates-bars").render().plain
        assert f"p {info.next_prob:.3f}  rank {info.next_rank}" in bars
        assert f"surprisal {info.surprisal_bits:.2f} bits" in bars
        # the cell update split: kept + written = c
        update = screen.query_one("#gates-update").content.plain
        assert f"{numbers['kept']} + {numbers['written']} = {numbers['c']}" not in update  # layer 1's numbers
        now = screen.unit_numbers()
        assert f"{now['kept']} + {now['written']} = {now['c']}" in update
        # back steps read the trace, they do not grow it
        await pilot.press("left", "left")
        assert screen.gates.pos == 10 and len(trace) == 14
        assert screen.unit_numbers() == expected_numbers(tiny_run, text, 10, 0, 3)


async def test_cursor_moves_words_pages_and_ends(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        text = screen.gates.text
        await pilot.press("w")
        assert screen.gates.pos == next_word(text, 0)
        await pilot.press("w", "b")
        assert screen.gates.pos == next_word(text, 0)
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: screen.gates.pending is None)
        assert screen.gates.pos > next_word(text, 0) + 100
        await pilot.press("end")  # a long jump: traced in a worker
        await wait_for(pilot, lambda: screen.gates.pos == len(text) - 1, what="the end")
        assert len(screen.gates.trace) == len(text)
        last = screen.unit_numbers()
        trace = GateTracer.from_checkpoint(screen.gates.run).trace(text)
        assert last == {q.key: f"{float(trace.at(len(text) - 1, 1, q.key)[0]):+.4f}" for q in trace.quantities}
        assert "end of text" in screen.query_one("#gates-bars").render().plain
        await pilot.press("home")
        assert screen.gates.pos == 0
        # play steps forward on its own; space pauses
        await pilot.press("plus", "plus", "plus")  # 10 -> 100 chars/s
        await pilot.press("space")
        assert screen.gates.playing
        await wait_for(pilot, lambda: screen.gates.pos >= 20, what="auto-steps")
        await pilot.press("space")
        stopped = screen.gates.pos
        await pilot.pause(0.2)
        assert not screen.gates.playing and screen.gates.pos == stopped


async def test_unit_search_lists_the_engines_top_units(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 30)) as pilot:
        await opened(pilot, screen)
        await pilot.press("f")
        await wait_for(pilot, lambda: screen.gates.matches, what="the units")
        trace = GateTracer.from_checkpoint(tiny_run).trace(screen.gates.text)
        expected = trace.find_units(name="inside-quotes", key="c", top=10)
        assert [(m.layer, m.unit) for m in screen.gates.matches] == [(m.layer, m.unit) for m in expected]
        listed = screen.query_one("#gates-matches")
        shown = [str(listed.get_option_at_index(i).prompt) for i in range(listed.option_count)]
        assert shown == [f"layer {m.layer + 1} of 2  unit {m.unit:>4}  r {m.correlation:+.3f}" for m in expected]
        # a regular expression instead
        screen.set_focus(screen.query_one("#gates-regex"))
        await pilot.press("backslash", "left_parenthesis", "enter")
        regex = trace.find_units(regex=r"\(", key="c", top=10)
        await wait_for(pilot, lambda: [(m.layer, m.unit) for m in screen.gates.matches]
                       == [(m.layer, m.unit) for m in regex], what="the regex units")
        # choosing one selects its layer and unit, and the text is coloured by it
        screen.set_focus(listed)
        await pilot.press("down", "enter")
        assert (screen.gates.layer, screen.gates.unit, screen.gates.colour_key) == (regex[1].layer, regex[1].unit, "c")
        colours = screen.query_one("#gates-text").values
        assert np.allclose(colours, np.tanh(trace.values("c")[:len(colours), regex[1].layer, regex[1].unit]), atol=1e-6)


async def test_saturation_is_cores(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 30)) as pilot:
        await opened(pilot, screen)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.gates.saturation is not None, what="saturation")
        await pilot.pause()
        expected = GateTracer.from_checkpoint(tiny_run).trace(screen.gates.text).saturation()
        for key in ("i", "f", "o"):
            assert np.allclose(screen.gates.saturation.left[key], expected.left[key])
            assert np.allclose(screen.gates.saturation.right[key], expected.right[key])
        summary = screen.query_one("#gates-update").content.plain
        for row in expected.rows():
            if row.layer == 1:
                assert f"mean {row.mean_left:.2f}/{row.mean_right:.2f}" in summary  # left/right
        numbers = screen.unit_numbers()
        assert numbers["f"] in (f"{expected.left['f'][1, 0]:.4f}", f"{expected.right['f'][1, 0]:.4f}")


@pytest.mark.parametrize("cell,keys", [("gru", {"r", "z", "n", "h"}), ("rnn", {"h"})])
async def test_gru_and_rnn_show_their_own_quantities(tiny_corpus, tmp_path, cell, keys):
    from rnn_playground.core.trainer import Trainer
    from rnn_playground.tui.app.screens.gates import GatesScreen
    trainer = Trainer(tiny_config(tiny_corpus, cell=cell, steps=5, val_every=5, run_name=cell,
                                  runs_dir=str(tmp_path / "runs")))
    list(trainer.run())
    screen = GatesScreen(trainer.run_dir, text="def f(x):\n    return x")
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        await pilot.press("right", "right", "right")
        numbers = screen.unit_numbers()
        assert set(numbers) == keys
        trace = GateTracer.from_checkpoint(trainer.run_dir).trace("def f")
        assert numbers == {key: f"{float(trace.at(3, 1, key)[0]):+.4f}" for key in keys}
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.gates.saturation is not None)
        assert set(screen.gates.saturation.keys) == ({"r", "z"} if cell == "gru" else {"h"})


async def test_bad_text_is_shown_inline_with_the_engines_message(tiny_run, tmp_path):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        good = screen.gates.text
        select = screen.query_one("#gates-source-kind")
        await pilot.press("o")
        assert screen.query_one("#gates-source").display
        select.value = "text"
        await pilot.press(*"Ωx", "enter")
        await wait_for(pilot, lambda: screen.gates.error is not None and not screen.gates.is_loading)
        error = screen.query_one("#gates-error").content.plain
        assert "vocabulary lacks" in error and "'Ω'" in error
        assert screen.gates.text == good  # the previous text stays
        await pilot.press("o")
        select.value = "file"
        await pilot.press(*"nope.txt", "enter")
        await wait_for(pilot, lambda: "Cannot read" in (screen.gates.error or ""))
        path = tmp_path / "code.txt"
        path.write_text("def f(x):\n    return (x)\n")
        await pilot.press("o")
        screen.query_one("#gates-source-value").value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.gates.text == path.read_text() and screen.gates.error is None)
        assert screen.gates.pos == 0 and len(screen.gates.trace) == 2


async def test_units_are_paged_when_they_outnumber_the_columns(tmp_path, monkeypatch):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.widgets.heatmap import HeatmapPanel

    from .tui_helpers import write_char_checkpoint
    monkeypatch.chdir(tmp_path)
    run = write_char_checkpoint(tmp_path / "runs" / "wide", hidden=160, layers=1)
    screen = GatesScreen(run, text="def f(x):\n    return x\n")
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        panel = screen.query_one(HeatmapPanel)
        per_page = panel.units_per_page
        assert per_page < 160
        page, pages, first, last = panel.page()
        assert (page, first, last) == (0, 0, per_page) and pages == -(-160 // per_page)
        await pilot.press("right_square_bracket")
        assert screen.gates.unit == per_page and panel.page()[0] == 1
        assert f"p2/{pages}" in panel.render().plain.splitlines()[0]
        await pilot.press("left_square_bracket", "comma")
        assert screen.gates.unit == 159  # back to page 1, then one unit back wraps to the last
        trace = GateTracer.from_checkpoint(run).trace("d")
        assert screen.unit_numbers()["h"] == f"{float(trace.at(0, 0, 'h')[159]):+.4f}"


async def test_without_colour_the_heatmaps_are_bars(tiny_run, monkeypatch):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.widgets.heatmap import BARS, HeatmapPanel
    monkeypatch.setenv("NO_COLOR", "1")
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        assert pilot.app.no_color
        await opened(pilot, screen)
        panel = screen.query_one(HeatmapPanel)
        assert panel.mono and panel.units_per_page == panel.strip_cells()
        row = panel.render().plain.splitlines()[1]
        assert sum(ch in BARS for ch in row) == min(32, panel.units_per_page) and "▌" not in row
        # the legends name what is drawn: bar heights, not colours
        update = screen.query_one("#gates-update").content.plain
        assert "bar height" in update and "blue" not in update and "red" not in update
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.gates.saturation is not None, what="saturation")
        await pilot.pause()
        summary = screen.query_one("#gates-update").content.plain
        assert "bar height" in summary and "blue" not in summary and "red" not in summary
        assert "of layer 2 of 2" in summary
        legend = panel.render().plain.splitlines()[-1].strip()
        assert legend.startswith("0 ") and legend.endswith(" 1 of the steps") and "-1" not in legend
        # a saturation fraction is a bar as tall as the fraction: most steps, a tall bar
        fractions = screen.gates.saturation.right["f"][1][:panel.units_per_page]
        bars = next(line for line in panel.render().plain.splitlines() if line.startswith("f_t >"))
        drawn = [ch for ch in bars if ch in BARS][:len(fractions)]
        assert [BARS.index(ch) for ch in drawn] == [min(len(BARS) - 1, int(f * len(BARS))) for f in fractions]


async def test_the_saturation_legend_is_a_fraction_of_the_steps(tiny_run):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.app.widgets.heatmap import HeatmapPanel
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(100, 30)) as pilot:
        await opened(pilot, screen)
        panel = screen.query_one(HeatmapPanel)
        assert panel.render().plain.splitlines()[-1].strip().startswith("-1 ")  # values on [-1, 1]
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.gates.saturation is not None, what="saturation")
        await pilot.pause()
        legend = panel.render().plain.splitlines()[-1].strip()
        assert legend.startswith("0 ") and " 1 below" in legend and legend.endswith(" 1 above")
        assert "-1" not in legend and "+1" not in legend
        assert "(left, blue)" in screen.query_one("#gates-update").content.plain


async def test_more_keys_corpus_slices_and_an_empty_text(tiny_run, tiny_corpus):
    from rnn_playground.tui.app.screens.gates import GatesScreen
    from rnn_playground.tui.viewmodel.gates_session import SPEEDS
    from rnn_playground.tui.viewmodel.gates_view import quantity_labels
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        text = screen.gates.text
        await pilot.press("ctrl+right")
        assert screen.gates.pos == next_word(text, 0)
        await pilot.press("ctrl+left")
        assert screen.gates.pos == 0
        await pilot.press("G")
        await wait_for(pilot, lambda: screen.gates.pos == len(text) - 1, what="the end")
        await pilot.press("g")
        assert screen.gates.pos == 0
        await pilot.press("minus", "minus")
        assert screen.gates.speed == SPEEDS[SPEEDS.index(10) - 2]
        assert f" {screen.gates.speed}/s " in screen_text(pilot.app)
        # v and V cycle the quantity the text is coloured by, through the cell's quantities
        keys = [q.key for q in quantity_labels("lstm")]
        start = keys.index(screen.gates.colour_key)
        await pilot.press("v")
        assert screen.gates.colour_key == keys[(start + 1) % len(keys)]
        await pilot.press("V", "V")
        assert screen.gates.colour_key == keys[(start - 1) % len(keys)]
        # a corpus slice typed as "start length": the run's corpus, those characters
        await pilot.press("o")
        screen.query_one("#gates-source-kind").value = "corpus"
        screen.query_one("#gates-source-value").value = "100 50"
        screen.set_focus(screen.query_one("#gates-source-value"))
        await pilot.press("enter")
        corpus = tiny_corpus.read_text(encoding="utf-8")
        await wait_for(pilot, lambda: screen.gates.text == corpus[100:150] and not screen.gates.is_loading,
                       what="the slice")
        assert screen.gates.source.description == f"corpus {tiny_corpus.name} chars 100-150"
        for bad, message in (("abc", "A corpus slice is 'start length'"),
                             (f"{len(corpus) + 5} 10", "a slice must start between 0")):
            await pilot.press("o")
            screen.query_one("#gates-source-value").value = bad
            screen.set_focus(screen.query_one("#gates-source-value"))
            await pilot.press("enter")
            await wait_for(pilot, lambda message=message: message in (screen.gates.error or ""), what=message)
            assert message in screen.query_one("#gates-error").content.plain
            assert screen.gates.text == corpus[100:150]  # the slice stays
        # an empty typed text: the engine's message, inline
        await pilot.press("o")
        screen.query_one("#gates-source-kind").value = "text"
        screen.query_one("#gates-source-value").value = ""
        screen.set_focus(screen.query_one("#gates-source-value"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "The text is empty" in (screen.gates.error or ""), what="the empty-text error")


async def test_a_failure_while_tracing_is_shown_and_the_screen_stays_usable(tiny_run, monkeypatch):
    """Tracing errors in the worker reach the screen (they are not swallowed with the screen left
    'tracing' for ever)."""
    from rnn_playground.core.gates import Trace
    from rnn_playground.tui.app.screens.gates import GatesScreen
    screen = GatesScreen(tiny_run)
    async with Host(screen, "gates.tcss").run_test(size=(80, 24)) as pilot:
        await opened(pilot, screen)
        real_extend = Trace.extend

        def failing_extend(trace, text):
            if len(text) > 1:  # the worker's chunks; single steps still work
                raise RuntimeError("simulated failure")
            return real_extend(trace, text)
        monkeypatch.setattr(Trace, "extend", failing_extend)
        await pilot.press("end")
        await wait_for(pilot, lambda: screen.gates.error is not None and not screen.gates.extending, what="the error")
        assert "Tracing failed: RuntimeError: simulated failure" in screen.query_one("#gates-error").content.plain
        assert screen.gates.pending is None and screen.gates.pos == 0
        await pilot.press("right")
        assert screen.gates.pos == 1

"""What every Lesson page hands the screen: plain lines of styled spans, a two-line caption, its keys.

A page is plain Python (no Textual, no Rich): it holds its state, answers keys through `handle`, and
draws itself into `PageView` for a given size. The Lesson screen renders any `PageView` the same way,
so a page never needs a widget of its own; the CLI prints the same lines as plain text.

Span styles are a small closed vocabulary the face maps to its theme:
  ""          plain text
  "dim"       secondary text (axis labels, units, hints)
  "bold"      emphasis (headings, the value a line is about)
  "accent"    the selected or current thing (the window, the cursor, the chosen character)
  "good" / "bad"  a check that holds / fails (a quiz answer, an equality)
  "heat"      a value on the Gates screen's diverging scale [-1, 1], carried in `Span.value`;
              NO_COLOR draws it as a bar of heights (the heatmap's convention)
  "bar"       a bar of a distribution; the text is the bar itself (see tui.viewmodel.format.bar)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

STYLES = ("", "dim", "bold", "accent", "good", "bad", "heat", "bar")


@dataclass(frozen=True)
class Span:
    text: str
    style: str = ""
    value: float = 0.0   # for "heat": the value on the diverging scale [-1, 1]


Line = tuple[Span, ...]


def line(*parts: str | Span) -> Line:
    """A line from plain strings and spans: line("loss ", Span("1.23", "bold"))."""
    return tuple(p if isinstance(p, Span) else Span(p) for p in parts)


def line_text(row: Line) -> str:
    """The line as plain text (what the CLI prints and tests read)."""
    return "".join(span.text for span in row)


def fit_line(row: Line, width: int) -> Line:
    """The line cut to `width` cells: spans kept in order, the last one shortened, the rest dropped."""
    out, used = [], 0
    for span in row:
        if used >= width:
            break
        out.append(Span(span.text[:width - used], span.style, span.value))
        used += len(out[-1].text)
    return tuple(out)


@dataclass(frozen=True)
class PageKey:
    """A key a page answers: `action` goes to `LessonPage.handle`; `description` shows in the key bar
    and the help. Keys are page-local and must not shadow the app's (1-6, q, ?, ctrl+p, tab)."""
    key: str
    action: str
    description: str


@dataclass(frozen=True)
class PageView:
    title: str                      # "Encoding: characters -> ids -> one-hot -> embedding"
    caption: tuple[str, str]        # what you see; what to try (plain language, one line each)
    lines: tuple[Line, ...]         # the body, at most the height given to `view`
    deeper: str = ""                # the app mode that goes deeper ("gates", "sample", "train", "runs")
    deeper_text: str = ""           # "Gates screen: every gate at every character"
    busy: str = ""                  # progress of work the page is waiting for ("training the demo model 40%")
    error: str = ""                 # what went wrong, in words (the page keeps its last good lines)


@dataclass
class Source:
    """The model a page shows: the run open in the app, the run training, or the demo model.

    `model` is a core.model.CharRNN on the CPU in eval mode, with `vocab` (core.corpus.Vocab) and `config`
    (the run's core.config.TrainConfig); `text` is the corpus (or the part of it the page may read).
    `origin` says where it came from, in words, for the page's heading."""
    model: object
    vocab: object
    config: object
    text: str
    name: str = "demo"
    origin: str = "demo model"
    run_dir: object = None          # the run folder, None for the demo model
    live: dict = field(default_factory=dict)   # what the run is doing now, if it is training (step, window, ...)


class LessonPage(Protocol):
    name: str                       # "encoding", "batching", ... (the CLI's and tests' name for it)
    title: str                      # the tab's short title ("Encoding")
    keys: tuple[PageKey, ...]

    def set_source(self, source: Source) -> None:
        """The model changed (a run opened, the demo trained); the page recomputes what it shows."""

    def handle(self, action: str, argument: str = "") -> None:
        """A key of `keys` (or typed text for a page with an input field: action "type")."""

    def view(self, width: int, height: int) -> PageView:
        """What to draw in width x height cells (lines cut or scrolled to fit; never wider than width)."""

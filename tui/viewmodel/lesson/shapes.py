"""The Shapes page (lesson chapters 13 and 19): every tensor of a forward pass with its shape, and a quiz.

The table is read from a real forward pass of the source model (core.shapes.forward_shapes) at a batch
B and a sequence length T the keys change; the quiz asks for the shape of a bare nn.LSTM / GRU / RNN's
output or hidden state, checks the typed answer against a real module's (core.shapes.module_shapes),
and explains a wrong one in words. The CLI's `lesson shapes` prints the same rows (`ShapeRow`).
"""

from __future__ import annotations

import random
import re
import textwrap
import threading
from dataclasses import dataclass

from rnn_playground.core.model import CELLS, describe_model
from rnn_playground.core.shapes import TensorShape, forward_shapes, module_shapes

from ..format import error_text, fit_clauses
from .page import Line, PageKey, PageView, Source, Span, fit_line, line

SIZE_LIMIT = 4096  # B and T double up to here: a large pass runs on the meta device, which allocates nothing

# What each tensor of a pass is, in the lesson's words.
MEANINGS = {
    "ids": "character ids: B streams of T characters each",
    "embedded": "each id's embedding row (one-hot times the embedding matrix)",
    "one-hot": "each id as a one-hot row over the vocabulary (no embedding)",
    "input": "what the module reads",
    "output": "the top layer's h at every step",
    "h": "hidden state after the last step, per layer, even with batch_first",
    "c": "cell state (the LSTM's long-term memory) after the last step, per layer",
    "reshaped": "a row per character (the lesson's output.contiguous().view(-1, H))",
    "logits": "a score for every vocabulary character, per position",
    "targets": "the true next character of every position",
}
TENSOR_WORDS = {"output": "output", "h": "hidden state h", "c": "cell state c"}


@dataclass(frozen=True)
class ShapeRow:
    """One row of the table: the tensor, its dimensions in letters, its shape, what it is."""
    name: str
    dims: tuple[str, ...]     # ("B", "T", "E")
    shape: tuple[int, ...]    # (8, 16, 32), read from the pass
    meaning: str

    @property
    def letters(self) -> str:
        return "[" + ", ".join(self.dims) + "]"

    @property
    def shape_text(self) -> str:
        return shape_text(self.shape)


def shape_text(shape) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def rows_of(tensors: list[TensorShape]) -> list[ShapeRow]:
    return [ShapeRow(t.name, t.dims, t.shape, MEANINGS[t.name]) for t in tensors]


def model_rows(model, batch: int, seq: int) -> list[ShapeRow]:
    """The rows of a character model's forward pass at batch x seq."""
    return rows_of(forward_shapes(model, batch, seq))


def module_rows(cell: str, input_size: int, hidden: int, layers: int, batch: int, seq: int,
                batch_first: bool, device: str = "auto") -> list[ShapeRow]:
    """The rows of a bare recurrent module's forward pass."""
    return rows_of(module_shapes(cell, input_size, hidden, layers, batch, seq, batch_first, device))


def module_call(cell: str, input_size: int, hidden: int, layers: int, batch_first: bool) -> str:
    return (f"nn.{cell.upper()}(input_size={input_size}, hidden_size={hidden}, num_layers={layers}, "
            f"batch_first={batch_first})")


def table_lines(rows: list[ShapeRow], width: int, header: bool = True) -> list[Line]:
    """The rows as aligned lines no wider than `width`; meanings are cut at a clause to fit."""
    name_w = max([len("tensor")] + [len(r.name) for r in rows])
    letters_w = max([len("letters")] + [len(r.letters) for r in rows])
    shape_w = max([len("shape")] + [len(r.shape_text) for r in rows])
    left = name_w + letters_w + shape_w + 6
    out: list[Line] = []
    if header:
        out.append(line(Span(f"{'tensor':<{name_w}}  {'letters':<{letters_w}}  {'shape':<{shape_w}}  meaning"[:width],
                             "dim")))
    for row in rows:
        parts = [Span(f"{row.name:<{name_w}}  ", "bold"), Span(f"{row.letters:<{letters_w}}  ", "dim"),
                 Span(f"{row.shape_text:<{shape_w}}  ", "accent")]
        meaning = fit_clauses(row.meaning, width - left) if width - left >= 8 else ""
        text_so_far = 0
        cut: list[Span] = []
        for span in [*parts, Span(meaning)]:  # a narrow screen cuts the columns themselves
            room = width - text_so_far
            if room <= 0:
                break
            cut.append(Span(span.text[:room], span.style))
            text_so_far += len(cut[-1].text)
        out.append(tuple(cut))
    return out


# ---- the quiz ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    cell: str
    input_size: int
    hidden: int
    layers: int
    batch: int
    seq: int
    batch_first: bool
    tensor: str          # "output", "h" or "c" (an LSTM's)

    def text(self) -> str:
        order = "batch, seq, features" if self.batch_first else "seq, batch, features"
        return (f"{module_call(self.cell, self.input_size, self.hidden, self.layers, self.batch_first)} reads "
                f"batches of {self.batch} sequences of {self.seq} steps ({order}). "
                f"What is the shape of the {TENSOR_WORDS[self.tensor]} it returns?")

    def answer(self) -> tuple[int, ...]:
        """The shape a real module returns (not computed by hand)."""
        shapes = module_shapes(self.cell, self.input_size, self.hidden, self.layers, self.batch, self.seq,
                               self.batch_first)
        return next(t.shape for t in shapes if t.name == self.tensor)


# The lesson's question (chapter 13): a GRU, input 100, hidden 20, 1 layer, batch-first batches of 3.
LESSON_QUESTION = Question("gru", input_size=100, hidden=20, layers=1, batch=3, seq=10, batch_first=True, tensor="h")


def generated_question(rng: random.Random) -> Question:
    """A question over cell, layers, batch, hidden, batch_first and the tensor asked for. Every size differs
    from the others, so a wrong answer shows which dimension was mistaken."""
    cell = rng.choice(list(CELLS))
    while True:
        layers, batch, seq = rng.randint(1, 3), rng.randint(2, 16), rng.randint(4, 40)
        hidden, input_size = rng.choice((8, 16, 20, 32, 48, 64, 128)), rng.choice((1, 10, 26, 50, 65, 83, 100))
        if len({layers, batch, seq, hidden, input_size}) == 5:
            break
    tensors = ("output", "h", "c") if cell == "lstm" else ("output", "h")
    return Question(cell, input_size, hidden, layers, batch, seq, rng.random() < 0.5, rng.choice(tensors))


def questions(seed: int, count: int) -> list[Question]:
    """The quiz's first `count` questions: the lesson's, then generated ones, the same for the same seed."""
    rng = random.Random(seed)
    return [LESSON_QUESTION] + [generated_question(rng) for _ in range(count - 1)]


_NUMBERS = re.compile(r"^\s*(?:torch\.size\s*)?[(\[]?\s*\[?(.*?)\]?\s*[)\]]?\s*$", re.IGNORECASE)


def parse_shape(text: str) -> tuple[int, ...] | None:
    """A typed shape: "(1, 3, 20)", "1,3,20", "1 3 20", "[1, 3, 20]", "torch.Size([1, 3, 20])"; None if
    it is not a list of whole numbers."""
    match = _NUMBERS.match(text)
    parts = [p for p in re.split(r"[\s,x×]+", match.group(1) if match else "") if p]
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def explain(question: Question, given: tuple[int, ...], right: tuple[int, ...]) -> str:
    """Why `given` is not the shape of the question's tensor, in words (or that it is)."""
    q = question
    if given == right:
        if q.tensor == "output":
            return "Right: the output has every step of the top layer."
        return "Right: [layers, batch, hidden], whatever batch_first says."
    time_major = (q.seq, q.batch, q.hidden)
    batch_major = (q.batch, q.seq, q.hidden)
    if q.tensor != "output":
        rule = " The hidden state is [layers, batch, hidden]."
        if given in (time_major, batch_major):
            return "You gave the output's shape: the output has every step; the state only the last, per layer." + rule
        if given == (q.batch, q.layers, q.hidden) and q.batch_first:
            return ("hidden is [layers, batch, hidden] even with batch_first=True: batch_first changes the input "
                    "and output only.")
        if q.seq in given:
            return "The sequence length is not in the hidden state: it holds the last step only." + rule
        if len(given) == 2:
            return "The hidden state keeps its layer dimension first, even for one layer." + rule
        if q.input_size in given:
            return "input_size is what the module reads; the state's last dimension is hidden_size." + rule
        if len(given) == 3 and given[0] != q.layers:
            return f"The first dimension counts the layers: num_layers={q.layers}." + rule
        return "That is not it." + rule
    rule = (" With batch_first=True the output is [batch, seq, hidden]." if q.batch_first
            else " Without batch_first the output is [seq, batch, hidden]: time comes first.")
    if given in ((q.layers, q.batch, q.hidden), (q.batch, q.hidden)):
        return "You gave the hidden state's shape: the output has every step." + rule
    if given == time_major and q.batch_first:
        return "batch_first=True puts the batch first in the output." + rule
    if given == batch_major and not q.batch_first:
        return "batch_first is False here, so time comes first." + rule
    if q.layers in given and len(given) == 4:
        return "The output is the top layer's only: it has no layer dimension." + rule
    if q.input_size in given:
        return "The output's last dimension is hidden_size, not input_size." + rule
    return "That is not it." + rule


@dataclass(frozen=True)
class Verdict:
    given: str
    right: bool
    explanation: str
    answer: tuple[int, ...] | None = None   # the module's shape, once a well-formed answer was checked


# ---- the page ----------------------------------------------------------------------------------------------

class ShapesPage:
    """Lesson page 3: the shapes of a forward pass of the source model, and the hidden-state quiz.

    With `background` (the app) a change of B or T reads the new pass in a thread, and `view` shows the last
    table with `busy` meanwhile (a large model's pass takes a second on a busy CPU); without it (the CLI,
    tests) the pass runs before `handle` returns."""

    name = "shapes"
    title = "Shapes"
    keys = (
        PageKey("up", "batch_up", "B x2"),
        PageKey("down", "batch_down", "B /2"),
        PageKey("right", "seq_up", "T x2"),
        PageKey("left", "seq_down", "T /2"),
        PageKey("r", "reset", "B, T of the run"),
        PageKey("n", "next", "next question"),
        PageKey("t", "type", "type an answer"),
    )

    def __init__(self, seed: int = 0, background: bool = False):
        self.seed = seed
        self.background = background
        self.source: Source | None = None
        self.batch = 1
        self.seq = 1
        self._rows: dict[tuple[int, int], list[ShapeRow]] = {}
        self._shown: list[ShapeRow] = []
        self._failed: dict[tuple[int, int], str] = {}   # sizes whose pass failed: why, in words
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._rng = random.Random(seed)
        self.question = LESSON_QUESTION
        self.asked = 1
        self.score = 0
        self.answered = 0
        self.verdict: Verdict | None = None
        self._counted = False  # the first well-formed answer to a question is the one scored

    # -- the table --

    def set_source(self, source: Source) -> None:
        self.source = source
        with self._lock:
            self._rows.clear()
            self._failed.clear()
        self.batch, self.seq = self._source_sizes()
        self._request()

    def _source_sizes(self) -> tuple[int, int]:
        config = getattr(self.source, "config", None)
        return int(getattr(config, "batch", 8) or 8), int(getattr(config, "seq", 16) or 16)

    def _request(self) -> None:
        if self.source is None:
            return
        if not self.background:
            self._compute(self.batch, self.seq)
            return
        with self._lock:
            if self._worker is not None:
                return  # the running worker reads the latest B and T before it stops
            self._worker = threading.Thread(target=self._work, name="lesson-shapes", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:  # the check and the stop are one step, so a request in between is never lost
                wanted = (self.batch, self.seq)
                if wanted in self._rows or wanted in self._failed:
                    self._worker = None
                    return
            self._compute(*wanted)

    def _compute(self, batch: int, seq: int) -> None:
        source = self.source
        try:
            rows = model_rows(source.model, batch, seq)
        except Exception as exc:  # any failure of the pass is shown on the page, not raised
            with self._lock:
                if self.source is source:
                    self._failed[(batch, seq)] = error_text(exc, f"Reading the shapes at B={batch}, T={seq} failed")
            return
        with self._lock:
            if self.source is not source:
                return  # a new model came while this one's pass ran: its table is read next
            self._rows[(batch, seq)] = rows

    def wait(self, timeout: float = 60.0) -> None:
        """Until the table for the current B and T is read (background mode)."""
        with self._lock:
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def pending(self) -> bool:
        with self._lock:
            wanted = (self.batch, self.seq)
            return self.source is not None and wanted not in self._rows and wanted not in self._failed

    def pass_error(self) -> str:
        """Why the pass at the current B and T failed ("" when it did not); the last table read shows."""
        with self._lock:
            return self._failed.get((self.batch, self.seq), "")

    def rows(self) -> list[ShapeRow]:
        """The table for the current B and T, or the last one read while it is being read (or failed)."""
        with self._lock:
            self._shown = self._rows.get((self.batch, self.seq), self._shown)
            return self._shown

    # -- keys --

    def handle(self, action: str, argument: str = "") -> None:
        sizes = {"batch_up": ("batch", 2.0), "batch_down": ("batch", 0.5),
                 "seq_up": ("seq", 2.0), "seq_down": ("seq", 0.5)}
        if action in sizes:
            name, factor = sizes[action]
            setattr(self, name, int(min(SIZE_LIMIT, max(1, getattr(self, name) * factor))))
            self._request()
        elif action == "reset":
            self.batch, self.seq = self._source_sizes()
            self._request()
        elif action == "type":
            self.answer(argument)
        elif action == "next":
            self.next_question()

    def answer(self, text: str) -> Verdict:
        """Check a typed shape against the real module's; a second answer to the same question counts once."""
        given = parse_shape(text)
        if given is None:
            self.verdict = Verdict(text.strip(), False, "Type the shape as whole numbers, e.g. (1, 3, 20).")
            return self.verdict
        right = self.question.answer()
        self.verdict = Verdict(shape_text(given), given == right, explain(self.question, given, right), right)
        if not self._counted:
            self._counted = True
            self.answered += 1
            self.score += given == right
        return self.verdict

    def next_question(self) -> None:
        self.question = generated_question(self._rng)
        self.asked += 1
        self.verdict = None
        self._counted = False

    # -- drawing --

    def view(self, width: int, height: int) -> PageView:
        rows = self.rows()
        caption = ("Every tensor of one forward pass, with its shape read from the pass itself.",
                   "up/down double or halve B, left/right T; t types an answer; n: next question.")
        body: list[Line] = []
        if self.source is not None:
            model = describe_model(self.source.model.config)
            sizes = f"  B={self.batch} streams, T={self.seq} steps"
            if len(model) + 1 + len(self.source.origin) + len(sizes) <= width:  # the screen names it too
                model += f" {self.source.origin}"
            body.append(fit_line(line(Span(model, "bold"), Span(sizes, "dim")), width))
            body.extend(table_lines(rows, width))
        quiz = self._quiz_lines(width)
        if len(body) + 1 + len(quiz) <= height:
            body.append(line(""))
        elif len(body) > 1:
            body.pop(1)  # the column header goes before the quiz loses a line
        lines = (body + quiz)[:height]
        busy = f"reading the shapes at B={self.batch}, T={self.seq}" if self.pending() else ""
        return PageView(f"{self.title}: the tensors of a forward pass", caption,
                        tuple(lines),
                        deeper="train", deeper_text="Train screen: set the batch, sequence and model sizes",
                        busy=busy, error=self.pass_error())

    def _quiz_lines(self, width: int) -> list[Line]:
        out: list[Line] = [line(Span(f"Quiz {self.asked}", "bold"),
                                Span(f"  score {self.score}/{self.answered}"[:max(0, width - 8)], "dim"))]
        out.extend(line(part) for part in textwrap.wrap(self.question.text(), width))
        if self.verdict is None:
            out.append(line(Span("Type the shape, e.g. (2, 5, 10)."[:width], "dim")))
            return out
        mark, style = ("right", "good") if self.verdict.right else ("wrong", "bad")
        first, *rest = textwrap.wrap(f"{self.verdict.given} is {mark}. {self.verdict.explanation}", width) or [""]
        out.append(line(Span(first, style)))
        out.extend(line(part) for part in rest)
        if not self.verdict.right and self.verdict.answer is not None:
            out.append(line(Span(f"The module returns {shape_text(self.verdict.answer)}."[:width], "dim")))
        return out

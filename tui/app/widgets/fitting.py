"""Rich text fitted to a width: phrases that wrap between, never inside, and lines that end whole."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text


def _as_text(part: Text | str) -> Text:
    return part if isinstance(part, Text) else Text(part)


def append_fitting(text: Text, parts: Iterable[Text | str], width: int) -> Text:
    """Append `parts` to a one-line `text` in order, as far as each fits whole within `width`
    cells (0: unknown, all of them): a part that does not fit ends the line, never half shown."""
    for part in parts:
        part = _as_text(part)
        if not part.plain:
            continue
        if width and text.cell_len + part.cell_len > width:
            break
        text.append_text(part)
    return text


def pack_phrases(phrases: Iterable[Text | str | tuple[str, Text | str]], width: int, separator: str = "  ") -> Text:
    """Phrases (`temperature 0.80 [t/T]`, `batch 64`) joined by `separator` on as few lines as
    `width` cells allow: a line breaks between phrases, never inside one (one wider than the line
    stands alone and wraps where the widget wraps it). width 0: one line. A phrase given as
    (separator, phrase) has its own separator before it, where it does not start a line."""
    text = Text()
    line = 0
    for phrase in phrases:
        joiner = separator
        if isinstance(phrase, tuple):
            joiner, phrase = phrase
        phrase = _as_text(phrase)
        if not phrase.plain:
            continue
        if line and width and line + len(joiner) + phrase.cell_len > width:
            text.append("\n")
            line = 0
        elif line:
            text.append(joiner)
            line += len(joiner)
        text.append_text(phrase)
        line += phrase.cell_len
    return text

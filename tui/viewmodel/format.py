"""Formatting of values for display: words and numbers as both faces show them (plain strings)."""

from __future__ import annotations

import argparse
import math
import re

from rnn_playground.core.errors import PlaygroundError

__all__ = ["format_duration", "fmt_loss", "fmt_rate", "fmt_rate_compact", "fmt_age", "human_size", "fmt_memory",
           "fit_clauses", "fmt_layer", "layer_number", "with_default", "show_char", "show_text_char", "escape_char",
           "error_text", "sparkline", "fmt_gb", "fmt_percent"]


def fmt_layer(index: int, layers: int) -> str:
    """A 0-based layer index as people count layers: "layer 2 of 2" (layer 1 is nearest the input)."""
    return f"layer {layer_number(index, layers)}"


def layer_number(index: int, layers: int) -> str:
    """fmt_layer without the word, for a column or a label headed "layer": "2 of 2"."""
    return f"{index + 1} of {layers}"


def fmt_loss(value: float | None) -> str:
    """A loss for display, the app's and the CLI's: four decimals for character losses (1.4321);
    series MSEs, far smaller, keep three significant digits (0.00123, 4.56e-05), never 0.0000."""
    if value is None:
        return "-"
    if value == 0 or not math.isfinite(value) or abs(value) >= 0.01:
        return f"{value:.4f}"
    return f"{value:.3g}" if abs(value) >= 1e-4 else f"{value:.2e}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_rate_compact(value: float | None) -> str:
    """A speed in three significant digits, for a row of them: 950, 41.2k, 1.23M."""
    if value is None or not math.isfinite(value):
        return "-"
    for scale, suffix in ((1.0, ""), (1e3, "k")):
        shown = float(f"{value / scale:.3g}")  # rounded as shown: 999.7 is 1.00k, not 1e+03
        if abs(shown) < 1000:
            return f"{shown:.3g}{suffix}" if suffix else f"{shown:.0f}"
    millions = value / 1e6
    return f"{millions:.3g}M" if abs(millions) < 999.5 else f"{millions:,.0f}M"


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def error_text(exc: BaseException, failed: str = "") -> str:
    """An error as a user reads it: the engine's own message for a PlaygroundError (it says what went wrong
    and what to do), else the exception's type and message, after `failed` ("Tracing failed") when given."""
    if isinstance(exc, PlaygroundError):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    return f"{failed}: {text}" if failed else text


def fmt_memory(free: int | None, total: int | None) -> str:
    if total is None:
        return ""
    if free is None:
        return human_size(total)
    return f"{free / 2**30:.1f}/{total / 2**30:.1f} GB free"


SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values, high: float, width: int = 8) -> str:
    """The last `width` values as bars from 0 (▁) to `high` (█): a trend in a few cells; "" for none."""
    values = [v for v in values if v is not None and math.isfinite(v)][-width:]
    if not values or not high > 0:
        return ""
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[min(top, max(0, round(v / high * top)))] for v in values)


def fmt_gb(size: float | None, total: float | None = None) -> str:
    """Memory in GB (2**30 bytes), one decimal: "1.2 GB"; with a total, "31.2/80.0 GB"; "-" for none."""
    if size is None:
        return "-"
    if total is None:
        return f"{size / 2**30:.1f} GB"
    return f"{size / 2**30:.1f}/{total / 2**30:.1f} GB"


def fmt_percent(value: float | None) -> str:
    """A percentage, whole: "97%"; "-" for none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.0f}%"


def fmt_age(seconds: float) -> str:
    """'12s', '5 min', '3 h', '2 d' ago."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_CLAUSE_END = re.compile(r"; | \(|, ")


def fit_clauses(text: str, width: int) -> str:
    """`text` if it fits in `width` columns, else its longest leading clause that does (cut before
    "; ", " (" or ", "), else its start with an ellipsis: a one-line description that ends whole."""
    if len(text) <= width:
        return text
    for cut in reversed([m.start() for m in _CLAUSE_END.finditer(text)]):
        if 0 < cut <= width:
            return text[:cut]
    return text[:max(width - 1, 0)] + "…"


# Help text that already says what happens when the flag is left out: "(default: ...)", "(default when ...",
# "; default 0.1 for ...", "Default: h ...", "off by default", argparse's "%(default)s".
_STATES_DEFAULT = re.compile(r"(^|[(;.]\s*)default\b|\bby default\b|%\(default\)", re.IGNORECASE)


def with_default(help_text: str, default) -> str:
    """`help_text` plus "(default: X)", unless it already states its default or there is none worth
    stating (None: the flag is simply off when not given; an empty string)."""
    if default is None or default == "" or default is argparse.SUPPRESS or _STATES_DEFAULT.search(help_text):
        return help_text
    return f"{help_text} (default: {default})"


# Control characters drawn as one visible cell wherever a character stands in a grid of cells.
_CONTROL_GLYPHS = {"\n": "↵", "\t": "⇥", "\r": "␍"}


def show_text_char(ch: str) -> str:
    """A character of a text drawn one cell per character: controls made visible, a space kept."""
    return _CONTROL_GLYPHS.get(ch, ch if ch.isprintable() else "·")


def show_char(ch: str | None) -> str:
    """A character on its own as one readable cell: a space made visible too ("-" for none)."""
    if ch is None:
        return "-"
    return "␣" if ch == " " else show_text_char(ch)


def escape_char(ch: str | None) -> str:
    """A character as Python escapes it ("\\n", "\\x00"), a space as "␣" ("-" for none): for tables
    whose cells may take several columns and must tell every character apart."""
    if ch is None:
        return "-"
    if ch == " ":
        return "␣"
    return repr(ch)[1:-1] if not ch.isprintable() or ch == "\\" else ch


EIGHTHS = " ▏▎▍▌▋▊▉█"  # a cell filled to 0/8 .. 8/8, left to right


def bar(fraction: float, cells: int) -> str:
    """A horizontal bar `fraction` (0..1) of `cells` long, in eighths of a cell, padded to `cells`."""
    fraction = min(1.0, max(0.0, fraction))
    full, rest = divmod(int(round(fraction * cells * 8)), 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(cells)

"""Every key of the app in one table, built from the bindings themselves (their tooltips say what
they do), so the help screen, the palette and the README cannot drift from what the keys do."""

from __future__ import annotations

from functools import cache

from textual.actions import parse
from textual.binding import Binding
from textual.keys import key_to_character
from textual.widgets import Input

from .modes import MODES

KEY_NAMES = {"question_mark": "?", "space": "Space", "escape": "Escape", "delete": "Delete", "enter": "Enter",
             "tab": "Tab", "shift+tab": "Shift+Tab", "up": "Up", "down": "Down",
             "left": "Left", "right": "Right", "home": "Home", "end": "End", "pageup": "PgUp", "pagedown": "PgDn",
             "full_stop": ".", "comma": ",", "plus": "+", "minus": "-", "equals_sign": "=",
             "left_square_bracket": "[", "right_square_bracket": "]", "shift+left": "Shift+left",
             "shift+right": "Shift+right", "less_than_sign": "<", "greater_than_sign": ">"}

# Keys handled by widgets rather than by the app's bindings.
WIDGET_KEYS = [
    ("Everywhere", "ctrl+p", "command palette: every screen, and every key of this screen by its name "
                             "(Generate, Temp+, Copy, Saturation, Find, ...), listed where it applies"),
    ("Everywhere", "tab,shift+tab", "move between fields, buttons, lists and panes, out of any field (a focused "
                                    "pane, such as the log or the sample, has a heavy border)"),
    ("Train", "enter", "in a form field: start training (on a button: press it; on a list: open it)"),
    ("Runs", "up,down", "select a run in the table (its details and loss curves show below)"),
    ("Sample", "enter", "in the prime or stop field: generate"),
    ("Gates", "enter", "in the text field: load that text; in the regex field: search; in the unit list: "
                       "select the unit; in the list of matching spans: jump to that span"),
    ("Series", "enter", "in a form field: start training"),
]

# The keys a focused text field keeps for itself besides the printable ones: its own bindings
# (arrows, Home, End, Delete, ctrl+k, ...).
FIELD_KEYS = frozenset(key.strip() for binding in Input.BINDINGS for key in binding.key.split(","))


def key_display(keys: str) -> str:
    shown = []
    for key in keys.split(","):
        key = key.strip()
        if key in KEY_NAMES:
            shown.append(KEY_NAMES[key])
        elif key.startswith("f") and key[1:].isdigit():
            shown.append(key.upper())
        elif key.startswith("ctrl+"):
            shown.append("Ctrl+" + key[5:])
        else:
            shown.append(key)
    return " / ".join(shown)


def what_it_does(binding: Binding) -> str:
    """The help's words for a binding: its tooltip, or its footer description where it has none."""
    return binding.tooltip or binding.description


def types_in_field(binding: Binding) -> bool:
    """Whether a focused text field takes one of this binding's keys for itself: it types (a letter,
    a digit, space, ?) or edits (an arrow, Home, Delete...), so the binding does not apply there."""
    for key in binding.key.split(","):
        key = key.strip()
        character = key_to_character(key)
        if (character is not None and character.isprintable()) or key in FIELD_KEYS:
            return True
    return False


@cache
def typed_bindings(node_type: type) -> tuple[Binding, ...]:
    """The bindings of `node_type` (a screen or the app) whose keys a focused text field takes."""
    return tuple(binding for binding in node_type.BINDINGS if isinstance(binding, Binding) and types_in_field(binding))


def typed_actions(node_type: type) -> frozenset[str]:
    """The actions of `node_type`, by name, that a key typed in a field would run."""
    return frozenset(parse(binding.action)[1] for binding in typed_bindings(node_type))


def _rows(scope: str, cls) -> list[tuple[str, str, str]]:
    rows, seen = [], set()
    for binding in cls.BINDINGS:
        if not isinstance(binding, Binding) or binding.id in seen:
            continue
        seen.add(binding.id)
        rows.append((scope, binding.key, what_it_does(binding)))
    return rows


def _widget_rows(scope: str) -> list[tuple[str, str, str]]:
    return [row for row in WIDGET_KEYS if row[0] == scope]


def key_table(app) -> list[tuple[str, str, str]]:
    """(scope, keys as in BINDINGS, what they do) for every key `app` (the app or its class) reacts
    to: its own bindings, its modes' screens (app.MODES) and its dialogs (app.DIALOGS)."""
    table = _rows("Everywhere", app) + _widget_rows("Everywhere")
    for mode in MODES:
        table += _rows(mode.label, app.MODES[mode.name]) + _widget_rows(mode.label)
    for scope, screen in app.DIALOGS.items():
        table += _rows(scope, screen)
    return table

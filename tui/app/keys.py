"""Every key of the app in one table, built from the bindings themselves, so the help screen
and the README cannot drift from what the keys do."""

from __future__ import annotations

from textual.binding import Binding

KEY_NAMES = {"question_mark": "?", "space": "Space", "escape": "Escape", "delete": "Delete", "enter": "Enter",
             "tab": "Tab", "shift+tab": "Shift+Tab", "up": "Up", "down": "Down",
             "left": "Left", "right": "Right", "home": "Home", "end": "End", "pageup": "PgUp", "pagedown": "PgDn",
             "full_stop": ".", "comma": ",", "plus": "+", "minus": "-", "equals_sign": "=",
             "left_square_bracket": "[", "right_square_bracket": "]"}

# Keys handled by widgets rather than by the app's bindings.
WIDGET_KEYS = [
    ("Everywhere", "ctrl+p", "command palette: every screen, and every key of this screen by its name "
                             "(Generate, Temp+, Copy, Saturation, Find, ...), listed where it applies"),
    ("Everywhere", "tab,shift+tab", "move between fields, buttons, lists and panes, out of any field (a focused "
                                    "pane, such as the log or the sample, has a heavy border)"),
    ("Train", "enter", "in a form field: start training (on a button: press it; on a list: open it)"),
    ("Runs", "up,down", "select a run in the table (its details and loss curves show below)"),
    ("Sample", "enter", "in the prime field: generate"),
    ("Gates", "enter", "in the text field: load that text; in the regex field: search; in the unit list: "
                       "select the unit"),
    ("Series", "enter", "in a form field: start training"),
]


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


def _rows(scope: str, cls) -> list[tuple[str, str, str]]:
    help_texts = getattr(cls, "HELP", {})
    rows, seen = [], set()
    for binding in cls.BINDINGS:
        if not isinstance(binding, Binding) or binding.id in seen:
            continue
        seen.add(binding.id)
        rows.append((scope, binding.key, help_texts.get(binding.id, binding.description)))
    return rows


def key_table() -> list[tuple[str, str, str]]:
    """(scope, keys as in BINDINGS, what they do) for every key the app reacts to."""
    from .screens.confirm import ConfirmScreen
    from .screens.help import HelpScreen
    from .screens.runs import RunsScreen
    from .screens.train import TrainScreen
    from .shell import PlaygroundApp
    table = _rows("Everywhere", PlaygroundApp)
    table += [row for row in WIDGET_KEYS if row[0] == "Everywhere"]
    table += _rows("Train", TrainScreen) + [row for row in WIDGET_KEYS if row[0] == "Train"]
    table += _rows("Runs", RunsScreen) + [row for row in WIDGET_KEYS if row[0] == "Runs"]
    from .screens.gates import GatesScreen
    from .screens.sample import SampleScreen
    from .screens.series import SeriesScreen
    for scope, screen in (("Sample", SampleScreen), ("Gates", GatesScreen), ("Series", SeriesScreen)):
        table += _rows(scope, screen) + [row for row in WIDGET_KEYS if row[0] == scope]
    table += _rows("Dialogs", ConfirmScreen) + _rows("Help", HelpScreen)
    return table

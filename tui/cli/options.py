"""Command-line options: a flag per dataclass field, help that states each default once, which flags were typed."""

from __future__ import annotations

import argparse
import dataclasses

from rnn_playground.core.config import flag_of
from rnn_playground.core.errors import ConfigError
from rnn_playground.tui.viewmodel.format import with_default
from rnn_playground.tui.viewmodel.settings import field_type, value_parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's help states its default once (see with_default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return help_text  # a required positional has no default
        return with_default(help_text, action.default)


def add_dataclass_options(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                          defaults: bool = True) -> None:
    """One flag per dataclass field, help from the field's metadata, default shown.

    With defaults=False every flag defaults to None (its help still names the default), for
    commands that fill unset values from elsewhere; `explicit_options` is the other way to
    tell which flags were typed. A config's own fields come first, then those it inherits (the
    loop settings every kind of run shares), so `train --help` starts with the corpus.
    """
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name in inherited):
        if f.name in skip or "help" not in f.metadata:
            continue
        flag = flag_of(f.name)
        default = f.default if defaults else None
        # With defaults=False the flag's own default is None, so the help names the field's default.
        help_text = f.metadata["help"] if defaults else with_default(f.metadata["help"], f.default)
        kind = field_type(f)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        parser.add_argument(flag, type=_argument_type(value_parser(f)), default=default, help=help_text,
                            metavar=f.name.upper())


def _argument_type(parse):
    """argparse's `type` for `parse`: its ConfigError becomes argparse's own usage error (no traceback)."""
    if parse in (int, float, str):
        return parse

    def convert(text: str):
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def options_from(args: argparse.Namespace, cls) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def given_options(args: argparse.Namespace, cls) -> dict:
    """The dataclass's options that were given: with add_dataclass_options(defaults=False), a flag left
    out is None."""
    return {k: v for k, v in options_from(args, cls).items() if v is not None}


def explicit_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations of the options actually typed (the parser must have allow_abbrev=False)."""
    given = set()
    for action in parser._actions:
        for flag in action.option_strings:
            if any(token == flag or token.startswith(flag + "=") for token in argv):
                given.add(action.dest)
    return given

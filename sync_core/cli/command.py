"""The command class every `galsync` command uses: the conventions admins know from az, azd and kubectl.

- The global options (`--json`, `--debug`, `--state`, `--config`, `--verbose`, `--quiet`) are accepted after
  the command name as well as before it: `galsync sync --json` does what `galsync --json sync` does.
- Option values are shown as TEXT / INTEGER / FLOAT / PATH words in `--help` (a flag shows none), not as
  Python annotations.
- `--help` ends with the settings the command reads (command_settings.py).
"""

from __future__ import annotations

from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from .command_settings import settings_help
from .context import ConfigOption, DebugFlag, JsonFlag, QuietFlag, StateOption, VerboseFlag, update

_TYPE_WORDS = {str: "TEXT", int: "INTEGER", float: "FLOAT"}

_template = typer.Typer(add_completion=False)


@_template.command()
def _global_options(json: JsonFlag = False, debug: DebugFlag = False, state: StateOption = None,
                    config: ConfigOption = None, verbose: VerboseFlag = False, quiet: QuietFlag = False) -> None:
    """Only declares the global options once, for `Command` to copy."""


def _remember(ctx: Any, param: Any, value: Any) -> Any:
    """A global option given after the command name (the group's callback has already run)."""
    source = ctx.get_parameter_source(param.name)
    if source is not None and source.name == "COMMANDLINE":
        update(**{param.name: value})
    return value


def type_word(param: Any) -> str:
    """The word `--help` shows for an option's value: '' for a flag, else TEXT, INTEGER, FLOAT or PATH."""
    if getattr(param, "is_flag", False):
        return ""
    descriptor = param.type_descriptor
    if descriptor.is_path:
        return "PATH"
    annotation = descriptor.annotation
    if descriptor.is_list:
        annotation = getattr(annotation, "__args__", (str,))[0]
    return _TYPE_WORDS.get(annotation, "TEXT")


def _with_type_words(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, typer.core.TyperOption) and param.metavar is None:
            param.metavar = type_word(param)
        elif isinstance(param, typer.core.TyperArgument):
            param.metavar = param.metavar or type_word(param)
            param.display_type_rich = lambda ctx: None  # the argument's name already is its type word
    return params


class Group(TyperGroup):
    """A group of commands (`galsync`, `galsync config`, ...): its options shown with type words too."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _with_type_words(super().get_params(ctx))


class Command(TyperCommand):
    """A galsync command: its own options, then the global ones it does not declare itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        own = {p.name for p in self.params}
        for param in typer.main.get_command(_template).params:
            if param.name not in own:
                param.expose_value = False
                param.callback = _remember
                param.rich_help_panel = "Global options"
                self.params.append(param)

    def get_params(self, ctx: Any) -> list[Any]:
        return _with_type_words(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = settings_help(command_words(ctx))
        super().format_help(ctx, formatter)


def command_words(ctx: Any) -> list[str]:
    """The command's words after `galsync` (["subscriptions", "list"]), from its context's parents."""
    words: list[str] = []
    while ctx.parent is not None:
        words.insert(0, ctx.info_name)
        ctx = ctx.parent
    return words

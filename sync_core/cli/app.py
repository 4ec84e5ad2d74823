"""The `galsync` command: global options, and the commands wired from their modules.

    galsync [--json] [--debug] [--verbose | --quiet] [--state sqlite:PATH | table:] [--config PATH] COMMAND ...

Each command lives in a small module (run_commands, report_commands, subscription_commands, config_commands,
settings_command, emulator_command, functions_command, demo); this file only assembles them. Every command is
a `command.Command`, so the global options work after the command name too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated

import typer

from . import (
    config_commands,
    demo,
    emulator_command,
    functions_command,
    report_commands,
    run_commands,
    settings_command,
    subscription_commands,
    targets_command,
)
from .command import Command, Group
from .context import CliOptions, ConfigOption, DebugFlag, JsonFlag, QuietFlag, StateOption, VerboseFlag, install

app = typer.Typer(
    name="galsync",
    cls=Group,
    help="Keeps company phones' address books in step with the Microsoft 365 directory.\n\n"
         "Settings come from the environment (GALSYNC_*, the same names as the function app) or from "
         "local.settings.json in this folder; `galsync settings` shows them. Start with `galsync demo`, then "
         "`galsync emulator` to try your own profiles.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def galsync_version() -> str:
    try:
        return package_version("galsync")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"galsync {galsync_version()}")
        raise typer.Exit(0)


@app.callback()
def main(
    json: JsonFlag = False,
    debug: DebugFlag = False,
    state: StateOption = None,
    config: ConfigOption = None,
    verbose: VerboseFlag = False,
    quiet: QuietFlag = False,
    version: Annotated[bool, typer.Option("--version", "-V", is_eager=True, callback=_show_version,
                                          help="Print galsync's version and exit.")] = False,
) -> None:
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet contradict each other; choose one")
    install(CliOptions(json=json, debug=debug, state=state, config=config, verbose=verbose, quiet=quiet))


app.command("demo", cls=Command)(demo.demo)
app.command("sync", cls=Command)(run_commands.sync)
app.command("reconcile", cls=Command)(run_commands.reconcile)
app.command("doctor", cls=Command)(report_commands.doctor)
app.command("explain", cls=Command)(report_commands.explain)
app.command("status", cls=Command)(report_commands.status)
app.command("targets", cls=Command)(targets_command.targets)
app.command("settings", cls=Command)(settings_command.settings)
app.add_typer(subscription_commands.app, name="subscriptions")
app.add_typer(config_commands.app, name="config")
app.command("emulator", cls=Command)(emulator_command.emulator)
app.command("functions", cls=Command)(functions_command.functions)

"""The `galsync` command: global options, and the commands wired from their modules.

    galsync [--json] [--debug] [--state sqlite:PATH | table:] [--config PATH] COMMAND ...

Each command lives in a small module (run_commands, report_commands, subscription_commands, config_commands,
emulator_command, demo); this file only assembles them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import config_commands, demo, emulator_command, report_commands, run_commands, subscription_commands
from .context import CliOptions, install

app = typer.Typer(
    name="galsync",
    help="Keeps company phones' address books in step with the Microsoft 365 directory.\n\n"
         "Settings come from the environment (GALSYNC_*, the same names as the function app). "
         "Start with `galsync demo`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts) instead of tables.")]
    = False,
    debug: Annotated[bool, typer.Option("--debug", help="Log every Graph request; show stack traces.")] = False,
    state: Annotated[str | None, typer.Option(
        "--state", metavar="sqlite:PATH|table:",
        help="State store (overrides GALSYNC_STATE; default sqlite:galsync-state.db).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", metavar="PATH", help="Profiles file (overrides GALSYNC_CONFIG_PATH; default galsync.toml).")]
    = None,
) -> None:
    install(CliOptions(json=json, debug=debug, state=state, config=config))


app.command("demo")(demo.demo)
app.command("sync")(run_commands.sync)
app.command("reconcile")(run_commands.reconcile)
app.command("doctor")(report_commands.doctor)
app.command("explain")(report_commands.explain)
app.command("status")(report_commands.status)
app.add_typer(subscription_commands.app, name="subscriptions")
app.add_typer(config_commands.app, name="config")
app.command("emulator")(emulator_command.emulator)

"""The global options and what every command builds from them: settings, and a Runtime to run use cases.

Settings come from the environment under the function app's names (sync_core/settings.py), or from the
`Values` of local.settings.json (setting_sources.py), so an admin's shell and the deployed app are configured
the same way; --state and --config only override two of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated

import typer
from rich.logging import RichHandler

from sync_core.core.profile import load_config
from sync_core.service.runtime import Runtime
from sync_core.service.state_identity import claim_state, configured_identity, reset_state
from sync_core.settings import Settings
from sync_core.state.leases import describe_lease

from .advice import BAD_USAGE
from .errors import CliProblem
from .output import Output
from .preflight import check_config_file, check_graph_setup, open_state, warn_misspelt
from .setting_sources import SettingSources, current_sources


@dataclass(frozen=True)
class CliOptions:
    json: bool = False
    debug: bool = False
    state: str | None = None  # overrides GALSYNC_STATE
    config: str | None = None  # overrides GALSYNC_CONFIG_PATH
    verbose: bool = False
    quiet: bool = False

    def sources(self) -> SettingSources:
        """The environment and local.settings.json, with the command line's overrides marked."""
        sources = current_sources()
        marks = {name: option for name, option, value in self._overrides() if value is not None}
        return replace(sources, overrides=marks)

    def _overrides(self) -> tuple[tuple[str, str, str | None], ...]:
        return (("GALSYNC_STATE", "--state", self.state), ("GALSYNC_CONFIG_PATH", "--config", self.config))

    def settings(self, sources: SettingSources | None = None) -> Settings:
        """Settings from the environment and local.settings.json with the command line's overrides
        (SettingsError names a bad one); a GALSYNC_* name that is no setting is warned about."""
        sources = sources or self.sources()
        warn_misspelt(sources)
        overrides: dict[str, str] = {}
        if self.state is not None:
            overrides["state"] = self.state
        if self.config is not None:
            overrides["config_path"] = self.config
        return Settings.from_env(sources.merged(), **overrides)

    @contextmanager
    def runtime(self, *, reset_state: bool = False, check_state: bool = True) -> Iterator[Runtime]:
        """A Runtime for one command, closed (Graph session, state store) when the command ends.

        Credentials and a local Graph's reachability are checked first, so a missing setup is told as such
        (and no state file is created for a command that cannot run). The Graph client is built (and a
        token fetched) at once, so bad credentials or an unreachable authority fail before any work or
        progress bar starts. Then the state store is checked to be this tenant's and endpoint's
        (StateMismatch otherwise; `check_state` False leaves that to the command), or, with `reset_state`,
        emptied and stamped anew.
        """
        sources = self.sources()
        settings = self.settings(sources)
        check_graph_setup(sources, settings)
        check_config_file(settings)
        config = load_config(settings.config_path)
        rt = Runtime.from_settings(settings, config=config, store=open_state(settings))
        try:
            rt.client  # noqa: B018 - builds the client: AuthError now, naming the setting
            if reset_state:
                _reset(rt)
            elif check_state:
                claim_state(rt)
            yield rt
        finally:
            rt.close()


_current = CliOptions()

# The global options, declared once: the `galsync` callback takes them before the command name, and every
# command accepts them after it too (cli/command.py), as az and kubectl do.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts) instead of tables.")]
DebugFlag = Annotated[bool, typer.Option("--debug", help="Log every Graph request; show stack traces.")]
StateOption = Annotated[str | None, typer.Option(
    "--state", metavar="sqlite:PATH|table:",
    help="State store (overrides GALSYNC_STATE; default sqlite:galsync-state.db).")]
ConfigOption = Annotated[str | None, typer.Option(
    "--config", metavar="PATH", help="Profiles file (overrides GALSYNC_CONFIG_PATH; default galsync.toml).")]
VerboseFlag = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Say more: each contact a dry run would write, galsync's informational log lines.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes: results and problems only.")]


def output(json_flag: bool = False) -> Output:
    """This command's output; `--json` works after the command name as well as before it."""
    out = Output.current()
    if json_flag:
        out.json_mode = True
    return out


def install(options: CliOptions) -> None:
    """Remember the global options and set up output and logging for this run."""
    global _current
    _current = options
    Output.install(Output(json_mode=options.json, debug=options.debug, verbose=options.verbose,
                          quiet=options.quiet))
    _configure_logging(options)


def update(**changes: object) -> None:
    """A global option given after the command name: the same effect as before it."""
    install(replace(_current, **changes))  # type: ignore[arg-type]


def options() -> CliOptions:
    return _current


def _reset(rt: Runtime) -> None:
    blocking = reset_state(rt)
    if blocking:
        raise CliProblem("the state store was not reset: another worker is using it",
                         code=BAD_USAGE, details=tuple(describe_lease(lease) for lease in blocking))
    Output.current().note(f"state store emptied and stamped for {configured_identity(rt.settings).describe()}")

def _configure_logging(options: CliOptions) -> None:
    """galsync's own loggers to stderr: warnings by default, informational lines with --verbose, everything
    with --debug (ids and counts only)."""
    logger = logging.getLogger("galsync")
    for handler in list(logger.handlers):
        if getattr(handler, "_galsync_cli", False):
            logger.removeHandler(handler)
    handler = RichHandler(console=Output.current().err, show_path=False, markup=False, rich_tracebacks=False)
    handler._galsync_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if options.debug else logging.INFO if options.verbose else logging.WARNING)
    logger.propagate = False

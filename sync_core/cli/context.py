"""The global options and what every command builds from them: settings, and a Runtime to run use cases.

Settings come from the environment under the function app's names (sync_core/settings.py), so an admin's
shell and the deployed app are configured the same way; --state and --config only override two of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.logging import RichHandler

from sync_core.service.runtime import Runtime
from sync_core.service.state_identity import claim_state, configured_identity, reset_state
from sync_core.settings import Settings
from sync_core.state.leases import describe_lease

from .advice import BAD_USAGE
from .errors import CliProblem
from .output import Output


@dataclass(frozen=True)
class CliOptions:
    json: bool = False
    debug: bool = False
    state: str | None = None  # overrides GALSYNC_STATE
    config: str | None = None  # overrides GALSYNC_CONFIG_PATH

    def settings(self) -> Settings:
        """Settings from the environment with the command line's overrides (SettingsError names a bad one)."""
        overrides: dict[str, str] = {}
        if self.state is not None:
            overrides["state"] = self.state
        if self.config is not None:
            overrides["config_path"] = self.config
        return Settings.from_env(os.environ, **overrides)

    @contextmanager
    def runtime(self, *, reset_state: bool = False, check_state: bool = True) -> Iterator[Runtime]:
        """A Runtime for one command, closed (Graph session, state store) when the command ends.

        The Graph client is built (and a token fetched) at once, so bad credentials or an unreachable
        authority fail before any work or progress bar starts. Then the state store is checked to be this
        tenant's and endpoint's (StateMismatch otherwise; `check_state` False leaves that to the command),
        or, with `reset_state`, emptied and stamped anew.
        """
        rt = Runtime.from_settings(self.settings())
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

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts) instead of tables.")]


def output(json_flag: bool = False) -> Output:
    """This command's output; `--json` works after the command name as well as before it."""
    out = Output.current()
    if json_flag and not out.json_mode:
        out = Output.install(Output(json_mode=True, debug=out.debug))
    return out


def install(options: CliOptions) -> None:
    """Remember the global options and set up output and logging for this run."""
    global _current
    _current = options
    Output.install(Output(json_mode=options.json, debug=options.debug))
    _configure_logging(options.debug)


def options() -> CliOptions:
    return _current


def _reset(rt: Runtime) -> None:
    blocking = reset_state(rt)
    if blocking:
        raise CliProblem("the state store was not reset: another worker is using it",
                         code=BAD_USAGE, details=tuple(describe_lease(lease) for lease in blocking))
    Output.current().note(f"state store emptied and stamped for {configured_identity(rt.settings).describe()}")


def _configure_logging(debug: bool) -> None:
    """galsync's own loggers to stderr: warnings by default, everything with --debug (ids and counts only)."""
    logger = logging.getLogger("galsync")
    for handler in list(logger.handlers):
        if getattr(handler, "_galsync_cli", False):
            logger.removeHandler(handler)
    handler = RichHandler(console=Output.current().err, show_path=False, markup=False, rich_tracebacks=False)
    handler._galsync_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False

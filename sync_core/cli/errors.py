"""Failures that read like advice: each error galsync knows is explained with the exit code it deserves.

An admin sees one short explanation naming what to fix; the stack trace only with --debug.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from sync_core.core.profile import ConfigError
from sync_core.graph import AuthError, Forbidden, GraphError, NotFound, Throttled, TransientError
from sync_core.service.doctor import GRANT_SCRIPT
from sync_core.service.explain import BadQuestion, ExplainError
from sync_core.service.folders import FolderConflict
from sync_core.service.groups import GroupConfigError
from sync_core.service.targets import TargetConfigError
from sync_core.settings import SettingsError
from sync_core.state.base import StateError, StateMismatch
from sync_core.state.leases import LeaseLost

from .advice import BAD_USAGE, FAILURES, Advice
from .output import Output


class CliProblem(Exception):
    """A problem the command itself found (not an exception of a lower layer); the message is the advice."""

    def __init__(self, message: str, *, code: int = FAILURES, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def advice_for(error: BaseException) -> Advice | None:
    """The advice for an error galsync knows how to explain; None for a bug (shown with its trace)."""
    if isinstance(error, CliProblem):
        return Advice(error.code, "problem", str(error), error.details)
    if isinstance(error, ConfigError):
        count = len(error.problems)
        return Advice(
            BAD_USAGE, "config", f"the configuration has {count} problem{'s' if count != 1 else ''}:",
            error.problems, "fix them, then check the file with `galsync config validate PATH`",
        )
    if isinstance(error, StateMismatch):
        return Advice(BAD_USAGE, "state-mismatch", str(error), hint=error.advice)
    if isinstance(error, SettingsError):
        return Advice(BAD_USAGE, "settings", str(error),
                      hint="set it in the environment (the names are listed in local.settings.json.example)")
    if isinstance(error, AuthError):
        if error.setting in ("GALSYNC_AUTH_MODE", "GALSYNC_MANAGED_IDENTITY_CLIENT_ID"):
            return Advice(BAD_USAGE, "auth", str(error), hint=(
                "a managed identity answers only on Azure; elsewhere set GALSYNC_AUTH_MODE=client_secret (or "
                "certificate) with GALSYNC_TENANT_ID and GALSYNC_CLIENT_ID, or try it locally with "
                "`galsync emulator`; `galsync settings` shows what is set"))
        return Advice(BAD_USAGE, "auth", str(error),
                      hint=f"check {error.setting} (`galsync settings` shows where it came from)")
    if isinstance(error, Forbidden):
        return Advice(FAILURES, "permission", str(error),
                      hint=f"grant the permission with {GRANT_SCRIPT}, then run `galsync doctor`")
    if isinstance(error, Throttled | TransientError):
        return Advice(FAILURES, "graph-unavailable", str(error),
                      hint="Graph kept refusing; nothing was lost: run the command again later")
    if isinstance(error, NotFound):
        return Advice(FAILURES, "not-found", str(error),
                      hint="check the mailbox or object named in the configuration")
    if isinstance(error, GraphError):
        return Advice(FAILURES, "graph", str(error),
                      hint="quote the request-id when asking Microsoft support")
    if isinstance(error, StateError):
        return Advice(FAILURES, "state", f"the state store failed: {error}",
                      hint="check GALSYNC_STATE (or --state) and that the store is reachable")
    if isinstance(error, GroupConfigError | TargetConfigError):
        return Advice(BAD_USAGE, "config", str(error),
                      hint="fix the group or mailbox name in the configuration (names or object ids)")
    if isinstance(error, LeaseLost):
        return Advice(FAILURES, "lease-lost", str(error),
                      hint="what was written is recorded: run the command again to finish")
    if isinstance(error, FolderConflict):
        return Advice(FAILURES, "folder", str(error))
    if isinstance(error, BadQuestion):
        return Advice(BAD_USAGE, "usage", str(error))
    if isinstance(error, ExplainError):
        return Advice(FAILURES, "explain", str(error))
    return None


P = ParamSpec("P")
R = TypeVar("R")


def advised(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command; turn known failures into advice and the right exit code (a trace only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            Output.current().error_line("interrupted; nothing half-written is kept as done: run the command again")
            raise typer.Exit(130) from None
        except Exception as error:
            out = Output.current()  # after the command, which may have switched to --json
            advice = advice_for(error)
            if out.debug or advice is None:
                out.error_text(traceback.format_exc())
            if advice is None:
                out.error_line(f"unexpected error ({type(error).__name__}); this is a bug in galsync: "
                               "please report it with the output of --debug")
                raise typer.Exit(FAILURES) from None
            out.advice(advice)
            raise typer.Exit(advice.code) from None

    return wrapper

"""`galsync emulator`: a local Microsoft Graph to try galsync by hand, and `--env` to point a shell at it.

The emulator is the test double of the whole project (graph_emulator/), installed with the `emulator` extra.
It runs until Ctrl-C or SIGTERM; its CA file and state live in a temporary folder and vanish when it stops.
While it runs, it leaves its settings in a file of this user's (`running_emulator_file()`), so another shell
loads them in one step: `eval "$(galsync emulator --env)"`.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from .advice import BAD_USAGE, OK
from .context import JsonFlag, output
from .errors import CliProblem, advised
from .preflight import unreachable
from .stopping import until_stopped

EXAMPLE_CONFIG = "galsync.example.toml"
STOP_GRACE_SECONDS = 1.0  # notifications still queued when asked to stop get this long, then are dropped


def start_emulator(scenario: str | None, port: int = 0, seed: int = 0, latency_ms: int = 0) -> Any:
    """Start the Graph emulator; a clear problem if the `emulator` extra is not installed."""
    try:
        from graph_emulator import GraphEmulator
    except ImportError as error:
        raise CliProblem(f"the Graph emulator is not installed ({error.name} is missing)",
                         code=BAD_USAGE, details=("install it with: pip install -e '.[emulator]'",)) from None
    try:
        return GraphEmulator.start(scenario=scenario, port=port, seed=seed, latency_ms=latency_ms)
    except OSError as error:
        raise CliProblem(f"the emulator cannot listen on port {port}: {error.strerror or error}",
                         code=BAD_USAGE) from None


def running_emulator_file() -> Path:
    """Where a running `galsync emulator` leaves its settings for this user's other shells."""
    return Path(tempfile.gettempdir()) / f"galsync-emulator-{getpass.getuser()}.json"


@advised
def emulator(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port on 127.0.0.1 (0: any free).")] = 0,
    scenario: Annotated[str, typer.Option("--scenario", help="logistics, synthetic, or none.")] = "logistics",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scenario (same seed, same tenant).")] = 0,
    latency_ms: Annotated[int, typer.Option("--latency-ms", min=0, help="Time each Graph request takes.")] = 0,
    env: Annotated[bool, typer.Option("--env", help="Print the running emulator's settings as shell exports "
                                                    "(for eval) and exit.")] = False,
    json: JsonFlag = False,
) -> None:
    """Start a local Microsoft Graph (the test emulator); Ctrl-C or SIGTERM stops it.

    In another shell, `eval "$(galsync emulator --env)"` points galsync at it; then try `galsync doctor`,
    `galsync sync --dry-run`, `galsync sync`, and `galsync functions` for the webhook path.

    Examples:

      galsync emulator

      eval "$(galsync emulator --env)"

      galsync emulator --scenario synthetic --latency-ms 50
    """
    out = output(json)
    if env:
        settings = running_settings()
        if out.json_mode:
            out.result({"settings": settings}, lambda _console: None)
        else:
            for name, value in settings.items():
                typer.echo(f"export {name}={shlex.quote(value)}")
        raise typer.Exit(OK)
    g = start_emulator(None if scenario.lower() == "none" else scenario, port, seed, latency_ms)
    info_file = running_emulator_file()
    try:
        settings = g.galsync_settings()
        if Path(EXAMPLE_CONFIG).is_file():
            settings["GALSYNC_CONFIG_PATH"] = os.path.abspath(EXAMPLE_CONFIG)
        data = {"base_url": g.base_url, "control": f"{g.url}/_emulator", "scenario": scenario, "settings": settings}
        _write_private(info_file, {"pid": os.getpid(), "base_url": g.base_url, "settings": settings})

        def render(console: Any) -> None:
            console.print(f"[bold]Graph emulator[/] ({scenario} scenario) at {g.base_url}")
            console.print('In another shell, load its settings with  eval "$(galsync emulator --env)"  (or export '
                          "these), then run e.g. `galsync doctor` and `galsync sync`:\n", markup=False, soft_wrap=True)
            for name, value in settings.items():
                console.print(f"export {name}={shlex.quote(value)}", soft_wrap=True, markup=False)
            console.print(f"\nChange the world by hand through {g.url}/_emulator/ (see graph_emulator/control.py),"
                          " e.g. a driver's new number (with `galsync functions` running, watch it reach the "
                          "phones):")
            console.print(f"curl -sk -X PATCH {g.url}/_emulator/users/isabella.green@northwind.example "
                          "-d '{\"mobilePhone\": \"+44 7700 900123\"}'", soft_wrap=True, markup=False)
            console.print("or a phone saving a contact:")
            console.print(f"curl -sk -X POST {g.url}/_emulator/mailboxes/trucks.north@northwind.example/contacts "
                          "-d '{\"fields\": {\"displayName\": \"Maman\", \"mobilePhone\": \"+33 6 12 34 56 78\"}}'",
                          soft_wrap=True, markup=False)
            console.print("\nserving; Ctrl-C to stop")

        out.result(data, render)
        until_stopped()
    finally:
        _remove_if_ours(info_file)
        g.stop(delivery_grace=STOP_GRACE_SECONDS)
    raise typer.Exit(OK)


def running_settings() -> dict[str, str]:
    """The settings of the emulator running for this user; CliProblem when none is listening."""
    path = running_emulator_file()
    start = "start it with `galsync emulator` in another shell, then run this again"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        settings = {str(k): str(v) for k, v in info["settings"].items()}
        base_url = str(info["base_url"])
    except (OSError, ValueError, KeyError, AttributeError):
        raise CliProblem("no Graph emulator is running for this user", code=BAD_USAGE, details=(start,)) from None
    if unreachable(base_url) is not None:
        raise CliProblem(f"the Graph emulator at {base_url} has stopped; is the emulator running?",
                         code=BAD_USAGE, details=(start,))
    return settings


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write the file readable by this user only (it holds the emulator's client secret)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _remove_if_ours(path: Path) -> None:
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass

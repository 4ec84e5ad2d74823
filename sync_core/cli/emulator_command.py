"""`galsync emulator`: a local Microsoft Graph to try galsync by hand, with the settings to export printed.

The emulator is the test double of the whole project (graph_emulator/), installed with the `emulator` extra.
It runs until Ctrl-C; its CA file and state live in a temporary folder and vanish when it stops.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from .advice import BAD_USAGE, OK
from .context import JsonFlag, output
from .errors import CliProblem, advised

EXAMPLE_CONFIG = "galsync.example.toml"


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


@advised
def emulator(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port on 127.0.0.1 (0: any free).")] = 0,
    scenario: Annotated[str, typer.Option("--scenario", help="logistics, synthetic, or none.")] = "logistics",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scenario (same seed, same tenant).")] = 0,
    latency_ms: Annotated[int, typer.Option("--latency-ms", min=0, help="Time each Graph request takes.")] = 0,
    json: JsonFlag = False,
) -> None:
    """Start a local Microsoft Graph (the test emulator) and print the settings to export; Ctrl-C stops it."""
    out = output(json)
    g = start_emulator(None if scenario.lower() == "none" else scenario, port, seed, latency_ms)
    try:
        settings = g.galsync_settings()
        if Path(EXAMPLE_CONFIG).is_file():
            settings["GALSYNC_CONFIG_PATH"] = os.path.abspath(EXAMPLE_CONFIG)
        data = {"base_url": g.base_url, "control": f"{g.url}/_emulator", "scenario": scenario, "settings": settings}

        def render(console: Any) -> None:
            console.print(f"[bold]Graph emulator[/] ({scenario} scenario) at {g.base_url}")
            console.print("Export these in another shell, then run e.g. `galsync sync` and `galsync doctor`:\n")
            for name, value in settings.items():
                console.print(f"export {name}='{value}'", soft_wrap=True, markup=False)
            console.print(f"\nChange the world by hand through {g.url}/_emulator/ (see graph_emulator/control.py),"
                          " e.g. a phone saving a contact:")
            console.print(f"curl -sk -X POST {g.url}/_emulator/mailboxes/trucks.north@northwind.example/contacts "
                          "-d '{\"fields\": {\"displayName\": \"Maman\", \"mobilePhone\": \"+33 6 12 34 56 78\"}}'",
                          soft_wrap=True, markup=False)
            console.print("\nserving; Ctrl-C to stop")

        out.result(data, render)
        _serve_until_interrupted()
    finally:
        g.stop()
    raise typer.Exit(OK)


def _serve_until_interrupted() -> None:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `kill` stops it cleanly, like Ctrl-C
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass

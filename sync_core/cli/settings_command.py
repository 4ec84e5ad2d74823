"""`galsync settings`: every setting in effect, where it came from, secrets masked.

Answers "which tenant is this shell pointed at, and why" without reading the environment by hand: each
setting's value (a secret shows only whether it is set), its origin (the environment, local.settings.json,
a command-line option, or the default), and the GALSYNC_* names galsync ignores, with the name each one was
probably meant to be.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from sync_core.settings import SPECS, SettingsError

from .advice import BAD_USAGE, OK
from .context import JsonFlag, options, output
from .errors import advised
from .output import table
from .setting_sources import DEFAULT, SettingSources

SET, UNSET = "(set)", "(not set)"


def setting_rows(sources: SettingSources, state: str | None, config: str | None) -> list[dict[str, Any]]:
    merged = sources.merged()
    given = {"GALSYNC_STATE": state, "GALSYNC_CONFIG_PATH": config}
    rows = []
    for spec in SPECS:
        value = given.get(spec.name)
        if value is None:
            value = merged.get(spec.name, spec.default)
        shown = (SET if value.strip() else UNSET) if spec.secret else value
        rows.append({"name": spec.name, "value": shown, "origin": sources.origin(spec.name),
                     "secret": spec.secret, "meaning": spec.help})
    return rows


@advised
def settings(json: JsonFlag = False) -> None:
    """Show each setting in effect, where it came from (environment, local.settings.json, option, default).

    Secrets show only whether they are set. Exit 2 if a value cannot be used (the problem is named).

    Examples:

      galsync settings

      galsync --state sqlite:/tmp/try.db settings --json
    """
    out = output(json)
    opts = options()
    sources = opts.sources()
    problem = None
    try:
        opts.settings(sources)
    except SettingsError as error:
        problem = str(error)
    rows = setting_rows(sources, opts.state, opts.config)
    ignored = [{"name": m.name, "origin": m.origin, "did_you_mean": m.meant} for m in sources.misspelt()]
    data = {"ok": problem is None, "local_settings_file": str(sources.file_path) if sources.file_path else None,
            "settings": rows, "ignored": ignored, "problem": problem}

    def render(console: Console) -> None:
        title = "Settings in effect" + (f" (with {sources.file_path})" if sources.file_path else "")
        console.print(table(title, ["setting", "value", "from"],
                            [[r["name"], r["value"], r["origin"] if r["origin"] != DEFAULT else "default"]
                             for r in rows]))
        for m in ignored:
            meant = f" (did you mean {m['did_you_mean']}?)" if m["did_you_mean"] else ""
            console.print(f"ignored: {m['name']} (from {m['origin']}): not a galsync setting{meant}",
                          style="yellow", markup=False, soft_wrap=True)
        if problem:
            console.print(f"problem: {problem}", style="bold red", markup=False, soft_wrap=True)

    out.result(data, render)
    raise typer.Exit(BAD_USAGE if problem else OK)

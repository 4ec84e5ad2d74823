"""`galsync config validate [PATH]`: check a profiles file without touching Graph or the state store."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from sync_core.core.profile import Config, load_config

from .advice import OK
from .context import JsonFlag, options, output
from .errors import advised
from .output import table

app = typer.Typer(help="The profiles file (TOML).", no_args_is_help=True)


@app.command("validate")
@advised
def validate(
    path: Annotated[str | None, typer.Argument(help="The file; default --config, GALSYNC_CONFIG_PATH or "
                                                    "galsync.toml.")] = None,
    json: JsonFlag = False,
) -> None:
    """Report every problem in the file at once (exit 2), or summarise its profiles (exit 0)."""
    out = output(json)
    config = load_config(path or options().settings().config_path)  # ConfigError: exit 2 with every problem
    data = config_json(config)
    out.result(data, lambda console: _render(console, config))
    raise typer.Exit(OK)


def config_json(config: Config) -> dict[str, Any]:
    return {"ok": True, "file": config.source_name, "profiles": [{
        "name": p.name, "place": p.place, "folder": p.folder if p.place == "own_folder" else None,
        "sources": [s.name for s in p.sources],
        "targets": {"groups": list(p.targets.groups), "mailboxes": list(p.targets.mailboxes),
                    "exclude": list(p.targets.exclude)},
        "policies": {"removed_source": p.policies.removed_source, "removed_target": p.policies.removed_target,
                     "deleted_on_device": p.policies.deleted_on_device,
                     "foreign_contacts": p.policies.foreign_contacts},
        "photos": p.photos.enabled, "fields_never": list(p.fields_with("never")),
    } for p in config]}


def _render(console: Console, config: Config) -> None:
    rows = []
    for p in config:
        targets = [*(f"group {g}" for g in p.targets.groups), *p.targets.mailboxes]
        where = p.folder if p.place == "own_folder" else "(default Contacts folder)"
        rows.append([p.name, where, ", ".join(s.name for s in p.sources), ", ".join(targets),
                     f"foreign: {p.policies.foreign_contacts}, deleted on device: {p.policies.deleted_on_device}",
                     "on" if p.photos.enabled else "off"])
    console.print(table(f"{config.source_name}: valid, {len(config.profiles)} profile(s)",
                        ["profile", "folder", "sources", "targets", "policies", "photos"], rows))

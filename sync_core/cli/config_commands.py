"""`galsync config validate [PATH] [--online]`: check a profiles file; offline, or with its names in Graph.

Offline it reads only the file. With --online it also resolves every group, mailbox and source folder the
profiles name (service/name_check.py) and lists each unknown one with the closest names in the directory,
still without touching the state store.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from sync_core.core.profile import Config, load_config
from sync_core.graph import GraphClient
from sync_core.service.name_check import UnknownName, check_names

from .advice import BAD_USAGE, OK
from .command import Command, Group
from .context import JsonFlag, options, output
from .errors import advised
from .output import table
from .preflight import check_graph_setup

app = typer.Typer(cls=Group, help="The profiles file (TOML).", no_args_is_help=True)


@app.command("validate", cls=Command)
@advised
def validate(
    path: Annotated[str | None, typer.Argument(
        metavar="PATH", help="The file; default --config, GALSYNC_CONFIG_PATH or galsync.toml.")] = None,
    online: Annotated[bool, typer.Option("--online", help="Also resolve every group, mailbox and folder name "
                                                          "in Graph (needs the Graph settings).")] = False,
    json: JsonFlag = False,
) -> None:
    """Report every problem in the file at once (exit 2), or summarise its profiles (exit 0).

    Offline: no Graph, no state. With --online, every name the profiles use is looked up in the directory
    and each unknown one is listed with did-you-mean suggestions (exit 2 if any).

    Examples:

      galsync config validate galsync.toml

      galsync config validate --online
    """
    out = output(json)
    opts = options()
    sources = opts.sources()
    settings = opts.settings(sources)
    config = load_config(path or settings.config_path)  # ConfigError: exit 2 with every problem
    unknown: list[UnknownName] = []
    if online:
        check_graph_setup(sources, settings)
        client = GraphClient.from_settings(settings)
        try:
            unknown = check_names(client, config.profiles)
        finally:
            client.close()
    data = {**config_json(config), "ok": not unknown}
    if online:
        data["unknown_names"] = [u.to_json() for u in unknown]
    out.result(data, lambda console: _render(console, config, unknown if online else None))
    raise typer.Exit(BAD_USAGE if unknown else OK)


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


def _render(console: Console, config: Config, unknown: list[UnknownName] | None) -> None:
    rows = []
    for p in config:
        targets = [*(f"group {g}" for g in p.targets.groups), *p.targets.mailboxes]
        where = p.folder if p.place == "own_folder" else "(default Contacts folder)"
        rows.append([p.name, where, ", ".join(s.name for s in p.sources), ", ".join(targets),
                     f"foreign: {p.policies.foreign_contacts}, deleted on device: {p.policies.deleted_on_device}",
                     "on" if p.photos.enabled else "off"])
    console.print(table(f"{config.source_name}: valid, {len(config.profiles)} profile(s)",
                        ["profile", "folder", "sources", "targets", "policies", "photos"], rows))
    if unknown is None:
        return
    if not unknown:
        console.print("every group, mailbox and folder name was found in the directory", style="green")
        return
    console.print(table(f"{len(unknown)} name(s) the directory does not know",
                        ["profile", "where", "name", "problem", "did you mean"],
                        [[u.profile, u.where, u.name, u.problem, ", ".join(u.suggestions) or "-"] for u in unknown]))

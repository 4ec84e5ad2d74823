"""`galsync functions`: the function app's webhook and queue workers on this machine, for the emulator.

In Azure, Graph posts change notifications to the function app's HTTP trigger, which queues a sync, and
the queue triggers write the changes to the phones. Graph cannot reach a webhook on an admin's machine,
but the emulator can: this command serves the same handlers over HTTPS (local_functions.py, with a
certificate the emulator issues and trusts), subscribes to the directory's changes through it, and prints
each notification's work as it runs, so a directory change can be watched reaching the phones. Stopping it
(Ctrl-C, SIGTERM) deletes the subscriptions it made, so the emulator stops calling a webhook that is gone.
"""

from __future__ import annotations

import dataclasses
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
import typer

from sync_core.service.runtime import Runtime
from sync_core.service.subscriptions import ensure_subscriptions

from .advice import BAD_USAGE, OK
from .context import JsonFlag, options, output
from .errors import CliProblem, advised
from .local_functions import LocalFunctions, Processed
from .output import Output
from .preflight import is_local
from .stopping import until_stopped
from .subscription_commands import delete_subscriptions


@advised
def functions(json: JsonFlag = False) -> None:
    """Serve the function app's webhook here and run what it queues (with `galsync emulator` only).

    Subscribes to the directory's changes through the local webhook; each notification's sync and pushes
    are printed as they run. Ctrl-C or SIGTERM stops it and deletes its subscriptions.

    Examples:

      galsync functions

      galsync --config galsync.toml functions
    """
    out = output(json)
    settings = options().settings()
    graph = settings.graph_base_url or settings.authority_host
    if not graph or not is_local(graph):
        raise CliProblem(
            "Graph cannot call a webhook on this machine: `galsync functions` works with the emulator only",
            code=BAD_USAGE,
            details=("with Microsoft Graph, the function app serves the webhook: deploy it with `azd up`",
                     'to try the webhook path here: galsync emulator, then eval "$(galsync emulator --env)"'))
    with options().runtime() as rt, tempfile.TemporaryDirectory(prefix="galsync-functions-") as folder:
        cert, key = _certificate(graph, settings.graph_ca_bundle, Path(folder))
        with LocalFunctions(rt, cert, key) as local:
            rt.settings = dataclasses.replace(rt.settings, webhook_base_url=local.base_url,
                                              webhook_key=secrets.token_urlsafe(24))
            try:
                subscribed = ensure_subscriptions(rt)
                _serve(out, rt, local, len(subscribed.created) + len(subscribed.kept) + len(subscribed.renewed))
            finally:
                deleted, _failed = delete_subscriptions(rt)
                out.note(f"deleted {len(deleted)} subscription(s); stopped")
    raise typer.Exit(OK)


def _certificate(graph_url: str, ca_bundle: str, folder: Path) -> tuple[str, str]:
    """A server certificate for 127.0.0.1 from the emulator's CA: its notifications trust it."""
    root = "{0.scheme}://{0.netloc}".format(urlsplit(graph_url))
    try:
        answer = requests.post(f"{root}/_emulator/certificates", json={"hostnames": ["127.0.0.1"]},
                               verify=ca_bundle or True, timeout=10)
        answer.raise_for_status()
        pems = answer.json()
    except (requests.RequestException, ValueError) as error:
        raise CliProblem(f"the emulator at {root} issued no webhook certificate ({type(error).__name__})",
                         code=BAD_USAGE, details=("start it with `galsync emulator` (this galsync's own)",)) from None
    cert, key = folder / "webhook.crt", folder / "webhook.key"
    cert.write_text(pems["certificate"], encoding="ascii")
    key.write_text(pems["key"], encoding="ascii")
    key.chmod(0o600)
    return str(cert), str(key)


def _serve(out: Output, rt: Runtime, local: LocalFunctions, subscriptions: int) -> None:
    out.say(f"[bold]Function app webhook[/] at {local.base_url}/api/notifications, "
            f"profiles: {', '.join(rt.config.names)}")
    out.say(f"{subscriptions} Graph subscription(s) point at it. Change the directory (e.g. through the "
            "emulator's /_emulator/users) and watch the work run; Ctrl-C to stop.")
    out.note("serving")
    seen = 0

    def report() -> None:
        nonlocal seen
        done = local.processed[seen:]
        seen += len(done)
        for item in done:
            out.note(_line(item))

    until_stopped(report)


def _line(item: Processed) -> str:
    when = time.strftime("%H:%M:%S")
    if item.error:
        return f"{when} {item.queue} message FAILED: {item.error}"
    if item.queue == "push-targets":
        return f"{when} push-targets message: {item.writes} contact write(s)"
    return f"{when} sync-source message (a notification's sync) done"

"""`galsync subscriptions list|ensure|delete`: the Graph change-notification subscriptions galsync owns."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console

from sync_core.graph import GraphError, NotFound
from sync_core.service.runtime import Runtime
from sync_core.service.status import subscriptions as recorded_subscriptions
from sync_core.service.subscriptions import SubscriptionsReport, ensure_subscriptions
from sync_core.state import docs

from .advice import FAILURES, OK
from .command import Command, Group
from .context import JsonFlag, options, output
from .errors import advised
from .output import age_text, short_time, table

app = typer.Typer(cls=Group, help="Graph change-notification subscriptions (list, ensure, delete).",
                  no_args_is_help=True)


@app.command("list", cls=Command)
@advised
def list_(json: JsonFlag = False) -> None:
    """Subscriptions galsync recorded, compared with what Graph has for galsync's app.

    Examples:

      galsync subscriptions list --json
    """
    out = output(json)
    with options().runtime() as rt:
        rows = subscription_rows(rt)
    out.result({"subscriptions": rows}, lambda console: _render_list(console, rows))
    raise typer.Exit(FAILURES if any(not r["in_graph"] or not r["recorded"] for r in rows) else OK)


def subscription_rows(rt: Runtime) -> list[dict[str, Any]]:
    recorded = {s.subscription_id: s for s in recorded_subscriptions(rt.store)}
    live = {str(s.get("id")): s for s in rt.client.iter_pages("/subscriptions")}
    rows = []
    for sid in sorted(set(recorded) | set(live)):
        mine, theirs = recorded.get(sid), live.get(sid, {})
        rows.append({
            "id": sid, "resource": mine.resource if mine else theirs.get("resource"),
            "expires_at": theirs.get("expirationDateTime") or (mine.expires_at if mine else None),
            "profiles": list(mine.profiles) if mine else [], "recorded": mine is not None, "in_graph": sid in live,
            "notification_url": _without_key(str(theirs.get("notificationUrl") or "")) or None,
        })
    return rows


def delete_subscriptions(rt: Runtime, ids: list[str] | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Delete subscriptions in Graph and forget them (default: every one recorded); (deleted, failed)."""
    deleted: list[str] = []
    failed: list[dict[str, str]] = []
    for sid in ids or [s.subscription_id for s in recorded_subscriptions(rt.store)]:
        try:
            rt.client.request("DELETE", f"/subscriptions/{quote(sid, safe='')}")
        except NotFound:
            pass  # already gone in Graph: forgetting it is all that is left
        except GraphError as error:
            failed.append({"id": sid, "error": str(error)})
            continue
        docs.delete(rt.store, docs.Subscription, sid)
        deleted.append(sid)
    return deleted, failed


def _without_key(url: str) -> str:
    """The notification URL without its function key (the key is a secret)."""
    return url.split("?", 1)[0]


def _render_list(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("No subscriptions: directory changes reach the phones with the safety-net sync only. "
                      "`galsync subscriptions ensure` creates them (needs GALSYNC_WEBHOOK_BASE_URL).")
        return
    console.print(table("Subscriptions", ["id", "resource", "expires", "profiles", "recorded", "in Graph", "webhook"], [
        [r["id"], r["resource"], f"{short_time(r['expires_at'])} ({age_text(r['expires_at'])})",
         ", ".join(r["profiles"]), r["recorded"], r["in_graph"], r["notification_url"]] for r in rows]))


@app.command("ensure", cls=Command)
@advised
def ensure(json: JsonFlag = False) -> None:
    """Create missing subscriptions, renew ageing ones, delete galsync's unneeded ones.

    Needs GALSYNC_WEBHOOK_BASE_URL and GALSYNC_WEBHOOK_KEY (the deployed function app's); to try the
    webhook path on this machine, use `galsync functions` with the emulator.

    Examples:

      galsync subscriptions ensure
    """
    out = output(json)
    with options().runtime() as rt:
        report = ensure_subscriptions(rt)
    data = ensure_json(report)
    out.result(data, lambda console: _render_ensure(console, report))
    raise typer.Exit(FAILURES if report.failed or report.busy else OK)


def ensure_json(report: SubscriptionsReport) -> dict[str, Any]:
    return {"created": list(report.created), "renewed": list(report.renewed), "deleted": list(report.deleted),
            "kept": list(report.kept), "failed": [{"resource": r, "error": e} for r, e in report.failed],
            "busy": report.busy}


def _render_ensure(console: Console, report: SubscriptionsReport) -> None:
    if report.busy:
        console.print("Another galsync is updating the subscriptions right now; it will run once more for this "
                      "request.")
        return
    rows = [[r, what] for what, resources in (("created", report.created), ("renewed", report.renewed),
                                              ("deleted", report.deleted), ("kept", report.kept))
            for r in resources] + [[r, f"FAILED: {e}"] for r, e in report.failed]
    console.print(table("galsync subscriptions ensure", ["resource", "result"], rows or [["-", "nothing needed"]]))


@app.command("delete", cls=Command)
@advised
def delete(
    subscription_id: Annotated[list[str] | None, typer.Option("--id", help="Delete only this subscription "
                                                              "(repeatable); default: every one galsync recorded.")]
    = None,
    json: JsonFlag = False,
) -> None:
    """Delete galsync's subscriptions in Graph and forget them (e.g. before removing galsync).

    Examples:

      galsync subscriptions delete --id 2f6b...
    """
    out = output(json)
    with options().runtime() as rt:
        deleted, failed = delete_subscriptions(rt, subscription_id)
    data = {"deleted": deleted, "failed": failed}
    out.result(data, lambda console: console.print(table(
        "galsync subscriptions delete", ["id", "result"],
        [[d, "deleted"] for d in deleted] + [[f["id"], f"FAILED: {f['error']}"] for f in failed]
        or [["-", "none recorded"]])))
    raise typer.Exit(FAILURES if failed else OK)


"""Graph v1.0 /subscriptions routes (subscription-post-subscriptions, -get, -list, -update, -delete,
-reauthorize).

No application role is needed to call /subscriptions itself: the role a subscription needs depends on its
resource (User.Read.All for users, Contacts.Read for contacts, ...) and `Subscriptions.create` checks it.
Every call sees only the calling app's subscriptions.
"""

from __future__ import annotations

from .protocol import Response, json_response
from .routing import Ctx, route


def _root(ctx: Ctx) -> str:
    base = ctx.extra.get("base_url")
    if isinstance(base, str):
        return base.rstrip("/")
    return f"https://{ctx.req.headers.get('host') or 'graph.microsoft.com'}/v1.0"


def _entity(ctx: Ctx) -> str:
    return f"{_root(ctx)}/$metadata#subscriptions/$entity"


@route("POST", "/subscriptions", roles=set(), workload="directory")
def create_subscription(ctx: Ctx) -> Response:
    sub = ctx.tenant.subscriptions.create(ctx.app, ctx.req.json_object())
    return json_response(201, {"@odata.context": _entity(ctx), **sub})


@route("GET", "/subscriptions", roles=set(), workload="directory")
def list_subscriptions(ctx: Ctx) -> Response:
    subs = ctx.tenant.subscriptions.list(ctx.app)
    return json_response(200, {"@odata.context": f"{_root(ctx)}/$metadata#subscriptions", "value": subs})


@route("GET", "/subscriptions/{id}", roles=set(), workload="directory")
def get_subscription(ctx: Ctx) -> Response:
    sub = ctx.tenant.subscriptions.get(ctx.app, ctx.params["id"])
    return json_response(200, {"@odata.context": _entity(ctx), **sub})


@route("PATCH", "/subscriptions/{id}", roles=set(), workload="directory")
def update_subscription(ctx: Ctx) -> Response:
    sub = ctx.tenant.subscriptions.update(ctx.app, ctx.params["id"], ctx.req.json_object())
    return json_response(200, {"@odata.context": _entity(ctx), **sub})


@route("DELETE", "/subscriptions/{id}", roles=set(), workload="directory")
def delete_subscription(ctx: Ctx) -> Response:
    ctx.tenant.subscriptions.delete(ctx.app, ctx.params["id"])
    return Response(204)


@route("POST", "/subscriptions/{id}/reauthorize", roles=set(), workload="directory")
def reauthorize_subscription(ctx: Ctx) -> Response:
    ctx.tenant.subscriptions.reauthorize(ctx.app, ctx.params["id"])
    return Response(204)

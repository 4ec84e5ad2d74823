"""Routes that exist only in the emulator's own tests, and helpers to call the emulator over real HTTPS.

Graph's real handlers answer at once, so the server tests register two extra routes (under a `probe`
segment Graph does not have) through the same `@route` table the resource modules use:
- GET  /users/{user}/probe/hold  holds each request until the test opens the gate (requests in flight);
- POST /users/{user}/probe/count counts calls per mailbox (a side effect a test can check after a drop);
- GET  /probe/directory          a directory-workload route (per-app budget, directory 403 wording);
- GET  /probe/broken             a handler with a bug (raises), which must still get an answer;
- POST /probe/echo               answers with the request body as bytes (binary bodies in $batch).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

import requests

from graph_emulator.protocol import Response
from graph_emulator.routing import Ctx, route

HOLD = "/users/{user}/probe/hold"
COUNT = "/users/{user}/probe/count"
DIRECTORY = "/probe/directory"
BROKEN = "/probe/broken"
ECHO = "/probe/echo"
OUTLOOK_READ = {"Contacts.Read", "Contacts.ReadWrite"}


class Gate:
    """Holds probe requests until `open()`; `wait_entered(n)` returns once n of them are inside."""

    def __init__(self) -> None:
        self._entered = threading.Semaphore(0)
        self._open = threading.Event()

    def pass_through(self) -> None:
        self._entered.release()
        self._open.wait(timeout=20)

    def wait_entered(self, n: int) -> None:
        for _ in range(n):
            assert self._entered.acquire(timeout=10), "a held request never reached its handler"

    def open(self) -> None:
        self._open.set()


gate = Gate()
calls: Counter[str] = Counter()


@route("GET", HOLD, roles=OUTLOOK_READ, workload="outlook", mailbox_param="user")
def _hold(ctx: Ctx) -> Response:
    gate.pass_through()
    return Response(200, {"user": ctx.params["user"]})


@route("POST", COUNT, roles={"Contacts.ReadWrite"}, workload="outlook", mailbox_param="user")
def _count(ctx: Ctx) -> Response:
    calls[ctx.params["user"]] += 1
    return Response(201, {"count": calls[ctx.params["user"]]})


@route("GET", DIRECTORY, roles={"User.Read.All", "Directory.Read.All"}, workload="directory")
def _directory(ctx: Ctx) -> Response:
    return Response(200, {"value": []})


@route("GET", BROKEN, roles=set(), workload="directory")
def _broken(ctx: Ctx) -> Response:
    raise RuntimeError("a bug in a route handler")


@route("POST", ECHO, roles=set(), workload="directory")
def _echo(ctx: Ctx) -> Response:
    return Response(200, ctx.req.body, {"Content-Type": ctx.req.headers.get("content-type") or ""})


def new_gate() -> Gate:
    global gate
    gate = Gate()
    return gate


def add_mailbox_user(g: Any, nickname: str) -> str:
    """A licensed user with a mailbox; returns its id."""
    return str(g.tenant.directory.add_user(displayName=nickname.title(), mailNickname=nickname)["id"])


def upn_of(g: Any, user_id: str) -> str:
    user = g.tenant.directory.get_user(user_id)
    assert user is not None, user_id
    return str(user["userPrincipalName"])


DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def assert_graph_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Graph's error envelope (docs/graph-facts.md, "Errors"): code, message, innerError.date and request-id."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    inner = error["innerError"]
    assert DATE.match(inner["date"]), inner
    assert inner["request-id"] == response.headers["request-id"]
    sent = response.request.headers.get("client-request-id")
    if sent:
        assert inner["client-request-id"] == sent
        assert response.headers["client-request-id"] == sent
    return dict(error)

"""Route table of the emulated Graph: URL templates, the roles each needs, and which mailbox it touches.

Each resource module (directory, mailbox, subscriptions, batch) registers its routes on the shared
`ROUTES` table with `@route(...)`. The server matches a request against it, checks the bearer token's
roles, the app's mailbox scope and the throttling budget *before* calling the handler, and logs the
request under its template (so tests can count "PATCH /users/{user}/contactFolders/{folder}/contacts/{id}").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .protocol import GraphError, Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from .apps import App
    from .tenant import Tenant


@dataclass
class Ctx:
    """What a route handler gets: the request, its path parameters, the tenant and the calling app."""

    req: Request
    params: dict[str, str]
    tenant: Tenant
    app: App
    request_id: str
    # Set by the pipeline: "pipeline" and "roles" (a $batch runs its inner requests through them), "base_url".
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Ctx], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. /users/{user}/contactFolders/{folder}/contacts
    handler: Handler
    roles: frozenset[str]  # any one of these application roles allows the call; empty = no role needed
    workload: str  # "outlook" (per-mailbox throttling and scoping) or "directory"
    mailbox_param: str | None  # name of the path parameter that identifies the mailbox
    pattern: re.Pattern[str]


# How many (method, path) matches RouteTable keeps: a fill posts to each mailbox's folder 500 times.
MATCH_CACHE = 4096


class RouteTable:
    """Routes indexed by shape, so that `match` tries a few regular expressions instead of every route's.

    A parameter matches exactly one segment (`[^/]+`), so a template can only match paths with as many
    segments and, where the template has literal first and last segments, the same ones. Templates whose
    first or last segment holds a parameter are indexed under None there and tried for every path.
    The last MATCH_CACHE paths that matched are remembered (cleared when full and when a route is added);
    a path that matches nothing is worked out again each time.
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._by_shape: dict[tuple[int, str | None, str | None], list[tuple[int, Route]]] = {}
        self._matched: dict[tuple[str, str], tuple[Route, dict[str, str]]] = {}

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        roles: set[str] | frozenset[str],
        workload: str,
        mailbox_param: str | None = None,
    ) -> None:
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        r = Route(method.upper(), template, handler, frozenset(roles), workload, mailbox_param, re.compile(regex))
        count, first, last = _shape(template)
        key = (count, None if "{" in first else first, None if "{" in last else last)
        self._by_shape.setdefault(key, []).append((len(self.routes), r))
        self.routes.append(r)
        self._matched.clear()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a path and its parameters (a dict of the caller's own to keep).

        405 when the path exists with another method, 400 like Graph otherwise.
        """
        hit = self._matched.get((method, path))
        if hit is None:
            hit = self._match(method, path)
            if len(self._matched) >= MATCH_CACHE:
                self._matched.clear()
            self._matched[(method, path)] = hit  # its params dict is never handed out, only copies
        return hit[0], dict(hit[1])

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        path_known = False
        best: tuple[Route, dict[str, str]] | None = None
        count, first, last = _shape(path[:-1] if path.endswith("\n") else path)  # `$` allows one "\n"
        buckets = [
            bucket
            for key in ((count, first, last), (count, first, None), (count, None, last), (count, None, None))
            if (bucket := self._by_shape.get(key))
        ]
        candidates = buckets[0] if len(buckets) == 1 else sorted(r for b in buckets for r in b)
        for _, r in candidates:  # in the order routes were added, as ties go to the first
            m = r.pattern.match(path)
            if not m:
                continue
            path_known = True
            # A literal segment beats a parameter: .../contacts/delta is not the contact with id "delta".
            if r.method == method and (best is None or len(m.groupdict()) < len(best[1])):
                best = (r, m.groupdict())
        if best is not None:
            return best
        if path_known:
            raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed on {path}.")
        raise GraphError(
            400, "BadRequest", f"Resource not found for the segment '{path.strip('/').split('/')[-1]}'."
        )


def _shape(path: str) -> tuple[int, str, str]:
    """(number of "/", first segment, last segment) of a path or template."""
    return path.count("/"), path[1:].split("/", 1)[0], path.rsplit("/", 1)[-1]


ROUTES = RouteTable()


def route(
    method: str,
    template: str,
    *,
    roles: set[str],
    workload: str,
    mailbox_param: str | None = None,
) -> Callable[[Handler], Handler]:
    """Register a handler on the shared table (decorator)."""

    def register(fn: Handler) -> Handler:
        ROUTES.add(method, template, fn, roles, workload, mailbox_param)
        return fn

    return register

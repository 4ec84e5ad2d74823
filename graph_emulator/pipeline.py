"""What happens to every Graph request, over HTTP or inside a $batch, in Graph's order.

request id -> bearer token -> route -> application role -> mailbox scope -> throttling -> added latency
-> fault -> handler -> request log. Work is split in two steps so that a $batch can *prepare* its inner
requests one after the other (route, checks and the seeded fault draw happen in request order, which keeps
faults repeatable) and then *execute* them in parallel as Graph does.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote

from .faults import AFTER, BEFORE, Fault, Faults
from .identity import Identity
from .protocol import GraphError, Request, Response, new_request_id
from .requestlog import DROPPED, RequestLog
from .routing import ROUTES, Ctx, Route, RouteTable
from .tenant import App, Tenant
from .throttle import OUTLOOK, Slot, Throttle

logger = logging.getLogger("graph_emulator")

# Threads that run the inner requests of all $batch calls at once (each $batch runs 4 at a time, as Graph
# does). Graph has no tenant-wide cap, only 4 per mailbox: 512 lets 128 batches (128 busy mailboxes, the
# benchmark's 100) run side by side. Threads are started only when that many run at once.
BATCH_WORKERS = 512

# Graph's answer when RBAC for Applications (or an application access policy) keeps the app out of a mailbox.
SCOPE_DENIED = (
    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
)


class ConnectionDropped(Exception):
    """The emulator decided to close the connection without answering."""


@dataclass
class Call:
    """One Graph request on its way through the pipeline."""

    method: str
    path: str  # decoded, without /v1.0 and without the query string
    raw_query: str
    headers: dict[str, str]
    body: bytes
    via_batch: bool
    request_id: str = field(default_factory=new_request_id)
    app: App | None = None
    roles: frozenset[str] = frozenset()
    request: Request | None = None
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict)
    mailbox: str | None = None
    fault: Fault | None = None
    error: GraphError | None = None  # a refusal found while preparing

    @property
    def client_request_id(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "client-request-id"), None)


class Pipeline:
    def __init__(
        self,
        tenant: Tenant,
        identity: Identity,
        throttle: Throttle,
        faults: Faults,
        log: RequestLog,
        routes: RouteTable = ROUTES,
        seed: int = 0,
        base_url: str = "https://graph.microsoft.com/v1.0",
        batch_workers: int = BATCH_WORKERS,
    ) -> None:
        if batch_workers < 1:
            raise ValueError(f"batch_workers must be at least 1, got {batch_workers}")
        self.tenant = tenant
        self.base_url = base_url  # handlers build @odata.nextLink and @odata.context from it
        self.identity = identity
        self.throttle = throttle
        self.faults = faults
        self.log = log
        self.routes = routes
        # Orders $batch responses; separate from the fault sequence so one never shifts the other.
        self.batch_rng = random.Random(seed)
        # Runs the parallel part of $batch requests (Graph runs up to 4 inner requests at once).
        self.pool = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="graph-batch")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # --- entry points -------------------------------------------------------------------------------

    def http(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """A request that arrived over HTTP; `target` is the path after /v1.0, with its query string."""
        path, _, raw_query = target.partition("?")
        call = Call(method.upper(), unquote(path) or "/", raw_query, headers, body, via_batch=False)
        self.prepare(call)
        return self.execute(call)

    def inner(
        self, app: App, roles: frozenset[str], method: str, url: str, headers: dict[str, str], body: bytes
    ) -> Call:
        """Prepare one request of a $batch (its url is relative to /v1.0, as Graph accepts)."""
        path, _, raw_query = url.partition("?")
        if not path.startswith("/"):
            path = "/" + path
        call = Call(
            method.upper(), unquote(path), raw_query, headers, body, via_batch=True, app=app, roles=roles
        )
        self.prepare(call)
        return call

    # --- the two steps ------------------------------------------------------------------------------

    def prepare(self, call: Call) -> None:
        """Authenticate, route, check role and mailbox scope, draw the fault. Refusals land in call.error."""
        try:
            if not call.via_batch:
                call.app, call.roles = self.identity.authenticate(_header(call.headers, "authorization"))
            call.request = Request.build(call.method, call.path, call.raw_query, call.headers, call.body)
            call.route, call.params = self.routes.match(call.method, call.path)
            self._check_role(call.route, call.roles)
            if call.route.mailbox_param is not None:
                call.mailbox = self._mailbox(call.route, call.params[call.route.mailbox_param])
                scope = call.app.mailbox_scope if call.app is not None else None
                if scope is not None and call.mailbox not in scope:
                    raise GraphError(403, "ErrorAccessDenied", SCOPE_DENIED)
        except GraphError as exc:
            call.error = exc
            return
        call.fault = self.faults.decide(
            call.method, call.route.template, call.mailbox, can_drop=not call.via_batch
        )

    def execute(self, call: Call) -> Response:
        """Throttle, wait, fail or handle, and log. Raises ConnectionDropped for a dropped HTTP request."""
        start, in_flight = self.log.begin(call.mailbox)
        status = DROPPED
        dropped = False
        slot = Slot()
        try:
            try:
                if call.error is not None:
                    raise call.error
                assert call.app is not None and call.route is not None and call.request is not None
                slot = self.throttle.admit(
                    call.app.client_id, call.route.workload, call.mailbox, upload_bytes=_upload_size(call)
                )
                if self.faults.latency_seconds:
                    time.sleep(self.faults.latency_seconds)  # this thread only: other connections go on
                fault = call.fault
                if fault is not None and fault.drop == BEFORE:
                    dropped = True
                    raise ConnectionDropped
                if fault is not None and fault.status is not None:
                    raise fault.error()
                response = self._handle(call)
                if fault is not None and fault.drop == AFTER:
                    status, dropped = response.status, True
                    raise ConnectionDropped
            except GraphError as exc:
                response = exc.to_response(call.request_id, call.client_request_id)
            status = response.status
            response.headers["request-id"] = call.request_id
            if call.client_request_id:
                response.headers["client-request-id"] = call.client_request_id
            return response
        finally:
            slot.release()
            self.log.finish(
                start=start,
                in_flight=in_flight,
                app_id=call.app.client_id if call.app is not None else None,
                method=call.method,
                route=call.route.template if call.route is not None else None,
                path=call.path,
                mailbox=call.mailbox,
                status=status,
                via_batch=call.via_batch,
                request_id=call.request_id,
                dropped=dropped,
            )

    # --- steps in detail ----------------------------------------------------------------------------

    def _handle(self, call: Call) -> Response:
        assert call.app is not None and call.route is not None and call.request is not None
        app, roles = call.app, call.roles
        ctx = Ctx(
            req=call.request,
            params=call.params,
            tenant=self.tenant,
            app=app,
            request_id=call.request_id,
            dispatch=lambda method, url, headers, body: self.execute(
                self.inner(app, roles, method, url, headers, body)
            ),
            extra={"pipeline": self, "roles": roles, "base_url": self.base_url},
        )
        try:
            return call.route.handler(ctx)
        except GraphError:
            raise
        except Exception:
            logger.exception("emulator route %s %s failed", call.method, call.route.template)
            raise GraphError(500, "generalException", "An unspecified error has occurred.") from None

    @staticmethod
    def _check_role(route: Route, roles: frozenset[str]) -> None:
        if not route.roles or roles & route.roles:
            return
        if route.workload == OUTLOOK:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        raise GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )

    def _mailbox(self, route: Route, id_or_upn: str) -> str:
        try:
            return self.tenant.directory.resolve_user(id_or_upn)
        except GraphError as exc:
            if route.workload == OUTLOOK and exc.status == 404:
                # Exchange words an unknown mailbox owner this way.
                raise GraphError(
                    404, "ErrorInvalidUser", f"The requested user '{id_or_upn}' is invalid."
                ) from None
            raise


def _upload_size(call: Call) -> int:
    """Bytes a request uploads: Outlook's upload budget counts PATCH, POST and PUT bodies."""
    return len(call.body) if call.method in ("PATCH", "POST", "PUT") else 0


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)

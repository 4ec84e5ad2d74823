"""What happens to every Graph request, over HTTP or inside a $batch, in Graph's order.

request id -> bearer token -> route -> application role -> mailbox scope -> throttling -> added latency
-> fault -> handler -> request log. Work is split in steps so that a $batch can *prepare* its inner requests
one after the other (route, checks and the seeded fault draw happen in request order, which keeps faults
repeatable) and then run them four at a time as Graph does.

Running is itself split in two around the added latency: `admit` logs the start and takes the request's
throttle slot, `complete` (after the latency) applies the fault, calls the handler, frees the slot and logs
the end. A $batch admits a *wave* of up to four inner requests, waits the latency once for all of them and
completes them one after the other: for the latency each one holds its mailbox's concurrency slot, exactly
as four parallel requests would, without a thread per request (thread hand-offs under the GIL would cost
more CPU than the requests themselves). The wait is a sleep in the connection's thread, or, for waves of
Outlook requests, a deadline on the `LatencyClock`, whose thread then completes the wave (batch.py).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .apps import SCOPE_DENIED, App
from .faults import AFTER, BEFORE, Fault, Faults
from .identity import Identity
from .protocol import UNPARSED, GraphError, Request, Response, new_request_id
from .requestlog import DROPPED, RequestLog
from .routing import ROUTES, Ctx, Route, RouteTable
from .tenant import Tenant
from .throttle import NO_SLOT, OUTLOOK, Slot, Throttle

logger = logging.getLogger("graph_emulator")

# Inner requests of all $batch calls that may be worked on at once (each $batch runs 4 at a time, as Graph
# does). Graph has no tenant-wide cap, only 4 per mailbox: 512 lets 128 batches (128 busy mailboxes, the
# benchmark's 100) run side by side. A smaller number is an option for tests of a capped service.
BATCH_WORKERS = 512

class ConnectionDropped(Exception):
    """The emulator decided to close the connection without answering."""


@dataclass(slots=True)
class Call:
    """One Graph request on its way through the pipeline."""

    method: str
    path: str  # decoded, without /v1.0 and without the query string
    raw_query: str
    headers: dict[str, str]
    body: bytes
    via_batch: bool
    parsed: Any = UNPARSED  # the JSON value of `body`, when a $batch already parsed it
    request_id: str = field(default_factory=new_request_id)
    app: App | None = None
    roles: frozenset[str] = frozenset()
    request: Request | None = None
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict)
    mailbox: str | None = None
    fault: Fault | None = None
    error: GraphError | None = None  # a refusal found while preparing
    # Set by Pipeline.admit: when the request started, its mailbox's in-flight count, its throttle slot.
    start: float = 0.0
    in_flight: int = 0
    slot: Slot = NO_SLOT
    client_request_id: str | None = field(init=False)  # from `headers`, read for every answer

    def __post_init__(self) -> None:
        self.client_request_id = _header(self.headers, "client-request-id")


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
        self.batch_workers = BatchWorkers(batch_workers)
        self.clock = LatencyClock()

    # --- entry points -------------------------------------------------------------------------------

    def http(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """A request that arrived over HTTP; `target` is the path after /v1.0, with its query string."""
        path, _, raw_query = target.partition("?")
        call = Call(method.upper(), unquote(path) or "/", raw_query, headers, body, via_batch=False)
        self.prepare(call)
        return self.execute(call)

    def inner(
        self,
        app: App,
        roles: frozenset[str],
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        parsed: Any = UNPARSED,
    ) -> Call:
        """Prepare one request of a $batch (its url is relative to /v1.0, as Graph accepts).

        `parsed`: the JSON value `body` encodes, when the batch already parsed it.
        """
        path, _, raw_query = url.partition("?")
        if not path.startswith("/"):
            path = "/" + path
        call = Call(
            method.upper(),
            unquote(path),
            raw_query,
            headers,
            body,
            via_batch=True,
            app=app,
            roles=roles,
            parsed=parsed,
        )
        self.prepare(call)
        return call

    # --- the steps ----------------------------------------------------------------------------------

    def prepare(self, call: Call) -> None:
        """Authenticate, route, check role and mailbox scope, draw the fault. Refusals land in call.error."""
        try:
            if not call.via_batch:
                call.app, call.roles = self.identity.authenticate(_header(call.headers, "authorization"))
            call.request = Request.build(
                call.method, call.path, call.raw_query, call.headers, call.body, call.parsed
            )
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
        """Admit, wait the latency, complete. Raises ConnectionDropped for a dropped HTTP request."""
        refused = self.admit(call)
        if refused is not None:
            return refused
        self.wait_latency()
        return self.complete(call)

    def admit(self, call: Call) -> Response | None:
        """Log the start and take the throttle slot; the answer at once if the request is refused.

        A refused request (found while preparing, or throttled) is answered without the added latency and
        holds no slot; an admitted one holds its slot until `complete`.
        """
        call.start, call.in_flight = self.log.begin(call.mailbox)
        try:
            if call.error is not None:
                raise call.error
            assert call.app is not None and call.route is not None
            call.slot = self.throttle.admit(
                call.app.client_id, call.route.workload, call.mailbox, upload_bytes=_upload_size(call)
            )
        except GraphError as exc:
            response = self._answer(call, exc.to_response(call.request_id, call.client_request_id))
            self._finish(call, response.status, dropped=False)
            return response
        return None

    def wait_latency(self) -> None:
        """The time a request takes inside Graph; sleeps this thread only, other connections go on."""
        if self.faults.latency_seconds:
            time.sleep(self.faults.latency_seconds)

    def complete(self, call: Call) -> Response:
        """Fail or handle an admitted request, free its slot, log it. Raises ConnectionDropped on a drop."""
        status = DROPPED
        dropped = False
        try:
            try:
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
            return self._answer(call, response)
        finally:
            self._finish(call, status, dropped)

    def _answer(self, call: Call, response: Response) -> Response:
        response.headers["request-id"] = call.request_id
        if call.client_request_id:
            response.headers["client-request-id"] = call.client_request_id
        return response

    def _finish(self, call: Call, status: int, dropped: bool) -> None:
        call.slot.release()
        self.log.finish(
            start=call.start,
            in_flight=call.in_flight,
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
        ctx = Ctx(
            req=call.request,
            params=call.params,
            tenant=self.tenant,
            app=call.app,
            request_id=call.request_id,
            extra={"pipeline": self, "roles": call.roles, "base_url": self.base_url},
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


class BatchWorkers:
    """How many $batch inner requests may be worked on at once across all batches (`batch_workers`).

    A wave of a batch takes its room before it admits its requests and gives it back when they are done;
    a wave that finds too little room waits for it (`take`). The latency clock must never wait: when it finds
    too little room, or other waves already waiting, it leaves the rest of the batch to the batch's own
    thread, which queues for room like every other wave (`try_take`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._waiting = 0
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Waves waiting for room right now (tests see the cap at work with it)."""
        with self._changed:
            return self._waiting

    def take(self, wanted: int) -> int:
        """Wait for room for min(wanted, limit) requests and take it; returns how many."""
        size = min(wanted, self.limit)
        with self._changed:
            self._waiting += 1
            self._changed.wait_for(lambda: self._free >= size)
            self._waiting -= 1
            self._free -= size
        return size

    def try_take(self, wanted: int) -> int:
        """Room for min(wanted, limit) requests if it is free now and no wave waits (returns how many), else 0."""
        size = min(wanted, self.limit)
        with self._changed:
            if self._free < size or self._waiting:
                return 0
            self._free -= size
        return size

    def give_back(self, size: int) -> None:
        with self._changed:
            self._free += size
            self._changed.notify_all()


class LatencyClock:
    """Runs callbacks when their time comes, one after the other, in one thread of its own.

    A $batch's waves run on it (batch.py): each wave's latency is a deadline here instead of a sleep in the
    batch's thread, and the clock completes the wave and admits the next one when it is due. One thread
    working through every batch's due waves replaces a hundred threads each waking five times per batch
    to queue for the interpreter lock (and for the tenant lock, which a thread the interpreter switched out
    may be holding): in a benchmark's fill that queueing cost more CPU than the requests. Callbacks must
    not block (they hold up every batch on the clock) and must catch their own errors. The thread starts
    with the first deadline and ends after IDLE_SECONDS without one.
    """

    IDLE_SECONDS = 1.0

    def __init__(self) -> None:
        self._due = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties run in the order they were set
        self._running = False

    def at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run `callback` on the clock's thread once time.monotonic() reaches `deadline`."""
        with self._due:
            heapq.heappush(self._heap, (deadline, next(self._order), callback))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="graph-emulator-clock", daemon=True).start()
            elif self._heap[0][2] is callback:
                self._due.notify()  # the thread may be waiting for a later deadline

    def _run(self) -> None:
        while True:
            with self._due:
                while True:
                    if not self._heap:
                        if not self._due.wait(self.IDLE_SECONDS) and not self._heap:
                            self._running = False
                            return
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._due.wait(wait)
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            for callback in due:
                try:
                    callback()
                except Exception:  # a bug: the clock goes on for the other batches
                    logger.exception("graph emulator: a latency clock callback failed")


def _upload_size(call: Call) -> int:
    """Bytes a request uploads: Outlook's upload budget counts PATCH, POST and PUT bodies."""
    return len(call.body) if call.method in ("PATCH", "POST", "PUT") else 0


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():  # a loop, not next(generator): read for every request
        if key.lower() == name:
            return value
    return None

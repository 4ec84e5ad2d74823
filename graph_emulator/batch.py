"""POST /$batch: JSON batching as concepts/json-batching.md describes it.

- 1 to 20 requests, each with a unique (case-insensitive) string `id`, a `method` and a relative `url`
  ("/users/..." or "users/..."); `headers` with a Content-Type whenever there is a `body`. Anything else
  fails the whole batch with 400.
- Every inner request goes through the full pipeline with the batch's token: role, mailbox scope, its own
  throttling (an inner 429 comes back inside the 200 with its Retry-After), faults and the request log.
- Requests without `dependsOn` run at most 4 at a time (Graph dispatches up to four at once), so a batch
  of 20 to one mailbox never trips the 4-concurrent limit by itself but adds to what else the client runs
  on that mailbox. `dependsOn` orders them; a request whose dependency failed gets 424.
- Responses come back shuffled (seeded), so clients must match them by `id`.

How "4 at a time" is run: in *waves* (`_Level`). A wave admits the next requests in order until 4 hold a
throttle slot (a refused or throttled one is answered at once and does not count), waits the latency once,
then handles them and frees their slots. For the latency the 4 count against their mailbox's concurrency
limit exactly as 4 parallel requests would, and n requests take ceil(n/4) latencies; but no thread per
request (their hand-offs cost more CPU than the requests did). Route handlers answer at once, so running
them one after the other changes nothing a client can see.

Where the wait happens: with latency on and only Outlook requests in a level (a fill's creates), each
wave's latency is a deadline on the pipeline's `LatencyClock`, whose one thread completes the wave and
admits the next when it is due; the batch's thread waits once per level instead of once per wave. A hundred
batch threads each waking five times per batch to queue for the interpreter lock cost the emulator more
CPU than the requests themselves. Otherwise (no latency, or a directory or subscription request whose
handler may do more than touch the in-memory store) the batch's own thread sleeps each wave's latency.
Both run the same steps in the same order, with the same slots held for the same time.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .protocol import JSON_CONTENT_TYPE, UNPARSED, GraphError, Response, json_bytes, media_type, new_request_id
from .routing import Ctx, route
from .throttle import OUTLOOK

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Call, Pipeline

MAX_REQUESTS = 20
PARALLEL = 4
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


@route("POST", "/$batch", roles=set(), workload="batch")
def post_batch(ctx: Ctx) -> Response:
    items = _validated(ctx.req.json_object())
    pipeline: Pipeline = ctx.extra["pipeline"]
    roles = ctx.extra["roles"]
    # Each answer is encoded as soon as it is known, so a batch in progress holds bytes, not object trees.
    answers: dict[str, bytes] = {}
    statuses: dict[str, int] = {}
    done: set[str] = set()
    while len(done) < len(items):  # one dependency level at a time
        ready = [k for k, item in items.items() if k not in done and set(item["dependsOn"]) <= done]
        runnable = []
        for key in ready:
            failed = [d for d in items[key]["dependsOn"] if statuses[d] >= 400]
            if failed:  # never prepared, never run, not logged: Graph did not evaluate it
                statuses[key] = 424
                answers[key] = _encoded(_failed_dependency(items[key]["id"], items[failed[0]]["id"]))
            else:
                runnable.append(key)
        # Prepared in request order (route, checks, the seeded fault draw), then run four at a time.
        calls = [
            pipeline.inner(
                ctx.app,
                roles,
                items[k]["method"],
                items[k]["url"],
                items[k]["headers"],
                items[k]["body"],
                parsed=items[k]["parsed"],
            )
            for k in runnable
        ]

        def answer(index: int, response: Response, runnable: list[str] = runnable) -> None:
            key = runnable[index]
            statuses[key] = response.status
            answers[key] = _encoded(_inner_response(items[key]["id"], response))

        _Level(pipeline, calls, answer).run()
        done.update(ready)
    ordered = [answers[k] for k in items]
    shuffled = list(ordered)
    pipeline.batch_rng.shuffle(shuffled)
    if len(shuffled) > 1 and shuffled == ordered:
        shuffled.reverse()
    body = b'{"responses":[' + b",".join(shuffled) + b"]}"  # what Response.encode makes of the dict
    return Response(200, body, {"Content-Type": JSON_CONTENT_TYPE})


class _Level:
    """The independent requests of one dependency level, run in waves of at most PARALLEL.

    A wave takes its room (`BatchWorkers`), admits requests in order until the room is full (a refused or
    throttled one is answered at once and takes no place), waits the latency, then completes its requests,
    frees their slots and gives the room back. Waits go on the pipeline's latency clock when the latency is
    not zero and every request that may run is an Outlook one (their handlers only touch the in-memory
    store, so they may run on the clock's thread); otherwise, and when the clock finds no room free for the
    next wave, the batch's own thread sleeps the latency and goes on as before.
    """

    def __init__(self, pipeline: Pipeline, calls: list[Call], answer: Callable[[int, Response], None]) -> None:
        """`answer(index in calls, response)` is called once per request as soon as it is answered."""
        self._pipeline = pipeline
        self._pending = deque(enumerate(calls))  # each call is let go as soon as it is answered
        calls.clear()
        self._answer = answer
        self._wave: list[tuple[int, Call]] = []
        self._room = 0
        self._on_clock = pipeline.faults.latency_seconds > 0 and all(
            call.error is not None or (call.route is not None and call.route.workload == OUTLOOK)
            for _, call in self._pending
        )
        self._clock_done = threading.Event()
        self._clock_error: BaseException | None = None

    def run(self) -> None:
        """Answer every request of the level; returns when all are answered."""
        pipeline = self._pipeline
        while self._pending:
            room = pipeline.batch_workers.take(min(PARALLEL, len(self._pending)))
            if not self._admit(room):
                continue
            latency = pipeline.faults.latency_seconds
            if self._on_clock and latency > 0:
                self._clock_done.clear()
                pipeline.clock.at(time.monotonic() + latency, self._wave_due)
                self._clock_done.wait()
                if self._clock_error is not None:
                    raise self._clock_error
            else:
                try:
                    pipeline.wait_latency()
                except BaseException:  # never leave a slot or room taken
                    self._complete(run=False)
                    raise
                self._complete()

    def _admit(self, room: int) -> bool:
        """Admit the next wave into `room` places already taken; False (room given back) if none was admitted."""
        try:
            while self._pending and len(self._wave) < room:
                index, call = self._pending.popleft()
                refused = self._pipeline.admit(call)
                if refused is None:
                    self._wave.append((index, call))
                else:
                    self._answer(index, refused)
        except BaseException:
            self._room = room
            self._complete(run=False)
            raise
        if self._wave:
            self._room = room
            return True
        self._pipeline.batch_workers.give_back(room)
        return False

    def _complete(self, run: bool = True) -> None:
        """Complete the admitted wave (after its latency), free its slots, give its room back."""
        try:
            if run:
                for index, call in self._wave:
                    self._answer(index, self._pipeline.complete(call))
        finally:  # never leave a slot or room taken, even if completing a request failed
            for _, call in self._wave:
                call.slot.release()
            self._wave = []
            self._pipeline.batch_workers.give_back(self._room)
            self._room = 0

    def _wave_due(self) -> None:
        """On the clock: complete the wave, admit the next one if there is room now, else hand back."""
        pipeline = self._pipeline
        try:
            self._complete()
            while self._pending:
                room = pipeline.batch_workers.try_take(min(PARALLEL, len(self._pending)))
                if not room:
                    break  # the batch's thread waits for room, as a wave always has
                if self._admit(room):
                    pipeline.clock.at(time.monotonic() + pipeline.faults.latency_seconds, self._wave_due)
                    return
        except BaseException as exc:  # handed to the batch's thread, which raises it
            self._clock_error = exc
        self._clock_done.set()


def _validated(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The batch's requests keyed by lower-cased id, with bodies as bytes; 400 for any malformed part."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise _bad("Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(requests) > MAX_REQUESTS:
        raise _bad(
            f"Invalid batch payload format: the batch contains {len(requests)} requests; "
            f"the maximum is {MAX_REQUESTS}."
        )
    items: dict[str, dict[str, Any]] = {}
    for position, raw in enumerate(requests, start=1):
        if not isinstance(raw, dict):
            raise _bad(f"Invalid batch payload format: request #{position} is not an object.")
        for name in ("id", "method", "url"):
            if not isinstance(raw.get(name), str) or not raw[name].strip():
                raise _bad(f"Invalid batch payload format: request #{position} has no '{name}'.")
        request_id, method, url = raw["id"], raw["method"].upper(), raw["url"]
        if request_id.lower() in items:
            raise _bad(f"Invalid batch payload format: the request id '{request_id}' is used more than once.")
        if method not in METHODS:
            raise _bad(f"Invalid batch payload format: request '{request_id}' has an unsupported method.")
        if url.lstrip("/").split("?")[0].lower() == "$batch" or "://" in url.split("?")[0]:
            raise _bad(f"Invalid batch payload format: request '{request_id}' must have a relative URL.")
        headers = raw.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _bad(
                f"Invalid batch payload format: the headers of request '{request_id}' must be strings."
            )
        body, parsed = _body(request_id, raw, headers)
        items[request_id.lower()] = {
            "id": request_id,
            "method": method,
            "url": url,
            "headers": dict(headers),
            "body": body,
            "parsed": parsed,
            "dependsOn": _depends_on(request_id, raw.get("dependsOn")),
        }
    for key, item in items.items():
        unknown = [d for d in item["dependsOn"] if d not in items or d == key]
        if unknown:
            raise _bad(
                f"Invalid batch payload format: request '{item['id']}' depends on unknown request "
                f"'{unknown[0]}'."
            )
    _reject_cycles(items)
    return items


def _body(request_id: str, raw: dict[str, Any], headers: dict[str, str]) -> tuple[bytes, Any]:
    """The inner request's body as bytes (what upload budgets count), and its JSON value if it is JSON."""
    if "body" not in raw:
        return b"", UNPARSED
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if not content_type:
        raise _bad(
            f"Invalid batch payload format: request '{request_id}' has a body but no Content-Type header."
        )
    body = raw["body"]
    if media_type(content_type) == "application/json":
        # The standard library's spacing, as before: these bytes are what the upload budget counts.
        return json.dumps(body).encode(), body
    if not isinstance(body, str):
        raise _bad(
            f"Invalid batch payload format: the body of request '{request_id}' must be base64 encoded."
        )
    try:
        decoded = base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if "-" in body or "_" in body else None
        )
    except (binascii.Error, ValueError):
        raise _bad(
            f"Invalid batch payload format: the body of request '{request_id}' is not base64."
        ) from None
    return decoded, UNPARSED


def _depends_on(request_id: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(
            f"Invalid batch payload format: 'dependsOn' of request '{request_id}' must be an array of ids."
        )
    return tuple(v.lower() for v in value)


def _reject_cycles(items: dict[str, dict[str, Any]]) -> None:
    resolved: set[str] = set()
    while len(resolved) < len(items):
        ready = {k for k, item in items.items() if k not in resolved and set(item["dependsOn"]) <= resolved}
        if not ready:
            raise _bad("Invalid batch payload format: the dependsOn references form a cycle.")
        resolved |= ready


def _inner_response(request_id: str, response: Response) -> dict[str, Any]:
    content_type = response.content_type()
    headers = dict(response.headers)
    out: dict[str, Any] = {"id": request_id, "status": response.status, "headers": headers}
    if content_type is None:
        return out
    headers.setdefault("Content-Type", content_type)
    if isinstance(response.body, bytes):
        out["body"] = base64.b64encode(response.body).decode()  # binary bodies come back base64 encoded
    else:
        out["body"] = response.body  # JSON and text stay as they are, encoded once with the batch
    return out


def _encoded(answer: dict[str, Any]) -> bytes:
    return json_bytes(answer)  # as Response.encode writes JSON


def _failed_dependency(request_id: str, dependency_id: str) -> dict[str, Any]:
    error = GraphError(
        424,
        "FailedDependency",
        f"The request was not run because request '{dependency_id}' it depends on failed.",
    )
    return _inner_response(request_id, error.to_response(new_request_id(), None))


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)

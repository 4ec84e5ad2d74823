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

How "4 at a time" is run: in *waves*, in the connection's own thread. A wave admits the next requests in
order until 4 hold a throttle slot (a refused or throttled one is answered at once and does not count),
sleeps the latency once, then handles them and frees their slots. For the latency the 4 count against
their mailbox's concurrency limit exactly as 4 parallel requests would, and n requests take ceil(n/4)
latencies, as before; but no thread per request (their hand-offs cost more CPU than the requests did).
Route handlers answer at once, so running them one after the other changes nothing a client can see.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .protocol import JSON_CONTENT_TYPE, UNPARSED, GraphError, Response, new_request_id
from .routing import Ctx, route

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
    # Each answer is encoded as soon as it is known, so a batch in progress holds text, not object trees.
    answers: dict[str, str] = {}
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
        for index, response in _run(pipeline, calls):
            key = runnable[index]
            statuses[key] = response.status
            answers[key] = _encoded(_inner_response(items[key]["id"], response))
        done.update(ready)
    ordered = [answers[k] for k in items]
    shuffled = list(ordered)
    pipeline.batch_rng.shuffle(shuffled)
    if len(shuffled) > 1 and shuffled == ordered:
        shuffled.reverse()
    body = '{"responses":[' + ",".join(shuffled) + "]}"  # what Response.encode makes of the dict
    return Response(200, body.encode(), {"Content-Type": JSON_CONTENT_TYPE})


def _run(pipeline: Pipeline, calls: list[Call]) -> Iterator[tuple[int, Response]]:
    """Run independent requests in waves of at most PARALLEL; yields (index in `calls`, response).

    A wave is answered and logged whole before its answers are handed on. `calls` is emptied: each call
    is let go as soon as it is answered.
    """
    pending = deque(enumerate(calls))
    calls.clear()
    while pending:
        answered: list[tuple[int, Response]] = []
        wave: list[tuple[int, Call]] = []
        with pipeline.batch_workers.room(min(PARALLEL, len(pending))) as room:
            try:
                while pending and len(wave) < room:
                    index, call = pending.popleft()
                    refused = pipeline.admit(call)  # a refused request takes no place in the wave
                    if refused is None:
                        wave.append((index, call))
                    else:
                        answered.append((index, refused))
                if wave:
                    pipeline.wait_latency()
                    answered.extend((index, pipeline.complete(call)) for index, call in wave)
            finally:  # never leave a slot taken, even if completing a request failed
                for _, call in wave:
                    call.slot.release()
        yield from answered


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
    if content_type.split(";")[0].strip().lower() == "application/json":
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


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # as Response.encode writes JSON


def _encoded(answer: dict[str, Any]) -> str:
    return _COMPACT_JSON.encode(answer)


def _failed_dependency(request_id: str, dependency_id: str) -> dict[str, Any]:
    error = GraphError(
        424,
        "FailedDependency",
        f"The request was not run because request '{dependency_id}' it depends on failed.",
    )
    return _inner_response(request_id, error.to_response(new_request_id(), None))


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)

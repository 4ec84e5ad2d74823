"""JSON batching: many Graph requests in few HTTP calls, each inner request retried on its own.

Graph facts this follows (docs/graph-facts.md, concepts/json-batching.md, throttling-limits.md):
- at most 20 requests per $batch; dependsOn only within one batch; a failed dependency answers 424;
- responses come in any order, matched here by id;
- each inner request is throttled on its own: a 200 batch can hold 429s, each with its own Retry-After;
- Graph runs up to 4 Outlook requests of a batch in parallel, so a batch holding k requests for a mailbox
  occupies min(k, 4) of that mailbox's 4 concurrent slots while it runs.
Requests are grouped by mailbox before chunking, so a mailbox's writes travel together. An inner request
that succeeded is never sent again; only those `transport.classify` says to repeat are (the same rule as for
a single request), alone, after their own wait.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from sync_core.cpu_roles import SEND, role

from . import jsonbody
from .concurrency import Limiter, parallel_calls
from .errors import GraphError, MaybeApplied, TransientError, error_from_response
from .retry import RetryPolicy, parse_retry_after
from .routes import mailbox_of, permission_hint, redact, relative_path
from .session import whole_body
from .transport import (
    IMMUTABLE_ID,
    NO_ANSWER,
    GraphStats,
    Verdict,
    classify,
    gateway_timeout,
    is_replay_safe,
    with_immutable_id,
)

MAX_BATCH = 20
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
_SAME_ROUND_SECONDS = 0.005  # retries due within this of each other share one $batch call


@dataclass(frozen=True, slots=True)
class BatchRequest:
    method: str
    url: str  # relative to the Graph root ("/users/{id}/contactFolders/{fid}/contacts") or a full URL under it
    body: Any = None
    headers: Mapping[str, str] | None = None
    depends_on: Sequence[str] | None = None
    id: str | None = None  # defaults to the 1-based position in the input
    # The fields of a successful answer's body that its BatchResult keeps (None: the whole body). A create
    # answers with the whole contact, and a fill's writer needs only its id and changeKey: holding 25,000
    # whole contacts until the last chunk is back cost more in garbage collection than decoding them.
    keep: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    id: str
    status: int  # 0 when no answer came back for this request
    headers: Mapping[str, str] = field(repr=False)
    body: Any = field(repr=False)
    error: GraphError | None = None
    request_id: str | None = None  # the $batch call's request-id (what Microsoft support needs)

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    @property
    def in_doubt(self) -> bool:
        """True when the request did not succeed but may have been applied all the same: no answer came back,
        Graph answered 5xx, or the error says so (MaybeApplied, TransientError past the retry bound). A 4xx
        is a refusal: nothing was applied. A create in doubt keeps its in-flight record, so the next run looks
        for the contact before creating it again."""
        return (
            self.status == NO_ANSWER
            or self.status >= 500
            or isinstance(self.error, MaybeApplied | TransientError)
        )


class BatchSender(Protocol):
    """What $batch needs from the client: the Graph root, one request sent with its retries, and the counters,
    limits and retry bounds that the inner requests' own retries share with it."""

    @property
    def base_url(self) -> str: ...

    @property
    def stats(self) -> GraphStats: ...

    @property
    def limiter(self) -> Limiter: ...

    @property
    def retry(self) -> RetryPolicy: ...

    def send(
        self,
        method: str,
        rel: str,
        *,
        json_body: Any = None,
        demand: Mapping[str, int],
        replay_safe: bool | None = None,
    ) -> tuple[requests.Response, str]: ...

    def workers(self) -> Executor:
        """Threads that run chunks side by side."""
        ...


@dataclass(slots=True)
class _Item:
    """One inner request as it moves through rounds of $batch calls."""

    index: int
    id: str
    method: str
    path: str  # relative, with leading slash
    body: Any
    headers: Mapping[str, str]  # shared between items (_inner_headers): read only
    depends_on: tuple[str, ...]
    mailbox: str | None
    keep: tuple[str, ...] | None = None
    attempts: int = 0
    due: float = 0.0  # monotonic time of its next send
    replay_safe: bool = False  # by its method (`is_replay_safe`), set by `prepare`


def run_batch(graph: BatchSender, requests: Sequence[BatchRequest]) -> list[BatchResult]:
    """Results in input order, one per request."""
    with role(SEND):
        items = prepare(graph.base_url, requests)
        if not items:
            return []
        chunks = chunk(items)
        limits = graph.limiter
        lanes = parallel_calls((_demand(c) for c in chunks), limits.max_in_flight, limits.per_mailbox,
                               limits.directory)
        results: dict[str, BatchResult] = {}
        if lanes == 1:
            for c in chunks:
                results.update(_run_chunk(graph, c))
        else:
            for done in _in_lanes(graph, chunks, lanes):
                results.update(done)
        return [results[it.id] for it in items]


def _in_lanes(graph: BatchSender, chunks: list[list[_Item]], lanes: int) -> list[dict[str, BatchResult]]:
    """Run the chunks, in their order, on `lanes` threads: as many as the work's mailboxes can keep busy.

    Each lane takes the next chunk when it is done with one; the caller's thread is one lane and the client's
    worker threads the others. A chunk never waits on another, so lanes of concurrent calls sharing the
    workers cannot deadlock, and the caller's own lane makes progress even when every worker is busy.
    """
    todo = queue.SimpleQueue[list[_Item]]()
    for c in chunks:
        todo.put(c)

    def lane() -> dict[str, BatchResult]:
        done: dict[str, BatchResult] = {}
        with role(SEND):
            while True:
                try:
                    c = todo.get_nowait()
                except queue.Empty:
                    return done
                done.update(_run_chunk(graph, c))

    others = [graph.workers().submit(lane) for _ in range(lanes - 1)]
    try:
        mine = lane()
    finally:
        wait(others)
    return [mine, *(f.result() for f in others)]


def _demand(items: Sequence[_Item]) -> Counter[str]:
    """The slots a call holding these requests needs, per mailbox."""
    return Counter(it.mailbox for it in items if it.mailbox is not None)


def prepare(base_url: str, requests: Sequence[BatchRequest]) -> list[_Item]:
    """Validate and normalise the input; bad input raises ValueError naming the request (nothing is sent)."""
    items: list[_Item] = []
    seen: set[str] = set()
    # URL -> its path and mailbox: a fill sends each target folder's contacts URL hundreds of times.
    located: dict[str, tuple[str, str | None]] = {}
    for index, req in enumerate(requests):
        rid = str(req.id) if req.id is not None else str(index + 1)
        if rid in seen:
            raise ValueError(f"batch request id {rid!r} is used twice")
        seen.add(rid)
        method = req.method.upper()
        if method not in METHODS:
            raise ValueError(f"batch request {rid!r}: unsupported method {req.method!r}")
        where = located.get(req.url)
        if where is None:
            path = relative_path(req.url, base_url)
            where = located[req.url] = (path, mailbox_of(path))
        path, mailbox = where
        depends_on = tuple(str(d) for d in req.depends_on) if req.depends_on else ()
        items.append(
            _Item(index, rid, method, path, req.body, _inner_headers(req, mailbox is not None), depends_on, mailbox,
                  req.keep, replay_safe=is_replay_safe(method))
        )
    for it in items:
        for dep in it.depends_on:
            if dep not in seen:
                raise ValueError(f"batch request {it.id!r} depends on unknown id {dep!r}")
    return items


# The inner headers of the usual write (no headers of its own, a JSON body, in a mailbox): one dict shared
# by every such request (a fill sends 50,000 of them), so nothing may change an _Item's headers.
_MAILBOX_JSON_HEADERS = {"Prefer": IMMUTABLE_ID, "Content-Type": "application/json"}


def _inner_headers(req: BatchRequest, in_mailbox: bool) -> dict[str, str]:
    """The request's headers plus what Graph needs: Content-Type with a body, immutable ids in a mailbox."""
    if not req.headers and in_mailbox and req.body is not None:
        return _MAILBOX_JSON_HEADERS
    headers = with_immutable_id(req.headers, in_mailbox)
    if req.body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"  # Graph rejects an inner body without it
    return headers


def chunk(items: Sequence[_Item], size: int = MAX_BATCH) -> list[list[_Item]]:
    """Chunks of at most `size`: dependency groups kept whole, requests to one mailbox kept together."""
    if not any(it.depends_on for it in items):
        # Every request is its own group: the packing below comes down to slicing each mailbox's requests
        # (in input order) in the order of the mailboxes.
        by_mailbox: dict[str, list[_Item]] = {}
        for it in items:
            mailbox = it.mailbox or ""
            same = by_mailbox.get(mailbox)
            if same is None:
                by_mailbox[mailbox] = [it]
            else:
                same.append(it)
        ordered_items = [it for mailbox in sorted(by_mailbox) for it in by_mailbox[mailbox]]
        return _interleave([ordered_items[i : i + size] for i in range(0, len(ordered_items), size)])
    parent = {it.id: it.id for it in items}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for it in items:
        for dep in it.depends_on:
            parent[root(it.id)] = root(dep)
    groups: dict[str, list[_Item]] = {}
    for it in items:
        groups.setdefault(root(it.id), []).append(it)
    for group in groups.values():
        if len(group) > size:
            raise ValueError(f"{len(group)} batch requests depend on each other; at most {size} fit one $batch")
    # Stable order: by the first mailbox a group touches, then by input position.
    ordered = sorted(groups.values(), key=lambda g: (g[0].mailbox or "", g[0].index))
    chunks: list[list[_Item]] = []
    for group in ordered:
        if chunks and len(chunks[-1]) + len(group) <= size:
            chunks[-1].extend(group)
        else:
            chunks.append(list(group))
    return _interleave(chunks)


def _interleave(chunks: list[list[_Item]]) -> list[list[_Item]]:
    """Order chunks round-robin by mailbox (A1 B1 C1 A2 B2 ...).

    Chunks run in that order on a limited number of threads; three chunks for mailbox A in a row would hold
    three threads while only one of them may run (A's 4 slots), leaving mailboxes further down idle.
    """
    by_mailbox: dict[str, list[list[_Item]]] = {}
    for c in chunks:
        by_mailbox.setdefault(c[0].mailbox or "", []).append(c)
    queues = list(by_mailbox.values())
    out: list[list[_Item]] = []
    for i in range(max(len(q) for q in queues)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def _run_chunk(graph: BatchSender, items: list[_Item]) -> dict[str, BatchResult]:
    """Send one chunk; then re-send only the inner requests Graph asked to repeat, each after its own wait."""
    policy = graph.retry
    started = time.monotonic()
    pending: dict[str, _Item] = {it.id: it for it in items}
    final: dict[str, BatchResult] = {}

    while pending:
        first_due = min(it.due for it in pending.values())
        delay = first_due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        round_ = [it for it in pending.values() if it.due <= first_due + _SAME_ROUND_SECONDS]
        try:
            responses, request_id = _send_round(graph, round_)
        except MaybeApplied as exc:
            _after_lost_answer(graph, round_, exc, pending, final)
            continue
        except GraphError as exc:
            for it in round_:
                final[it.id] = _failed(it, exc)
                del pending[it.id]
            continue

        retried: dict[str, float] = {}  # id -> due
        dependents: list[tuple[_Item, dict[str, Any]]] = []
        for it in round_:
            it.attempts += 1
            answer = responses.get(it.id)
            if answer is None:
                final[it.id] = _failed(
                    it,
                    GraphError(
                        NO_ANSWER,
                        "MissingBatchResponse",
                        "the $batch answer had no response for this id",
                        request_id,
                        method=it.method,
                        path=redact(it.path),
                    ),
                )
                del pending[it.id]
                continue
            status = int(answer.get("status") or 0)
            headers = _inner_answer_headers(answer)
            if status == 424:
                dependents.append((it, answer))
                continue
            graph.stats.answered(status)
            verdict = classify(status, it.replay_safe)
            if verdict is Verdict.RETRY:
                retry_after = parse_retry_after(_header(headers, "Retry-After"))
                wait = retry_after if retry_after is not None else policy.backoff(it.attempts)
                if status == 429 and it.mailbox is not None:
                    graph.limiter.hold_off(it.mailbox, min(wait, policy.max_seconds))
                spent = time.monotonic() - started
                if it.attempts < policy.max_attempts and spent + wait < policy.max_seconds:
                    it.due = time.monotonic() + wait
                    retried[it.id] = it.due
                    graph.stats.add("retries")
                    graph.stats.add("retry_wait_ms", round(wait * 1000))
                    continue
            final[it.id] = _result(it, status, headers, answer.get("body"), request_id, verdict)
            del pending[it.id]

        for it, answer in dependents:
            waits = [retried[d] for d in it.depends_on if d in retried]
            if waits:
                # Not run because what it depends on was throttled: it goes again together with that.
                it.due = max(waits)
                it.attempts -= 1  # it was never executed; its dependency's attempts bound the loop
                retried[it.id] = it.due  # so what depends on it goes along too
            else:
                headers = _inner_answer_headers(answer)
                final[it.id] = _result(it, 424, headers, answer.get("body"), request_id, Verdict.FINAL)
                del pending[it.id]
    return final


def _after_lost_answer(
    graph: BatchSender,
    round_: list[_Item],
    exc: MaybeApplied,
    pending: dict[str, _Item],
    final: dict[str, BatchResult],
) -> None:
    """The $batch POST lost its answer: repeat the safe requests later, report the others as maybe applied."""
    policy = graph.retry
    for it in round_:
        it.attempts += 1
        verdict = classify(NO_ANSWER, it.replay_safe)
        if verdict is Verdict.RETRY and it.attempts < policy.max_attempts:
            it.due = time.monotonic() + policy.backoff(it.attempts)
            graph.stats.add("retries")
            continue
        error: GraphError = exc
        if verdict is Verdict.RETRY:
            error = TransientError(
                NO_ANSWER,
                "NoResponse",
                exc.message,
                exc.request_id,
                exc.client_request_id,
                attempts=it.attempts,
                method=it.method,
                path=redact(it.path),
            )
        final[it.id] = _failed(it, error)
        del pending[it.id]


def _send_round(graph: BatchSender, round_: list[_Item]) -> tuple[dict[str, dict[str, Any]], str | None]:
    ids = {it.id for it in round_} if any(it.depends_on for it in round_) else set()
    payload: list[dict[str, Any]] = []
    for it in round_:
        entry: dict[str, Any] = {"id": it.id, "method": it.method, "url": it.path}
        if it.headers:
            entry["headers"] = it.headers
        if it.body is not None:
            entry["body"] = it.body
        if it.depends_on:
            depends = [d for d in it.depends_on if d in ids]  # a dependency that already succeeded is not resent
            if depends:
                entry["dependsOn"] = depends
        payload.append(entry)
    demand = _demand(round_)
    graph.stats.add("batch_calls")
    graph.stats.add("batch_inner_requests", len(round_))
    resp, cid = graph.send(
        "POST",
        "/$batch",
        json_body={"requests": payload},
        demand=demand,
        replay_safe=all(it.replay_safe for it in round_),
    )
    request_id = resp.headers.get("request-id")
    if resp.status_code >= 400:
        raise error_from_response(
            resp.status_code, resp.headers, resp.content, method="POST", path="/$batch", client_request_id=cid
        )
    try:
        body = jsonbody.decode(whole_body(resp))
        answers = {str(r["id"]): r for r in body.get("responses", [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise GraphError(
            resp.status_code,
            "InvalidBatchResponse",
            "the $batch answer is not Graph's JSON shape",
            request_id,
            cid,
            method="POST",
            path="/$batch",
        ) from None
    return answers, request_id


def _inner_answer_headers(answer: Mapping[str, Any]) -> dict[str, str]:
    """An inner answer's headers as strings; Graph sends strings, which are kept as they are (no copy)."""
    raw = answer.get("headers")
    if not raw:
        return {}
    if type(raw) is dict and all(type(v) is str for v in raw.values()):  # JSON object keys are strings
        return raw
    return {str(k): str(v) for k, v in raw.items()}


def _result(
    it: _Item, status: int, headers: dict[str, str], body: Any, request_id: str | None, verdict: Verdict
) -> BatchResult:
    error: GraphError | None = None
    if status >= 400:
        code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
        error = error_from_response(
            status,
            {"request-id": request_id or "", **headers},
            body,
            method=it.method,
            path=redact(it.path),
            client_request_id=None,
            permission_hint=permission_hint(it.method, it.path, str(code)),
            attempts=it.attempts,
        )
        if verdict is Verdict.IN_DOUBT:
            error = gateway_timeout(error.code, error.request_id, None, method=it.method, path=redact(it.path))
    elif it.keep is not None and isinstance(body, dict) and 200 <= status < 300:
        body = {name: body[name] for name in it.keep if name in body}
    return BatchResult(it.id, status, headers, body, error, request_id)


def _failed(it: _Item, error: GraphError) -> BatchResult:
    return BatchResult(it.id, error.status, {}, None, error, error.request_id)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)

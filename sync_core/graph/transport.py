"""Sending one Graph request until it has a final answer, and the rules that decide a retry.

This is the layer under the client (as httpx separates client from transport): concurrency slot (per mailbox
and global) -> token (msal cache) -> HTTP -> `classify`. The rules are written once here and used by the
client for single requests and by `batch` for each inner request of a `$batch`:
- a 429 or 503 is repeated after Retry-After (or a backoff), whatever the method;
- a 504, or a request whose answer was lost, is repeated only when the method is replay-safe; for a POST or
  PATCH it is `MaybeApplied`: repeating a create blindly could make a second contact;
- everything else is the final answer.
Retries follow `retry.RetryPolicy`; what is left after the bounds becomes a typed error from `errors`.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from sync_core.cpu_roles import SEND, role

from . import jsonbody
from .auth import TokenProvider
from .concurrency import Limiter
from .errors import GraphError, MaybeApplied, Throttled, TransientError, error_from_response, parse_error_body
from .retry import RetryableFailure, RetryPolicy, parse_retry_after
from .routes import mailbox_of, redact
from .session import GraphSession

log = logging.getLogger("galsync.graph")

# client-request-id values: GUIDs (what Graph asks for), drawn from a generator seeded once from the system.
# uuid4 reads the system's random source on every call, one system call per Graph request (a fill makes
# thousands); an id that names a request in Graph's logs needs to be unique, not secret.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))  # a forked worker draws its own


def client_request_id() -> str:
    """A new version-4 GUID for one request."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


# Methods whose repetition cannot create a second object.
REPLAY_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
IMMUTABLE_ID = 'IdType="ImmutableId"'
NO_ANSWER = 0  # the status of a request whose answer never came back (connection fault, lost $batch answer)


class Verdict(enum.Enum):
    """What to do with one answer (or with its absence)."""

    FINAL = "final"  # the answer stands: a success, or an error that repeating will not fix
    RETRY = "retry"  # Graph asks for the request again later, or it is safe to send again
    IN_DOUBT = "in_doubt"  # a write was sent and no usable answer came back: it may have been applied


def classify(status: int, replay_safe: bool) -> Verdict:
    """The retry decision for `status` (NO_ANSWER when none came back) to a request that is or is not
    safe to repeat (docs/graph-facts.md, "Throttling")."""
    if status in (429, 503):
        return Verdict.RETRY
    if status in (504, NO_ANSWER):
        return Verdict.RETRY if replay_safe else Verdict.IN_DOUBT
    return Verdict.FINAL


def is_replay_safe(method: str) -> bool:
    return method.upper() in REPLAY_SAFE_METHODS


def gateway_timeout(
    code: str, request_id: str | None, client_request_id: str | None, *, method: str, path: str
) -> MaybeApplied:
    """The error for a 504 to a write: Graph may have done it, so it is reported, never repeated blindly."""
    return MaybeApplied(
        504,
        code or "GatewayTimeout",
        "Graph timed out after the request was sent; it may have been applied",
        request_id,
        client_request_id,
        method=method,
        path=path,
    )


def with_immutable_id(headers: Mapping[str, str] | None, in_mailbox: bool) -> dict[str, str]:
    """`headers` with their Prefer values in one header, led by immutable ids for a mailbox's items (contact
    ids must survive moves between folders, docs/graph-facts.md) unless the caller already asks for an IdType."""
    if not headers:  # the usual case, without looking at each header
        return {"Prefer": IMMUTABLE_ID} if in_mailbox else {}
    out: dict[str, str] = {}
    prefer: list[str] = []
    for name, value in headers.items():
        if name.lower() == "prefer":
            prefer.append(value)
        else:
            out[name] = value
    if in_mailbox and not any("idtype" in p.lower() for p in prefer):
        prefer.insert(0, IMMUTABLE_ID)
    if prefer:
        out["Prefer"] = ", ".join(prefer)
    return out


def error_code(resp: requests.Response) -> str:
    """Graph's error code in an answer's body ("" without one)."""
    return parse_error_body(resp.content)[0] if resp.content else ""


class GraphStats:
    """Counters for logs and benchmarks; exact, so tests can assert them."""

    FIELDS = (
        "http_requests",
        "batch_calls",
        "batch_inner_requests",
        "retries",
        "throttles",
        "transient_failures",
        "maybe_applied",
        "retry_wait_ms",  # total time the client chose to wait before retries (Retry-After or backoff)
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def answered(self, status: int) -> None:
        """Count an answer asking for a retry: a throttle (429) or a transient failure (503, 504)."""
        if status == 429:
            self.add("throttles")
        elif status in (503, 504):
            self.add("transient_failures")

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("_counts")
        if counts is not None and name in counts:
            return int(counts[name])
        raise AttributeError(name)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass
class _Call:
    """One request as its retry loop sees it (the loop is shared, so what a retry logs travels here)."""

    method: str
    rel: str
    url: str
    headers: dict[str, str]
    params: Mapping[str, Any] | None
    body: bytes | None
    demand: Mapping[str, int]
    replay_safe: bool
    cid: str
    attempts: int = 0

    @property
    def path(self) -> str:
        """The path as errors and logs show it (ids of people redacted)."""
        return redact(self.rel)


class Transport:
    """Sends requests to one Graph root; thread-safe, one per client.

    `retry` may be replaced on a running transport (tests shorten it): the retry loop follows.
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        session: requests.Session,
        *,
        limiter: Limiter,
        retry: RetryPolicy,
    ) -> None:
        self.base_url = base_url
        self.limiter = limiter
        self.retry = retry
        self.stats = GraphStats()
        self._tokens = tokens
        self._session = session
        self._retrying: tuple[RetryPolicy, tenacity.Retrying] | None = None

    def send(
        self,
        method: str,
        rel: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        demand: Mapping[str, int],
        replay_safe: bool | None = None,
    ) -> tuple[requests.Response, str]:
        """Send until a final answer (see `classify`) and return it with its client-request-id.

        Raises Throttled / TransientError when the bounds are reached, MaybeApplied when a request that is
        not `replay_safe` (by default: by its method) lost its answer. `demand` is the mailbox slots the
        request occupies. A JSON body is encoded once here, not again for each attempt; one that is not
        JSON data raises ValueError.
        """
        with role(SEND):
            if replay_safe is None:
                replay_safe = is_replay_safe(method)
            cid = client_request_id()
            hdrs = {"client-request-id": cid, **with_immutable_id(headers, mailbox_of(rel) is not None)}
            body = data
            if json_body is not None and not data:
                body = _json_bytes(json_body, method, rel)
                if not any(name.lower() == "content-type" for name in hdrs):
                    hdrs["Content-Type"] = "application/json"
            call = _Call(method, rel, self.base_url + rel, hdrs, params, body, demand, replay_safe, cid)
            try:
                resp = self._retry_loop()(self._attempt, call)
            except tenacity.RetryError as exc:
                raise self._exhausted(exc.last_attempt.exception(), call) from None
            return resp, cid

    def _retry_loop(self) -> tenacity.Retrying:
        """The tenacity loop of the current policy, built once (its state is per thread, so it is shared)."""
        built = self._retrying
        if built is None or built[0] is not self.retry:
            built = (self.retry, self.retry.retrying(self._before_sleep))
            self._retrying = built
        return built[1]

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        call: _Call = state.args[0]
        failure = state.outcome.exception() if state.outcome else None
        sleep = state.upcoming_sleep
        if isinstance(failure, RetryableFailure) and failure.status == 429:
            for mailbox in failure.mailboxes:
                self.limiter.hold_off(mailbox, sleep)
        self.stats.add("retries")
        self.stats.add("retry_wait_ms", round(sleep * 1000))
        log.info(
            "Graph %s %s: %s; attempt %d/%d in %.2f s (request-id %s, client-request-id %s)",
            call.method,
            call.path,
            getattr(failure, "detail", failure),
            state.attempt_number + 1,
            self.retry.max_attempts,
            sleep,
            _request_id_of(failure),
            call.cid,
        )

    def _attempt(self, call: _Call) -> requests.Response:
        """One try: the HTTP exchange inside the concurrency slots, then the retry decision.

        A 401 gets one fresh token and one more exchange within the same try.
        """
        call.attempts += 1
        with self.limiter.slot(call.demand):
            resp = self._exchange(call)
        self._judge(resp, call)
        return resp

    def _exchange(self, call: _Call) -> requests.Response:
        for fresh_token in (False, True):
            if fresh_token:
                self._tokens.invalidate()
            sent = dict(call.headers)
            sent["Authorization"] = f"Bearer {self._tokens.token()}"
            started = time.monotonic()
            try:
                if isinstance(self._session, GraphSession):
                    resp = self._session.send_graph(
                        call.method, call.url, headers=sent, body=call.body, params=call.params
                    )
                else:
                    resp = self._session.request(
                        call.method, call.url, params=call.params, data=call.body, headers=sent,
                        allow_redirects=False,
                    )
            except requests.RequestException as exc:
                self.stats.add("http_requests")
                raise self._no_answer(exc, call) from None
            self.stats.add("http_requests")
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "Graph %s %s -> %d in %.0f ms (request-id %s, client-request-id %s)",
                    call.method,
                    call.path,
                    resp.status_code,
                    (time.monotonic() - started) * 1000,
                    resp.headers.get("request-id"),
                    call.cid,
                )
            if resp.status_code != 401 or fresh_token:
                return resp
            resp.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _no_answer(self, exc: requests.RequestException, call: _Call) -> Exception:
        """What a connection fault becomes: a retry, a TLS error, or MaybeApplied for a write that left."""
        if isinstance(exc, requests.exceptions.SSLError):
            return GraphError(
                0,
                "TlsError",
                "Graph's TLS certificate is not trusted (see GALSYNC_GRAPH_CA_BUNDLE)",
                None,
                call.cid,
                method=call.method,
                path=call.path,
            )
        name = type(exc).__name__
        # A request that never left is safe to send again, whatever its method.
        if classify(NO_ANSWER, call.replay_safe or _never_sent(exc)) is Verdict.RETRY:
            self.stats.add("transient_failures")
            return RetryableFailure(NO_ANSWER, None, tuple(call.demand), f"connection fault ({name})")
        self.stats.add("maybe_applied")
        return MaybeApplied(
            NO_ANSWER,
            "NoResponse",
            f"no answer after sending ({name}); it may have been applied",
            None,
            call.cid,
            method=call.method,
            path=call.path,
        )

    def _judge(self, resp: requests.Response, call: _Call) -> None:
        """Raise what the loop repeats (RetryableFailure) or reports (MaybeApplied); a final answer passes."""
        status = resp.status_code
        self.stats.answered(status)
        if status == 429:
            # Hold the mailbox back at once (not only when we retry): other threads must not hammer it.
            # Capped by the retry budget, so a huge Retry-After cannot stall them longer than they would wait.
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if retry_after is not None:
                for mailbox in call.demand:
                    self.limiter.hold_off(mailbox, min(retry_after, self.retry.max_seconds))
        verdict = classify(status, call.replay_safe)
        if verdict is Verdict.RETRY:
            failure = RetryableFailure(
                status,
                parse_retry_after(resp.headers.get("Retry-After")),  # 503 may carry one too
                tuple(call.demand),
                f"HTTP {status} {error_code(resp)}".rstrip(),
            )
            failure.response = resp
            raise failure
        if verdict is Verdict.IN_DOUBT:
            self.stats.add("maybe_applied")
            raise gateway_timeout(
                error_code(resp), resp.headers.get("request-id"), call.cid, method=call.method, path=call.path
            )

    def _exhausted(self, failure: BaseException | None, call: _Call) -> GraphError:
        response = getattr(failure, "response", None)
        if isinstance(response, requests.Response):
            error = error_from_response(
                response.status_code,
                response.headers,
                response.content,
                method=call.method,
                path=call.path,
                client_request_id=call.cid,
                attempts=call.attempts,
            )
            if isinstance(error, Throttled) and isinstance(failure, RetryableFailure):
                error.retry_after = failure.retry_after
            return error
        detail = getattr(failure, "detail", repr(failure))
        return TransientError(
            NO_ANSWER, "ConnectionFailed", detail, None, call.cid, attempts=call.attempts, method=call.method,
            path=call.path,
        )


def _json_bytes(body: Any, method: str, rel: str) -> bytes:
    """A request body as compact JSON (what requests would send, without the spaces)."""
    try:
        return jsonbody.encode(body)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the body of Graph {method} {redact(rel)} is not JSON data: {exc}") from None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection failed before any byte of the request left (safe to repeat any method)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, ConnectTimeoutError)  # includes NewConnectionError (refused, DNS)


def _request_id_of(failure: BaseException | None) -> str | None:
    response = getattr(failure, "response", None)
    return response.headers.get("request-id") if isinstance(response, requests.Response) else None

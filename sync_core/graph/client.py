"""GraphClient: the one way galsync talks to Microsoft Graph.

Each call goes: concurrency slot (per mailbox and global) -> token (msal cache) -> HTTP -> retry decision.
Retries follow `retry.RetryPolicy` (Retry-After honoured exactly); what is left after the bounds becomes a
typed error from `errors`. Reading (pages, delta) lives in `paging`, writing in batches in `batch`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from sync_core.settings import Settings

from . import jsonbody
from .auth import TokenProvider, token_provider
from .batch import BatchRequest, BatchResult, run_batch, with_immutable_id
from .clouds import endpoints
from .concurrency import Limiter
from .errors import GraphError, MaybeApplied, Throttled, TransientError, error_from_response
from .paging import Delta, iter_items
from .retry import RetryableFailure, RetryPolicy, parse_retry_after
from .routes import mailbox_of, permission_hint, redact, relative_path
from .session import GraphSession

log = logging.getLogger("galsync.graph")

# Methods whose repetition cannot create a second object; POST and PATCH are reported as MaybeApplied
# instead of repeated when their answer is lost.
REPLAY_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class GraphResponse:
    status: int
    headers: Mapping[str, str] = field(repr=False)
    content: bytes = field(repr=False)
    request_id: str | None
    client_request_id: str

    def json(self) -> Any:
        """The body as JSON; None for an empty body (204)."""
        return jsonbody.decode(self.content) if self.content else None


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


def _json_bytes(body: Any, method: str, rel: str) -> bytes:
    """A request body as compact JSON (what requests would send, without the spaces)."""
    try:
        return jsonbody.encode(body)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the body of Graph {method} {redact(rel)} is not JSON data: {exc}") from None


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

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("_counts")
        if counts is not None and name in counts:
            return int(counts[name])
        raise AttributeError(name)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class GraphClient:
    """Thread-safe; share one per process (it owns the process's HTTP session and concurrency limits)."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        *,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        max_concurrency: int = 16,
        retry: RetryPolicy | None = None,
        read_timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = token_provider
        self._owns_session = session is None
        self._session = session or GraphSession(
            pool_size=max_concurrency, read_timeout=read_timeout, ca_bundle=ca_bundle
        )
        self.max_concurrency = max_concurrency
        self.limiter = Limiter(max_concurrency)
        self.retry = retry or RetryPolicy()
        self.stats = GraphStats()
        self._workers: ThreadPoolExecutor | None = None
        self._workers_lock = threading.Lock()
        self._retrying: tuple[RetryPolicy, tenacity.Retrying] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, check: bool = True) -> GraphClient:
        """The client GALSYNC_* settings describe; with `check`, gets a token now so bad credentials fail
        at start-up with one AuthError line naming the setting."""
        ep = endpoints(settings)
        session = GraphSession(
            pool_size=settings.max_concurrency,
            read_timeout=settings.http_timeout_seconds,
            ca_bundle=settings.graph_ca_bundle or None,
        )
        try:
            provider = token_provider(settings, ep, session)
            if check:
                provider.token()
        except BaseException:
            session.close()
            raise
        client = cls(
            ep.graph_base_url,
            provider,
            session=session,
            max_concurrency=settings.max_concurrency,
            retry=RetryPolicy(max_attempts=settings.retry_max_attempts, max_seconds=settings.retry_max_seconds),
        )
        client._owns_session = True
        return client

    def workers(self) -> ThreadPoolExecutor:
        """Threads that run $batch chunks side by side (created on first use, as many as the global cap)."""
        with self._workers_lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="graph-batch")
            return self._workers

    def close(self) -> None:
        with self._workers_lock:
            if self._workers is not None:
                self._workers.shutdown(wait=True)
                self._workers = None
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the public calls -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> GraphResponse:
        """One Graph call with retries; a non-2xx answer raises the matching GraphError subclass."""
        method = method.upper()
        rel = relative_path(path_or_url, self.base_url)
        mailbox = mailbox_of(rel)
        resp, cid = self.send(
            method,
            rel,
            json_body=json,
            headers=headers,
            params=params,
            data=data,
            demand={mailbox: 1} if mailbox else {},
        )
        result = GraphResponse(resp.status_code, dict(resp.headers), resp.content, resp.headers.get("request-id"), cid)
        if resp.status_code >= 400:
            raise error_from_response(
                resp.status_code,
                resp.headers,
                resp.content,
                method=method,
                path=redact(rel),
                client_request_id=cid,
                permission_hint=permission_hint(method, rel, _code(resp)),
            )
        return result

    def get(
        self,
        path_or_url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body = self.request("GET", path_or_url, headers=headers, params=params).json()
        return body if isinstance(body, dict) else {}

    def iter_pages(
        self, path: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following @odata.nextLink one page at a time (memory stays flat)."""
        return iter_items(self, path, params, headers)

    def delta(
        self,
        path_or_delta_link: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Delta:
        """A delta walk: iterate the items, then read `.delta_link`; DeltaTokenExpired: start over."""
        return Delta(self, path_or_delta_link, params, headers)

    def batch(self, requests: Sequence[BatchRequest]) -> list[BatchResult]:
        """Run requests through $batch (20 per call, calls in parallel within limits); results in order."""
        return run_batch(self, requests)

    # ---- one request, retried -----------------------------------------------------------------------

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
        """Send until a final answer (any status but 429/503/504) and return it with its client-request-id.

        Raises Throttled / TransientError when the bounds are reached, MaybeApplied when a request that is
        not `replay_safe` lost its answer. `demand` is the mailbox slots the request occupies. A JSON body
        is encoded once here, not again for each attempt; one that is not JSON data raises ValueError.
        """
        if replay_safe is None:
            replay_safe = method in REPLAY_SAFE_METHODS
        cid = str(uuid.uuid4())
        hdrs = self._headers(rel, headers, cid)
        body = data
        if json_body is not None and not data:
            body = _json_bytes(json_body, method, rel)
            if not any(name.lower() == "content-type" for name in hdrs):
                hdrs["Content-Type"] = "application/json"
        call = _Call(method, rel, self.base_url + rel, hdrs, params, body, demand, replay_safe, cid)
        try:
            resp = self._retry_loop()(self._attempt, call)
        except tenacity.RetryError as exc:
            raise self._exhausted(exc.last_attempt.exception(), method, rel, cid, call.attempts) from None
        return resp, cid

    def _retry_loop(self) -> tenacity.Retrying:
        """The tenacity loop of the current policy, built once (its state is per thread, so it is shared).

        Rebuilt only when `retry` is replaced (tests shorten it on a running client).
        """
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
            redact(call.rel),
            getattr(failure, "detail", failure),
            state.attempt_number + 1,
            self.retry.max_attempts,
            sleep,
            _request_id_of(failure),
            call.cid,
        )

    def _headers(self, rel: str, extra: Mapping[str, str] | None, cid: str) -> dict[str, str]:
        return {"client-request-id": cid, **with_immutable_id(extra, mailbox_of(rel) is not None)}

    def _attempt(self, call: _Call) -> requests.Response:
        """One try: the HTTP exchange inside the concurrency slots, then the retry decision.

        A 401 gets one fresh token and one more exchange within the same try.
        """
        call.attempts += 1
        with self.limiter.slot(call.demand):
            resp = self._exchange(call)
        self._raise_if_retryable(resp, call.method, call.rel, call.demand, call.replay_safe, call.cid)
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
                raise self._connection_failure(
                    exc, call.method, call.rel, call.demand, call.replay_safe, call.headers
                ) from None
            self.stats.add("http_requests")
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "Graph %s %s -> %d in %.0f ms (request-id %s, client-request-id %s)",
                    call.method,
                    redact(call.rel),
                    resp.status_code,
                    (time.monotonic() - started) * 1000,
                    resp.headers.get("request-id"),
                    call.cid,
                )
            if resp.status_code != 401 or fresh_token:
                return resp
            resp.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection_failure(
        self,
        exc: requests.RequestException,
        method: str,
        rel: str,
        demand: Mapping[str, int],
        replay_safe: bool,
        hdrs: Mapping[str, str],
    ) -> Exception:
        cid = hdrs["client-request-id"]
        if isinstance(exc, requests.exceptions.SSLError):
            return GraphError(
                0,
                "TlsError",
                "Graph's TLS certificate is not trusted (see GALSYNC_GRAPH_CA_BUNDLE)",
                None,
                cid,
                method=method,
                path=redact(rel),
            )
        name = type(exc).__name__
        if _never_sent(exc) or replay_safe:
            self.stats.add("transient_failures")
            return RetryableFailure(0, None, tuple(demand), f"connection fault ({name})")
        self.stats.add("maybe_applied")
        return MaybeApplied(
            0,
            "NoResponse",
            f"no answer after sending ({name}); it may have been applied",
            None,
            cid,
            method=method,
            path=redact(rel),
        )

    def _raise_if_retryable(
        self,
        resp: requests.Response,
        method: str,
        rel: str,
        demand: Mapping[str, int],
        replay_safe: bool,
        cid: str,
    ) -> None:
        status = resp.status_code
        if status == 429:
            self.stats.add("throttles")
            # Hold the mailbox back at once (not only when we retry): other threads must not hammer it.
            # Capped by the retry budget, so a huge Retry-After cannot stall them longer than they would wait.
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if retry_after is not None:
                for mailbox in demand:
                    self.limiter.hold_off(mailbox, min(retry_after, self.retry.max_seconds))
        elif status in (503, 504):
            self.stats.add("transient_failures")
        if status in (429, 503) or (status == 504 and replay_safe):
            failure = RetryableFailure(
                status,
                parse_retry_after(resp.headers.get("Retry-After")),  # 503 may carry one too
                tuple(demand),
                f"HTTP {status} {_code(resp)}".rstrip(),
            )
            failure.response = resp
            raise failure
        if status == 504:
            # A gateway timeout after a POST/PATCH was sent: Graph may have done it. Do not repeat blindly.
            self.stats.add("maybe_applied")
            raise MaybeApplied(
                504,
                _code(resp) or "GatewayTimeout",
                "Graph timed out after the request was sent; it may have been applied",
                resp.headers.get("request-id"),
                cid,
                method=method,
                path=redact(rel),
            )

    def _exhausted(self, failure: BaseException | None, method: str, rel: str, cid: str, attempts: int) -> GraphError:
        response = getattr(failure, "response", None)
        if isinstance(response, requests.Response):
            error = error_from_response(
                response.status_code,
                response.headers,
                response.content,
                method=method,
                path=redact(rel),
                client_request_id=cid,
                attempts=attempts,
            )
            if isinstance(error, Throttled) and isinstance(failure, RetryableFailure):
                error.retry_after = failure.retry_after
            return error
        detail = getattr(failure, "detail", repr(failure))
        return TransientError(
            0, "ConnectionFailed", detail, None, cid, attempts=attempts, method=method, path=redact(rel)
        )


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection failed before any byte of the request left (safe to repeat any method)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, ConnectTimeoutError)  # includes NewConnectionError (refused, DNS)


def _code(resp: requests.Response) -> str:
    from .errors import parse_error_body

    return parse_error_body(resp.content)[0] if resp.content else ""


def _request_id_of(failure: BaseException | None) -> str | None:
    response = getattr(failure, "response", None)
    return response.headers.get("request-id") if isinstance(response, requests.Response) else None

"""GraphClient: the one way galsync talks to Microsoft Graph.

The client is what callers use (a request, a page walk, a delta walk, a $batch); sending one request with its
retries is the `transport` under it. Reading (pages, delta) lives in `paging`, writing in batches in `batch`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from sync_core.settings import Settings

from . import jsonbody
from .auth import TokenProvider, token_provider
from .batch import BatchRequest, BatchResult, run_batch
from .clouds import endpoints
from .concurrency import APP_WIDE_IN_FLIGHT, Limiter
from .errors import error_from_response
from .paging import Delta, iter_items
from .retry import RetryPolicy
from .routes import mailbox_of, permission_hint, redact, relative_path
from .session import GraphSession
from .transport import GraphStats, Transport, error_code


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


class GraphClient:
    """Thread-safe; share one per process (it owns the process's HTTP session and concurrency limits)."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        *,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        max_concurrency: int = APP_WIDE_IN_FLIGHT,
        retry: RetryPolicy | None = None,
        read_timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_session = session is None
        self._session = session or GraphSession(
            pool_size=max_concurrency, read_timeout=read_timeout, ca_bundle=ca_bundle
        )
        self.max_concurrency = max_concurrency
        self.transport = Transport(
            self.base_url, token_provider, self._session, limiter=Limiter(max_concurrency), retry=retry or RetryPolicy()
        )
        self._workers: ThreadPoolExecutor | None = None
        self._workers_lock = threading.Lock()

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

    @property
    def stats(self) -> GraphStats:
        """Exact counts of requests, retries and throttles (kept by the transport)."""
        return self.transport.stats

    @property
    def limiter(self) -> Limiter:
        """The concurrency limits every request of this client waits for."""
        return self.transport.limiter

    @property
    def retry(self) -> RetryPolicy:
        """The retry bounds; a policy set here applies from the next request on."""
        return self.transport.retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self.transport.retry = policy

    def workers(self) -> ThreadPoolExecutor:
        """Threads that run $batch chunks side by side (made as the work needs them, at most the global cap)."""
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
                permission_hint=permission_hint(method, rel, error_code(resp)),
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
        """One request sent until its final answer, any status (`Transport.send`)."""
        return self.transport.send(
            method, rel, json_body=json_body, headers=headers, params=params, data=data, demand=demand,
            replay_safe=replay_safe,
        )

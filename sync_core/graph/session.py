"""The one HTTP session a galsync process uses for Graph and for its token authority.

Shared by the Graph client and msal (msal's `http_client`), so both get the same connection pool, the same
timeouts and the same trust store. A request without an explicit timeout gets (10 s connect, read timeout
from settings): msal does not pass one, and a managed identity endpoint that never answers must not hang
a function forever.

The proxy and CA settings of the environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...) are read once,
when the session is made, and applied to every request as requests would apply them. requests itself
(`trust_env`) reads them on every call: it scans the whole environment several times and looks for
~/.netrc (whose credentials galsync never uses: they would replace the bearer token).
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from requests.certs import where as public_ca_bundle
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    address_in_network,
    check_header_validity,
    get_encoding_from_headers,
    is_ipv4_address,
    is_valid_cidr,
)
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util import Timeout

from .errors import AuthError

CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class HttpEnvironment:
    """What requests takes from the process environment, read once.

    `proxies` are the *_PROXY variables (lower case wins, as in urllib), `no_proxy` is NO_PROXY (host
    names, domain suffixes, host:port, IPv4 addresses and CIDR networks, or "*"), `ca_bundle` is
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE.
    """

    proxies: Mapping[str, str]
    no_proxy: str = ""
    ca_bundle: str | None = None

    @classmethod
    def read(cls) -> HttpEnvironment:
        proxies = urllib.request.getproxies()  # what requests uses (on Linux: the *_proxy variables)
        proxies.pop("no", None)
        no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        return cls(proxies, no_proxy, ca_bundle)

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxies requests would use for `url`: none when NO_PROXY covers its host."""
        if not self.proxies or self.goes_direct(url):
            return {}
        return dict(self.proxies)

    def goes_direct(self, url: str) -> bool:
        """requests' `should_bypass_proxies` (with urllib's on Linux), on the values read at start."""
        parsed = urlparse(url)
        host = parsed.hostname  # lower case
        if host is None:
            return True
        if self.no_proxy.strip() == "*":
            return True
        entries = [e.lstrip(".") for e in self.no_proxy.replace(" ", "").lower().split(",") if e]
        if is_ipv4_address(host) and any(is_valid_cidr(e) and address_in_network(host, e) for e in entries):
            return True
        with_port = f"{host}:{parsed.port}" if parsed.port else host
        return any(
            name in (host, with_port) or host.endswith("." + name) or with_port.endswith("." + name)
            for name in entries
        )


class GraphSession(requests.Session):
    """A requests.Session with default timeouts, a pool sized to the concurrency and an optional extra CA."""

    def __init__(self, *, pool_size: int, read_timeout: float, ca_bundle: str | None = None) -> None:
        super().__init__()
        # The environment is applied by merge_environment_settings below, from what was read here.
        self.trust_env = False
        self.environment = HttpEnvironment.read()
        self.default_timeout = (CONNECT_TIMEOUT_SECONDS, read_timeout)
        context = _context_with(ca_bundle) if ca_bundle else None
        adapter = _Adapter(context, pool_connections=4, pool_maxsize=max(pool_size, 1))
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)

    def send_graph(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """One Graph call, without the per-call work of `request` that Graph calls do not need.

        `request` merges cookies, hooks, auth and every setting again on each call, and looks for a
        redirect to follow; over the thousands of `$batch` calls of a fill that was a tenth of galsync's
        CPU. The Graph client sends its own headers (bearer token, ids), follows no redirect and keeps no
        cookies. Kept exactly as `request` does it: URL quoting and header checks, the session's default
        headers, the environment's proxies and CA bundle (read once), the default timeouts, the adapter's
        TLS context and pool, requests' exceptions, and the body read before returning.
        """
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        if params:
            prepared.prepare_url(url, params)
        else:
            prepared.url = _quoted_url(url)
        merged: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict(self.headers)  # requests' own, valid
        for header in headers.items():
            check_header_validity(header)  # no CR/LF smuggled into a header (what prepare_headers checks)
            merged[header[0]] = header[1]
        prepared.headers = merged
        prepared.prepare_body(body, None)
        target = str(prepared.url)
        proxies = dict(self.proxies)
        proxies.update(self.environment.proxies_for(target))
        adapter = self.get_adapter(target)
        verify = self.environment.ca_bundle or self.verify
        if isinstance(adapter, _Adapter):
            connect, read = self.default_timeout
            timeout = Timeout(connect=connect, read=read)
            return adapter.exchange(prepared, timeout, verify=verify, cert=self.cert, proxies=proxies)
        response = adapter.send(
            prepared, stream=True, timeout=self.default_timeout, verify=verify, cert=self.cert, proxies=proxies
        )
        _read_body(response)
        return response

    def merge_environment_settings(
        self, url: str, proxies: dict[str, str] | None, stream: bool | None, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """What `trust_env` would add (proxies for this URL, the CA bundle variable), without reading it again.

        As with requests, proxies given with the request win over the environment's, and REQUESTS_CA_BUNDLE
        replaces only a `verify` left at its default; the extra CA context (_Adapter) still wins over both.
        """
        merged = self.environment.proxies_for(url)
        merged.update(proxies or {})
        if (verify is True or verify is None) and self.environment.ca_bundle:
            verify = self.environment.ca_bundle
        return super().merge_environment_settings(url, merged, stream, verify, cert)

    def rebuild_proxies(
        self, prepared_request: requests.PreparedRequest, proxies: dict[str, str] | None
    ) -> dict[str, str]:
        """On a redirect, the environment's proxies for the new URL (what `trust_env` does there)."""
        merged = self.environment.proxies_for(str(prepared_request.url))
        merged.update(proxies or {})
        return super().rebuild_proxies(prepared_request, merged)


def _requests_error(error: Exception, request: requests.PreparedRequest) -> Exception:
    """The requests exception `HTTPAdapter.send` (and reading the body) would raise for a urllib3 error."""
    exc = requests.exceptions
    if isinstance(error, MaxRetryError):
        reason = error.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return exc.ConnectTimeout(error, request=request)
        if isinstance(reason, ResponseError):
            return exc.RetryError(error, request=request)
        if isinstance(reason, urllib3_exceptions.ProxyError):
            return exc.ProxyError(error, request=request)
        if isinstance(reason, urllib3_exceptions.SSLError):
            return exc.SSLError(error, request=request)
        return exc.ConnectionError(error, request=request)
    if isinstance(error, ProtocolError | OSError | ClosedPoolError):
        return exc.ConnectionError(error, request=request)
    if isinstance(error, urllib3_exceptions.ProxyError):
        return exc.ProxyError(error)
    if isinstance(error, urllib3_exceptions.SSLError):
        return exc.SSLError(error, request=request)
    if isinstance(error, ReadTimeoutError):
        return exc.ReadTimeout(error, request=request)
    if isinstance(error, urllib3_exceptions.InvalidHeader):
        return exc.InvalidHeader(error, request=request)
    if isinstance(error, DecodeError):
        return exc.ContentDecodingError(error, request=request)
    return error


def _read_body(response: requests.Response) -> None:
    """Read the whole body now (inside the caller's concurrency slot), in one read.

    What `Response.content` does, in one call instead of 10 KiB chunks through a generator, with the same
    exceptions for a body that breaks off (`iter_content`'s mapping of urllib3's errors).
    """
    try:
        body = response.raw.read(decode_content=True)
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from None
    except DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from None
    except ReadTimeoutError as error:
        raise requests.exceptions.ConnectionError(error) from None
    except urllib3_exceptions.SSLError as error:
        raise requests.exceptions.SSLError(error) from None
    response._content = body or b""
    response._content_consumed = True


@lru_cache(maxsize=1024)
def _quoted_url(url: str) -> str:
    """The URL as requests sends it (checked, IDNA host, quoted path); a run sends the same few many times."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return str(prepared.url)


class _Adapter(HTTPAdapter):
    """Uses one prepared SSLContext for every connection when an extra CA is configured.

    Without it requests would load a CA file into a new context for each connection (tens of ms of CPU
    each), and REQUESTS_CA_BUNDLE, set on many machines, would silently replace the bundle we asked for.
    This is the override requests documents in `build_connection_pool_key_attributes`.
    """

    def __init__(self, context: ssl.SSLContext | None, **kwargs: Any) -> None:
        self._context = context
        super().__init__(**kwargs)

    def exchange(
        self,
        request: requests.PreparedRequest,
        timeout: Timeout,
        *,
        verify: Any,
        cert: Any,
        proxies: Mapping[str, str],
    ) -> requests.Response:
        """`send` for a Graph call, with the answer read by urllib3 in one piece.

        The same pool (proxy, TLS context), certificate checks, retries setting and exceptions as `send`;
        what it leaves out is the Response's own cookie jar (Graph sets no cookie galsync reads) and reading
        the body in 10 KiB chunks through a generator, which together cost as much CPU as the JSON.
        """
        try:
            conn = self.get_connection_with_tls_context(request, verify, proxies=dict(proxies), cert=cert)
        except LocationValueError as error:
            raise requests.exceptions.InvalidURL(error, request=request) from None
        self.cert_verify(conn, str(request.url), verify, cert)
        try:
            raw = conn.urlopen(
                method=str(request.method),
                url=self.request_url(request, dict(proxies)),
                body=cast(bytes | None, request.body),  # send_graph prepares bytes or nothing
                headers=cast(Mapping[str, str], request.headers),  # as HTTPAdapter.send passes them
                redirect=False,
                assert_same_host=False,
                preload_content=True,
                decode_content=True,
                retries=self.max_retries,
                timeout=timeout,
                chunked=False,
            )
        except Exception as error:
            mapped = _requests_error(error, request)
            if mapped is error:
                raise
            raise mapped from None
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.reason = cast(str, raw.reason)  # as HTTPAdapter.build_response sets it
        response.url = str(request.url)
        response.request = request
        response.connection = self
        response._content = raw.data or b""
        response._content_consumed = True
        return response

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if self._context is not None and verify is not False:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self._context
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """requests sets the pool's CA file here after the context was chosen, and urllib3 would then load
        that file into the shared context again for every new connection (about 20 ms of CPU each).
        With the context and no client certificate there is no file to check: requests' existence checks
        of its own bundle (three stat calls per request) are skipped."""
        if self._context is not None and verify and not cert and url.lower().startswith("https"):
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)
        if self._context is not None and verify is not False:
            conn.ca_certs = None
            conn.ca_cert_dir = None


def _context_with(extra_ca_file: str) -> ssl.SSLContext:
    """Public CAs plus the extra one: trusted in addition to the usual ones, not instead of them."""
    context = ssl.create_default_context(cafile=public_ca_bundle())
    try:
        context.load_verify_locations(cafile=extra_ca_file)
    except FileNotFoundError:
        raise AuthError(
            f"GALSYNC_GRAPH_CA_BUNDLE is {extra_ca_file!r}, which does not exist",
            setting="GALSYNC_GRAPH_CA_BUNDLE",
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise AuthError(
            f"GALSYNC_GRAPH_CA_BUNDLE is {extra_ca_file!r}, which holds no usable PEM certificate "
            f"({type(exc).__name__})",
            setting="GALSYNC_GRAPH_CA_BUNDLE",
        ) from None
    return context

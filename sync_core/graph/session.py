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
from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from requests.certs import where as public_ca_bundle
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    address_in_network,
    check_header_validity,
    is_ipv4_address,
    is_valid_cidr,
)

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
        TLS context and pool, and its `send` (requests' exceptions, the body read before returning).
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
        return adapter.send(
            prepared, stream=False, timeout=self.default_timeout, verify=verify, cert=self.cert, proxies=proxies
        )

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


def whole_body(resp: requests.Response) -> bytes:
    """The answer's body, read in one piece; `resp.content` is then no longer there (keep what this returns).

    requests' `content` reads a body in pieces of 10 KB, each through urllib3's buffering; a `$batch` answer
    of 20 created contacts is about 30 KB. A body `content` already read is returned as it is.
    """
    return b"".join(resp.iter_content(None))


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

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._context is not None and verify is not False:
            verify = True  # the context holds the CAs: no bundle path to look at (a stat call per request)
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

"""The one HTTP session a galsync process uses for Graph and for its token authority.

Shared by the Graph client and msal (msal's `http_client`), so both get the same connection pool, the same
timeouts and the same trust store. A request without an explicit timeout gets (10 s connect, read timeout
from settings): msal does not pass one, and a managed identity endpoint that never answers must not hang
a function forever.
"""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.certs import where as public_ca_bundle

from .errors import AuthError

CONNECT_TIMEOUT_SECONDS = 10.0


class GraphSession(requests.Session):
    """A requests.Session with default timeouts, a pool sized to the concurrency and an optional extra CA."""

    def __init__(self, *, pool_size: int, read_timeout: float, ca_bundle: str | None = None) -> None:
        super().__init__()
        self.default_timeout = (CONNECT_TIMEOUT_SECONDS, read_timeout)
        context = _context_with(ca_bundle) if ca_bundle else None
        adapter = _Adapter(context, pool_connections=4, pool_maxsize=max(pool_size, 1))
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


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
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if self._context is not None and verify is not False:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self._context
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs


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

"""Typed Graph failures: callers branch on the class, logs and reports use the ids each one carries.

Every error keeps Graph's `request-id` and our `client-request-id`, which is what Microsoft support asks for.
Messages never contain tokens or request bodies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class GraphError(Exception):
    """A Graph call that did not succeed. `status` is 0 when no HTTP answer came back."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        client_request_id: str | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.method = method
        self.path = path
        super().__init__(self._line())

    def _line(self) -> str:
        where = f" on {self.method} {self.path}" if self.method and self.path else ""
        ids = f" (request-id {self.request_id})" if self.request_id else ""
        status = f"{self.status} " if self.status else ""
        return f"Graph {status}{self.code}{where}: {self.message}{ids}"


class BadRequest(GraphError):
    """400: the request is wrong; repeating it will not help."""


class Unauthorized(GraphError):
    """401 even with a fresh token."""


class Forbidden(GraphError):
    """403: a permission is missing, or the app is scoped away from this mailbox."""

    def __init__(self, *args: Any, permission_hint: str | None = None, **kwargs: Any) -> None:
        self.permission_hint = permission_hint
        super().__init__(*args, **kwargs)

    def _line(self) -> str:
        line = super()._line()
        return f"{line}; {self.permission_hint}" if self.permission_hint else line


class NotFound(GraphError):
    """404 (ErrorItemNotFound, Request_ResourceNotFound, MailboxNotEnabledForRESTAPI, ...)."""


class Conflict(GraphError):
    """409 (ErrorFolderExists, ...)."""


class PreconditionFailed(GraphError):
    """412: the object changed since it was read (ETag / changeKey mismatch)."""


class Throttled(GraphError):
    """429 still answered after the retry bound (attempts or seconds) was reached."""

    def __init__(self, *args: Any, attempts: int = 0, retry_after: float | None = None, **kwargs: Any) -> None:
        self.attempts = attempts
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)

    def _line(self) -> str:
        return f"{super()._line()}; gave up after {self.attempts} attempts"


class TransientError(GraphError):
    """503/504 or a connection fault still there after the retry bound was reached."""

    def __init__(self, *args: Any, attempts: int = 0, **kwargs: Any) -> None:
        self.attempts = attempts
        super().__init__(*args, **kwargs)

    def _line(self) -> str:
        return f"{super()._line()}; gave up after {self.attempts} attempts"


class DeltaTokenExpired(GraphError):
    """The delta or skip token is no longer valid: start again with a full read (no token)."""


class AuthError(GraphError):
    """galsync cannot get a token; the message is one line naming the setting at fault."""

    def __init__(self, message: str, *, setting: str, code: str = "AuthenticationFailed") -> None:
        self.setting = setting
        super().__init__(0, code, message)

    def _line(self) -> str:
        return self.message


class MaybeApplied(GraphError):
    """A POST or PATCH was sent but no answer came back (timeout, dropped connection).

    Graph may or may not have applied it. Repeating a POST blindly could create a duplicate contact, so the
    client does not; the engine looks the object up (by its tag) before trying again.
    """


_BY_STATUS: dict[int, type[GraphError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    429: Throttled,
    503: TransientError,
    504: TransientError,
}

# Graph's codes for a delta token it no longer knows (concepts/errors.md, delta query overview).
DELTA_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


def parse_error_body(body: bytes | Any) -> tuple[str, str, str | None]:
    """(code, message, innerError request-id) from Graph's error envelope; tolerant of non-JSON bodies."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", "", None
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    return str(error.get("code") or ""), str(error.get("message") or ""), request_id


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes | Any,
    *,
    method: str,
    path: str,
    client_request_id: str | None,
    permission_hint: str | None = None,
    attempts: int = 0,
) -> GraphError:
    """The typed error for one non-2xx answer (a whole HTTP response or one $batch inner response)."""
    code, message, inner_request_id = parse_error_body(body)
    lower = {k.lower(): v for k, v in headers.items()}
    request_id = lower.get("request-id") or inner_request_id
    code = code or _default_code(status)
    message = message or f"HTTP {status}"
    common: dict[str, Any] = {"method": method, "path": path}
    args = (status, code, message, request_id, client_request_id)
    if status == 410 or code.lower() in DELTA_EXPIRED_CODES:
        return DeltaTokenExpired(*args, **common)
    cls = _BY_STATUS.get(status, GraphError)
    if cls is Forbidden:
        return Forbidden(*args, permission_hint=permission_hint, **common)
    if cls is Throttled:
        return Throttled(*args, attempts=attempts, retry_after=None, **common)
    if cls is TransientError:
        return TransientError(*args, attempts=attempts, **common)
    return cls(*args, **common)


def _default_code(status: int) -> str:
    return {
        400: "BadRequest",
        401: "InvalidAuthenticationToken",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        410: "Gone",
        412: "PreconditionFailed",
        429: "TooManyRequests",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }.get(status, f"HTTP{status}")

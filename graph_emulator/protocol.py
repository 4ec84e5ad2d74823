"""Requests, responses and Graph's error shape, shared by every emulator route.

Graph answers every failure with the same JSON envelope (docs/graph-facts.md, "Errors"); routes raise
`GraphError` and the server renders it, so no route builds an error body by hand.

JSON goes through orjson (a benchmark's fill has the emulator write 50,000 contacts' JSON and read as many
bodies): answers are compact UTF-8, as Graph writes them (non-ASCII characters as themselves, not as
`\\u` escapes). Where orjson refuses what the standard library takes (a lone surrogate, an integer beyond
64 bits, a key that is not a string, NaN in a request body), the standard library does the work, so every
body reads to the same value and every answer to the same JSON value as before.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from .ids import random_uuid


class Headers:
    """Case-insensitive, single-valued request headers (what Graph routes need)."""

    def __init__(self, items: dict[str, str] | None = None) -> None:
        self._items = {k.lower(): v for k, v in (items or {}).items()}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.items())


JSON_CONTENT_TYPE = "application/json; odata.metadata=minimal"


def json_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (TypeError or ValueError when it is not JSON data)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def json_value(data: bytes) -> Any:
    """The JSON value of `data`: UTF-8, or UTF-16/32 as the standard library detects; ValueError if invalid."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


class _Unparsed:
    def __repr__(self) -> str:
        return "UNPARSED"


# A request body nobody has parsed as JSON yet (see Request.parsed).
UNPARSED: Any = _Unparsed()


@dataclass
class Request:
    """One Graph request as a route sees it: already split into path and query, body still bytes."""

    method: str
    path: str  # without the /v1.0 prefix and without the query string, e.g. /users/abc/contactFolders
    query: dict[str, str]  # decoded; Graph does not repeat query options
    headers: Headers
    body: bytes = b""
    raw_query: str = ""
    # The JSON value `body` encodes, when the caller already has it: a $batch's inner JSON bodies arrive
    # parsed with the batch, and decoding them again would only cost time. `json()` checks all the same.
    parsed: Any = field(default=UNPARSED, repr=False)

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        raw_query: str,
        headers: dict[str, str],
        body: bytes,
        parsed: Any = UNPARSED,
    ) -> Request:
        query: dict[str, str] = {}
        if raw_query:
            for key, value in parse_qsl(raw_query, keep_blank_values=True):
                if key in query:
                    raise GraphError(400, "BadRequest", f"Query option '{key}' is specified more than once.")
                query[key] = value
        return cls(method.upper(), path, query, Headers(headers), body, raw_query, parsed)

    def json(self) -> Any:
        """The body as JSON; Graph answers 400 BadRequest to a body that is not JSON."""
        if not self.body:
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        if media_type(self.headers.get("content-type") or "") != "application/json":
            raise GraphError(415, "UnsupportedMediaType", "Content-Type must be application/json.")
        if self.parsed is not UNPARSED:
            return self.parsed
        try:
            return json_value(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GraphError(400, "BadRequest", f"Unable to read JSON request payload: {exc}") from None

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Expected an object.")
        return body

    def prefer(self) -> dict[str, str]:
        """The Prefer header as {name: value}; `return=minimal` -> {"return": "minimal"}."""
        return dict(_preferences(self.headers.get("prefer") or ""))


@functools.lru_cache(maxsize=64)
def media_type(content_type: str) -> str:
    """The media type of a Content-Type value, lower case: "application/json; charset=utf-8" -> "application/json"."""
    return content_type.split(";")[0].strip().lower()


@functools.lru_cache(maxsize=64)
def _preferences(header: str) -> tuple[tuple[str, str], ...]:
    """A Prefer header's (name, value) pairs, parsed once: clients send the same few on every request."""
    out: dict[str, str] = {}
    for part in header.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        out[name.strip().lower()] = value.strip().strip('"')
    return tuple(out.items())


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list -> JSON, bytes -> as is, str -> text/plain, None -> empty
    headers: dict[str, str] = field(default_factory=dict)

    def content_type(self) -> str | None:
        """The content type the body defaults to (None: no body)."""
        if self.body is None:
            return None
        if isinstance(self.body, bytes):
            return "application/octet-stream"
        if isinstance(self.body, str):
            return "text/plain; charset=utf-8"
        return JSON_CONTENT_TYPE

    def encode(self) -> tuple[bytes, str | None]:
        """The body bytes and the content type they default to."""
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            payload = self.body
        elif isinstance(self.body, str):
            payload = self.body.encode()
        else:
            payload = json_bytes(self.body)
        return payload, self.content_type()


def json_response(status: int, body: Any, **headers: str) -> Response:
    return Response(status, body, dict(headers))


class GraphError(Exception):
    """A documented Graph failure; the server renders it as Graph's error envelope."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_response(self, request_id: str, client_request_id: str | None) -> Response:
        inner: dict[str, str] = {"date": utc_now_iso(seconds_only=True), "request-id": request_id}
        if client_request_id:
            inner["client-request-id"] = client_request_id
        body = {"error": {"code": self.code, "message": self.message, "innerError": inner}}
        return Response(self.status, body, dict(self.headers))


def not_found(what: str) -> GraphError:
    return GraphError(404, "ErrorItemNotFound", f"The specified object was not found in the store. ({what})")


def new_request_id() -> str:
    return random_uuid()


def utc_now_iso(seconds_only: bool = False) -> str:
    """Graph's timestamp format: 2026-11-26T03:20:28Z (directory) or with 7 fraction digits (Outlook)."""
    micros = time.time_ns() // 1000
    seconds, fraction = divmod(micros, 1_000_000)
    if seconds_only:
        return _utc_second(seconds) + "Z"
    return f"{_utc_second(seconds)}.{fraction:06d}0Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    """The date and time part, formatted once per second (every write stamps one)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")

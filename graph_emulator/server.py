"""The emulator's HTTPS server: TLS from a local CA, HTTP/1.1 keep-alive, one thread per connection.

Paths it answers:
    /v1.0/...                          Graph (pipeline.py: token, roles, scope, throttle, faults, log)
    /{tenant}/v2.0/.well-known/openid-configuration
    /{tenant}/oauth2/v2.0/token        Entra (identity.py)
    /_emulator/...                     control surface (control.py)

The TLS handshake runs in the connection's own thread, so a slow client never holds up the others, and
each response goes out in one write. That keeps a single core above 500 requests/s over keep-alive TLS
(bench/emulator_throughput.py prints the number).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import logging
import os
import re
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from .control import PREFIX as CONTROL_PREFIX
from .control import Control
from .faults import Faults
from .identity import Identity
from .pipeline import BATCH_WORKERS, ConnectionDropped, Pipeline
from .protocol import GraphError, Response, new_request_id
from .requestlog import RequestLog
from .tenant import Tenant
from .throttle import Throttle

logger = logging.getLogger("graph_emulator")

GRAPH_PREFIX = "/v1.0"
# Modules whose import registers their routes on routing.ROUTES; the server needs nothing else from them.
ROUTE_MODULES = ("directory_routes", "mailbox_routes", "subscription_routes", "batch")
MAX_BODY = 16 * 1024 * 1024  # Graph refuses bodies this large anyway (photos: 4 MB, batch: 4 MB)
SWITCH_INTERVAL = 0.05  # seconds; see _SwitchInterval


def load_routes() -> None:
    for name in ROUTE_MODULES:
        importlib.import_module(f"{__package__}.{name}")


class GraphServer:
    """HTTPS on 127.0.0.1 for one tenant; `start()` serves from a background thread until `stop()`."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        port: int = 0,
        seed: int = 0,
        latency_ms: float = 0,
        batch_workers: int = BATCH_WORKERS,
    ) -> None:
        if batch_workers < 1:  # before the port and the work directory are taken
            raise ValueError(f"batch_workers must be at least 1, got {batch_workers}")
        load_routes()
        self.tenant = tenant
        self.ca = trustme.CA(organization_name="galsync Graph emulator")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.httpd = _HTTPServer(("127.0.0.1", port), _Handler, context, self)  # fails early if port is taken
        self.port: int = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="graph-emulator-"))
        self.ca_file = str(self.workdir / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

        self.identity = Identity(tenant, self.url)
        self.log = RequestLog(resolve_mailbox=self._resolve_mailbox)
        self.throttle = Throttle()
        self.faults = Faults(seed=seed, resolve_mailbox=self._resolve_mailbox)
        if latency_ms:
            self.faults.configure(latency_ms=latency_ms)
        self.pipeline = Pipeline(
            tenant,
            self.identity,
            self.throttle,
            self.faults,
            self.log,
            seed=seed,
            base_url=self.url + GRAPH_PREFIX,
            batch_workers=batch_workers,
        )
        self.control = Control(tenant, self.throttle, self.faults, self.log, self.issue_server_cert)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        _switch_interval.enter()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="graph-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
            _switch_interval.leave()
        self.httpd.close_connections()
        self.httpd.server_close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def issue_server_cert(self, *hostnames: str) -> tuple[str, str]:
        """A server certificate from the emulator's CA, e.g. for a webhook receiver in a test."""
        names = hostnames or ("127.0.0.1", "localhost")
        leaf = self.ca.issue_cert(*names)
        stem = self.workdir / f"server-{os.urandom(4).hex()}"
        cert_path, key_path = f"{stem}.crt", f"{stem}.key"
        with open(cert_path, "wb") as fh:
            for blob in leaf.cert_chain_pems:
                fh.write(blob.bytes())
        leaf.private_key_pem.write_to_path(key_path)
        return cert_path, key_path

    # --- request routing ----------------------------------------------------------------------------

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """The response for one HTTP request (raises ConnectionDropped when a fault drops it)."""
        path = target.split("?", 1)[0]
        if path == GRAPH_PREFIX or path.startswith(GRAPH_PREFIX + "/"):
            return self.pipeline.http(method, target[len(GRAPH_PREFIX) :] or "/", headers, body)
        if path.startswith(CONTROL_PREFIX + "/"):
            return self.control.handle(method, target, body)
        parts = path.strip("/").split("/")
        if method == "GET" and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.identity.openid_configuration(parts[0])
        if method == "POST" and parts[1:] == ["oauth2", "v2.0", "token"]:
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            return self.identity.token_endpoint(parts[0], content_type, body)
        return GraphError(404, "NotFound", f"No such endpoint: {path}").to_response(new_request_id(), None)

    def _resolve_mailbox(self, id_or_upn: str) -> str:
        return self.tenant.directory.resolve_user(id_or_upn)


class _SwitchInterval:
    """The interpreter's thread switch interval, raised to SWITCH_INTERVAL while any server runs.

    A hundred connection threads share one interpreter lock. At Python's default (5 ms) a thread that waits
    that long for it forces the running one off, often while that one holds the tenant lock, and the others
    then queue for both: in a benchmark's fill that doubled the context switches and cost about a tenth of
    the emulator's CPU. Request threads give the interpreter lock up at every socket read and latency sleep
    anyway, so a longer interval only spares them forced switches. Restored when the last server stops.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._servers = 0
        self._saved = sys.getswitchinterval()

    def enter(self) -> None:
        with self._lock:
            if self._servers == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(max(self._saved, self.seconds))
            self._servers += 1

    def leave(self) -> None:
        with self._lock:
            self._servers -= 1
            if self._servers == 0:
                sys.setswitchinterval(self._saved)


_switch_interval = _SwitchInterval(SWITCH_INTERVAL)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
        graph: GraphServer,
    ) -> None:
        self.ssl_context = context
        self.graph = graph
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); 127.0.0.1 needs none.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(sock)

    def close_connections(self) -> None:
        """Close idle keep-alive connections so their threads end with the server."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away mid-handshake or mid-request are normal for a test server.
        logger.debug("graph emulator: connection from %s ended with an error", client_address, exc_info=True)


class _RequestHeaders:
    """A request's header fields: `get` ignores case and finds the first, `items` keeps names as sent."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)


_FIELD = re.compile(r"[\x21-\x39\x3b-\x7e]*:")  # a field name, as the email package's parser takes one


def _read_headers(rfile: Any) -> _RequestHeaders:
    """The header block, with http.client's limits (line length, number of lines) and its errors.

    Fields are read as the email package reads them for http.server: the value is what follows the first
    ':' less leading blanks and the line end; a folded line continues the field before it; a line that is
    not a field ends the fields (the rest of the block is ignored).
    """
    fields: list[tuple[str, str]] = []
    ended = False
    count = 0
    while True:
        count += 1
        line = rfile.readline(http.client._MAXLINE + 1)
        if len(line) > http.client._MAXLINE:
            raise http.client.LineTooLong("header line")
        if count > http.client._MAXHEADERS:
            raise http.client.HTTPException(f"got more than {http.client._MAXHEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return _RequestHeaders(fields)
        if ended:
            continue
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + text)
        elif _FIELD.match(text):
            name, _, value = text.partition(":")
            fields.append((name, value.lstrip(" \t")))
        else:
            ended = True



class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphEmulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    wbufsize = 64 * 1024  # headers and body leave in one TLS record (flushed after each request)
    server: _HTTPServer

    def setup(self) -> None:
        raw: socket.socket = self.request
        raw.settimeout(self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = self.server.ssl_context.wrap_socket(raw, server_side=True)
        self.server.track(self.request, True)
        super().setup()

    def finish(self) -> None:
        self.server.track(self.request, False)
        with contextlib.suppress(OSError):
            super().finish()
        # Close the TLS socket now: wrap_socket detached the raw one that socketserver closes, so without this
        # a dropped connection stayed open until garbage collection and the client waited for its read timeout.
        with contextlib.suppress(OSError):
            self.request.close()

    def parse_request(self) -> bool:
        """http.server's own, except that the header block is read by `_read_headers`.

        http.server hands the header lines to the email package, whose parser (and whose every `get`) cost
        several percent of the emulator's CPU in a benchmark's fill. The request line is checked exactly as
        http.server checks it, with the same error answers.
        """
        self.command = None  # set in case of error on the first line
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:  # enough to determine the protocol version
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                base_version_number = version.split("/", 1)[1]
                parts = base_version_number.split(".")
                if len(parts) != 2 or any(not p.isdigit() or len(p) > 10 for p in parts):
                    raise ValueError
                version_number = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            if version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if version_number >= (2, 0):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({base_version_number})")
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")  # reduce to a single /
        try:
            self.headers = _read_headers(self.rfile)  # type: ignore[assignment]
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if expect == "100-continue" and self.protocol_version >= "HTTP/1.1" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass  # the request log is where requests are recorded

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._write(GraphError(400, "BadRequest", str(exc)).to_response(new_request_id(), None))
            return
        headers = dict(self.headers.items())
        try:
            response = self.server.graph.respond(self.command, self.path, headers, body)
        except ConnectionDropped:
            self.close_connection = True  # no response at all: the client sees the connection close
            return
        except Exception:  # a bug in the emulator still gets an answer, and a traceback in the log
            logger.exception("graph emulator: %s %s failed", self.command, self.path.split("?")[0])
            error = GraphError(500, "generalException", "An unspecified error has occurred.")
            response = error.to_response(new_request_id(), None)
        self._write(response)

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise ValueError(f"Invalid Content-Length header: {length_header!r}") from None
        if length < 0 or length > MAX_BODY:
            raise ValueError(f"Content-Length {length} is out of range.")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("The request body is too large.")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _write(self, response: Response) -> None:
        payload, content_type = response.encode()
        self.send_response(response.status)
        has_type = False
        for name, value in response.headers.items():
            has_type = has_type or name.lower() == "content-type"
            self.send_header(name, value)
        if content_type is not None and not has_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

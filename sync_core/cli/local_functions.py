"""The function app's notification path, on this machine: HTTPS webhook -> queue -> worker.

`galsync demo` shows a directory change reaching the phones "through the real webhook path". In Azure that
path is the Functions host: the HTTP trigger answers Graph and writes queue messages, queue triggers run them.
Here a small HTTPS server (certificate from the Graph emulator's CA, so the emulator trusts it) hands each
request to the same `Webhook` the HTTP trigger uses, and one worker thread runs the queued messages with the
same `run_source_message` / `run_push_message` the queue triggers use. Only the host is stood in for.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from sync_core.service.queue_work import run_push_message, run_source_message
from sync_core.service.runtime import Runtime
from sync_core.service.webhook import SAFE_HEADERS, Answer, Webhook

log = logging.getLogger("galsync.local")

MAX_BODY = 2 * 1024 * 1024


@dataclass(frozen=True)
class Processed:
    """One queue message the worker ran: which queue, when it finished, the error if it failed, and the
    Graph writes a push made."""

    queue: str
    finished: float
    error: str | None = None
    writes: int = 0


class LocalFunctions:
    """Serve /api/notifications and /api/lifecycle over HTTPS and run what they queue; use as a context manager."""

    def __init__(self, rt: Runtime, cert_file: str, key_file: str, host: str = "127.0.0.1") -> None:
        self.rt = rt
        self.webhook = Webhook(rt.store, rt.settings.tenant_id, rt.config.names)
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.processed: list[Processed] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.base_url = f"https://{host}:{self._server.server_address[1]}"
        self._threads = [threading.Thread(target=self._server.serve_forever, name="local-webhook", daemon=True),
                         threading.Thread(target=self._work, name="local-queue-worker", daemon=True)]

    def __enter__(self) -> LocalFunctions:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=30)

    # --- the HTTP side -------------------------------------------------------------------------------------

    def answer(self, path: str, params: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Answer:
        """What the function app's HTTP trigger answers (the host's function-key check included)."""
        with self._lock:
            self.requests += 1
        key = self.rt.settings.webhook_key
        if not hmac.compare_digest(params.get("code", "").encode(), key.encode()):
            return Answer(401, "function key missing or wrong\n")
        if path == "/api/notifications":
            answer = self.webhook.notifications(params, headers, body)
        elif path == "/api/lifecycle":
            answer = self.webhook.lifecycle(params, headers, body)
        else:
            return Answer(404, "no such function\n")
        for message in answer.messages:
            self._enqueue(message)
        return answer

    # --- the queue side ------------------------------------------------------------------------------------

    def _enqueue(self, message: str) -> None:
        with self._lock:
            self._busy += 1
        self.queue.put(message)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued message (and what it queued) has run; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _work(self) -> None:
        while True:
            body = self.queue.get()
            if body is None:
                return
            error = None
            try:
                outcome = run_source_message(self.rt, body)
                for push in outcome.push:
                    self._run_push(push)
                for resync in outcome.resync:
                    self._enqueue(resync)
            except Exception as exc:  # the host would retry; here the failure is recorded and shown
                error = f"{type(exc).__name__}: {exc}"
                log.error("sync-source message failed: %s", error)
            with self._idle:
                self.processed.append(Processed("sync-source", time.monotonic(), error))
                self._busy -= 1
                self._idle.notify_all()

    def _run_push(self, body: str | None) -> None:
        """A push-targets message, then each message it hands the rest of its work on to (as the queue would)."""
        while body is not None:
            error, writes = None, 0
            try:
                part = run_push_message(self.rt, body)
                writes = part.report.writes if part is not None else 0
                body = json.dumps(part.rest.to_json()) if part is not None and part.rest is not None else None
            except Exception as exc:
                error, body = f"{type(exc).__name__}: {exc}", None
                log.error("push-targets message failed: %s", error)
            with self._lock:
                self.processed.append(Processed("push-targets", time.monotonic(), error, writes))


def _handler(functions: LocalFunctions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(Answer(413, "request too large\n"))
                return
            body = self.rfile.read(length) if length else b""
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            headers = {k: v for k, v in self.headers.items()}
            self._send(functions.answer(parts.path, params, headers, body))

        def _send(self, answer: Answer) -> None:
            data = answer.body.encode("utf-8")
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in SAFE_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
            log.debug("local webhook: " + format, *args)

    return Handler

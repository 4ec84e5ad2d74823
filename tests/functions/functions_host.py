"""A stand-in for the Azure Functions host: the one part of the stack that cannot run here.

Everything around it is real: function_app.py's functions are found through `app.get_functions()` and called
as the Python worker calls them (`get_user_function()`, real `func.HttpRequest`, `func.QueueMessage`,
`func.TimerRequest`, and an `Out` per output binding); output bindings are written to real Azurite queues
(azure-storage-queue) with host.json's message encoding; the two HTTP functions are served over HTTPS with a
certificate from the Graph emulator's CA, with the function key checked as `authLevel: function` does.

Where it differs from the host, on purpose: it processes one message at a time (`drain`), and a failed
message becomes visible again at once instead of after host.json's visibilityTimeout, so tests do not wait.
Like the host, it moves a message to `<queue>-poison` once it has failed maxDequeueCount times.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage as WorkerQueueMessage  # what the worker builds, with dequeue_count
from azure.functions.timer import TimerRequest as WorkerTimerRequest
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    QueueClient,
    QueueMessage,
    TextBase64EncodePolicy,
)

ROOT = Path(__file__).resolve().parents[2]
HOST_JSON = json.loads((ROOT / "host.json").read_text())
QUEUES = HOST_JSON["extensions"]["queues"]
MAX_DEQUEUE = int(QUEUES["maxDequeueCount"])
assert QUEUES.get("messageEncoding", "base64") == "base64", "this stand-in writes base64 messages, as configured"
MAX_HTTP_BODY = 4 * 1024 * 1024  # the real host allows 100 MB; far above galsync's own 1 MB limit

T = TypeVar("T")


class Out(func.Out[T], Generic[T]):
    """The value of one output binding, as the worker passes it in."""

    def __init__(self) -> None:
        self.value: T | None = None

    def set(self, val: T) -> None:
        self.value = val

    def get(self) -> T:
        return self.value  # type: ignore[return-value]


@dataclass(frozen=True)
class Indexed:
    """One function as the host indexes it: its trigger and its queue output bindings."""

    name: str
    call: Callable[..., Any]
    trigger_type: str
    trigger_arg: str
    trigger: Any
    outputs: dict[str, str]  # argument name -> queue name


@cache
def indexed_functions() -> dict[str, Indexed]:
    """function_app's functions, indexed once per process (a second get_functions() raises ValueError)."""
    import function_app

    out: dict[str, Indexed] = {}
    for function in function_app.app.get_functions():
        name, trigger = str(function.get_function_name()), function.get_trigger()
        assert trigger is not None, f"function {name} has no trigger"
        outputs = {b.name: str(getattr(b, "queue_name", "")) for b in function.get_bindings() if b.type == "queue"}
        out[name] = Indexed(name, function.get_user_function(), str(trigger.type), trigger.name, trigger, outputs)
    return out


@dataclass
class Delivery:
    """One queue message handed to a function, and how it went."""

    queue: str
    body: str
    function: str
    error: BaseException | None = None


@dataclass
class FunctionsHost:
    """Invokes function_app's functions and moves messages between them through Azurite queues.

    Queue names get a per-host prefix, as if each test had its own storage account.
    """

    connection_string: str
    function_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}-")
    deliveries: list[Delivery] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (queue, body) of every message written
    _clients: dict[str, QueueClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- queues ------------------------------------------------------------------------------------------

    def queue(self, name: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = QueueClient.from_connection_string(
                    self.connection_string, self.prefix + name,
                    message_encode_policy=TextBase64EncodePolicy(),
                    message_decode_policy=BinaryBase64DecodePolicy())
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                self._clients[name] = client
            return client

    def send(self, queue: str, body: str) -> None:
        self.queue(queue).send_message(body)
        with self._lock:
            self.sent.append((queue, body))

    def peek(self, queue: str) -> list[str]:
        """Bodies of the messages waiting in `queue` (up to 32), without taking them."""
        return [bytes(m.content).decode() for m in self.queue(queue).peek_messages(max_messages=32)]

    def count(self, queue: str) -> int:
        return int(self.queue(queue).get_queue_properties().approximate_message_count or 0)

    def _write_outputs(self, fn: Indexed, outs: dict[str, Out[Any]]) -> None:
        for arg, out in outs.items():
            value = out.value
            if value is None:
                continue
            for body in value if isinstance(value, list) else [value]:
                self.send(fn.outputs[arg], body)

    # --- invoking ----------------------------------------------------------------------------------------

    def http(self, function: str, method: str, url: str, headers: dict[str, str] | None = None,
             body: bytes = b"") -> func.HttpResponse:
        """Invoke an HTTP function with a real func.HttpRequest; its queue outputs go to Azurite."""
        fn = indexed_functions()[function]
        params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        request = func.HttpRequest(method, url, headers=headers or {}, params=params, body=body)
        outs = {arg: Out[Any]() for arg in fn.outputs}
        response = fn.call(**{fn.trigger_arg: request}, **outs)
        self._write_outputs(fn, outs)
        return response

    def timer(self, function: str, past_due: bool = False) -> None:
        fn = indexed_functions()[function]
        outs = {arg: Out[Any]() for arg in fn.outputs}
        fn.call(**{fn.trigger_arg: WorkerTimerRequest(past_due=past_due)}, **outs)
        self._write_outputs(fn, outs)

    def deliver(self, function: str, message: QueueMessage, queue: str) -> None:
        """Hand one Azurite message to a queue function as the host would; raise what the function raised."""
        fn = indexed_functions()[function]
        body = bytes(message.content)
        queue_message = WorkerQueueMessage(
            id=message.id, body=body, pop_receipt=message.pop_receipt, dequeue_count=message.dequeue_count,
            insertion_time=message.inserted_on, expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on)
        outs = {arg: Out[Any]() for arg in fn.outputs}
        record = Delivery(queue, body.decode(errors="replace"), function)
        self.deliveries.append(record)
        try:
            fn.call(**{fn.trigger_arg: queue_message}, **outs)
        except BaseException as error:
            record.error = error
            raise
        self._write_outputs(fn, outs)  # outputs are written only when the function succeeds

    def drain(self, max_rounds: int = 200) -> int:
        """Run every queue function until all their queues are empty; return how many messages were handed over."""
        triggers = {fn.trigger.queue_name: fn.name for fn in indexed_functions().values()
                    if fn.trigger_type == "queueTrigger"}
        handed = 0
        for _ in range(max_rounds):
            progressed = False
            for queue, function in triggers.items():
                for message in self._receive(queue):
                    progressed = True
                    handed += 1
                    self._process(queue, function, message)
            if not progressed:
                return handed
        raise AssertionError(f"queues still not empty after {max_rounds} rounds")

    def process_one(self, queue: str) -> str:
        """Hand the next message of `queue` to its function (as drain does, but one); return its body."""
        function = next(fn.name for fn in indexed_functions().values()
                        if fn.trigger_type == "queueTrigger" and fn.trigger.queue_name == queue)
        messages = list(self.queue(queue).receive_messages(max_messages=1, visibility_timeout=60))
        assert messages, f"queue {queue} is empty"
        self._process(queue, function, messages[0])
        return bytes(messages[0].content).decode()

    def _receive(self, queue: str) -> Iterator[QueueMessage]:
        return iter(list(self.queue(queue).receive_messages(max_messages=int(QUEUES["batchSize"]),
                                                             visibility_timeout=60)))

    def _process(self, queue: str, function: str, message: QueueMessage) -> None:
        client = self.queue(queue)
        try:
            self.deliver(function, message, queue)
        except Exception:
            if self.deliveries[-1].error is None:
                raise  # the stand-in itself failed: that is a bug here, not a failed invocation
            if (message.dequeue_count or 0) >= MAX_DEQUEUE:
                self.send(queue + "-poison", bytes(message.content).decode())
                client.delete_message(message)
            else:  # the host would wait visibilityTimeout; a test need not
                client.update_message(message, visibility_timeout=0, content=bytes(message.content).decode())
            return
        client.delete_message(message)

    def close(self) -> None:
        for client in self._clients.values():
            try:
                client.delete_queue()
            finally:
                client.close()


class HttpsFront:
    """Serves the HTTP functions at https://127.0.0.1:PORT/api/<route>, checking the function key."""

    def __init__(self, host: FunctionsHost, cert: str, key: str) -> None:
        routes = {fn.trigger.route: fn for fn in indexed_functions().values() if fn.trigger_type == "httpTrigger"}
        front = self
        self.host = host
        self.answers: list[tuple[str, int, float]] = []  # (route, status, seconds)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self._handle("POST")

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def _handle(self, method: str) -> None:
                started = time.perf_counter()
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_HTTP_BODY:
                    self._reply(413, b"request too large", {})
                    return
                body = self.rfile.read(length)
                route = url.path.removeprefix("/api/")
                fn = routes.get(route)
                if fn is None or not url.path.startswith("/api/"):
                    self._reply(404, b"", {})
                    return
                if method not in [str(m.value) if hasattr(m, "value") else str(m) for m in fn.trigger.methods]:
                    self._reply(405, b"", {})
                    return
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                if query.get("code", self.headers.get("x-functions-key")) != host.function_key:
                    self._reply(401, b"", {})  # authLevel function: the host answers before any code runs
                    return
                headers = {k: v for k, v in self.headers.items()}
                try:
                    response = host.http(fn.name, method, f"https://127.0.0.1{self.path}", headers, body)
                except Exception:
                    self._reply(500, b"", {})  # an unhandled exception in a function is the host's 500
                    front.answers.append((route, 500, time.perf_counter() - started))
                    return
                self._reply(response.status_code, response.get_body(), dict(response.headers))
                front.answers.append((route, response.status_code, time.perf_counter() - started))

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

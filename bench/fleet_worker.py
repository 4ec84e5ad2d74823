"""One worker of the fleet bench: a stand-in for one Azure Functions instance running function_app.py.

The Functions host cannot be installed here, so this process does for the queue triggers what the host and
its Python worker do, following the committed host.json (`extensions.queues`):

- each queue-triggered function found by `app.get_functions()` (once per process) gets a listener on its
  Azurite queue; it takes up to `batchSize` messages at a time and takes more whenever the messages in hand
  drop to `newBatchThreshold` or fewer, so at most batchSize + newBatchThreshold run at once per function;
- a message taken is held invisible for 10 minutes, renewed while its function runs (the WebJobs queue
  listener's own visibility, not host.json's); an empty queue is polled again after a randomized back-off
  that doubles from 100 ms up to `maxPollingInterval`;
- a function that returns has its `func.Out` values written to their queues, then its message is deleted;
- a function that raises leaves its message to come back after `visibilityTimeout`, or, once it has been
  taken `maxDequeueCount` times, moves it to `<queue>-poison` (where the poison trigger picks it up);
- messages are base64 text (`messageEncoding`), as the host writes and reads them.

Messages are handed over generically: whatever the function app's queue triggers receive is run, whatever
their outputs hold is sent on. The worker runs functions on a thread pool, as the Python worker does
(PYTHON_THREADPOOL_THREAD_COUNT caps it when set). Timers and HTTP functions are not run.

    python -m bench.fleet_worker --queue-prefix P --journal FILE --worker N

with the app settings in the environment (AzureWebJobsStorage, GALSYNC_*). It prints one line when it is
ready, serves until its stdin closes, then lets the invocations in hand finish. Each finished invocation is
one JSON line in the journal: queue, timing, outcome, and the run records (ids and counts) that galsync's
telemetry logged in the invocation's thread, from which the bench reads each message's writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage as WorkerQueueMessage
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, QueueMessage, TextBase64EncodePolicy

from tests.functions.functions_host import Indexed, Out, indexed_functions

ROOT = Path(__file__).resolve().parents[1]
POISON_SUFFIX = "-poison"  # the host's poison queue name: the trigger's queue name and this
HELD_SECONDS = 600  # the WebJobs listener takes a message for 10 minutes and renews it at half of that
RENEW_AFTER = HELD_SECONDS / 2
MIN_POLL_SECONDS = 0.1
RUN_RECORD_PREFIX = "galsync.run "  # sync_core/service/telemetry.py: RUN_RECORD and its JSON


@dataclass(frozen=True)
class HostQueues:
    """host.json's `extensions.queues`: how the host takes, retries and gives up on messages."""

    batch_size: int
    new_batch_threshold: int
    visibility_timeout: float  # seconds before a failed message is seen again
    max_dequeue_count: int
    max_polling_interval: float

    @classmethod
    def from_host_json(cls, path: Path = ROOT / "host.json") -> HostQueues:
        queues = json.loads(path.read_text(encoding="utf-8"))["extensions"]["queues"]
        if queues.get("messageEncoding", "base64") != "base64":
            raise ValueError("host.json: this stand-in writes and reads base64 messages only")
        batch = int(queues.get("batchSize", 16))
        return cls(batch, int(queues.get("newBatchThreshold", batch // 2)),
                   _seconds(queues.get("visibilityTimeout", "00:00:00")), int(queues.get("maxDequeueCount", 5)),
                   _seconds(queues.get("maxPollingInterval", "00:01:00")))


def _seconds(span: str) -> float:
    """A host.json time span, hh:mm:ss(.fff)."""
    hours, minutes, seconds = span.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


class Queues:
    """This worker's clients of the fleet's queues (names carry the run's prefix, as a storage account would)."""

    def __init__(self, connection: str, prefix: str) -> None:
        self._connection, self._prefix = connection, prefix
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = QueueClient.from_connection_string(
                    self._connection, self._prefix + name, message_encode_policy=TextBase64EncodePolicy(),
                    message_decode_policy=BinaryBase64DecodePolicy())
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                self._clients[name] = client
            return client

    def delete_all(self) -> None:
        """Delete every queue these clients made or used (a bench run's queues do not outlive it)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                client.delete_queue()
            client.close()


class RunRecords(logging.Handler):
    """The run records galsync's telemetry logs, kept per thread: each invocation collects its own."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._by_thread: dict[int, list[dict[str, Any]]] = {}

    def start(self) -> None:
        self._by_thread[threading.get_ident()] = []

    def take(self) -> list[dict[str, Any]]:
        return self._by_thread.pop(threading.get_ident(), [])

    def emit(self, record: logging.LogRecord) -> None:
        found = self._by_thread.get(record.thread or 0)
        text = record.getMessage()
        if found is not None and text.startswith(RUN_RECORD_PREFIX):
            doc = json.loads(text[len(RUN_RECORD_PREFIX):])
            found.append({k: doc.get(k) for k in ("kind", "outcome", "counts", "run_id")})


@dataclass
class Held:
    """A message this worker holds invisible while its function runs."""

    client: QueueClient
    message: QueueMessage
    pop_receipt: str
    renewed: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def renew(self) -> None:
        with self.lock:
            receipt = self.client.update_message(self.message.id, self.pop_receipt, visibility_timeout=HELD_SECONDS)
            self.pop_receipt, self.renewed = str(receipt.pop_receipt), time.monotonic()

    def delete(self) -> None:
        with self.lock:
            self.client.delete_message(self.message.id, self.pop_receipt)

    def release(self, after: float) -> None:
        with self.lock:
            self.client.update_message(self.message.id, self.pop_receipt, visibility_timeout=int(after))


class Journal:
    """One JSON line per finished invocation, appended to this worker's file."""

    def __init__(self, path: Path, worker: int) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._worker = worker
        self._lock = threading.Lock()

    def write(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps({"worker": self._worker, **entry}, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class Listener:
    """One queue trigger: takes messages as the host does and runs its function on the pool."""

    def __init__(self, function: Indexed, queues: Queues, host: HostQueues, pool: ThreadPoolExecutor,
                 records: RunRecords, journal: Journal, held: dict[str, Held]) -> None:
        self.function, self.queues, self.host, self.pool = function, queues, host, pool
        self.records, self.journal, self.held = records, journal, held
        self.queue_name = str(function.trigger.queue_name)
        self._in_hand = 0
        self._changed = threading.Condition()

    def wake(self) -> None:
        """Let the listener see that it should stop, even while it waits for messages in hand to finish."""
        with self._changed:
            self._changed.notify_all()

    def listen(self, stop: threading.Event) -> None:
        delay = MIN_POLL_SECONDS
        client = self.queues(self.queue_name)
        while not stop.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._in_hand <= self.host.new_batch_threshold or stop.is_set())
            if stop.is_set():
                return
            taken = list(client.receive_messages(max_messages=self.host.batch_size, visibility_timeout=HELD_SECONDS))
            if not taken:
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.host.max_polling_interval)
                continue
            delay = MIN_POLL_SECONDS
            with self._changed:
                self._in_hand += len(taken)
            for message in taken:
                self.pool.submit(self._invoke, client, message)

    def _invoke(self, client: QueueClient, message: QueueMessage) -> None:
        held = Held(client, message, str(message.pop_receipt))
        self.held[message.id] = held
        started = time.time()
        outcome, error, sent = "ok", "", Counter[str]()
        self.records.start()
        try:
            outs = {arg: Out() for arg in self.function.outputs}
            body = bytes(message.content)
            try:
                self.function.call(**{self.function.trigger_arg: _worker_message(message, body)}, **outs)
            except Exception as failure:
                error = type(failure).__name__
                outcome = self._failed(held, body)
            else:
                for arg, out in outs.items():
                    for text in _values(out.value):
                        self.queues(self.function.outputs[arg]).send_message(text)
                        sent[self.function.outputs[arg]] += 1
                held.delete()
        except Exception as failure:  # the stand-in's own queue calls failed: the bench reports it
            outcome, error = "host_error", type(failure).__name__
        finally:
            runs = self.records.take()
            self.held.pop(message.id, None)
            with self._changed:
                self._in_hand -= 1
                self._changed.notify_all()
        self.journal.write({
            "queue": self.queue_name, "function": self.function.name, "message_id": message.id,
            "dequeue_count": message.dequeue_count, "started": started, "ended": time.time(),
            "outcome": outcome, "error": error, "sent": dict(sent), "runs": runs,
            "message": _shape(bytes(message.content)),
        })

    def _failed(self, held: Held, body: bytes) -> str:
        if (held.message.dequeue_count or 0) >= self.host.max_dequeue_count:
            self.queues(self.queue_name + POISON_SUFFIX).send_message(body.decode())
            held.delete()
            return "poisoned"
        held.release(self.host.visibility_timeout)
        return "retried"


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _worker_message(message: QueueMessage, body: bytes) -> WorkerQueueMessage:
    return WorkerQueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt,
                              dequeue_count=message.dequeue_count, insertion_time=message.inserted_on,
                              expiration_time=message.expires_on, time_next_visible=message.next_visible_on)


def _shape(body: bytes) -> dict[str, Any]:
    """What kind of message it was, by its `type` and how many mailboxes it names (ids only, no contents)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    mailboxes = doc.get("mailboxes")
    return {"type": doc.get("type"), "mailboxes": len(mailboxes) if isinstance(mailboxes, list) else None}


def queue_functions() -> list[Indexed]:
    """function_app's queue-triggered functions, indexed as the host stand-in of the tests indexes them."""
    return [f for f in indexed_functions().values() if f.trigger_type == "queueTrigger"]


def renew_held(held: dict[str, Held], stop: threading.Event) -> None:
    """Keep each message in hand invisible while its function runs, as the host's listener does."""
    while not stop.wait(5):
        for item in list(held.values()):
            if time.monotonic() - item.renewed >= RENEW_AFTER:
                with contextlib.suppress(Exception):  # the function may have just finished and deleted it
                    item.renew()


def serve(prefix: str, journal_path: Path, worker: int) -> None:
    host = HostQueues.from_host_json()
    functions = queue_functions()
    import function_app

    function_app.process.runtime()  # an instance that has started: settings read, state store open
    records = RunRecords()
    logging.getLogger("galsync.telemetry").addHandler(records)
    per_function = host.batch_size + host.new_batch_threshold
    threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or per_function * len(functions))
    queues = Queues(os.environ[function_app.STORAGE], prefix)  # the connection every binding names
    journal = Journal(journal_path, worker)
    stop, held = threading.Event(), dict[str, Held]()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="invocation") as pool:
        listeners = [Listener(f, queues, host, pool, records, journal, held) for f in functions]
        started = [threading.Thread(target=item.listen, args=(stop,), daemon=True) for item in listeners]
        started.append(threading.Thread(target=renew_held, args=(held, stop), daemon=True))
        for thread in started:
            thread.start()
        print(json.dumps({"ready": worker, "pid": os.getpid(), "functions": [f.name for f in functions],
                          "queues": [listener.queue_name for listener in listeners]}), flush=True)
        sys.stdin.read()  # serve until the bench closes our stdin (or dies)
        stop.set()
        for listener in listeners:
            listener.wake()
    journal.close()
    function_app.process.reset()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue-prefix", required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--worker", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.queue_prefix, args.journal, args.worker)


if __name__ == "__main__":
    main()

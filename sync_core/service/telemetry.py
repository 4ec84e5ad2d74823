"""One structured record per finished run (sync, push, reconcile, subscriptions), for alerts and the workbook.

How it reaches Azure Monitor: as one log line on the `galsync.telemetry` logger, `galsync.run {json}`. The
Functions host sends the worker's logs to Application Insights (`traces`), with the Entra authentication
the deployment already sets up, and the alert rules and the workbook (infra/monitoring/) parse the JSON
with KQL. No telemetry library runs in galsync's process: Microsoft's OpenTelemetry route for Python
functions (the Azure Monitor distro plus `telemetryMode` in host.json) is in preview, exports only some
trigger types, and would add a dependency tree and a second, self-managed Entra sign-in for ingestion.

Where runs come from: sync and reconcile record their runs in the state store (`record_run`); `RunTelemetry`
wraps the store and emits a record when a finished run is recorded, so the use cases need no edit. Push
and subscriptions runs are not recorded in the store (their reports reach the function app), and the
function app hands those to `emit_run`.

What a record holds: ids and counts only (I7): profile, run id, kind, outcome, counts, duration, the ids of
failing mailboxes (directory GUIDs from the profile's failing-target documents and the run's error text,
never names or addresses), and for a run that recorded its start, the Graph client's throttling counters
during the run (process-wide: runs that overlap in one worker share them). A push of a sync that served a
change notification carries the notification's arrival (`notified_at`); the push that finished last among
its sync's pushes carries the sync's propagation time (`propagation_ms`, propagation.py).

Beside it, each subscriptions run emits one `galsync.subscription {json}` record per Graph subscription
galsync holds after the run: its id, the kind of resource (never the resource itself, which names a group
or a mailbox), its expiry and its profiles. The workbook shows each profile's soonest expiry from them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sync_core.core.records import Run
from sync_core.state.base import StateStore

from . import failing_targets
from .status import DAMAGED, subscriptions

log = logging.getLogger("galsync.telemetry")

# The record's name: the alert rules and the workbook find records by it (tests keep them in step).
RUN_RECORD = "galsync.run"
# The fields of a record; every query may use these and no others.
RECORD_FIELDS = ("profile", "run_id", "kind", "outcome", "counts", "duration_ms", "failing_mailboxes",
                 "graph_throttles", "graph_retry_wait_ms", "graph_requests", "notified_at", "propagation_ms")
# One record per subscription after a subscriptions run, and its fields.
SUBSCRIPTION_RECORD = "galsync.subscription"
SUBSCRIPTION_FIELDS = ("run_id", "subscription_id", "resource_kind", "expires_at", "profiles")
RESOURCE_KINDS = ("users", "groups", "group", "mailbox-contacts", "other")
RUN_KINDS = ("sync", "push", "reconcile", "subscriptions")
OUTCOMES = ("ok", "partial", "failed")
# Graph client counters (GraphStats) reported per run, and the record fields they become.
GRAPH_COUNTERS = {"throttles": "graph_throttles", "retry_wait_ms": "graph_retry_wait_ms",
                  "http_requests": "graph_requests"}

# A directory object id where an error entry names its mailbox: at the start ("<id> <key>: ...", the
# executor) or after "mailbox " (reconcile). Ids inside source keys ("user:<id>") are not mailboxes.
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_MAILBOX_IN_ERROR = re.compile(rf"(?:^|;\s*|\bmailbox\s+)({_GUID})(?![\w-])")


def failing_mailboxes(error: str | None) -> list[str]:
    """The mailbox ids an error text names, each once, in order; nothing else of the text."""
    return list(dict.fromkeys(m.lower() for m in _MAILBOX_IN_ERROR.findall(error or "")))


def run_record(run: Run, graph: Mapping[str, int] | None = None, failing: Sequence[str] = (), *,
               notified_at: str | None = None, propagation_ms: int | None = None) -> dict[str, Any]:
    """The record of a finished run (its `finished_at` set); `failing`: the ids of the profile's failing target
    mailboxes, beside those its error text names (a failing target's line names it by address); only
    directory ids are kept, never an address. `notified_at`, `propagation_ms`: a push's (see the module doc)."""
    ids = [*failing_mailboxes(run.error), *(m.lower() for m in failing if re.fullmatch(_GUID, m))]
    record: dict[str, Any] = {
        "profile": run.profile, "run_id": run.run_id, "kind": run.kind, "outcome": run.outcome,
        "counts": {k: int(v) for k, v in sorted(run.counts.items())},
        "duration_ms": _duration_ms(run.started_at, run.finished_at),
        "failing_mailboxes": list(dict.fromkeys(ids)),
        "notified_at": notified_at, "propagation_ms": propagation_ms,
    }
    # Every record has every field: null where a run did not record its start (its Graph counters unknown).
    record.update({field: None if graph is None else int(graph.get(counter, 0))
                   for counter, field in GRAPH_COUNTERS.items()})
    return record


def emit_run(run: Run, graph: Mapping[str, int] | None = None, failing: Sequence[str] = (), *,
             notified_at: str | None = None, propagation_ms: int | None = None) -> None:
    """Log the run's record at INFO (see the module doc for where it goes)."""
    record = run_record(run, graph, failing, notified_at=notified_at, propagation_ms=propagation_ms)
    log.info("%s %s", RUN_RECORD, json.dumps(record, separators=(",", ":"), sort_keys=True))


def resource_kind(resource: str) -> str:
    """What a subscription watches, without the ids in its resource path (RESOURCE_KINDS)."""
    parts = resource.strip("/").lower().split("/")
    if parts in (["users"], ["groups"]):
        return parts[0]
    if len(parts) == 2 and parts[0] == "groups":
        return "group"
    if len(parts) == 3 and parts[0] == "users" and parts[2] == "contacts":
        return "mailbox-contacts"
    return "other"


def emit_subscriptions(store: StateStore, run_id: str) -> int:
    """Log one subscription record per subscription recorded in `store` (a record that cannot be read has no
    expiry to show and is left out: `galsync status` lists it); how many were logged."""
    logged = 0
    for sub in subscriptions(store):
        if sub.resource == DAMAGED:
            continue
        record = {"run_id": run_id, "subscription_id": sub.subscription_id,
                  "resource_kind": resource_kind(sub.resource), "expires_at": sub.expires_at,
                  "profiles": list(sub.profiles)}
        log.info("%s %s", SUBSCRIPTION_RECORD, json.dumps(record, separators=(",", ":"), sort_keys=True))
        logged += 1
    return logged


def _duration_ms(started_at: str, finished_at: str | None) -> int | None:
    if not finished_at:
        return None
    try:
        start = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


class RunTelemetry:
    """A state store that emits a run record whenever a finished run is recorded; otherwise the store itself.

    `graph` reads the Graph client's counters; their change between a run's start record and its finish
    record goes into the record. Every other call goes to the wrapped store unchanged.
    """

    def __init__(self, store: StateStore, graph: Callable[[], Mapping[str, int]] | None = None) -> None:
        self._store = store
        self._graph = graph
        self._lock = threading.Lock()
        self._started: dict[str, Mapping[str, int]] = {}

    def record_run(self, run: Run) -> None:
        self._store.record_run(run)
        try:
            self._observe(run)
        except Exception:  # telemetry never fails a run
            log.warning("no telemetry record for run %s", run.run_id, exc_info=True)

    def _observe(self, run: Run) -> None:
        if run.finished_at is None:
            if self._graph is not None:
                counters = self._graph()
                with self._lock:
                    self._started[run.run_id] = counters
            return
        with self._lock:
            before = self._started.pop(run.run_id, None)
        graph = None
        if before is not None and self._graph is not None:
            after = self._graph()
            graph = {k: after.get(k, 0) - before.get(k, 0) for k in GRAPH_COUNTERS}
        emit_run(run, graph, sorted(failing_targets.load(self._store, run.profile)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __enter__(self) -> RunTelemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._store.close()


StateStore.register(RunTelemetry)


def with_run_telemetry(store: StateStore, graph: Callable[[], Mapping[str, int]] | None = None) -> StateStore:
    """`store`, emitting a run record for each finished run recorded in it."""
    return cast(StateStore, RunTelemetry(store, graph))

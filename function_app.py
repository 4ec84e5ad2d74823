"""galsync's Azure Functions triggers (Python v2 programming model). Triggers only: each calls the service layer.

HTTP (function key required): /api/notifications and /api/lifecycle, where Graph posts change notifications
and lifecycle events; both only enqueue (sync_core/service/webhook.py). Queues: sync-source (sync, reconcile,
lifecycle) fans out to push-targets (a sync's pushes) and reconcile-targets (a reconcile's groups of targets,
sync_core/service/reconcile_groups.py); a message that fails maxDequeueCount times lands in `<queue>-poison`,
whose trigger records it for `galsync status`. Timers: the safety-net sync, the nightly reconcile, and the
subscriptions run, on the schedules the app settings name; and every 20 seconds the stale-pending sweep,
which sends again the sync of a profile whose worker died with a notified change still pending (a change
then waits about a lease ttl, not for the safety-net sync). Each finished run leaves one telemetry record
(sync_core/service/telemetry.py): sync and reconcile through the state store, push and subscriptions here,
and a subscriptions run one record per subscription (its expiry).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

import azure.functions as func

from sync_core.core.records import Run
from sync_core.service import poison, queue_work, telemetry
from sync_core.service.process import Process
from sync_core.service.queue_messages import (
    PUSH_TARGETS_POISON_QUEUE,
    PUSH_TARGETS_QUEUE,
    RECONCILE_TARGETS_POISON_QUEUE,
    RECONCILE_TARGETS_QUEUE,
    SYNC_SOURCE_POISON_QUEUE,
    SYNC_SOURCE_QUEUE,
    BadMessage,
    parse_push_message,
)
from sync_core.service.runtime import Runtime, new_run_id
from sync_core.service.webhook import SAFE_HEADERS, Answer

STORAGE = "AzureWebJobsStorage"  # the host's storage account (identity-based in Azure, Azurite locally)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
process = Process(os.environ)
log = logging.getLogger("galsync.functions")


@app.function_name("notifications")
@app.route(route="notifications", methods=["POST"])
@app.queue_output(arg_name="queued", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
def notifications(req: func.HttpRequest, queued: func.Out[list[str]]) -> func.HttpResponse:
    return _respond(req, queued, lifecycle=False)


@app.function_name("lifecycle")
@app.route(route="lifecycle", methods=["POST"])
@app.queue_output(arg_name="queued", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
def lifecycle(req: func.HttpRequest, queued: func.Out[list[str]]) -> func.HttpResponse:
    return _respond(req, queued, lifecycle=True)


@app.function_name("sync_source")
@app.queue_trigger(arg_name="msg", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
@app.queue_output(arg_name="push", queue_name=PUSH_TARGETS_QUEUE, connection=STORAGE)
@app.queue_output(arg_name="resync", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
@app.queue_output(arg_name="reconcile", queue_name=RECONCILE_TARGETS_QUEUE, connection=STORAGE)
def sync_source(msg: func.QueueMessage, push: func.Out[list[str]], resync: func.Out[list[str]],
                reconcile: func.Out[list[str]]) -> None:
    outcome = queue_work.run_source_message(process.runtime(), msg.get_body(), message_id=msg.id or "",
                                            dequeue_count=msg.dequeue_count or 0)
    if outcome.push:
        push.set(list(outcome.push))
    if outcome.resync:
        resync.set(list(outcome.resync))
    if outcome.reconcile:
        reconcile.set(list(outcome.reconcile))


@app.function_name("push_targets")
@app.queue_trigger(arg_name="msg", queue_name=PUSH_TARGETS_QUEUE, connection=STORAGE)
@app.queue_output(arg_name="rest", queue_name=PUSH_TARGETS_QUEUE, connection=STORAGE)
def push_targets(msg: func.QueueMessage, rest: func.Out[str]) -> None:
    rt = process.runtime()
    body = msg.get_body()
    started, before = rt.now_iso(), _graph_counters(rt)
    try:
        part = queue_work.run_push_message(rt, body, message_id=msg.id or "", dequeue_count=msg.dequeue_count or 0)
    except Exception as error:
        _push_telemetry(rt, body, started, before, "failed", {}, str(error))
        raise
    if part is not None:
        report = part.report
        _push_telemetry(rt, body, started, before, "partial" if report.counts["failed"] else "ok",
                        dict(report.counts), "; ".join(report.errors[:5]), report.propagation_ms)
        if part.rest is not None:  # the message's writes are done; the next message does the rest
            rest.set(json.dumps(part.rest.to_json()))


@app.function_name("reconcile_targets")
@app.queue_trigger(arg_name="msg", queue_name=RECONCILE_TARGETS_QUEUE, connection=STORAGE)
def reconcile_targets(msg: func.QueueMessage) -> None:
    queue_work.run_reconcile_group_message(process.runtime(), msg.get_body(), message_id=msg.id or "",
                                           dequeue_count=msg.dequeue_count or 0)


@app.function_name("sync_source_poison")
@app.queue_trigger(arg_name="msg", queue_name=SYNC_SOURCE_POISON_QUEUE, connection=STORAGE)
def sync_source_poison(msg: func.QueueMessage) -> None:
    poison.record_from_poison_queue(process.runtime().store, SYNC_SOURCE_POISON_QUEUE, msg.id or "", msg.get_body())


@app.function_name("push_targets_poison")
@app.queue_trigger(arg_name="msg", queue_name=PUSH_TARGETS_POISON_QUEUE, connection=STORAGE)
def push_targets_poison(msg: func.QueueMessage) -> None:
    poison.record_from_poison_queue(process.runtime().store, PUSH_TARGETS_POISON_QUEUE, msg.id or "",
                                    msg.get_body())


@app.function_name("reconcile_targets_poison")
@app.queue_trigger(arg_name="msg", queue_name=RECONCILE_TARGETS_POISON_QUEUE, connection=STORAGE)
def reconcile_targets_poison(msg: func.QueueMessage) -> None:
    queue_work.record_reconcile_poison(process.runtime(), msg.get_body(), message_id=msg.id or "")


@app.function_name("sync_timer")
@app.timer_trigger(arg_name="timer", schedule="%GALSYNC_SYNC_SCHEDULE%")
@app.queue_output(arg_name="queued", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
def sync_timer(timer: func.TimerRequest, queued: func.Out[list[str]]) -> None:
    queued.set(queue_work.scheduled_syncs(process.runtime()))


@app.function_name("stale_pending_timer")
@app.timer_trigger(arg_name="timer", schedule=queue_work.STALE_PENDING_SCHEDULE)
@app.queue_output(arg_name="queued", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
def stale_pending_timer(timer: func.TimerRequest, queued: func.Out[list[str]]) -> None:
    messages = queue_work.stale_pending_syncs(process.runtime())
    if messages:
        queued.set(messages)


@app.function_name("reconcile_timer")
@app.timer_trigger(arg_name="timer", schedule="%GALSYNC_RECONCILE_SCHEDULE%")
@app.queue_output(arg_name="queued", queue_name=SYNC_SOURCE_QUEUE, connection=STORAGE)
def reconcile_timer(timer: func.TimerRequest, queued: func.Out[list[str]]) -> None:
    queued.set(queue_work.scheduled_reconciles(process.runtime()))


@app.function_name("subscriptions_timer")
@app.timer_trigger(arg_name="timer", schedule="%GALSYNC_SUBSCRIPTIONS_SCHEDULE%")
def subscriptions_timer(timer: func.TimerRequest) -> None:
    rt = process.runtime()
    started, before = rt.now_iso(), _graph_counters(rt)
    run_id = new_run_id()
    try:
        report = queue_work.run_subscriptions(rt)
    except Exception as error:
        _telemetry(rt, Run(run_id, "", "subscriptions", started, rt.now_iso(), "failed", {}, str(error)), before)
        _subscription_telemetry(rt, run_id)
        raise
    for resource, reason in report.failed:
        log.error("subscription for %s not in place: %s", resource, reason)
    if not report.busy:
        _telemetry(rt, Run(run_id, "", "subscriptions", started, rt.now_iso(),
                           "partial" if report.failed else "ok", report.counts()), before)
        _subscription_telemetry(rt, run_id)


def _respond(req: func.HttpRequest, queued: func.Out[list[str]], *, lifecycle: bool) -> func.HttpResponse:
    """Answer Graph; the queue output binding writes the messages once the function returns."""
    try:
        webhook = process.webhook()
    except Exception:  # settings, profiles file or state store unusable: Graph retries a 503 later
        log.exception("galsync cannot start; answering 503")
        answer = Answer(503, "galsync is not configured correctly; see the function app's log\n")
    else:
        handle = webhook.lifecycle if lifecycle else webhook.notifications
        answer = handle(req.params, req.headers, req.get_body())
    if answer.messages:
        queued.set(list(answer.messages))
    return func.HttpResponse(answer.body, status_code=answer.status,
                             headers={**SAFE_HEADERS, "Content-Type": answer.content_type})


def _push_telemetry(rt: Runtime, body: bytes, started: str, before: Mapping[str, int], outcome: str,
                    counts: Mapping[str, int], error: str, propagation_ms: int | None = None) -> None:
    """A push run's record: pushes are not recorded in the state store, so the trigger hands it over."""
    try:
        message = parse_push_message(body)
    except BadMessage:
        return  # recorded as poison; not a run
    _telemetry(rt, Run(message.run_id, message.profile, "push", started, rt.now_iso(), outcome, counts,
                       error or None), before, notified_at=message.notified_at, propagation_ms=propagation_ms)


def _telemetry(rt: Runtime, run: Run, before: Mapping[str, int], *, notified_at: str | None = None,
               propagation_ms: int | None = None) -> None:
    try:
        after = _graph_counters(rt)
        telemetry.emit_run(run, {k: after.get(k, 0) - before.get(k, 0) for k in telemetry.GRAPH_COUNTERS},
                           notified_at=notified_at, propagation_ms=propagation_ms)
    except Exception:  # telemetry never fails a run
        log.warning("no telemetry record for run %s", run.run_id, exc_info=True)


def _subscription_telemetry(rt: Runtime, run_id: str) -> None:
    try:
        telemetry.emit_subscriptions(rt.store, run_id)
    except Exception:  # telemetry never fails a run
        log.warning("no subscription records for run %s", run_id, exc_info=True)


def _graph_counters(rt: Runtime) -> Mapping[str, int]:
    try:
        return rt.client.stats.snapshot()
    except Exception:  # the client cannot be built (settings): the run itself will say so
        return {}

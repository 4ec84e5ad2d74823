"""What the Functions host reads before any code runs: host.json and the bindings `app.get_functions()` declares.

A mistake here shows only after deployment (an anonymous webhook, a timer whose schedule setting does not
exist, a queue nobody drains), so it is checked here, from the same objects the host indexes.
"""

from __future__ import annotations

import json
import re

from sync_core.settings import LEASE_SECONDS, SETTING_NAMES
from tests.functions.functions_host import HOST_JSON, ROOT, indexed_functions


def test_host_json_pins_the_bundle_and_bounds_retries_and_run_time() -> None:
    assert HOST_JSON["version"] == "2.0"
    assert HOST_JSON["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle",
                                            "version": "[4.*, 5.0.0)"}
    queues = HOST_JSON["extensions"]["queues"]
    assert 3 <= queues["maxDequeueCount"] <= 10  # retried, but a poison message stops
    # An instance fetches batchSize more when newBatchThreshold remain, so it keeps newBatchThreshold + 1 to
    # newBatchThreshold + batchSize messages running: small batches keep it busy without holding many more.
    assert 1 <= queues["batchSize"] <= 32 and queues["newBatchThreshold"] >= queues["batchSize"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d", queues["visibilityTimeout"])
    assert re.fullmatch(r"00:00:0[1-9]", queues["maxPollingInterval"])  # a notification waits seconds at most
    assert queues["messageEncoding"] == "base64"
    assert re.fullmatch(r"00:[0-5]\d:00", HOST_JSON["functionTimeout"])
    levels = HOST_JSON["logging"]["logLevel"]
    assert levels["default"] == "Warning" and levels["Function"] == "Information"


def test_the_webhooks_need_the_function_key_and_accept_post_only() -> None:
    http = {name: fn for name, fn in indexed_functions().items() if fn.trigger_type == "httpTrigger"}
    assert sorted(http) == ["lifecycle", "notifications"]
    for fn in http.values():
        assert str(fn.trigger.auth_level.value) == "function"
        assert [str(m.value) for m in fn.trigger.methods] == ["POST"]
        assert fn.trigger.route == fn.name
        assert fn.outputs == {"queued": "sync-source"}


def test_every_queue_has_a_worker_and_a_poison_recorder() -> None:
    functions = indexed_functions().values()
    drained = {fn.trigger.queue_name for fn in functions if fn.trigger_type == "queueTrigger"}
    written = {queue for fn in functions for queue in fn.outputs.values()}
    assert written == {"sync-source", "push-targets", "reconcile-targets"}
    assert drained == written | {q + "-poison" for q in written}
    assert {fn.trigger.connection for fn in functions if fn.trigger_type == "queueTrigger"} == {"AzureWebJobsStorage"}


def test_timer_schedules_come_from_documented_settings() -> None:
    timers = {fn.name: fn.trigger.schedule for fn in indexed_functions().values() if fn.trigger_type == "timerTrigger"}
    # The stale-pending sweep follows the lease ttl, not an admin's choice: every third of it.
    assert timers.pop("stale_pending_timer") == "*/20 * * * * *" and LEASE_SECONDS == 60
    assert timers == {"sync_timer": "%GALSYNC_SYNC_SCHEDULE%", "reconcile_timer": "%GALSYNC_RECONCILE_SCHEDULE%",
                      "subscriptions_timer": "%GALSYNC_SUBSCRIPTIONS_SCHEDULE%"}
    assert {s.strip("%") for s in timers.values()} <= SETTING_NAMES
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    assert all(s.strip("%") in example for s in timers.values())

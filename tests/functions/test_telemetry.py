"""Each run the function app does leaves exactly one telemetry record (`galsync.run {json}` in the log the
Functions host sends to Application Insights), with ids and counts only: what the alert rules and the
workbook in infra/monitoring/ query."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.records import Run
from sync_core.service.telemetry import (
    RECORD_FIELDS,
    RESOURCE_KINDS,
    RUN_RECORD,
    SUBSCRIPTION_FIELDS,
    SUBSCRIPTION_RECORD,
    failing_mailboxes,
    resource_kind,
    run_record,
    with_run_telemetry,
)
from sync_core.state import docs
from sync_core.state.sqlite_store import SqliteStore
from tests.functions.conftest import Configure, emulator_settings
from tests.functions.functions_host import FunctionsHost, HttpsFront
from tests.functions.test_end_to_end import CONFIG, contacts


def records(caplog: pytest.LogCaptureFixture, name: str = RUN_RECORD) -> list[dict[str, Any]]:
    """The telemetry records of one name, in the order they were logged."""
    found = [r.getMessage() for r in caplog.records if r.name == "galsync.telemetry"]
    assert all(m.startswith((RUN_RECORD + " ", SUBSCRIPTION_RECORD + " ")) for m in found)
    return [json.loads(m[len(name) + 1:]) for m in found if m.startswith(name + " ")]


def test_every_run_of_the_function_app_leaves_one_record(
        configure: Configure, graph: GraphEmulator, front: HttpsFront, host: FunctionsHost,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="galsync")
    truck = (graph.scenario or {})["shared_mailboxes"]["Trucks North"]["id"]
    rt = configure(CONFIG, **emulator_settings(graph), GALSYNC_WEBHOOK_BASE_URL=front.base_url)
    host.timer("subscriptions_timer")
    host.timer("sync_timer")
    host.drain()
    host.timer("reconcile_timer")
    host.drain()
    assert len(contacts(graph, rt, truck)) == 25

    subscriptions, sync, push, reconcile = records(caplog)
    assert all(set(r) == set(RECORD_FIELDS) for r in (subscriptions, sync, push, reconcile))
    assert (subscriptions["kind"], subscriptions["outcome"]) == ("subscriptions", "ok")
    assert subscriptions["counts"]["created"] == 2 and subscriptions["graph_requests"] >= 2
    # and one record per subscription it holds: ids, the kind of resource, the expiry, the profiles
    expiries = records(caplog, SUBSCRIPTION_RECORD)
    stored = {key: sub for key, sub in docs.read_all(rt.store, docs.Subscription)}
    assert all(set(r) == set(SUBSCRIPTION_FIELDS) for r in expiries)
    assert {r["subscription_id"]: (r["run_id"], r["resource_kind"], r["expires_at"], r["profiles"]) for r in expiries} \
        == {key: (subscriptions["run_id"], "users" if sub.resource == "users" else "group", sub.expiration,
                  ["Dispatch"]) for key, sub in stored.items()}
    assert sorted(r["resource_kind"] for r in expiries) == ["group", "users"]
    assert not any(sub.resource in json.dumps(expiries) for sub in stored.values() if sub.resource != "users")
    assert (sync["kind"], sync["profile"], sync["outcome"]) == ("sync", "Dispatch", "ok")
    assert sync["counts"]["changed"] == 25 and sync["counts"]["messages"] == 1
    # the push belongs to the sync that fanned it out, and did the writes
    assert (push["kind"], push["run_id"], push["outcome"]) == ("push", sync["run_id"], "ok")
    assert push["counts"]["created"] == 25 and push["failing_mailboxes"] == []
    assert (reconcile["kind"], reconcile["profile"], reconcile["outcome"]) == ("reconcile", "Dispatch", "ok")
    assert all(isinstance(r["duration_ms"], int) and r["duration_ms"] >= 0 for r in (sync, push, reconcile))
    assert sync["graph_throttles"] == 0 and push["graph_throttles"] == 0
    assert reconcile["graph_throttles"] is None  # reconcile records no start: its Graph counters are unknown
    [stored] = [r for r in rt.store.recent_runs("Dispatch") if r.kind == "sync"]
    assert stored.run_id == sync["run_id"]  # the record is the run `galsync status` shows
    # ids and counts only: no contact's name, no address
    text = json.dumps([subscriptions, sync, push, reconcile])
    assert "@" not in text and not any(c["displayName"] in text for c in contacts(graph, rt, truck))


def test_a_run_that_fails_is_recorded_as_failed(configure: Configure, host: FunctionsHost,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="galsync")
    configure(GALSYNC_GRAPH_BASE_URL="https://127.0.0.1:9/v1.0", GALSYNC_RETRY_MAX_ATTEMPTS="1")
    with pytest.raises(Exception):  # noqa: B017 - whichever error Graph's absence raises; the host retries
        host.timer("subscriptions_timer")
    [failed] = records(caplog)
    assert (failed["kind"], failed["outcome"], failed["counts"]) == ("subscriptions", "failed", {})
    assert records(caplog, SUBSCRIPTION_RECORD) == []  # none held


MAILBOX = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
SOURCE = "d4c3b2a1-0000-4000-8000-000000000001"


def test_failing_mailboxes_are_the_mailbox_ids_of_the_error_text_and_nothing_else() -> None:
    # the executor's entries ("<mailbox> <source key>: ...") and reconcile's ("mailbox <id>: ...")
    error = (f"{MAILBOX} user:{SOURCE}: 403 ErrorAccessDenied (request-id r1); "
             f"{MAILBOX} user:{SOURCE}: 403 ErrorAccessDenied (request-id r2); "
             f"mailbox {OTHER.upper()}: Graph 404 on GET /users/x (request-id r3)")
    assert failing_mailboxes(error) == [MAILBOX, OTHER]
    assert failing_mailboxes(None) == [] and failing_mailboxes("folder 'Company' is not ours") == []
    run = Run("r1", "Dispatch", "sync", "2026-11-20T10:00:00.000000Z", "2026-11-20T10:00:02.500000Z",
              "partial", {"created": 3, "failed": 2}, error)
    record = run_record(run)
    assert record["failing_mailboxes"] == [MAILBOX, OTHER] and record["duration_ms"] == 2500
    assert "ErrorAccessDenied" not in json.dumps(record) and SOURCE not in json.dumps(record)


def test_a_failing_target_named_by_address_is_in_the_record_by_its_id_only(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing target's line in the run's error names the mailbox by address; the record carries its id
    (from the failing-target document), never the address."""
    caplog.set_level(logging.INFO, logger="galsync")
    store = SqliteStore(tmp_path / "state.db")
    address = "trucks.west@northwind.example"
    for key, mail in ((MAILBOX, address), ("gone@northwind.example", "gone@northwind.example")):
        docs.write(store, docs.failing_target_key("Dispatch", key), docs.FailingTarget(
            "Dispatch", key, mail, "write", 403, "ErrorAccessDenied", "outside the scope",
            "2026-11-20T09:00:00Z", "2026-11-20T10:00:00Z", "r1"))
    telemetry = with_run_telemetry(store)
    telemetry.record_run(Run("r1", "Dispatch", "sync", "2026-11-20T10:00:00.000000Z",
                             "2026-11-20T10:00:01.000000Z", "partial", {"created": 3},
                             f"{address}: 403 ErrorAccessDenied while writing its contacts; outside the scope"))
    [record] = records(caplog)
    assert record["failing_mailboxes"] == [MAILBOX]
    assert "northwind" not in json.dumps(record)


def test_a_subscription_record_names_the_kind_of_resource_never_its_ids() -> None:
    assert [resource_kind(r) for r in ("users", "/groups", f"groups/{SOURCE}", f"users/{MAILBOX}/contacts",
                                       f"users/{MAILBOX}/contactFolders/x/contacts")] == \
        ["users", "groups", "group", "mailbox-contacts", "other"]
    assert {resource_kind(r) for r in ("users", "groups", "groups/g", "users/u/contacts", "x")} == set(RESOURCE_KINDS)

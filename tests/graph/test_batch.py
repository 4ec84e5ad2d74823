"""$batch against the emulator: exact HTTP and inner-request counts, order, inner retries, dependsOn."""

from __future__ import annotations

import pytest

from graph_emulator import GraphEmulator
from sync_core.graph import (
    BadRequest,
    BatchRequest,
    GraphClient,
    MaybeApplied,
    NotFound,
    RetryPolicy,
    Throttled,
    TransientError,
)

from .support import Mailbox, add_mailbox, make_client

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
POST_CONTACT = f"POST {CONTACTS}"


def _creates(mailbox: Mailbox, n: int, prefix: str = "C") -> list[BatchRequest]:
    return [BatchRequest("POST", mailbox.contacts, body={"displayName": f"{prefix}{i:02d}"}) for i in range(n)]


def _stored(emu: GraphEmulator, mailbox: Mailbox) -> list[str]:
    return sorted(c["displayName"] for c in emu.tenant.mailboxes.contacts(mailbox.user_id, mailbox.folder_id))


def test_41_requests_cost_3_http_calls(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    results = client.batch(_creates(mailbox, 41))
    assert emu.log.round_trips() == 3
    assert emu.log.count(route=CONTACTS, via_batch=True) == 41
    # Results come back in input order, whatever order Graph answered in.
    assert [r.body["displayName"] for r in results] == [f"C{i:02d}" for i in range(41)]
    assert all(r.ok and r.status == 201 and r.error is None and r.request_id for r in results)
    assert _stored(emu, mailbox) == [f"C{i:02d}" for i in range(41)]
    assert client.stats.batch_calls == 3 and client.stats.batch_inner_requests == 41


def test_an_inner_429_costs_exactly_one_more_inner_request(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.fail_next(1, 429, retry_after=0.3, route=POST_CONTACT)
    results = client.batch(_creates(mailbox, 41))
    assert all(r.status == 201 for r in results)
    assert emu.log.count(route=CONTACTS, via_batch=True) == 42
    assert emu.log.count(route=CONTACTS, via_batch=True, status=429) == 1
    assert emu.log.round_trips() == 4  # the throttled request went again alone
    assert _stored(emu, mailbox) == [f"C{i:02d}" for i in range(41)]  # nothing created twice


def test_inner_retry_waits_its_own_retry_after(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    emu.faults.fail_next(1, 429, retry_after=1.0, route=POST_CONTACT)
    client.batch(_creates(mailbox, 3))
    throttled, retried = emu.log.entries(route=CONTACTS, status=429)[0], emu.log.entries(route=CONTACTS)[-1]
    gap = retried.start - throttled.end
    # Never early on the emulator's clock; the wait the client chose is the inner Retry-After within 10%
    # (when the retry lands beyond that also depends on how busy the machine is: not asserted tightly).
    assert 1.0 <= gap < 6.0
    assert 1000 <= client.stats.retry_wait_ms <= 1100


def test_inner_failures_that_outlast_the_bound_are_per_request_errors(emu: GraphEmulator, mailbox: Mailbox) -> None:
    client = make_client(emu, retry=RetryPolicy(max_attempts=2, max_seconds=10, backoff_base=0.01))
    unlucky = add_mailbox(emu, "Unlucky")
    emu.faults.fail_next(2, 503, route=POST_CONTACT, mailbox=unlucky.user_id)  # its first try and its retry
    results = client.batch(_creates(mailbox, 4) + _creates(unlucky, 1))
    assert [r.ok for r in results] == [True, True, True, True, False]
    error = results[4].error
    assert isinstance(error, TransientError) and error.attempts == 2 and results[4].status == 503
    assert len(_stored(emu, mailbox)) == 4 and _stored(emu, unlucky) == []
    # The 4 that succeeded were sent once; only the failing one went twice.
    assert emu.log.count(route=CONTACTS, mailbox=mailbox.user_id) == 4
    assert emu.log.count(route=CONTACTS, mailbox=unlucky.user_id) == 2


def test_an_inner_retry_after_beyond_the_time_bound_is_not_waited_for(emu: GraphEmulator, mailbox: Mailbox) -> None:
    client = make_client(emu, retry=RetryPolicy(max_attempts=5, max_seconds=2))
    emu.faults.fail_next(1, 429, retry_after=60, route=POST_CONTACT)
    results = client.batch(_creates(mailbox, 2))
    assert isinstance(results[0].error, Throttled) and results[1].ok
    assert emu.log.count(route=CONTACTS) == 2


def test_inner_errors_are_typed_per_request(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    created = client.request("POST", mailbox.contacts, json={"displayName": "Kept"}).json()
    results = client.batch(
        [
            BatchRequest("PATCH", f"{mailbox.contacts}/{created['id']}", body={"displayName": "Renamed"}),
            BatchRequest(
                "PATCH",
                f"{mailbox.contacts}/AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAA=",
                body={"displayName": "Ghost"},
            ),
            BatchRequest("GET", f"/users/{mailbox.user_id}/mailboxSettings/userPurpose"),
        ]
    )
    assert results[0].ok and results[0].body["displayName"] == "Renamed"
    assert isinstance(results[1].error, NotFound) and results[1].error.code == "ErrorItemNotFound"
    assert results[2].ok and results[2].body["value"] == "user"
    assert emu.log.count(via_batch=True) == 3  # a 404 is final: not repeated


def test_depends_on_is_sent_and_a_throttled_dependency_takes_its_dependent_along(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.fail_next(1, 429, retry_after=0.2, route=POST_CONTACT)
    reqs = [
        BatchRequest("POST", mailbox.contacts, body={"displayName": "First"}, id="a"),
        BatchRequest("POST", mailbox.contacts, body={"displayName": "Second"}, id="b", depends_on=["a"]),
    ]
    results = client.batch(reqs)
    assert [r.status for r in results] == [201, 201]
    assert _stored(emu, mailbox) == ["First", "Second"]
    # a: 429 then 201; b: never ran the first time (424 is not logged as a request), then 201.
    assert emu.log.count(route=CONTACTS) == 3 and emu.log.round_trips() == 2


def test_a_batch_whose_answer_was_lost_reports_writes_and_repeats_reads(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.drop_next(1, after_handler=True, route="POST /$batch")
    results = client.batch(
        [
            BatchRequest("POST", mailbox.contacts, body={"displayName": "Maybe"}),
            BatchRequest("GET", f"/users/{mailbox.user_id}/mailboxSettings/userPurpose"),
        ]
    )
    assert isinstance(results[0].error, MaybeApplied) and results[0].in_doubt
    assert results[1].ok and not results[1].in_doubt
    assert _stored(emu, mailbox) == ["Maybe"]  # applied once, never repeated


# ---- which failed writes may have been applied (BatchResult.in_doubt) ----------------------------------------


def test_a_create_that_timed_out_is_in_doubt_and_not_repeated(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.fail_next(1, 504, route=POST_CONTACT)
    results = client.batch(_creates(mailbox, 2))
    [timed_out] = [r for r in results if not r.ok]
    assert timed_out.status == 504 and isinstance(timed_out.error, MaybeApplied) and timed_out.in_doubt
    assert [r.in_doubt for r in results if r.ok] == [False]
    assert emu.log.count(route=CONTACTS) == 2  # a write that may have landed is never sent again blindly


def test_a_create_still_unavailable_past_the_retry_bound_is_in_doubt(emu: GraphEmulator, mailbox: Mailbox) -> None:
    client = make_client(emu, retry=RetryPolicy(max_attempts=2, max_seconds=10, backoff_base=0.01))
    emu.faults.fail_next(2, 503, route=POST_CONTACT)
    [result] = client.batch(_creates(mailbox, 1))
    assert isinstance(result.error, TransientError) and result.status == 503 and result.in_doubt
    assert emu.log.count(route=CONTACTS) == 2


def test_writes_graph_refused_are_not_in_doubt(emu: GraphEmulator, mailbox: Mailbox) -> None:
    client = make_client(emu, retry=RetryPolicy(max_attempts=1, max_seconds=10))
    refused, throttled = add_mailbox(emu, "Refused"), add_mailbox(emu, "Throttled")
    emu.faults.fail_next(1, 400, route=POST_CONTACT, mailbox=refused.user_id)
    emu.faults.fail_next(1, 429, retry_after=0.01, route=POST_CONTACT, mailbox=throttled.user_id)
    ghost = f"{mailbox.contacts}/AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAA="
    results = client.batch(
        [*_creates(refused, 1), *_creates(throttled, 1), BatchRequest("PATCH", ghost, body={"displayName": "Ghost"})]
    )
    assert [type(r.error) for r in results] == [BadRequest, Throttled, NotFound]
    assert [r.in_doubt for r in results] == [False, False, False]
    assert _stored(emu, refused) == [] and _stored(emu, throttled) == []


def test_batches_spread_over_mailboxes(emu: GraphEmulator, client: GraphClient) -> None:
    boxes = [add_mailbox(emu, f"Driver {i}") for i in range(5)]
    reqs = [r for b in boxes for r in _creates(b, 9, prefix=b.user_id[:4])]  # 45 requests
    results = client.batch(reqs)
    assert all(r.ok for r in results) and emu.log.round_trips() == 3
    for b in boxes:
        assert len(_stored(emu, b)) == 9


def test_empty_batch_sends_nothing(emu: GraphEmulator, client: GraphClient) -> None:
    assert client.batch([]) == []
    assert emu.log.count() == 0


def test_bad_batch_input_sends_nothing(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    with pytest.raises(ValueError, match="used twice"):
        client.batch([BatchRequest("GET", mailbox.contacts, id="x"), BatchRequest("GET", mailbox.contacts, id="x")])
    assert emu.log.count() == 0


def test_keep_holds_only_the_named_fields_of_a_successful_answer(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    reqs = [BatchRequest("POST", mailbox.contacts, body={"displayName": "Kept"}, keep=("id", "changeKey")),
            BatchRequest("PATCH", f"{mailbox.contacts}/AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAA=",
                         body={"displayName": "Ghost"}, keep=("id", "changeKey"))]
    created, missing = client.batch(reqs)
    stored = emu.tenant.mailboxes.contacts(mailbox.user_id, mailbox.folder_id)[0]
    assert created.ok and created.body == {"id": stored["id"], "changeKey": stored["changeKey"]}
    # A failed answer keeps its whole body: the typed error is read from it.
    assert isinstance(missing.error, NotFound) and missing.body["error"]["code"] == "ErrorItemNotFound"

"""Single requests against the emulator: headers, typed errors, retries that honour Retry-After, bounds,
and requests whose answer was lost (MaybeApplied)."""

from __future__ import annotations

import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import tenacity

from graph_emulator import GraphEmulator
from sync_core.graph import (
    Forbidden,
    GraphClient,
    MaybeApplied,
    NotFound,
    RetryPolicy,
    StaticToken,
    Throttled,
    TransientError,
)

from .support import Mailbox, add_mailbox, make_client

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
POST_CONTACT = f"POST {CONTACTS}"
GET_CONTACTS = f"GET {CONTACTS}"


def _gap_after_first_failure(emu: GraphEmulator, route: str) -> tuple[float, int]:
    """Seconds between the end of the failed request and the start of its retry, on the emulator's clock."""
    first, retry = emu.log.entries(route=route)[:2]
    return retry.start - first.end, first.status


# ---- headers and errors -------------------------------------------------------------------------------


def test_mailbox_calls_ask_for_immutable_ids_and_carry_a_client_request_id(
    client: GraphClient, mailbox: Mailbox
) -> None:
    resp = client.request("POST", mailbox.contacts, json={"displayName": "Dispatch"})
    assert resp.status == 201
    assert resp.headers["Preference-Applied"] == 'IdType="ImmutableId"'
    assert resp.headers["client-request-id"] == resp.client_request_id
    assert resp.request_id and resp.json()["displayName"] == "Dispatch"
    # Graph asks for a GUID; each request has its own (Microsoft support finds a call by it).
    again = client.request("POST", mailbox.contacts, json={"displayName": "Dispatch 2"})
    for cid in (resp.client_request_id, again.client_request_id):
        assert uuid.UUID(cid).version == 4 and str(uuid.UUID(cid)) == cid
    assert again.client_request_id != resp.client_request_id


def test_caller_preferences_are_kept_next_to_immutable_ids(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    delta = f"/users/{mailbox.user_id}/contactFolders/{mailbox.folder_id}/contacts/delta"
    resp = client.request("GET", delta, headers={"Prefer": "odata.maxpagesize=5"})
    assert resp.headers["Preference-Applied"] == 'IdType="ImmutableId", odata.maxpagesize=5'


def test_not_found_is_typed_and_carries_graphs_ids(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    with pytest.raises(NotFound) as err:
        client.get(f"{mailbox.contacts}/AAMkAGI2NGVhZTVlLTI1OGMtNDI4My1iZmE5LTA5OGJiZGEzMTc0YQBGAAA=")
    (logged,) = emu.log.entries(status=404)
    assert err.value.code == "ErrorItemNotFound"
    assert err.value.request_id == logged.request_id
    assert err.value.client_request_id
    assert logged.request_id in str(err.value)


def test_missing_permission_names_the_permission(emu: GraphEmulator, mailbox: Mailbox) -> None:
    app = emu.register_app(roles={"User.Read.All"})
    c = GraphClient(emu.base_url, StaticToken(emu.access_token(app.client_id)), ca_bundle=emu.ca_file)
    with pytest.raises(Forbidden) as err:
        c.request("POST", mailbox.contacts, json={"displayName": "X"})
    assert err.value.status == 403 and err.value.code == "ErrorAccessDenied"
    assert "Contacts.ReadWrite" in (err.value.permission_hint or "")
    assert emu.log.count(status=403) == 1  # a 403 is not retried


def test_mailbox_outside_the_apps_scope_says_so(emu: GraphEmulator, mailbox: Mailbox) -> None:
    other = add_mailbox(emu, "Bob Other")
    app = emu.register_app(mailbox_scope=[other.user_id])
    with GraphClient(emu.base_url, StaticToken(emu.access_token(app.client_id)), ca_bundle=emu.ca_file) as c:
        c.request("POST", other.contacts, json={"displayName": "In scope"})
        with pytest.raises(Forbidden) as err:
            c.request("POST", mailbox.contacts, json={"displayName": "Out of scope"})
    assert "management scope" in str(err.value)


# ---- retries ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [1.0, 0.75])
def test_retry_after_is_honoured_within_10_percent(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox, retry_after: float
) -> None:
    emu.faults.fail_next(1, 429, retry_after=retry_after, route=POST_CONTACT)
    assert client.request("POST", mailbox.contacts, json={"displayName": "A"}).status == 201
    gap, status = _gap_after_first_failure(emu, CONTACTS)
    assert status == 429
    # Never early, on the emulator's clock; the wait the client chose is Retry-After within 10%. (How much
    # later the retry actually lands also depends on how busy the machine is, so that is not asserted tightly.)
    assert retry_after <= gap < retry_after + 5
    assert retry_after * 1000 <= client.stats.retry_wait_ms <= retry_after * 1100
    assert emu.log.count(route=CONTACTS) == 2
    assert client.stats.retries == 1 and client.stats.throttles == 1


def test_503_without_retry_after_backs_off_and_succeeds(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.fail_next(2, 503, route=GET_CONTACTS)
    assert client.get(mailbox.contacts)["value"] == []
    assert [e.status for e in emu.log.entries(route=CONTACTS)] == [503, 503, 200]


def test_retries_stop_at_the_attempt_bound(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    emu.faults.fail_next(50, 503, retry_after=0.01, route=GET_CONTACTS)
    with pytest.raises(TransientError) as err:
        client.get(mailbox.contacts)
    assert emu.log.count(route=CONTACTS) == client.retry.max_attempts == 4
    assert err.value.attempts == 4 and err.value.status == 503 and err.value.request_id
    assert "gave up after 4 attempts" in str(err.value)


def test_retries_stop_at_the_time_bound(emu: GraphEmulator, mailbox: Mailbox) -> None:
    client = make_client(emu, retry=RetryPolicy(max_attempts=10, max_seconds=5.0))
    emu.faults.fail_next(1, 429, retry_after=30, route=POST_CONTACT)
    with pytest.raises(Throttled) as err:
        client.request("POST", mailbox.contacts, json={"displayName": "A"})
    # Waiting 30 s would break the 5 s bound: no second request, a clear error at once.
    assert emu.log.count(route=CONTACTS) == 1
    assert err.value.retry_after == 30 and err.value.attempts == 1
    assert emu.tenant.mailboxes.contacts(mailbox.user_id, mailbox.folder_id) == []


class Released(Exception):
    """The test ended a retry's wait (WaitsForTheTest)."""


@dataclass(frozen=True)
class WaitsForTheTest(RetryPolicy):
    """Retries whose wait lasts until the test sets `done`, then gives up (raises Released).

    The client still holds the mailbox off for the whole Retry-After; only the request's own sleep is the
    test's, so a long Retry-After costs the test nothing.
    """

    done: threading.Event = field(default_factory=threading.Event)

    def retrying(self, before_sleep: Callable[[tenacity.RetryCallState], None]) -> tenacity.Retrying:
        def wait_for_the_test(seconds: float) -> None:
            self.done.wait(60)
            raise Released

        return super().retrying(before_sleep).copy(sleep=wait_for_the_test)


def test_a_throttled_mailbox_does_not_slow_the_others(emu: GraphEmulator, mailbox: Mailbox) -> None:
    # Retry-After 30 s: the window in which the other mailbox's requests must all be answered is far longer
    # than any machine takes for them, and the test does not wait it out.
    retry_after = 30.0
    policy = WaitsForTheTest(max_attempts=2, max_seconds=2 * retry_after)
    other = add_mailbox(emu, "Bob Other")
    emu.faults.fail_next(1, 429, retry_after=retry_after, route=POST_CONTACT, mailbox=mailbox.user_id)
    outcome: list[str] = []

    def post_to_the_throttled_mailbox() -> None:
        try:
            client.request("POST", mailbox.contacts, json={"displayName": "A"})
            outcome.append("answered")
        except Released:
            outcome.append("still waiting to retry")

    with make_client(emu, retry=policy) as client:
        throttled = threading.Thread(target=post_to_the_throttled_mailbox)
        throttled.start()
        while client.stats.retries == 0:  # counted once the mailbox is held off and the retry is waiting
            throttled.join(0.01)
        for i in range(8):
            client.request("POST", other.contacts, json={"displayName": f"B{i}"})
        policy.done.set()
        throttled.join()
    (refused,) = emu.log.entries(mailbox=mailbox.user_id)
    answered = emu.log.entries(mailbox=other.user_id)
    assert refused.status == 429 and outcome == ["still waiting to retry"]
    assert [e.status for e in answered] == [201] * 8
    assert all(e.end < refused.end + retry_after for e in answered)  # none waited for the other's hold-off


# ---- answers that never came back -------------------------------------------------------------------------


def test_a_post_whose_answer_was_lost_is_reported_not_repeated(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.drop_next(1, after_handler=True, route=POST_CONTACT)
    with pytest.raises(MaybeApplied) as err:
        client.request("POST", mailbox.contacts, json={"displayName": "Maman"})
    assert emu.log.count(route=CONTACTS) == 1
    assert len(emu.tenant.mailboxes.contacts(mailbox.user_id, mailbox.folder_id)) == 1  # it was applied
    assert err.value.client_request_id and client.stats.maybe_applied == 1


def test_a_gateway_timeout_on_a_post_is_reported_not_repeated(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    emu.faults.fail_next(1, 504, route=POST_CONTACT)
    with pytest.raises(MaybeApplied):
        client.request("POST", mailbox.contacts, json={"displayName": "A"})
    assert emu.log.count(route=CONTACTS) == 1


def test_a_read_whose_answer_was_lost_is_repeated(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    emu.faults.drop_next(1, route=GET_CONTACTS)
    emu.faults.fail_next(1, 504, route=GET_CONTACTS)
    assert client.get(mailbox.contacts)["value"] == []
    assert [e.status for e in emu.log.entries(route=CONTACTS)] == [0, 504, 200]


def test_a_delete_whose_answer_was_lost_is_repeated(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    contact = client.request("POST", mailbox.contacts, json={"displayName": "A"}).json()
    emu.faults.drop_next(1, route=f"DELETE {CONTACTS}/{{contact}}")
    client.request("DELETE", f"{mailbox.contacts}/{contact['id']}")
    assert [e.status for e in emu.log.entries(method="DELETE")] == [0, 204]


# ---- bodies that are not JSON, and what reaches the logs -----------------------------------------------


def test_a_photo_upload_sends_bytes(emu: GraphEmulator, client: GraphClient, mailbox: Mailbox) -> None:
    contact = client.request("POST", mailbox.contacts, json={"displayName": "A"}).json()
    # SOI, a baseline start-of-frame segment (96 x 96, one component), padding, EOI: what the emulator checks.
    jpeg = b"\xff\xd8\xff\xc0" + struct.pack(">HBHHB", 11, 8, 96, 96, 1) + b"\x01\x11\x00" + bytes(64) + b"\xff\xd9"
    photo = f"{mailbox.contacts}/{contact['id']}/photo/$value"
    client.request("PUT", photo, data=jpeg, headers={"Content-Type": "image/jpeg"})
    assert client.request("GET", photo).content == jpeg


def test_logs_carry_ids_but_no_token_or_contact_details(
    emu: GraphEmulator, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    token = emu.access_token()
    client = GraphClient(emu.base_url, StaticToken(token), ca_bundle=emu.ca_file)
    upn_path = f"/users/{mailbox.upn}/contactFolders/{mailbox.folder_id}/contacts"
    emu.faults.fail_next(1, 429, retry_after=0.05, route=POST_CONTACT)
    with caplog.at_level("DEBUG", logger="galsync.graph"):
        client.request("POST", upn_path, json={"displayName": "Maman", "mobilePhone": "+33 6 12 34 56 78"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in text and "Maman" not in text and "+33" not in text and mailbox.upn not in text
    for entry in emu.log.entries(route=CONTACTS):
        assert entry.request_id in text  # every Graph request-id is in the DEBUG log
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert len(info) == 1 and "attempt 2/6 in 0.05 s" in info[0] and "/users/{upn}/contactFolders" in info[0]

"""Outlook's upload budget per (app, mailbox), 150 MB per 5 minutes (throttling-limits.md), and contact photos.

Graph counts the bodies of PATCH, POST and PUT against the budget of the mailbox they land in and answers
429 with Retry-After once a body would not fit; reads never count, and one mailbox's uploads never throttle
another's. Tests shrink the budget so a few small photos reach it.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from graph_emulator.protocol import GraphError
from graph_emulator.scenarios import make_jpeg
from graph_emulator.throttle import OUTLOOK, Limits, Throttle
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error

PHOTO_ROUTE = "/users/{user}/contactFolders/{folder}/contacts/{contact}/photo/$value"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upload(throttle: Throttle, size: int, mailbox: str = "m1") -> str:
    try:
        throttle.admit("app", OUTLOOK, mailbox, upload_bytes=size).release()
        return "ok"
    except GraphError as exc:
        assert exc.status == 429 and exc.code == "ApplicationThrottled"
        assert exc.message == "Application is over its MailboxUploadSize limit."
        return exc.headers["Retry-After"]


def test_the_default_budget_is_graphs_150_mb_per_5_minutes() -> None:
    assert Limits().upload_bytes == 150 * 1024 * 1024 and Limits().upload_window_seconds == 300


def test_uploads_fill_a_sliding_window_and_a_refused_body_is_not_counted() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    throttle.configure(upload_bytes=100, upload_window_seconds=10)
    assert upload(throttle, 60) == "ok"  # t=1000
    clock.now = 1002
    assert upload(throttle, 30) == "ok"
    clock.now = 1003
    assert upload(throttle, 20) == "7"  # fits once the 60 bytes of t=1000 leave, at 1010
    assert throttle.uploaded("app", "m1") == 90  # the refused body was not taken in
    assert upload(throttle, 10) == "ok"  # a smaller one still fits
    assert upload(throttle, 0) == "ok"  # a request without a body is never held by the upload budget
    assert upload(throttle, 50, mailbox="m2") == "ok"  # another mailbox has its own budget
    clock.now = 1010
    assert upload(throttle, 20) == "ok"
    assert throttle.uploaded("app", "m1") == 30 + 10 + 20
    throttle.reset()
    assert throttle.uploaded("app", "m1") == 0


def test_a_body_waits_for_as_many_old_uploads_as_it_needs() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    throttle.configure(upload_bytes=100, upload_window_seconds=10)
    for t, size in ((1000, 40), (1001, 40), (1002, 20)):
        clock.now = t
        assert upload(throttle, size) == "ok"
    clock.now = 1005
    assert upload(throttle, 70) == "6"  # needs the uploads of t=1000 and t=1001 gone: at 1011
    # A body larger than the whole budget fits only an empty window (it could never fit otherwise).
    clock.now = 1011.5
    assert upload(throttle, 150) == "0.5"  # the 20 bytes of t=1002 leave at 1012
    clock.now = 1012
    assert upload(throttle, 150) == "ok"


def test_upload_budget_refuses_only_what_exceeds_it_and_counts_throttled_requests() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    throttle.configure(upload_bytes=100, upload_window_seconds=10, requests=3, window_seconds=60)
    assert upload(throttle, 100) == "ok"
    assert upload(throttle, 1) == "10"
    assert upload(throttle, 0) == "ok"
    # The upload refusal counted as a request (Graph counts throttled requests): the request budget is spent.
    with pytest.raises(GraphError, match="MailboxRequestRate"):
        throttle.admit("app", OUTLOOK, "m1")
    assert throttle.in_flight("app", "m1") == 0  # no refusal kept a concurrency slot


@pytest.mark.parametrize("settings", [{"upload_bytes": 0}, {"upload_window_seconds": -5}, {"upload_bytes": "1"}])
def test_bad_upload_settings_are_refused_by_name(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        Throttle().configure(**settings)


# --- over HTTPS -------------------------------------------------------------------------------------------


def contact_in(g: GraphEmulator, nickname: str) -> tuple[str, str, str]:
    """(mailbox, folder id, contact id) of a contact in a fresh folder of a new mailbox."""
    mailbox = probe.add_mailbox_user(g, nickname)
    folder = g.tenant.mailboxes.create_folder(mailbox, "Company")
    contact = g.tenant.mailboxes.phone_create_contact(mailbox, {"displayName": "Ann"}, folder_id=folder["id"])
    return mailbox, str(folder["id"]), str(contact["id"])


def photo_url(g: GraphEmulator, mailbox: str, folder: str, contact: str) -> str:
    return g.base_url + f"/users/{mailbox}/contactFolders/{folder}/contacts/{contact}/photo/$value"


def test_photo_uploads_over_the_budget_get_429_with_retry_after_per_mailbox(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann = contact_in(g, "ann")
    bob = contact_in(g, "bob")
    first, second = make_jpeg(96, 96, shade=60), make_jpeg(96, 96, shade=200)
    g.throttle.configure(upload_bytes=len(first) + len(second) + 10, upload_window_seconds=300)
    session = g.session()
    jpeg = {"Content-Type": "image/jpeg"}
    assert session.put(photo_url(g, *ann), data=first, headers=jpeg).status_code == 200
    assert session.put(photo_url(g, *ann), data=second, headers=jpeg).status_code == 200
    refused = session.put(photo_url(g, *ann), data=first, headers=jpeg)
    error = assert_graph_error(refused, 429, "ApplicationThrottled")
    assert "MailboxUploadSize" in error["message"]
    assert 299 < float(refused.headers["Retry-After"]) <= 300
    assert g.tenant.mailboxes.photo(ann[0], ann[2])[0] == second  # the refused upload changed nothing
    # A JSON PATCH is an upload too; a read is not.
    url = photo_url(g, *ann).removesuffix("/photo/$value")
    assert session.patch(url, json={"displayName": "Ann Smith", "jobTitle": "Driver"}).status_code == 429
    assert session.get(url).status_code == 200
    # Bob's mailbox has its own budget.
    assert session.put(photo_url(g, *bob), data=first, headers=jpeg).status_code == 200
    assert g.log.count(route=PHOTO_ROUTE, status=429) == 1
    assert g.throttle.uploaded(g.client_id, ann[0]) == len(first) + len(second)


def test_a_photo_over_the_budget_inside_a_batch_gets_its_own_429(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    mailbox, folder, contact = contact_in(g, "ann")
    jpeg = make_jpeg(120, 120, shade=90)
    g.throttle.configure(upload_bytes=len(jpeg) + 1, upload_window_seconds=60)
    path = f"/users/{mailbox}/contactFolders/{folder}/contacts/{contact}/photo/$value"
    body = base64.b64encode(jpeg).decode()
    requests_: list[dict[str, Any]] = [
        {"id": str(i), "method": "PUT", "url": path, "headers": {"Content-Type": "image/jpeg"}, "body": body}
        for i in (1, 2)
    ]
    requests_[1]["dependsOn"] = ["1"]
    answer = g.session().post(g.base_url + "/$batch", json={"requests": requests_})
    assert answer.status_code == 200
    by_id = {r["id"]: r for r in answer.json()["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["2"]["status"] == 429
    assert 59 < float(by_id["2"]["headers"]["Retry-After"]) <= 60
    assert g.log.count(route=PHOTO_ROUTE, via_batch=True, status=429) == 1


def test_a_contact_photo_cannot_be_deleted(graph_empty: GraphEmulator) -> None:
    """profilephoto-delete.md: DELETE supports user and group photos only, "not Outlook contact" photos."""
    g = graph_empty
    target = contact_in(g, "ann")
    jpeg = make_jpeg(48, 48)
    session = g.session()
    assert session.put(photo_url(g, *target), data=jpeg, headers={"Content-Type": "image/jpeg"}).status_code == 200
    assert_graph_error(session.delete(photo_url(g, *target)), 405, "Request_BadRequest")
    assert_graph_error(session.delete(photo_url(g, *target).removesuffix("/$value")), 405, "Request_BadRequest")
    # Nor can it be emptied: an empty body is not a JPEG.
    empty = session.put(photo_url(g, *target), data=b"", headers={"Content-Type": "image/jpeg"})
    assert_graph_error(empty, 400, "ErrorInvalidImage")
    assert g.tenant.mailboxes.photo(target[0], target[2])[0] == jpeg

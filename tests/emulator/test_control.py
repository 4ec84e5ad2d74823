"""The HTTP control surface under /_emulator/: the demo's and a by-hand user's way to act on the tenant."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from graph_emulator import GraphEmulator
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error


@pytest.fixture
def control(graph_empty: GraphEmulator) -> Iterator[requests.Session]:
    """A session for /_emulator/: trusts the CA, sends no bearer (the control surface needs none)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = graph_empty.ca_file
    yield session
    session.close()


def test_log_counts_and_clear(graph_empty: GraphEmulator, control: requests.Session) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    session = g.session()
    session.post(g.base_url + f"/users/{ann}/probe/count")
    session.post(
        g.base_url + "/$batch", json={"requests": [{"id": "1", "method": "GET", "url": probe.DIRECTORY}]}
    )
    summary = control.get(g.url + "/_emulator/log").json()
    assert summary["total"] == 3 and summary["roundTrips"] == 2
    assert summary["byRoute"] == {f"POST {probe.COUNT}": 1, "POST /$batch": 1, f"GET {probe.DIRECTORY}": 1}
    assert summary["byMailbox"] == {ann: 1}
    filtered = control.get(g.url + "/_emulator/log", params={"method": "POST", "route": probe.COUNT}).json()
    assert filtered["count"] == 1
    assert control.post(g.url + "/_emulator/log/clear").status_code == 204
    assert control.get(g.url + "/_emulator/log").json()["total"] == 0
    assert g.log.count() == 0


def test_directory_changes_through_the_control_surface(
    graph_empty: GraphEmulator, control: requests.Session
) -> None:
    g = graph_empty
    created = control.post(
        g.url + "/_emulator/users", json={"displayName": "Dana Driver", "mailNickname": "dana"}
    )
    assert created.status_code == 201
    user_id = created.json()["id"]
    graph = g.session()
    assert graph.get(g.base_url + f"/users/{user_id}").json()["displayName"] == "Dana Driver"
    updated = control.patch(g.url + f"/_emulator/users/{user_id}", json={"jobTitle": "Dispatcher"})
    assert updated.status_code == 200 and updated.json()["jobTitle"] == "Dispatcher"
    assert graph.get(g.base_url + f"/users/{user_id}?$select=jobTitle").json()["jobTitle"] == "Dispatcher"
    assert control.delete(g.url + f"/_emulator/users/{user_id}").status_code == 204
    assert graph.get(g.base_url + f"/users/{user_id}").status_code == 404
    # The control surface is not a Graph request: nothing of it is in the request log.
    assert g.log.count() == 3


def test_a_phone_saves_edits_and_deletes_a_contact(
    graph_empty: GraphEmulator, control: requests.Session
) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    saved = control.post(
        g.url + f"/_emulator/mailboxes/{ann}/contacts",
        json={"fields": {"displayName": "Maman", "mobilePhone": "+33 6 00 00 00 01"}},
    )
    assert saved.status_code == 201
    contact_id = saved.json()["id"]
    graph = g.session()
    listed = graph.get(g.base_url + f"/users/{ann}/contacts").json()["value"]
    assert [c["displayName"] for c in listed] == ["Maman"]
    edited = control.patch(
        g.url + f"/_emulator/mailboxes/{ann}/contacts/{contact_id}",
        json={"fields": {"displayName": "Maman ❤"}},
    )
    assert edited.status_code == 200 and edited.json()["changeKey"] != saved.json()["changeKey"]
    on_phone = control.get(g.url + f"/_emulator/mailboxes/{ann}/contacts").json()["value"]
    assert [c["displayName"] for c in on_phone] == ["Maman ❤"]
    assert control.delete(g.url + f"/_emulator/mailboxes/{ann}/contacts/{contact_id}").status_code == 204
    assert graph.get(g.base_url + f"/users/{ann}/contacts").json()["value"] == []


def test_a_phone_that_saves_back_its_own_copy_strips_the_hidden_properties(
    graph_empty: GraphEmulator, control: requests.Session
) -> None:
    g = graph_empty
    ann = probe.add_mailbox_user(g, "ann")
    prop = {"id": "String {22b3ad71-ee59-41a8-ba39-7a7fb693ffca} Name probe", "value": "hidden"}
    contact = g.tenant.mailboxes.create_contact(ann, {"displayName": "Bo", "singleValueExtendedProperties": [prop]})
    expand = {"$expand": f"singleValueExtendedProperties($filter=id eq '{prop['id']}')"}
    url = g.base_url + f"/users/{ann}/contacts/{contact['id']}"
    graph = g.session()
    assert graph.get(url, params=expand).json()["singleValueExtendedProperties"] == [prop]
    kept = control.patch(g.url + f"/_emulator/mailboxes/{ann}/contacts/{contact['id']}",
                         json={"fields": {"jobTitle": "Driver"}})
    assert kept.status_code == 200
    assert graph.get(url, params=expand).json()["singleValueExtendedProperties"] == [prop]
    stripped = control.patch(g.url + f"/_emulator/mailboxes/{ann}/contacts/{contact['id']}",
                             json={"fields": {"jobTitle": "Dispatcher"}, "stripsHiddenProperties": True})
    assert stripped.status_code == 200 and stripped.json()["id"] == contact["id"]
    assert stripped.json()["changeKey"] != kept.json()["changeKey"]
    after = graph.get(url, params=expand).json()
    assert after["jobTitle"] == "Dispatcher" and after.get("singleValueExtendedProperties", []) == []


def test_faults_and_throttling_through_the_control_surface(
    graph_empty: GraphEmulator, control: requests.Session
) -> None:
    g = graph_empty
    graph = g.session()
    configured = control.post(
        g.url + "/_emulator/faults", json={"error_rate": 1.0, "statuses": [503], "routes": [probe.DIRECTORY]}
    )
    assert configured.status_code == 200 and configured.json()["routes"] == [probe.DIRECTORY]
    assert graph.get(g.base_url + probe.DIRECTORY).status_code == 503
    assert control.post(g.url + "/_emulator/faults", json={"clear": True}).json()["error_rate"] == 0.0
    assert (
        control.post(g.url + "/_emulator/faults/fail_next", json={"n": 1, "status": 504}).status_code == 204
    )
    assert graph.get(g.base_url + probe.DIRECTORY).status_code == 504
    assert graph.get(g.base_url + probe.DIRECTORY).status_code == 200
    limits = control.post(g.url + "/_emulator/throttle", json={"directory_requests": 1})
    assert limits.status_code == 200 and limits.json()["directory_requests"] == 1
    assert graph.get(g.base_url + probe.DIRECTORY).status_code == 200
    assert graph.get(g.base_url + probe.DIRECTORY).status_code == 429


def test_expire_delta_tokens(graph_empty: GraphEmulator, control: requests.Session) -> None:
    g = graph_empty
    graph = g.session()
    page = graph.get(g.base_url + "/users/delta").json()
    while "@odata.nextLink" in page:
        page = graph.get(page["@odata.nextLink"]).json()
    delta_link = page["@odata.deltaLink"]
    assert graph.get(delta_link).status_code == 200
    assert control.post(g.url + "/_emulator/delta/expire").status_code == 204
    assert_graph_error(graph.get(delta_link), 410, "syncStateNotFound")


def test_load_a_scenario(graph_empty: GraphEmulator, control: requests.Session) -> None:
    g = graph_empty
    response = control.post(
        g.url + "/_emulator/scenario", json={"name": "synthetic", "params": {"users": 5, "targets": 2}}
    )
    assert response.status_code == 200
    users = g.session().get(g.base_url + "/users?$top=999").json()["value"]
    assert len(users) >= 5


class _Webhook(BaseHTTPRequestHandler):
    """Answers Graph's validation handshake and records notifications."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = parse_qs(urlsplit(self.path).query).get("validationToken")
        if token:
            payload, status, ctype = token[0].encode(), 200, "text/plain"
        else:
            type(self).received.append(json.loads(body))
            payload, status, ctype = b"", 202, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def test_lifecycle_event_reaches_the_webhook(graph_empty: GraphEmulator, control: requests.Session) -> None:
    g = graph_empty
    cert, key = g.issue_server_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    _Webhook.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    receiver.socket = context.wrap_socket(receiver.socket, server_side=True)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{receiver.server_address[1]}/hook"
        expiry = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        subscription = g.session().post(
            g.base_url + "/subscriptions",
            json={
                "changeType": "updated,deleted",
                "notificationUrl": url,
                "lifecycleNotificationUrl": url,
                "resource": "users",
                "expirationDateTime": expiry,
                "clientState": "secret-state",
            },
        )
        assert subscription.status_code == 201, subscription.text
        sub_id = subscription.json()["id"]
        response = control.post(
            g.url + f"/_emulator/subscriptions/{sub_id}/lifecycle", json={"event": "missed"}
        )
        assert response.status_code == 202
        assert g.tenant.subscriptions.flush(10)
        [notification] = _Webhook.received
        item = notification["value"][0]
        assert (item["lifecycleEvent"], item["subscriptionId"], item["clientState"]) == (
            "missed",
            sub_id,
            "secret-state",
        )
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_bad_control_requests_name_the_problem(graph_empty: GraphEmulator, control: requests.Session) -> None:
    g = graph_empty
    unknown_setting = control.post(g.url + "/_emulator/throttle", json={"request": 5})
    assert unknown_setting.status_code == 400 and "request" in unknown_setting.json()["error"]["message"]
    not_json = control.post(
        g.url + "/_emulator/faults", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]["message"]
    assert control.get(g.url + "/_emulator/nothing-here").status_code == 404
    assert control.get(g.url + "/_emulator/users/abc").status_code == 405
    bad_event = control.post(g.url + "/_emulator/subscriptions/nope/lifecycle", json={"event": "nope"})
    assert bad_event.status_code == 400 and "lifecycle event" in bad_event.json()["error"]["message"]
    missing_user = control.delete(g.url + "/_emulator/users/no-such-user")
    assert missing_user.status_code == 404

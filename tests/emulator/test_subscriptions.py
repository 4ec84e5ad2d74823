"""Subscriptions over real HTTPS: the validation handshake, notifications and lifecycle events.

The webhook is a real HTTPS server in the test (http.server + ssl) with a certificate issued by the
emulator's CA (`g.issue_server_cert`), so the emulator's deliveries verify it like Graph verifies yours.
`tenant.subscriptions.flush()` waits for the delivery worker; no test sleeps.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests

from graph_emulator import GraphEmulator
from tests.emulator.schema import validate

# resources/changenotification.md and resourcedata.md, as JSON Schema (ChangeNotifications.yml has no
# changeNotification schema): the properties a basic notification carries, nothing else.
_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$"}
CHANGE_NOTIFICATION = {
    "type": "object",
    "required": ["subscriptionId", "subscriptionExpirationDateTime", "changeType", "resource", "tenantId"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "subscriptionId": {"type": "string"},
        "subscriptionExpirationDateTime": _TIMESTAMP,
        "clientState": {"type": ["string", "null"], "maxLength": 128},
        "changeType": {"enum": ["created", "updated", "deleted"]},
        "resource": {"type": "string"},
        "tenantId": {"type": "string"},
        "resourceData": {
            "type": "object",
            "required": ["@odata.type", "@odata.id", "id"],
            "properties": {
                "@odata.type": {"type": "string"},
                "@odata.id": {"type": "string"},
                "@odata.etag": {"type": "string"},
                "id": {"type": "string"},
                "organizationId": {"type": "string"},
            },
            "additionalProperties": False,
        },
    },
}
LIFECYCLE_NOTIFICATION = {
    "type": "object",
    "required": ["subscriptionId", "subscriptionExpirationDateTime", "tenantId", "lifecycleEvent"],
    "additionalProperties": False,
    "properties": {
        "subscriptionId": {"type": "string"},
        "subscriptionExpirationDateTime": _TIMESTAMP,
        "tenantId": {"type": "string"},
        "clientState": {"type": ["string", "null"]},
        "lifecycleEvent": {"enum": ["reauthorizationRequired", "subscriptionRemoved", "missed"]},
    },
}


class Receiver:
    """An HTTPS webhook endpoint that answers validation requests per `mode` and records notifications."""

    def __init__(self, cert: str, key: str) -> None:
        self.mode = "echo"  # echo | wrong-token | error | json
        self.status = 202
        self.validations: list[str] = []  # decoded validation tokens received
        self.posts: list[tuple[str, dict[str, Any]]] = []  # (path, JSON body) of notifications
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                query = parse_qs(url.query)
                if "validationToken" in query:
                    token = query["validationToken"][0]
                    receiver.validations.append(token)
                    self._validation_answer(token)
                    return
                receiver.posts.append((url.path, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _validation_answer(self, token: str) -> None:
                mode = receiver.mode
                status = 500 if mode == "error" else 200
                text = "not the token" if mode == "wrong-token" else token
                ctype = "application/json" if mode == "json" else "text/plain; charset=utf-8"
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/notify") -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def items(self, path: str = "/notify") -> list[dict[str, Any]]:
        return [item for p, body in self.posts if p == path for item in body["value"]]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def g(graph_empty: GraphEmulator) -> Iterator[GraphEmulator]:
    yield graph_empty
    graph_empty.tenant.subscriptions.close()


@pytest.fixture
def hook(g: GraphEmulator) -> Iterator[Receiver]:
    receiver = Receiver(*g.issue_server_cert("127.0.0.1"))
    yield receiver
    receiver.close()


@pytest.fixture
def http(g: GraphEmulator) -> Iterator[requests.Session]:
    with g.session() as session:
        yield session


def expires(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subscribe(
    g: GraphEmulator,
    http: requests.Session,
    hook: Receiver,
    resource: str = "users",
    change_type: str = "updated,deleted",
    minutes: float = 120,
    **extra: Any,
) -> requests.Response:
    body = {
        "changeType": change_type,
        "notificationUrl": hook.url(),
        "resource": resource,
        "expirationDateTime": expires(minutes),
        "clientState": "galsync-secret",
        **extra,
    }
    return http.post(f"{g.base_url}/subscriptions", json=body)


def error_code(r: requests.Response) -> str:
    return str(r.json()["error"]["code"])


def test_subscription_is_created_after_the_endpoint_echoes_the_token(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    r = subscribe(g, http, hook, lifecycleNotificationUrl=hook.url("/lifecycle"))
    assert r.status_code == 201, r.text
    sub = r.json()
    validate(sub, "ChangeNotifications.yml", "microsoft.graph.subscription")
    assert sub["applicationId"] == g.client_id and sub["clientState"] == "galsync-secret"
    assert sub["changeType"] == "updated,deleted" and sub["resource"] == "users"
    # Both URLs were validated, with a token that needs URL-decoding (spaces, colons).
    assert len(hook.validations) == 2 and all(" " in t and ":" in t for t in hook.validations)
    assert [s["id"] for s in http.get(f"{g.base_url}/subscriptions").json()["value"]] == [sub["id"]]
    got = http.get(f"{g.base_url}/subscriptions/{sub['id']}")
    assert got.status_code == 200 and got.json()["expirationDateTime"] == sub["expirationDateTime"]


@pytest.mark.parametrize("mode", ["wrong-token", "error", "json"])
def test_handshake_failure_refuses_the_subscription(
    g: GraphEmulator, http: requests.Session, hook: Receiver, mode: str
) -> None:
    hook.mode = mode
    r = subscribe(g, http, hook)
    assert r.status_code == 400
    assert error_code(r) == "ValidationError"
    assert "Subscription validation request failed" in r.json()["error"]["message"]
    assert http.get(f"{g.base_url}/subscriptions").json()["value"] == []


def test_unreachable_or_plain_http_endpoint_is_refused(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    plain = hook.url().replace("https://", "http://")
    r = subscribe(g, http, hook, notificationUrl=plain)
    assert r.status_code == 400 and hook.validations == []
    hook.close()
    r = subscribe(g, http, hook)
    assert r.status_code == 400 and error_code(r) == "ValidationError"


@pytest.mark.parametrize(
    ("resource", "change_type", "minutes", "status", "fragment"),
    [
        ("users", "created", 120, 400, "changeType 'created' is not supported"),
        ("users", "updated", 41_770, 400, "41760 minutes"),
        ("me/contacts", "created", 120, 400, "delegated"),
        ("contacts", "updated", 120, 400, "organizational contacts"),
        ("users?$filter=id eq 'x'", "updated", 120, 400, "Query options"),
        ("drives/x/root", "updated", 120, 400, "not supported"),
        ("groups/6f1c5b4e-0000-4000-8000-000000000000", "updated", 120, 404, "does not exist"),
    ],
)
def test_invalid_subscriptions_are_refused_before_any_handshake(
    g: GraphEmulator,
    http: requests.Session,
    hook: Receiver,
    resource: str,
    change_type: str,
    minutes: float,
    status: int,
    fragment: str,
) -> None:
    r = subscribe(g, http, hook, resource=resource, change_type=change_type, minutes=minutes)
    assert r.status_code == status
    assert fragment in r.json()["error"]["message"]
    assert hook.validations == []


def test_outlook_contact_lifetime_limit_and_the_45_minute_minimum(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    user = g.tenant.directory.add_user(displayName="Driver One", mailNickname="driver1")
    resource = f"users/{user['id']}/contacts"
    r = subscribe(g, http, hook, resource=resource, change_type="created", minutes=4_240)
    assert r.status_code == 400 and error_code(r) == "ExtensionError"
    assert r.json()["error"]["message"] == "Subscription expiration can only be 4230 minutes in the future."
    r = subscribe(g, http, hook, resource=resource, change_type="created", minutes=5)
    assert r.status_code == 201
    expiry = datetime.fromisoformat(r.json()["expirationDateTime"].replace("0Z", "+00:00"))
    assert expiry - datetime.now(UTC) > timedelta(minutes=44)
    r = subscribe(g, http, hook, clientState="x" * 129)
    assert r.status_code == 400


def test_missing_role_mailbox_scope_and_quota_give_403(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    user = g.tenant.directory.add_user(displayName="Driver One", mailNickname="driver1")
    other = g.tenant.directory.add_user(displayName="Driver Two", mailNickname="driver2")
    contacts_only = g.register_app(roles={"Contacts.ReadWrite"}, mailbox_scope=[other["id"]])
    with g.session(contacts_only.client_id) as limited:
        assert subscribe(g, limited, hook).status_code == 403  # users need User.Read.All
        r = subscribe(g, limited, hook, resource=f"users/{user['id']}/contacts", change_type="created")
        assert r.status_code == 403 and error_code(r) == "ErrorAccessDenied"
        r = subscribe(g, limited, hook, resource=f"users/{other['id']}/contacts", change_type="created")
        assert r.status_code == 201

    g.tenant.subscriptions.quotas.directory_per_app = 1
    assert subscribe(g, http, hook).status_code == 201
    r = subscribe(g, http, hook)
    assert r.status_code == 403 and "limit of 1" in r.json()["error"]["message"]


def test_an_app_sees_and_changes_only_its_own_subscriptions(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    sub = subscribe(g, http, hook).json()
    other = g.register_app()
    with g.session(other.client_id) as theirs:
        assert theirs.get(f"{g.base_url}/subscriptions").json()["value"] == []
        assert theirs.get(f"{g.base_url}/subscriptions/{sub['id']}").status_code == 404
        assert theirs.delete(f"{g.base_url}/subscriptions/{sub['id']}").status_code == 404
    assert http.get(f"{g.base_url}/subscriptions/{sub['id']}").status_code == 200


def test_directory_change_is_delivered_over_https_with_the_client_state(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    sub = subscribe(g, http, hook).json()
    user = g.tenant.directory.add_user(displayName="New Driver", mailNickname="new.driver")
    g.tenant.directory.update_user(user["id"], jobTitle="Driver")
    g.tenant.directory.delete_user(user["id"], hard=True)
    assert g.tenant.subscriptions.flush(10)
    items = hook.items()
    for item in items:
        jsonschema.validate(item, CHANGE_NOTIFICATION)
        assert item["clientState"] == "galsync-secret"
        assert item["subscriptionId"] == sub["id"] and item["tenantId"] == g.tenant_id
        assert item["resource"] == f"Users/{user['id']}" and item["resourceData"]["id"] == user["id"]
    # A created user is reported as "updated" (users support updated,deleted only).
    assert [i["changeType"] for i in items] == ["updated", "updated", "deleted"]
    log = g.tenant.subscriptions.deliveries()
    assert log and all(d.subscription_id == sub["id"] and d.status == 202 for d in log)


def test_contact_changes_are_delivered_for_a_mailbox_subscription(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    user = g.tenant.directory.add_user(displayName="Driver One", mailNickname="driver1")
    r = subscribe(
        g,
        http,
        hook,
        resource=f"users/{user['userPrincipalName']}/contacts",
        change_type="created,updated,deleted",
    )
    assert r.status_code == 201, r.text
    base = f"{g.base_url}/users/{user['id']}"
    folder = http.post(f"{base}/contactFolders", json={"displayName": "galsync"}).json()
    created = http.post(f"{base}/contactFolders/{folder['id']}/contacts", json={"displayName": "A"}).json()
    http.patch(f"{base}/contacts/{created['id']}", json={"displayName": "B"})
    g.tenant.mailboxes.phone_create_contact(user["id"], {"displayName": "Maman"})
    http.delete(f"{base}/contacts/{created['id']}")
    assert g.tenant.subscriptions.flush(10)
    items = hook.items()
    for item in items:
        jsonschema.validate(item, CHANGE_NOTIFICATION)
    assert [i["changeType"] for i in items] == ["created", "updated", "created", "deleted"]
    assert items[0]["resourceData"]["@odata.etag"] == f'W/"{created["changeKey"]}"'
    assert items[0]["resource"] == f"Users/{user['id']}/Contacts/{created['id']}"
    assert "@odata.etag" not in items[3]["resourceData"]


def test_folder_subscription_ignores_other_folders(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    user = g.tenant.directory.add_user(displayName="Driver One", mailNickname="driver1")
    base = f"{g.base_url}/users/{user['id']}"
    folder = http.post(f"{base}/contactFolders", json={"displayName": "galsync"}).json()
    resource = f"users/{user['id']}/contactFolders/{folder['id']}/contacts"
    assert subscribe(g, http, hook, resource=resource, change_type="created").status_code == 201
    http.post(f"{base}/contacts", json={"displayName": "Elsewhere"})
    http.post(f"{base}/contactFolders/{folder['id']}/contacts", json={"displayName": "Here"})
    assert g.tenant.subscriptions.flush(10)
    assert len(hook.items()) == 1
    r = subscribe(
        g, http, hook, resource=f"users/{user['id']}/contactFolders/AAMkNope=/contacts", change_type="created"
    )
    assert r.status_code == 404


def test_renew_delete_and_expiry_stop_or_extend_delivery(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    subs = g.tenant.subscriptions
    first = subscribe(g, http, hook, minutes=60).json()
    r = http.patch(f"{g.base_url}/subscriptions/{first['id']}", json={"expirationDateTime": expires(600)})
    assert r.status_code == 200
    validate(r.json(), "ChangeNotifications.yml", "microsoft.graph.subscription")
    assert r.json()["expirationDateTime"] > first["expirationDateTime"]
    r = http.patch(f"{g.base_url}/subscriptions/{first['id']}", json={"resource": "groups"})
    assert r.status_code == 400

    assert http.delete(f"{g.base_url}/subscriptions/{first['id']}").status_code == 204
    g.tenant.directory.add_user(displayName="After Delete", mailNickname="after.delete")
    assert subs.flush(10)
    assert hook.items() == []

    second = subscribe(g, http, hook, minutes=60).json()
    subs.clock = lambda: datetime.now(UTC) + timedelta(minutes=61)  # an hour later: expired
    g.tenant.directory.add_user(displayName="After Expiry", mailNickname="after.expiry")
    assert subs.flush(10)
    assert hook.items() == []
    assert http.get(f"{g.base_url}/subscriptions/{second['id']}").status_code == 404


def test_lifecycle_events_reach_the_lifecycle_url(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    subs = g.tenant.subscriptions
    sub = subscribe(g, http, hook, lifecycleNotificationUrl=hook.url("/lifecycle")).json()
    subs.emit_lifecycle(sub["id"], "reauthorizationRequired")
    assert http.post(f"{g.base_url}/subscriptions/{sub['id']}/reauthorize").status_code == 204
    subs.emit_lifecycle(sub["id"], "missed")
    subs.emit_lifecycle(sub["id"], "subscriptionRemoved")
    assert subs.flush(10)
    events = hook.items("/lifecycle")
    for event in events:
        jsonschema.validate(event, LIFECYCLE_NOTIFICATION)
        assert event["clientState"] == "galsync-secret" and event["subscriptionId"] == sub["id"]
    assert [e["lifecycleEvent"] for e in events] == [
        "reauthorizationRequired",
        "missed",
        "subscriptionRemoved",
    ]
    assert hook.items("/notify") == []
    # subscriptionRemoved removed it.
    assert http.get(f"{g.base_url}/subscriptions/{sub['id']}").status_code == 404
    with pytest.raises(ValueError):
        subs.emit_lifecycle(sub["id"], "somethingElse")


def test_failed_delivery_is_retried_and_logged(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    subs = g.tenant.subscriptions
    subs.retry_backoff = 0.01
    sub = subscribe(g, http, hook).json()
    hook.status = 503
    g.tenant.directory.add_user(displayName="Retry Me", mailNickname="retry.me")
    assert subs.flush(10)
    assert [d.status for d in subs.deliveries()] == [503] * subs.max_attempts
    assert len(hook.items()) == subs.max_attempts
    assert all(d.subscription_id == sub["id"] for d in subs.deliveries())


def test_group_membership_change_is_delivered_for_a_group_subscription(
    g: GraphEmulator, http: requests.Session, hook: Receiver
) -> None:
    driver = g.tenant.directory.add_user(displayName="Driver One", mailNickname="driver1")
    group = g.tenant.directory.add_group("Drivers")
    r = subscribe(g, http, hook, resource=f"groups/{group['id']}", change_type="updated")
    assert r.status_code == 201, r.text
    g.tenant.directory.add_member(group["id"], driver["id"])
    assert g.tenant.subscriptions.flush(10)
    items = hook.items()
    assert items and all(i["resource"] == f"Groups/{group['id']}" for i in items)
    assert {i["resourceData"]["@odata.type"] for i in items} == {"#Microsoft.Graph.Group"}

"""The pipeline around the real Graph routes (directory, mailbox, subscriptions) of the logistics tenant."""

from __future__ import annotations

from typing import Any

from graph_emulator import DEFAULT_ROLES, GraphEmulator
from graph_emulator.routing import ROUTES
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"


def _shared_mailboxes(g: GraphEmulator) -> list[dict[str, Any]]:
    assert g.scenario is not None
    return list(g.scenario["shared_mailboxes"].values())


def _folder(g: GraphEmulator, mailbox: str, name: str = "Company") -> str:
    response = g.session().post(g.base_url + f"/users/{mailbox}/contactFolders", json={"displayName": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_every_resource_module_registered_its_routes(graph: GraphEmulator) -> None:
    templates = {(r.method, r.template) for r in ROUTES.routes}
    for expected in [
        ("GET", "/users/delta"),
        ("GET", "/users/{user}"),
        ("POST", CONTACTS),
        ("GET", "/users/{user}/mailboxSettings/userPurpose"),
        ("POST", "/subscriptions"),
        ("POST", "/$batch"),
    ]:
        assert expected in templates


def test_a_batch_of_contact_writes_is_logged_per_inner_request(graph: GraphEmulator) -> None:
    g = graph
    mailbox = _shared_mailboxes(g)[0]["id"]
    folder = _folder(g, mailbox)
    g.log.clear()
    url = f"/users/{mailbox}/contactFolders/{folder}/contacts"
    batch: dict[str, Any] = {
        "requests": [
            {
                "id": str(i),
                "method": "POST",
                "url": url,
                "body": {"displayName": f"Driver {i}", "mobilePhone": f"+33 6 00 00 00 0{i}"},
                "headers": {"Content-Type": "application/json"},
            }
            for i in range(3)
        ]
    }
    response = g.session().post(g.base_url + "/$batch", json=batch)
    assert sorted(r["status"] for r in response.json()["responses"]) == [201, 201, 201]
    assert g.log.count(method="POST", route=CONTACTS, mailbox=mailbox, via_batch=True) == 3
    assert g.log.round_trips() == 1
    assert len(g.tenant.mailboxes.contacts(mailbox, folder_id=folder)) == 3


def test_roles_and_mailbox_scope_on_real_routes(graph: GraphEmulator) -> None:
    g = graph
    inside, outside = (m["id"] for m in _shared_mailboxes(g)[:2])
    scoped = g.register_app(
        roles=DEFAULT_ROLES - {"Contacts.ReadWrite"} | {"Contacts.Read"}, mailbox_scope=[inside]
    )
    session = g.session(scoped.client_id)
    assert session.get(g.base_url + f"/users/{inside}/contactFolders").status_code == 200
    denied = assert_graph_error(
        session.get(g.base_url + f"/users/{outside}/contactFolders"), 403, "ErrorAccessDenied"
    )
    assert denied["message"].startswith("Access to OData is disabled")
    # Reading is granted, writing is not.
    write = session.post(g.base_url + f"/users/{inside}/contactFolders", json={"displayName": "X"})
    assert_graph_error(write, 403, "ErrorAccessDenied")
    # Directory reads are not mailbox-scoped, but need their own role.
    assert session.get(g.base_url + "/users?$top=1").status_code == 200
    no_users = g.register_app(roles={"Contacts.ReadWrite"})
    assert_graph_error(
        g.session(no_users.client_id).get(g.base_url + "/users"), 403, "Authorization_RequestDenied"
    )


def test_outlook_budget_on_real_routes_is_per_mailbox(graph: GraphEmulator) -> None:
    g = graph
    first, second = (m["id"] for m in _shared_mailboxes(g)[:2])
    g.throttle.configure(requests=2, window_seconds=60)
    session = g.session()
    assert [session.get(g.base_url + f"/users/{first}/contactFolders").status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert session.get(g.base_url + f"/users/{second}/contactFolders").status_code == 200
    # Mailboxes named by UPN share the budget of the same mailbox.
    upn = probe.upn_of(g, first)
    assert session.get(g.base_url + f"/users/{upn}/contactFolders").status_code == 429


def test_links_inside_a_batch_point_at_the_emulator(graph: GraphEmulator) -> None:
    g = graph
    response = g.session().post(
        g.base_url + "/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/users?$top=2"}]}
    )
    [inner] = response.json()["responses"]
    assert inner["status"] == 200
    assert inner["body"]["@odata.nextLink"].startswith(g.base_url + "/users")
    follow = g.session().get(inner["body"]["@odata.nextLink"])
    assert follow.status_code == 200 and len(follow.json()["value"]) == 2


def test_unknown_mailbox_owner_on_an_outlook_route(graph: GraphEmulator) -> None:
    g = graph
    response = g.session().get(g.base_url + "/users/nobody@contoso.example/contactFolders")
    assert_graph_error(response, 404, "ErrorInvalidUser")

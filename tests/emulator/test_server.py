"""The emulator's HTTPS server and Graph pipeline: TLS, keep-alive, bearer checks, roles, mailbox scope."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from graph_emulator import DEFAULT_ROLES, GraphEmulator
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error


def test_serves_https_with_its_own_ca_on_a_free_port(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    assert g.base_url.startswith("https://127.0.0.1:") and g.base_url.endswith("/v1.0")
    assert g.authority == f"{g.url}/{g.tenant_id}"
    # The system trust store does not know the emulator's CA...
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(g.base_url + probe.DIRECTORY, verify="/etc/ssl/certs/ca-certificates.crt", timeout=5)
    # ...its CA file does.
    assert g.session().get(g.base_url + probe.DIRECTORY, timeout=5).status_code == 200


def test_serves_on_a_given_port_and_refuses_a_taken_one() -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    with GraphEmulator.start(scenario=None, port=port) as g:
        assert g.base_url == f"https://127.0.0.1:{port}/v1.0"
        assert g.session().get(g.base_url + probe.DIRECTORY).status_code == 200
        with pytest.raises(OSError):
            GraphEmulator.start(scenario=None, port=port)


def test_keeps_the_connection_alive_between_requests(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    context = ssl.create_default_context(cafile=g.ca_file)
    connection = http.client.HTTPSConnection("127.0.0.1", int(g.url.rsplit(":", 1)[1]), context=context)
    headers = {"Authorization": f"Bearer {g.access_token()}"}
    sockets = []
    for _ in range(3):
        connection.request("GET", "/v1.0" + probe.DIRECTORY, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close
        sockets.append(connection.sock)
    connection.close()
    assert sockets[0] is sockets[1] is sockets[2]
    assert g.log.round_trips() == 3


def _raw_exchange(g: GraphEmulator, head: bytes) -> tuple[int, bytes]:
    """Send a request head as given over TLS; the status and the raw answer.

    An answer to a request line http.server cannot read is HTTP/0.9 style (no status line): its status is
    then the one http.server's error page names.
    """
    context = ssl.create_default_context(cafile=g.ca_file)
    address = ("127.0.0.1", int(g.url.rsplit(":", 1)[1]))
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=address[0]) as tls,
    ):
        tls.sendall(head)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
            if answer.startswith(b"HTTP/") and b"\r\n\r\n" in answer:
                break
    if answer.startswith(b"HTTP/"):
        return int(answer.split(b" ", 2)[1]), answer
    return int(answer.split(b"Error code: ", 1)[1][:3]), answer


def test_header_fields_are_read_in_any_case_and_folded_lines_continue_them(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    token = g.access_token()
    head = (
        f"GET /v1.0{probe.DIRECTORY} HTTP/1.1\r\nhost: 127.0.0.1\r\naUtHoRiZaTiOn: Bearer {token}\r\n"
        "CLIENT-REQUEST-ID: first\r\n part\r\nConnection: close\r\n\r\n"
    ).encode()
    status, answer = _raw_exchange(g, head)
    assert status == 200
    assert b"client-request-id: first part\r\n" in answer.lower()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /v1.0/users HTTP/1.x\r\n\r\n", 400),  # a version that is not two numbers
        (b"GET /v1.0/users HTTP/2.0\r\n\r\n", 505),
        (b"GET /v1.0/users extra HTTP/1.1\r\n\r\n", 400),  # four words
        (b"POST /v1.0/users\r\n\r\n", 400),  # HTTP/0.9 knows only GET
        (b"GET /v1.0/users HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET /v1.0/users HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ],
    ids=["bad-version", "http2", "four-words", "http09-post", "too-many-fields", "field-too-long"],
)
def test_malformed_request_heads_get_http_servers_answers(graph_empty: GraphEmulator, head: bytes, status: int) -> None:
    assert _raw_exchange(graph_empty, head)[0] == status
    assert graph_empty.log.round_trips() == 0  # refused before Graph saw anything


def test_every_response_carries_a_request_id_and_echoes_client_request_id(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    response = g.session().get(g.base_url + probe.DIRECTORY, headers={"client-request-id": "abc-123"})
    assert response.headers["client-request-id"] == "abc-123"
    [entry] = g.log.entries()
    assert response.headers["request-id"] == entry.request_id


def test_missing_bearer_is_refused_with_graphs_envelope(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    session = g.session()
    del session.headers["Authorization"]
    response = session.get(g.base_url + probe.DIRECTORY, headers={"client-request-id": "c-1"})
    error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert error["message"] == "Access token is empty."
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    [entry] = g.log.entries()
    assert (entry.status, entry.app_id, entry.route) == (401, None, None)


def test_expired_bearer_is_refused(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    session = g.session()
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200
    g.identity.advance_clock(3601)  # the token's hour is over
    error = assert_graph_error(session.get(g.base_url + probe.DIRECTORY), 401, "InvalidAuthenticationToken")
    assert "expired" in error["message"]


def test_forged_bearers_are_refused(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    header, claims, signature = g.access_token().split(".")
    # Same claims, signature of another key: a token from another emulator.
    with GraphEmulator.start(scenario=None) as other:
        foreign = other.access_token()
    tampered_signature = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    for token in (f"{header}.{claims}.{tampered_signature}", foreign, "not-a-jwt"):
        response = requests.get(
            g.base_url + probe.DIRECTORY, headers={"Authorization": f"Bearer {token}"}, verify=g.ca_file
        )
        assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert g.log.count(status=401) == 3


def test_missing_role_is_refused_as_each_workload_words_it(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    user = probe.add_mailbox_user(g, "ann")
    weak = g.register_app(roles={"MailboxSettings.Read"})
    session = g.session(weak.client_id)
    directory = assert_graph_error(
        session.get(g.base_url + probe.DIRECTORY), 403, "Authorization_RequestDenied"
    )
    assert directory["message"] == "Insufficient privileges to complete the operation."
    assert_graph_error(session.post(g.base_url + f"/users/{user}/probe/count"), 403, "ErrorAccessDenied")
    assert probe.calls[user] == 0  # the handler never ran
    # Any one of the route's roles is enough.
    other = g.register_app(roles={"Directory.Read.All"})
    assert g.session(other.client_id).get(g.base_url + probe.DIRECTORY).status_code == 200


def test_mailbox_scope_keeps_the_app_out_of_other_mailboxes(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    inside, outside = probe.add_mailbox_user(g, "bea"), probe.add_mailbox_user(g, "carl")
    upn_outside = probe.upn_of(g, outside)
    scoped = g.register_app(roles=DEFAULT_ROLES, mailbox_scope=[inside])
    session = g.session(scoped.client_id)
    assert session.post(g.base_url + f"/users/{inside}/probe/count").status_code == 201
    for target in (outside, upn_outside):  # by id or by UPN: the same mailbox
        error = assert_graph_error(
            session.post(g.base_url + f"/users/{target}/probe/count"), 403, "ErrorAccessDenied"
        )
        assert error["message"].startswith("Access to OData is disabled")
    assert probe.calls[outside] == 0
    # Directory routes are not mailbox-scoped.
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200
    assert g.log.count(mailbox=outside, status=403) == 2


def test_unknown_mailbox_owner_and_unknown_path(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    session = g.session()
    assert_graph_error(
        session.post(g.base_url + "/users/nobody@contoso.example/probe/count"), 404, "ErrorInvalidUser"
    )
    assert_graph_error(session.get(g.base_url + "/nonsense/path"), 400, "BadRequest")
    assert_graph_error(session.delete(g.base_url + probe.DIRECTORY), 405, "Request_BadRequest")


def test_requests_to_one_mailbox_are_logged_with_route_and_mailbox(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    ann, bob = probe.add_mailbox_user(g, "ann"), probe.add_mailbox_user(g, "bob")
    session = g.session()
    ann_upn = probe.upn_of(g, ann)
    for target in (ann, ann_upn, bob):
        session.post(g.base_url + f"/users/{target}/probe/count")
    session.get(g.base_url + probe.DIRECTORY)
    assert g.log.count(method="POST", route=probe.COUNT) == 3
    assert g.log.count(route=probe.COUNT, mailbox=ann) == 2
    assert g.log.count(route=probe.COUNT, mailbox=ann_upn) == 2  # filters resolve UPNs too
    assert g.log.count(status=201, via_batch=False) == 3
    assert g.log.round_trips() == 4
    assert [e.seq for e in g.log.entries()] == [1, 2, 3, 4]
    g.log.clear()
    assert g.log.count() == 0


def test_concurrent_requests_are_served_in_parallel(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    users = [probe.add_mailbox_user(g, f"user{i}") for i in range(3)]
    gate = probe.new_gate()
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda u=u: results.append(
                g.session().get(g.base_url + f"/users/{u}/probe/hold").status_code
            )
        )
        for u in users
    ]
    for t in threads:
        t.start()
    gate.wait_entered(3)  # all three are inside their handlers at the same time
    gate.open()
    for t in threads:
        t.join(timeout=10)
    assert results == [200, 200, 200]


def test_a_route_handler_bug_is_a_500_with_graphs_envelope(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    # A handler that raises a Python error still answers (500 generalException): no hang, no drop.
    assert_graph_error(g.session().get(g.base_url + probe.BROKEN), 500, "generalException")
    assert g.log.count(route=probe.BROKEN, status=500) == 1


def test_issue_server_cert_is_trusted_by_the_emulators_ca(graph_empty: GraphEmulator) -> None:
    g = graph_empty
    cert_path, key_path = g.issue_server_cert("127.0.0.1")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = ssl.create_default_context(cafile=g.ca_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(5))

    worker = threading.Thread(target=accept)
    worker.start()
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"hello")
        assert tls.recv(5) == b"hello"
    worker.join(timeout=5)
    listener.close()


def test_stop_closes_the_port(tmp_path: Path) -> None:
    with GraphEmulator.start(scenario=None) as g:
        url = g.base_url + probe.DIRECTORY
        session = g.session()
        assert session.get(url).status_code == 200
        session.verify = str(shutil.copy(g.ca_file, tmp_path / "ca.pem"))  # the emulator removes its own copy
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url, timeout=5)


def test_command_line_prints_how_to_reach_it() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graph_emulator",
            "--scenario",
            "synthetic",
            "--param",
            "users=3",
            "--param",
            "targets=1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = {}
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("serving"):
                break
            key, _, value = line.partition(":")
            lines[key.strip()] = value.strip()
        assert lines["base URL"].startswith("https://127.0.0.1:") and lines["base URL"].endswith("/v1.0")
        token = requests.post(
            f"{lines['authority']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": lines["client id"],
                "client_secret": lines["client secret"],
                "scope": "https://graph.microsoft.com/.default",
            },
            verify=lines["CA file"],
            timeout=10,
        )
        assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0

"""The HTTP session reads the proxy and CA settings of the environment once, and still applies them.

A real HTTPS proxy is not needed to show that a request goes to the proxy: a local socket that answers
every CONNECT with 403 records where the client wanted to go, and the request fails.
"""

from __future__ import annotations

import io
import os
import socket
import ssl
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.certs import where as public_ca_bundle

from graph_emulator import GraphEmulator
from sync_core.graph import GraphClient, GraphError, StaticToken
from sync_core.graph.session import GraphSession, HttpEnvironment, whole_body

from .support import Mailbox, make_client

PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")


class RefusingProxy:
    """Listens on 127.0.0.1, records each request line it gets (e.g. CONNECT host:port) and answers 403."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head.split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefusingProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    p = RefusingProxy()
    yield p
    p.close()


def _emulator_host(emu: GraphEmulator) -> str:
    return urlsplit(emu.base_url).netloc


def test_https_proxy_set_at_start_carries_the_requests(
    emu: GraphEmulator, mailbox: Mailbox, proxy: RefusingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with make_client(emu) as client, pytest.raises(GraphError):
        client.get(mailbox.contacts)
    assert proxy.requests and all(r.startswith(f"CONNECT {_emulator_host(emu)} ") for r in proxy.requests)
    assert emu.log.count() == 0


def test_no_proxy_set_at_start_keeps_local_requests_direct(
    emu: GraphEmulator, mailbox: Mailbox, proxy: RefusingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with make_client(emu) as client:
        assert client.get(mailbox.contacts)["value"] == []
    assert proxy.requests == [] and emu.log.count() == 1


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [
        ("127.0.0.1", True),
        ("127.0.0.0/8", True),  # a network, as requests allows
        ("*", True),
        ("graph.microsoft.com", False),
        ("", False),
    ],
)
def test_no_proxy_forms(no_proxy: str, direct: bool) -> None:
    environment = HttpEnvironment({"https": "http://proxy.example:3128"}, no_proxy)
    expected = {} if direct else {"https": "http://proxy.example:3128"}
    assert environment.proxies_for("https://127.0.0.1:8443/v1.0/users") == expected


def test_no_proxy_matches_domains_and_ports() -> None:
    environment = HttpEnvironment({"https": "http://proxy.example:3128"}, ".Contoso.com, graph.local:8443")
    assert environment.goes_direct("https://login.contoso.com/token")
    assert environment.goes_direct("https://contoso.com/token")
    assert not environment.goes_direct("https://notcontoso.com/token")
    assert environment.goes_direct("https://graph.local:8443/v1.0/users")
    assert not environment.goes_direct("https://graph.local/v1.0/users")  # another port
    assert not environment.goes_direct("https://graph.microsoft.com/v1.0/users")


def test_proxy_settings_are_read_once_when_the_session_is_made(
    emu: GraphEmulator, mailbox: Mailbox, proxy: RefusingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(emu) as client:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)  # too late for this client
        assert client.get(mailbox.contacts)["value"] == []
    assert proxy.requests == []


class _CountingEnviron(MutableMapping[str, str]):
    """os.environ that counts the reads made from one thread (the emulator's threads also run here)."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self._real = real
        self._thread = threading.get_ident()
        self.reads = 0

    def _count(self) -> None:
        if threading.get_ident() == self._thread:
            self.reads += 1

    def __getitem__(self, key: str) -> str:
        self._count()
        return self._real[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._real[key] = value

    def __delitem__(self, key: str) -> None:
        del self._real[key]

    def __iter__(self) -> Iterator[str]:
        self._count()
        return iter(self._real)

    def __len__(self) -> int:
        return len(self._real)


def test_requests_do_not_read_the_environment(
    emu: GraphEmulator, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(emu) as client:
        client.get(mailbox.contacts)  # opens the connection
        environ = _CountingEnviron(os.environ)
        monkeypatch.setattr(os, "environ", environ)
        for _ in range(5):
            client.get(mailbox.contacts)
            client.request("POST", mailbox.contacts, json={"displayName": "Dispatch"})
        assert environ.reads == 0

        # The counter sees what requests' own environment handling reads (so the 0 above means something).
        with requests.Session() as plain:
            headers = {"Authorization": f"Bearer {emu.access_token()}"}
            plain.get(emu.base_url + mailbox.contacts, headers=headers, verify=emu.ca_file)
        assert environ.reads > 0


def test_requests_ca_bundle_does_not_replace_the_graph_ca(
    emu: GraphEmulator, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", public_ca_bundle())  # does not hold the emulator's CA
    with make_client(emu) as client:
        assert client.get(mailbox.contacts)["value"] == []


def test_requests_ca_bundle_is_still_used_without_an_extra_ca(
    emu: GraphEmulator, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = GraphSession(pool_size=1, read_timeout=10)
    try:
        headers = {"Authorization": f"Bearer {emu.access_token()}"}
        assert session.get(emu.base_url + mailbox.contacts, headers=headers).status_code == 200
    finally:
        session.close()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", public_ca_bundle())
    session = GraphSession(pool_size=1, read_timeout=10)
    try:
        with pytest.raises(requests.exceptions.SSLError):
            session.get(emu.base_url + mailbox.contacts, headers=headers)
    finally:
        session.close()


def test_new_connections_do_not_load_ca_files_again(
    emu: GraphEmulator, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(emu) as client:  # its trust store (public CAs + the emulator's) is built here, once
        loads: list[object] = []
        real = ssl.SSLContext.load_verify_locations

        def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
            loads.append(args or kwargs)
            real(self, *args, **kwargs)

        monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
        for _ in range(3):  # each on a new TLS connection
            assert client.get(mailbox.contacts, headers={"Connection": "close"})["value"] == []
        assert loads == []


def test_the_extra_ca_does_not_trust_another_emulator(emu: GraphEmulator) -> None:
    with GraphEmulator.start(scenario=None) as other:
        # Trusts public CAs and `emu`'s CA; `other` has a CA of its own.
        client = GraphClient(other.base_url, StaticToken(other.access_token()), ca_bundle=emu.ca_file)
        with client, pytest.raises(GraphError, match="TLS certificate is not trusted"):
            client.get("/users")


def test_whole_body_reads_an_answer_in_one_piece_or_gives_the_content_already_read() -> None:
    body = b'{"responses": [' + b'{"id": "1", "status": 201}, ' * 2000 + b"{}]}"  # beyond requests' 10 KB pieces
    unread = requests.Response()
    unread.raw = io.BytesIO(body)
    assert whole_body(unread) == body
    read = requests.Response()
    read.raw = io.BytesIO(body)
    assert read.content == body  # a retry's judge reads an error body first
    assert whole_body(read) == body

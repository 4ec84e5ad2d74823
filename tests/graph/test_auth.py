"""Authentication through real msal against the emulator's token endpoint (secret, certificate) and the
managed identity endpoint of App Service / Functions.

The managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER, what Azure Functions provides) cannot
exist on this machine, so a small local HTTP server stands in for it: it speaks the documented protocol
(api-version 2019-08-01, X-IDENTITY-HEADER, resource, client_id) and hands out a token it got from the
emulator's real token endpoint. It is the only stand-in in this suite.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from graph_emulator import GraphEmulator
from sync_core.graph import AuthError, GraphClient, Unauthorized
from sync_core.graph.auth import HeldToken
from sync_core.graph.clouds import CLOUDS, endpoints

from .support import Mailbox, settings_for

PURPOSE = "/users/{}/mailboxSettings/userPurpose"


def _purpose(client: GraphClient, mailbox: Mailbox) -> str:
    return str(client.get(PURPOSE.format(mailbox.user_id))["value"])


def _one_line(exc: AuthError) -> str:
    line = str(exc)
    assert "\n" not in line
    return line


# ---- client secret -----------------------------------------------------------------------------------------


def test_client_secret_gets_a_token_and_calls_graph(emu: GraphEmulator, mailbox: Mailbox) -> None:
    with GraphClient.from_settings(settings_for(emu)) as client:
        assert _purpose(client, mailbox) == "user"
        assert _purpose(client, mailbox) == "user"
    assert emu.log.count(route="/users/{user}/mailboxSettings/userPurpose", status=200) == 2


def test_the_token_is_asked_of_msal_once_per_lifetime_not_per_request(
    emu: GraphEmulator, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[object] = []
    real = msal.ConfidentialClientApplication.acquire_token_for_client

    def counting(self: msal.ConfidentialClientApplication, *args: Any, **kwargs: Any) -> Any:
        asked.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(msal.ConfidentialClientApplication, "acquire_token_for_client", counting)
    with GraphClient.from_settings(settings_for(emu)) as client:  # asks once, at start
        for _ in range(5):
            assert _purpose(client, mailbox) == "user"
    assert len(asked) == 1


@pytest.mark.parametrize(
    ("answer", "kept_for"),
    [
        ({"access_token": "t", "expires_in": 3600}, 3300.0),  # until msal itself would renew it
        ({"access_token": "t", "expires_in": 3600, "refresh_on": 1200}, 1200.0),  # msal's proactive refresh
        ({"access_token": "t", "expires_in": 299}, None),  # msal renews it on the next ask anyway
        ({"access_token": "t"}, None),  # no lifetime given: always ask msal
    ],
)
def test_a_token_is_kept_until_msal_would_renew_it(answer: dict[str, Any], kept_for: float | None) -> None:
    now = [1000.0]
    held = HeldToken.of(answer, clock=lambda: now[0], wall_clock=lambda: 0.0)
    assert (held.until - 1000.0 if held else None) == kept_for
    if held is not None and kept_for is not None:
        now[0] += kept_for - 1
        assert held.fresh()
        now[0] += 1
        assert not held.fresh()


def test_wrong_secret_fails_at_start_naming_the_setting(emu: GraphEmulator) -> None:
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings_for(emu, GALSYNC_CLIENT_SECRET="not-the-secret"))
    assert err.value.setting == "GALSYNC_CLIENT_SECRET"
    assert _one_line(err.value) == "GALSYNC_CLIENT_SECRET: the client secret is wrong (AADSTS7000215)"


def test_unknown_tenant_fails_at_start_naming_the_setting(emu: GraphEmulator) -> None:
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings_for(emu, GALSYNC_TENANT_ID="00000000-0000-0000-0000-000000000001"))
    assert err.value.setting == "GALSYNC_TENANT_ID"
    assert "00000000-0000-0000-0000-000000000001" in _one_line(err.value)


def test_unknown_client_id_names_the_setting(emu: GraphEmulator) -> None:
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings_for(emu, GALSYNC_CLIENT_ID="11111111-2222-3333-4444-555555555555"))
    assert err.value.setting == "GALSYNC_CLIENT_ID"
    assert "AADSTS700016" in _one_line(err.value)


def test_empty_settings_are_named_before_any_request(emu: GraphEmulator) -> None:
    for name in ("GALSYNC_TENANT_ID", "GALSYNC_CLIENT_ID", "GALSYNC_CLIENT_SECRET"):
        with pytest.raises(AuthError) as err:
            GraphClient.from_settings(settings_for(emu, **{name: ""}))
        assert err.value.setting == name
        assert _one_line(err.value).startswith(name)
    assert emu.log.count() == 0


def test_untrusted_emulator_names_the_ca_setting(emu: GraphEmulator) -> None:
    # Without GALSYNC_GRAPH_CA_BUNDLE the emulator's certificate is not trusted.
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings_for(emu, GALSYNC_GRAPH_CA_BUNDLE=""))
    assert err.value.setting == "GALSYNC_GRAPH_CA_BUNDLE"


def test_an_expired_token_is_renewed_once(emu: GraphEmulator, mailbox: Mailbox) -> None:
    with GraphClient.from_settings(settings_for(emu)) as client:
        assert _purpose(client, mailbox) == "user"
        emu.identity.advance_clock(2 * 3600)  # msal still trusts its cached token; Graph does not
        assert _purpose(client, mailbox) == "user"
    assert emu.log.count(status=401) == 1  # refused before routing, so logged without a route
    assert emu.log.count(route="/users/{user}/mailboxSettings/userPurpose", status=200) == 2


def test_a_token_graph_keeps_refusing_is_an_error(emu: GraphEmulator, mailbox: Mailbox) -> None:
    from sync_core.graph import StaticToken

    client = GraphClient(emu.base_url, StaticToken("forged"), ca_bundle=emu.ca_file)
    with pytest.raises(Unauthorized) as err:
        _purpose(client, mailbox)
    assert err.value.status == 401 and err.value.request_id
    assert emu.log.count(status=401) == 2  # the first answer, then one more try after invalidating


# ---- certificate -------------------------------------------------------------------------------------------


def test_certificate_pem_file(emu: GraphEmulator, mailbox: Mailbox, tmp_path: Path) -> None:
    client_id, key_pem, cert_pem, _ = emu.certificate_app()
    pem = tmp_path / "galsync.pem"
    pem.write_text(key_pem + cert_pem)
    settings = settings_for(
        emu,
        GALSYNC_AUTH_MODE="certificate",
        GALSYNC_CLIENT_ID=client_id,
        GALSYNC_CLIENT_SECRET="",
        GALSYNC_CERTIFICATE=str(pem),
    )
    with GraphClient.from_settings(settings) as client:
        assert _purpose(client, mailbox) == "user"


def _pfx(key_pem: str, cert_pem: str, password: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert isinstance(key, rsa.RSAPrivateKey)
    return pkcs12.serialize_key_and_certificates(
        b"galsync", key, cert, None, serialization.BestAvailableEncryption(password)
    )


def test_certificate_pfx_file_and_key_vault_value(emu: GraphEmulator, mailbox: Mailbox, tmp_path: Path) -> None:
    client_id, key_pem, cert_pem, _ = emu.certificate_app()
    pfx = _pfx(key_pem, cert_pem, b"s3cret")
    path = tmp_path / "galsync.pfx"
    path.write_bytes(pfx)
    common = {
        "GALSYNC_AUTH_MODE": "certificate",
        "GALSYNC_CLIENT_ID": client_id,
        "GALSYNC_CLIENT_SECRET": "",
        "GALSYNC_CERTIFICATE_PASSWORD": "s3cret",
    }
    for value in (str(path), base64.b64encode(pfx).decode()):  # a file, or what a Key Vault reference yields
        with GraphClient.from_settings(settings_for(emu, GALSYNC_CERTIFICATE=value, **common)) as client:
            assert _purpose(client, mailbox) == "user"


def test_certificate_assertion_uses_sha256_thumbprint(emu: GraphEmulator) -> None:
    """x5t#S256 with PS256, not the SHA-1 x5t (checked on the assertion msal builds from our credential)."""
    from sync_core.graph.certificate import load_certificate

    client_id, key_pem, cert_pem, _ = emu.certificate_app()
    cert = load_certificate(key_pem + cert_pem)
    captured: dict[str, Any] = {}

    class Recording(requests.Session):
        def post(self, url: str | bytes, data: Any = None, **kw: Any) -> requests.Response:  # type: ignore[override]
            captured.update(data or {})
            return super().post(url, data=data, **kw)

    session = Recording()
    session.trust_env = False
    session.verify = emu.ca_file
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=cert.msal_credential(),
        authority=emu.authority,
        http_client=session,
        instance_discovery=False,
    )
    assert "access_token" in app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assertion = captured["client_assertion"]
    assertion = assertion.decode() if isinstance(assertion, bytes) else assertion
    header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))
    expected = base64.urlsafe_b64encode(bytes.fromhex(cert.thumbprint_sha256)).decode().rstrip("=")
    assert header["alg"] == "PS256" and header["x5t#S256"].rstrip("=") == expected and "x5t" not in header


def test_missing_certificate_file_names_the_setting(emu: GraphEmulator, tmp_path: Path) -> None:
    settings = settings_for(emu, GALSYNC_AUTH_MODE="certificate", GALSYNC_CERTIFICATE=str(tmp_path / "nope.pfx"))
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings)
    assert err.value.setting == "GALSYNC_CERTIFICATE"
    assert _one_line(err.value) == f"GALSYNC_CERTIFICATE file '{tmp_path / 'nope.pfx'}' does not exist"


def test_wrong_pfx_password_names_the_password_setting(emu: GraphEmulator, tmp_path: Path) -> None:
    client_id, key_pem, cert_pem, _ = emu.certificate_app()
    path = tmp_path / "galsync.pfx"
    path.write_bytes(_pfx(key_pem, cert_pem, b"right"))
    settings = settings_for(
        emu,
        GALSYNC_AUTH_MODE="certificate",
        GALSYNC_CLIENT_ID=client_id,
        GALSYNC_CERTIFICATE=str(path),
        GALSYNC_CERTIFICATE_PASSWORD="wrong",
    )
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings)
    assert err.value.setting == "GALSYNC_CERTIFICATE_PASSWORD"


def test_unregistered_certificate_names_the_setting(emu: GraphEmulator, tmp_path: Path) -> None:
    client_id, _, _, _ = emu.certificate_app()
    _, other_key, other_cert, _ = emu.certificate_app()  # a valid pair, registered on another app
    pem = tmp_path / "other.pem"
    pem.write_text(other_key + other_cert)
    settings = settings_for(
        emu, GALSYNC_AUTH_MODE="certificate", GALSYNC_CLIENT_ID=client_id, GALSYNC_CERTIFICATE=str(pem)
    )
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings)
    assert err.value.setting == "GALSYNC_CERTIFICATE"
    assert "AADSTS700027" in _one_line(err.value)


# ---- managed identity ---------------------------------------------------------------------------------


class IdentityEndpoint:
    """Stand-in for App Service's managed identity endpoint, backed by the emulator's token endpoint."""

    def __init__(self, g: GraphEmulator, secret_header: str) -> None:
        self.calls: list[dict[str, list[str]]] = []
        session = requests.Session()
        session.trust_env = False
        session.verify = g.ca_file
        app = msal.ConfidentialClientApplication(
            g.client_id,
            client_credential=g.client_secret,
            authority=g.authority,
            http_client=session,
            instance_discovery=False,
        )
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                query = parse_qs(urlsplit(self.path).query)
                outer.calls.append(query)
                if self.headers.get("X-IDENTITY-HEADER") != secret_header:
                    self._send(401, {"statusCode": 401, "message": "bad identity header"})
                    return
                if query.get("api-version") != ["2019-08-01"] or not query.get("resource"):
                    self._send(400, {"statusCode": 400, "message": "bad request"})
                    return
                scope = query["resource"][0].rstrip("/") + "/.default"
                result = app.acquire_token_for_client(scopes=[scope])
                if "access_token" not in result:
                    self._send(400, {"statusCode": 400, "message": result.get("error_description", "")})
                    return
                self._send(
                    200,
                    {
                        "access_token": result["access_token"],
                        "token_type": "Bearer",
                        "expires_on": str(int(time.time()) + 3600),
                        "resource": query["resource"][0],
                    },
                )

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def identity_endpoint(emu: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityEndpoint]:
    endpoint = IdentityEndpoint(emu, "header-secret")
    for name in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", "header-secret")
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def test_system_assigned_managed_identity(
    emu: GraphEmulator, mailbox: Mailbox, identity_endpoint: IdentityEndpoint
) -> None:
    settings = settings_for(emu, GALSYNC_AUTH_MODE="managed_identity", GALSYNC_CLIENT_ID="", GALSYNC_CLIENT_SECRET="")
    with GraphClient.from_settings(settings) as client:
        for _ in range(3):
            assert _purpose(client, mailbox) == "user"
    assert len(identity_endpoint.calls) == 1  # cached by msal
    (call,) = identity_endpoint.calls
    assert call["resource"] == ["https://graph.microsoft.com"] and "client_id" not in call


def test_user_assigned_managed_identity(
    emu: GraphEmulator, mailbox: Mailbox, identity_endpoint: IdentityEndpoint
) -> None:
    settings = settings_for(
        emu,
        GALSYNC_AUTH_MODE="managed_identity",
        GALSYNC_MANAGED_IDENTITY_CLIENT_ID="9e0c1d5a-0000-4000-8000-000000000042",
    )
    with GraphClient.from_settings(settings) as client:
        assert _purpose(client, mailbox) == "user"
    assert identity_endpoint.calls[0]["client_id"] == ["9e0c1d5a-0000-4000-8000-000000000042"]


def test_managed_identity_refusal_names_a_setting(
    emu: GraphEmulator, identity_endpoint: IdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    settings = settings_for(
        emu,
        GALSYNC_AUTH_MODE="managed_identity",
        GALSYNC_MANAGED_IDENTITY_CLIENT_ID="9e0c1d5a-0000-4000-8000-000000000042",
    )
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings)
    assert err.value.setting == "GALSYNC_MANAGED_IDENTITY_CLIENT_ID"
    _one_line(err.value)


# ---- clouds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "authority", "graph"),
    [
        ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0"),
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0"),
        ("usgovdod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0"),
    ],
)
def test_national_clouds(emu: GraphEmulator, cloud: str, authority: str, graph: str) -> None:
    settings = settings_for(emu, GALSYNC_GRAPH_CLOUD=cloud, GALSYNC_AUTHORITY_HOST="", GALSYNC_GRAPH_BASE_URL="")
    ep = endpoints(settings)
    assert (
        (ep.authority_host, ep.graph_base_url)
        == (authority, graph)
        == (CLOUDS[cloud].authority_host, CLOUDS[cloud].graph_base_url)
    )
    assert ep.scope == graph.removesuffix("/v1.0") + "/.default"


def test_overrides_keep_the_clouds_audience(emu: GraphEmulator) -> None:
    ep = endpoints(settings_for(emu, GALSYNC_GRAPH_CLOUD="usgov"))
    assert ep.graph_base_url == emu.base_url and ep.authority_host == emu.url
    assert ep.audience == "https://graph.microsoft.us"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("GALSYNC_GRAPH_BASE_URL", "http://graph.example/v1.0"),
        ("GALSYNC_GRAPH_BASE_URL", "https://graph.example"),
        ("GALSYNC_AUTHORITY_HOST", "login.example"),
    ],
)
def test_bad_overrides_are_named(emu: GraphEmulator, setting: str, value: str) -> None:
    with pytest.raises(AuthError) as err:
        GraphClient.from_settings(settings_for(emu, **{setting: value}))
    assert err.value.setting == setting

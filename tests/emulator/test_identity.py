"""The emulated Entra token service, driven by the real msal over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msal
import pytest
import requests

from graph_emulator import GraphEmulator
from graph_emulator.identity import certificate_credentials
from tests.emulator import probe
from tests.emulator.probe import assert_graph_error

SCOPE = ["https://graph.microsoft.com/.default"]


@pytest.fixture
def http(graph_empty: GraphEmulator) -> Iterator[requests.Session]:
    """What msal should be given: a session that trusts the emulator's CA (REQUESTS_CA_BUNDLE is set here)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = graph_empty.ca_file
    yield session
    session.close()


def _app(
    g: GraphEmulator, http: requests.Session, client_id: str, credential: Any
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=g.authority,
        instance_discovery=False,
        http_client=http,
    )


def _token_request(g: GraphEmulator, http: requests.Session, **form: str) -> requests.Response:
    return http.post(f"{g.authority}/oauth2/v2.0/token", data=form)


def test_msal_gets_a_token_with_the_client_secret_and_graph_accepts_it(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    result = _app(g, http, g.client_id, g.client_secret).acquire_token_for_client(SCOPE)
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600
    response = requests.get(
        g.base_url + probe.DIRECTORY,
        headers={"Authorization": f"Bearer {result['access_token']}"},
        verify=g.ca_file,
    )
    assert response.status_code == 200
    assert g.log.entries()[0].app_id == g.client_id


@pytest.mark.parametrize("style", ["sha1-thumbprint", "public-certificate"])
def test_msal_gets_a_token_with_a_certificate(
    graph_empty: GraphEmulator, http: requests.Session, style: str
) -> None:
    g = graph_empty
    client_id, key, cert, thumbprint = g.certificate_app()
    # msal signs RS256 with x5t for a thumbprint, PS256 with x5t#S256 when given the certificate.
    credential = {"private_key": key, "thumbprint": thumbprint}
    if style == "public-certificate":
        credential = {"private_key": key, "public_certificate": cert}
    result = _app(g, http, client_id, credential).acquire_token_for_client(SCOPE)
    assert "access_token" in result, result
    response = requests.get(
        g.base_url + probe.DIRECTORY,
        headers={"Authorization": f"Bearer {result['access_token']}"},
        verify=g.ca_file,
    )
    assert response.status_code == 200
    assert g.log.entries()[0].app_id == client_id


def test_a_certificate_the_app_does_not_have_is_refused(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    client_id, _, _, _ = g.certificate_app()
    other_key, other_cert, other_thumbprint = certificate_credentials("someone else")
    for credential in (
        {"private_key": other_key.decode(), "thumbprint": other_thumbprint},
        {"private_key": other_key.decode(), "public_certificate": other_cert.decode()},
    ):
        result = _app(g, http, client_id, credential).acquire_token_for_client(SCOPE)
        assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_a_signature_by_another_key_with_the_right_thumbprint_is_refused(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    client_id, _, _, thumbprint = g.certificate_app()
    other_key, _, _ = certificate_credentials("forger")
    result = _app(
        g, http, client_id, {"private_key": other_key.decode(), "thumbprint": thumbprint}
    ).acquire_token_for_client(SCOPE)
    assert result["error_codes"] == [700027]
    assert "signature validation" in result["error_description"]


def test_a_wrong_secret_is_refused_as_entra_does(graph_empty: GraphEmulator, http: requests.Session) -> None:
    g = graph_empty
    response = _token_request(
        g, http, grant_type="client_credentials", client_id=g.client_id, client_secret="wrong", scope=SCOPE[0]
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()
    assert g.client_secret not in response.text
    # msal surfaces the same refusal.
    result = _app(g, http, g.client_id, "wrong").acquire_token_for_client(SCOPE)
    assert result["error_codes"] == [7000215]


def test_an_unknown_app_is_refused(graph_empty: GraphEmulator, http: requests.Session) -> None:
    g = graph_empty
    result = _app(g, http, "11111111-2222-3333-4444-555555555555", "x").acquire_token_for_client(SCOPE)
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]


def test_an_unknown_tenant_is_refused_at_discovery_and_at_the_token_endpoint(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    discovery = http.get(f"{g.url}/nowhere.example/v2.0/.well-known/openid-configuration")
    assert discovery.status_code == 400 and discovery.json()["error_codes"] == [90002]
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            g.client_id,
            client_credential=g.client_secret,
            authority=f"{g.url}/nowhere.example",
            instance_discovery=False,
            http_client=http,
        )
    response = http.post(
        f"{g.url}/nowhere.example/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": g.client_id,
            "client_secret": g.client_secret,
            "scope": SCOPE[0],
        },
    )
    assert response.status_code == 400 and response.json()["error_codes"] == [90002]


def test_the_tenant_domain_works_as_authority(graph_empty: GraphEmulator, http: requests.Session) -> None:
    g = graph_empty
    app = msal.ConfidentialClientApplication(
        g.client_id,
        client_credential=g.client_secret,
        authority=f"{g.url}/{g.tenant.domain}",
        instance_discovery=False,
        http_client=http,
    )
    assert "access_token" in app.acquire_token_for_client(SCOPE)


@pytest.mark.parametrize(
    ("scope", "error", "code"),
    [
        ("User.Read.All", "invalid_scope", 1002012),
        ("https://graph.microsoft.com/User.Read.All", "invalid_scope", 1002012),
        ("https://outlook.office.com/.default", "invalid_resource", 500011),
    ],
)
def test_client_credentials_need_graphs_default_scope(
    graph_empty: GraphEmulator, http: requests.Session, scope: str, error: str, code: int
) -> None:
    g = graph_empty
    response = _token_request(
        g,
        http,
        grant_type="client_credentials",
        client_id=g.client_id,
        client_secret=g.client_secret,
        scope=scope,
    )
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["error_codes"]) == (error, [code])


def test_missing_parameters_and_other_grants_are_refused(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    base = {"client_id": g.client_id, "client_secret": g.client_secret, "scope": SCOPE[0]}
    assert _token_request(g, http, **base).json()["error_codes"] == [900144]
    password = _token_request(g, http, grant_type="password", **base).json()
    assert password["error"] == "unsupported_grant_type"
    as_json = http.post(f"{g.authority}/oauth2/v2.0/token", json={"grant_type": "client_credentials", **base})
    assert as_json.status_code == 400 and as_json.json()["error_codes"] == [900144]  # Entra reads forms only
    no_secret = _token_request(
        g, http, grant_type="client_credentials", client_id=g.client_id, scope=SCOPE[0]
    )
    assert no_secret.status_code == 401 and no_secret.json()["error_codes"] == [7000218]
    assert g.identity.tokens_issued == 0


def test_tokens_carry_the_roles_granted_when_issued(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    app = g.register_app(roles={"User.Read.All"})
    session = requests.Session()
    session.trust_env = False
    session.verify = g.ca_file
    token = _app(g, http, app.client_id, app.secret).acquire_token_for_client(SCOPE)["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200
    app.roles.clear()  # the admin removes the grant: tokens already issued keep their roles until they expire
    assert session.get(g.base_url + probe.DIRECTORY).status_code == 200
    fresh = _token_request(
        g,
        http,
        grant_type="client_credentials",
        client_id=app.client_id,
        client_secret=str(app.secret),
        scope=SCOPE[0],
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {fresh}"
    assert_graph_error(session.get(g.base_url + probe.DIRECTORY), 403, "Authorization_RequestDenied")


def test_short_token_lifetime_expires_tokens_for_graph(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    g.identity.token_lifetime = 600
    result = _app(g, http, g.client_id, g.client_secret).acquire_token_for_client(SCOPE)
    assert result["expires_in"] == 600
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    assert http.get(g.base_url + probe.DIRECTORY, headers=headers).status_code == 200
    g.identity.advance_clock(601)
    assert_graph_error(
        http.get(g.base_url + probe.DIRECTORY, headers=headers), 401, "InvalidAuthenticationToken"
    )


def test_an_aged_client_assertion_is_refused(graph_empty: GraphEmulator, http: requests.Session) -> None:
    g = graph_empty
    client_id, key, _, thumbprint = g.certificate_app()
    g.identity.advance_clock(3600)  # msal's assertion (10 minutes) is long expired by the emulator's clock
    result = _app(
        g, http, client_id, {"private_key": key, "thumbprint": thumbprint}
    ).acquire_token_for_client(SCOPE)
    assert result["error_codes"] == [700024]


def test_discovery_document_points_msal_at_the_emulator(
    graph_empty: GraphEmulator, http: requests.Session
) -> None:
    g = graph_empty
    config = http.get(f"{g.authority}/v2.0/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == f"{g.authority}/oauth2/v2.0/token"
    assert config["issuer"] == f"{g.authority}/v2.0"
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]

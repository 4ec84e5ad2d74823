"""The emulated Microsoft Entra token service: OIDC discovery, client credentials, bearer checks.

msal talks to it as to Entra (authority `https://127.0.0.1:PORT/<tenant>`, `instance_discovery=False`):
it reads `/<tenant>/v2.0/.well-known/openid-configuration`, then posts to `/<tenant>/oauth2/v2.0/token`
with a client secret or a client assertion (a JWT signed with the app's certificate key, RS256 with `x5t`
or PS256 with `x5t#S256`). Refusals carry Entra's shape: `error`, `error_description` starting with the
AADSTS code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`.

Access tokens are HS256 JWTs signed with a key that lives only in this process; they carry the app id,
its roles at issue time and an expiry (1 hour by default). Graph checks them on every call and answers
401 InvalidAuthenticationToken to a missing, malformed, forged or expired one. Tests expire tokens
without sleeping by moving the identity clock forward (`advance_clock`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .apps import App
from .protocol import GraphError, Response
from .tenant import Tenant

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_SCOPES = frozenset({f"{GRAPH_RESOURCE}/.default", f"{GRAPH_APP_ID}/.default"})
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_TOKEN_LIFETIME = 3600.0


class EntraError(Exception):
    """A refusal from the token service, rendered the way Entra renders it."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"{error}: AADSTS{code}: {description}")
        self.status, self.error, self.code, self.description = status, error, code, description

    def to_response(self) -> Response:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {now}"
            ),
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        return Response(self.status, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})


class Identity:
    def __init__(self, tenant: Tenant, root_url: str) -> None:
        self.tenant = tenant
        self.root_url = root_url.rstrip("/")
        self.token_lifetime = DEFAULT_TOKEN_LIFETIME
        self._key = os.urandom(32)
        self._clock_offset = 0.0
        self._lock = threading.Lock()
        self.tokens_issued = 0

    # --- clock --------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Let `seconds` pass for token lifetimes (issued tokens expire, assertions age)."""
        self._clock_offset += seconds

    # --- endpoints ----------------------------------------------------------------------------------

    def openid_configuration(self, tenant_segment: str) -> Response:
        """GET /{tenant}/v2.0/.well-known/openid-configuration."""
        try:
            tid = self._tenant_id(tenant_segment)
        except EntraError as exc:
            return EntraError(400, "invalid_tenant", exc.code, exc.description).to_response()
        base = f"{self.root_url}/{tid}"
        return Response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "127.0.0.1",
                "cloud_graph_host_name": "127.0.0.1",
                "msgraph_host": self.root_url.removeprefix("https://"),
            },
        )

    def token_endpoint(self, tenant_segment: str, content_type: str, body: bytes) -> Response:
        """POST /{tenant}/oauth2/v2.0/token (client credentials only; the body is form-urlencoded)."""
        form: dict[str, str] = {}
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            app = self._client_credentials(tenant_segment, form)
        except EntraError as exc:
            return exc.to_response()
        lifetime = int(self.token_lifetime)
        return Response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": self.issue(app, lifetime),
            },
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # --- access tokens ------------------------------------------------------------------------------

    def issue(self, app: App, lifetime: float | None = None) -> str:
        """A signed access token for Graph carrying the app's current roles."""
        now = int(self.now())
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant.id}/",
            "iat": now,
            "nbf": now,
            "exp": now + int(self.token_lifetime if lifetime is None else lifetime),
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "idtyp": "app",
            "oid": app.client_id,
            "roles": sorted(app.roles),
            "sub": app.client_id,
            "tid": self.tenant.id,
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        with self._lock:
            self.tokens_issued += 1
        signing_input = (
            _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64(signature)

    def authenticate(self, authorization: str | None) -> tuple[App, frozenset[str]]:
        """The app behind a bearer token and the roles the token grants, or Graph's 401."""
        if not authorization or not authorization.strip():
            raise _unauthorized("Access token is empty.")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Access token is empty.")
        parts = token.split(".")
        if len(parts) != 3:
            raise _unauthorized("CompactToken parsing failed with error code: 80049217")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise _unauthorized("CompactToken parsing failed with error code: 80049217") from None
        if not hmac.compare_digest(signature, expected) or not isinstance(claims, dict):
            raise _unauthorized("Access token validation failure. Invalid signature.")
        if claims.get("aud") != GRAPH_RESOURCE or claims.get("tid") != self.tenant.id:
            raise _unauthorized("Access token validation failure. Invalid audience.")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= self.now():
            raise _unauthorized("Lifetime validation failed, the token is expired.")
        app = self.tenant.apps.get(str(claims.get("appid")))
        if app is None:
            raise _unauthorized("Access token validation failure.")
        return app, frozenset(claims.get("roles") or ())

    # --- client credentials -------------------------------------------------------------------------

    def _client_credentials(self, tenant_segment: str, form: dict[str, str]) -> App:
        tid = self._tenant_id(tenant_segment)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id")
        if not client_id:
            raise _missing("client_id")
        app = self.tenant.apps.get(client_id)
        if app is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tid}'. This can "
                "happen if the application has not been installed by the administrator of the tenant "
                "or consented to by any user in the tenant. You may have sent your authentication "
                "request to the wrong tenant.",
            )
        if form.get("client_assertion") is not None or form.get("client_assertion_type") is not None:
            self._check_assertion(app, tid, form)
        elif form.get("client_secret") is not None:
            if app.secret is None or not hmac.compare_digest(form["client_secret"], app.secret):
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID, for a secret added to app "
                    f"'{app.client_id}'.",
                )
        else:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        scope = form.get("scope")
        if not scope:
            raise _missing("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        if scopes[0] not in GRAPH_SCOPES:
            resource = scopes[0].removesuffix("/.default")
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tid}. This can "
                "happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant.",
            )
        return app

    def _check_assertion(self, app: App, tid: str, form: dict[str, str]) -> None:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise EntraError(
                400,
                "invalid_request",
                50027 if form.get("client_assertion_type") else 900144,
                "The request body must contain the following parameter: 'client_assertion_type'."
                if not form.get("client_assertion_type")
                else f"Invalid client_assertion_type '{form['client_assertion_type']}'.",
            )
        assertion = form.get("client_assertion") or ""
        parts = assertion.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not a JWT")
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError("not a JWT")
        except (ValueError, binascii.Error):
            raise EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        if app.certificate_pem is None:
            raise EntraError(
                401,
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found.]",
            )
        certificate = x509.load_pem_x509_certificate(app.certificate_pem)
        sha1 = _b64(certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by definition
        sha256 = _b64(certificate.fingerprint(hashes.SHA256()))
        # msal pads the base64url thumbprints; JWS (RFC 7515) does not: compare without padding.
        given_sha256 = str(header.get("x5t#S256") or "").rstrip("=")
        given_sha1 = str(header.get("x5t") or "").rstrip("=")
        if given_sha256 != sha256 and given_sha1 != sha1:
            raise EntraError(
                401,
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{header.get('x5t#S256') or header.get('x5t')}']",
            )
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise EntraError(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        alg = header.get("alg")
        signed = f"{parts[0]}.{parts[1]}".encode()
        try:
            if alg == "RS256":
                public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif alg == "PS256":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
                public_key.verify(signature, signed, pss, hashes.SHA256())
            else:
                raise InvalidSignature
        except InvalidSignature:
            raise EntraError(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise EntraError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not any(a in self._assertion_audiences(tid) for a in audiences):
            raise EntraError(
                401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer."
            )
        now = self.now()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if (
            not isinstance(exp, int | float)
            or exp <= now
            or (isinstance(nbf, int | float) and nbf > now + 300)
        ):
            raise EntraError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            )

    def _assertion_audiences(self, tid: str) -> set[str]:
        out: set[str] = set()
        for name in (tid, self.tenant.domain):
            out.update({f"{self.root_url}/{name}/oauth2/v2.0/token", f"{self.root_url}/{name}/oauth2/token"})
        return out

    def _tenant_id(self, segment: str) -> str:
        if segment.lower() in (self.tenant.id.lower(), self.tenant.domain.lower()):
            return self.tenant.id
        raise EntraError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may happen "
            "if there are no active subscriptions for the tenant.",
        )


def certificate_credentials(common_name: str) -> tuple[bytes, bytes, str]:
    """A new RSA key and self-signed certificate (as an admin uploads to an app registration).

    Returns (private key PEM, certificate PEM, SHA-1 thumbprint in upper-case hex, as the portal shows it).
    """
    from datetime import timedelta

    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the portal's thumbprint
    return key_pem, cert_pem, thumbprint


def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": _CHALLENGE})


_CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    f'client_id="{GRAPH_APP_ID}"'
)


def _missing(parameter: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

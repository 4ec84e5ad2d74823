"""Loading the app's certificate (PEM or PFX, a file or a Key Vault secret value) for msal's client assertion.

GALSYNC_CERTIFICATE holds a file path (PEM with key and certificate, or PFX/P12), PEM text, or base64 PFX
(what a Key Vault reference to a certificate's secret yields). msal signs the assertion with the key and
identifies the certificate by its SHA-256 thumbprint (`x5t#S256`, PS256) when given the public certificate.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import AuthError


@dataclass(frozen=True)
class Certificate:
    private_key_pem: str = field(repr=False)  # the key must never reach a log line
    certificate_pem: str = field(repr=False)
    thumbprint_sha256: str  # hex, lower case

    def msal_credential(self) -> dict[str, str]:
        """msal's `client_credential`: with `public_certificate` and no SHA-1 thumbprint it uses x5t#S256."""
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}


def load_certificate(value: str, password: str = "") -> Certificate:
    """The key and certificate from GALSYNC_CERTIFICATE; AuthError naming the setting when unusable."""
    if not value:
        raise AuthError(
            "GALSYNC_CERTIFICATE is empty; certificate mode needs a PEM or PFX file path",
            setting="GALSYNC_CERTIFICATE",
        )
    data = _read(value)
    secret = password.encode() if password else None
    if b"-----BEGIN" in data:
        return _from_pem(data, secret)
    return _from_pfx(data, secret)


def _read(value: str) -> bytes:
    stripped = value.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode()
    if os.path.isfile(stripped):
        try:
            with open(stripped, "rb") as f:
                return f.read()
        except OSError as exc:
            raise AuthError(
                f"GALSYNC_CERTIFICATE file {stripped!r} cannot be read ({exc.strerror})",
                setting="GALSYNC_CERTIFICATE",
            ) from None
    if len(stripped) > 256:  # too long for a path: base64 PFX from Key Vault
        try:
            return base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            # Never echo the value: it is key material.
            raise AuthError(
                "GALSYNC_CERTIFICATE is neither an existing file, PEM text nor base64 PFX",
                setting="GALSYNC_CERTIFICATE",
            ) from None
    raise AuthError(f"GALSYNC_CERTIFICATE file {stripped!r} does not exist", setting="GALSYNC_CERTIFICATE")


def _from_pem(data: bytes, password: bytes | None) -> Certificate:
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise AuthError(
            "GALSYNC_CERTIFICATE_PASSWORD is needed: the PEM private key is encrypted",
            setting="GALSYNC_CERTIFICATE_PASSWORD",
        ) from None
    except ValueError as exc:
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise AuthError(
                "GALSYNC_CERTIFICATE_PASSWORD does not decrypt the PEM private key",
                setting="GALSYNC_CERTIFICATE_PASSWORD",
            ) from None
        raise AuthError(
            "GALSYNC_CERTIFICATE holds no readable private key (PEM with key and certificate expected)",
            setting="GALSYNC_CERTIFICATE",
        ) from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    return _pair(key, certs)


def _from_pfx(data: bytes, password: bytes | None) -> Certificate:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise AuthError(
            "GALSYNC_CERTIFICATE_PASSWORD does not open the PFX in GALSYNC_CERTIFICATE (or it is not a PFX)",
            setting="GALSYNC_CERTIFICATE_PASSWORD",
        ) from None
    if key is None:
        raise AuthError("GALSYNC_CERTIFICATE holds no private key", setting="GALSYNC_CERTIFICATE")
    return _pair(key, ([cert] if cert else []) + list(extra))


def _pair(key: object, certs: list[x509.Certificate]) -> Certificate:
    """The certificate that belongs to `key` (a chain may come first), as msal wants them."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthError(
            "GALSYNC_CERTIFICATE must hold an RSA key (Entra signs client assertions with RSA)",
            setting="GALSYNC_CERTIFICATE",
        )
    public = key.public_key().public_numbers()
    match = next((c for c in certs if c.public_key().public_numbers() == public), None)  # type: ignore[union-attr]
    if match is None:
        raise AuthError(
            "GALSYNC_CERTIFICATE holds no certificate matching its private key", setting="GALSYNC_CERTIFICATE"
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = match.public_bytes(serialization.Encoding.PEM).decode()
    return Certificate(key_pem, cert_pem, match.fingerprint(hashes.SHA256()).hex())

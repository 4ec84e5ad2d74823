"""Graph access tokens from msal: client secret, certificate, or managed identity (the default in Azure).

msal caches each token in memory and renews it before it expires. The providers here keep the token msal
gave them until msal itself would stop handing it out (5 minutes before it expires, or msal's proactive
refresh time), then ask msal again, which decides whether to refresh: a cache look-up in msal on every one
of thousands of requests cost more CPU than the request's own JSON. The client calls `invalidate()` once
when Graph answers 401 to a token msal still trusted; that drops both copies. Start-up failures become
one AuthError line that names the setting to fix. Tokens are never logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msal
import requests
from msal.managed_identity import ManagedIdentity

from sync_core.settings import Settings

from .certificate import load_certificate
from .clouds import Endpoints
from .errors import AuthError


class TokenProvider(Protocol):
    def token(self) -> str:
        """A bearer token for Graph (cached); raises AuthError when none can be had."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token so the next `token()` fetches a new one."""
        ...


class StaticToken:
    """A fixed token (tests, or a token handed over by another process)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        pass


# AADSTS error codes -> (setting at fault, what is wrong). From Entra's error code reference.
_AADSTS: dict[int, tuple[str, str]] = {
    7000215: ("GALSYNC_CLIENT_SECRET", "the client secret is wrong"),
    7000222: ("GALSYNC_CLIENT_SECRET", "the client secret has expired"),
    700016: ("GALSYNC_CLIENT_ID", "no application with this client id in the tenant"),
    90002: ("GALSYNC_TENANT_ID", "the tenant does not exist"),
    900023: ("GALSYNC_TENANT_ID", "the tenant id is not valid"),
    90072: ("GALSYNC_TENANT_ID", "the app is not registered in this tenant"),
    700027: (
        "GALSYNC_CERTIFICATE",
        "the certificate is not registered on the app (or the assertion is invalid)",
    ),
    700024: ("GALSYNC_CERTIFICATE", "the client assertion is not within its valid time range"),
    7000274: ("GALSYNC_CERTIFICATE", "the certificate's key does not match the registered certificate"),
    70011: ("GALSYNC_GRAPH_CLOUD", "the requested scope is not valid for this cloud"),
    500011: ("GALSYNC_GRAPH_CLOUD", "Microsoft Graph of this cloud is not known to the authority"),
    1002012: ("GALSYNC_GRAPH_CLOUD", "the requested scope is not valid for this cloud"),
}


# msal stops handing out a cached token 5 minutes before it expires (and renews it then).
MSAL_EXPIRY_MARGIN_SECONDS = 5 * 60


@dataclass(frozen=True)
class HeldToken:
    """A token from msal, kept until `until` (seconds on `clock`): when msal would no longer return it."""

    value: str = field(repr=False)
    until: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def of(cls, result: Mapping[str, Any], *, clock: Callable[[], float] = time.monotonic,
           wall_clock: Callable[[], float] = time.time) -> HeldToken | None:
        """From msal's answer; None when it does not say how long the token lives (then it is not kept).

        `clock` times the keeping (monotonic: a wall clock step must not keep a stale token); `wall_clock`
        reads msal's refresh time, which msal gives in seconds since the epoch.
        """
        try:
            keep = float(result["expires_in"]) - MSAL_EXPIRY_MARGIN_SECONDS
            refresh_on = result.get("refresh_on")  # msal's proactive refresh time, seconds since the epoch
            if refresh_on is not None:
                keep = min(keep, float(refresh_on) - wall_clock())
        except (KeyError, TypeError, ValueError):
            return None
        return cls(str(result["access_token"]), clock() + keep, clock) if keep > 0 else None

    def fresh(self) -> bool:
        return self.clock() < self.until


class ClientCredentialToken:
    """msal ConfidentialClientApplication with a secret or a certificate (client credentials flow)."""

    def __init__(self, app: msal.ConfidentialClientApplication, scope: str, credential_setting: str) -> None:
        self._app = app
        self._scopes = [scope]
        self._credential_setting = credential_setting
        self._lock = threading.Lock()
        self._held: HeldToken | None = None

    def token(self) -> str:
        held = self._held
        if held is not None and held.fresh():
            return held.value
        with self._lock:
            try:
                result = self._app.acquire_token_for_client(scopes=self._scopes)
            except requests.RequestException as exc:
                raise _unreachable("GALSYNC_AUTHORITY_HOST", exc) from None
            if result and "access_token" in result:
                self._held = HeldToken.of(result)
                return str(result["access_token"])
        raise _msal_error(result or {}, self._credential_setting)

    def invalidate(self) -> None:
        with self._lock:
            self._held = None
            self._app.remove_tokens_for_client()


class ManagedIdentityToken:
    """msal ManagedIdentityClient: App Service / Functions (IDENTITY_ENDPOINT), VM (IMDS), Arc, ..."""

    def __init__(self, identity: ManagedIdentity, resource: str, session: requests.Session) -> None:
        self._identity = identity
        self._resource = resource
        self._session = session
        self._lock = threading.Lock()
        self._client = self._new_client()
        self._held: HeldToken | None = None

    def _new_client(self) -> msal.ManagedIdentityClient:
        return msal.ManagedIdentityClient(self._identity, http_client=self._session, token_cache=msal.TokenCache())

    @property
    def _setting(self) -> str:
        user_assigned = self._identity.get(ManagedIdentity.ID_TYPE) != ManagedIdentity.SYSTEM_ASSIGNED
        return "GALSYNC_MANAGED_IDENTITY_CLIENT_ID" if user_assigned else "GALSYNC_AUTH_MODE"

    def token(self) -> str:
        held = self._held
        if held is not None and held.fresh():
            return held.value
        with self._lock:
            try:
                result = self._client.acquire_token_for_client(resource=self._resource)
            except requests.RequestException as exc:
                raise AuthError(
                    f"GALSYNC_AUTH_MODE is managed_identity but no managed identity endpoint answered "
                    f"({type(exc).__name__}); outside Azure use client_secret or certificate",
                    setting="GALSYNC_AUTH_MODE",
                ) from None
            except (ValueError, msal.ManagedIdentityError) as exc:
                raise AuthError(
                    f"{self._setting}: managed identity token failed ({_first_line(str(exc))})",
                    setting=self._setting,
                ) from None
            if result and "access_token" in result:
                self._held = HeldToken.of(result)
                return str(result["access_token"])
        result = result or {}
        detail = _first_line(str(result.get("error_description") or result.get("error") or "no token"))
        raise AuthError(f"{self._setting}: managed identity token failed ({detail})", setting=self._setting)

    def invalidate(self) -> None:
        with self._lock:
            self._held = None
            self._client = self._new_client()


def token_provider(settings: Settings, endpoints: Endpoints, session: requests.Session) -> TokenProvider:
    """The credential GALSYNC_AUTH_MODE asks for (not yet used: call `token()` to check it)."""
    if settings.auth_mode == "managed_identity":
        identity: ManagedIdentity
        if settings.managed_identity_client_id:
            identity = msal.UserAssignedManagedIdentity(client_id=settings.managed_identity_client_id)
        else:
            identity = msal.SystemAssignedManagedIdentity()
        return ManagedIdentityToken(identity, endpoints.audience, session)

    if not settings.tenant_id:
        raise AuthError(
            f"GALSYNC_TENANT_ID is empty; {settings.auth_mode} mode needs the tenant id",
            setting="GALSYNC_TENANT_ID",
        )
    if not settings.client_id:
        raise AuthError(
            f"GALSYNC_CLIENT_ID is empty; {settings.auth_mode} mode needs the app's client id",
            setting="GALSYNC_CLIENT_ID",
        )
    credential: Any
    if settings.auth_mode == "client_secret":
        if not settings.client_secret:
            raise AuthError(
                "GALSYNC_CLIENT_SECRET is empty; client_secret mode needs it", setting="GALSYNC_CLIENT_SECRET"
            )
        credential, credential_setting = settings.client_secret, "GALSYNC_CLIENT_SECRET"
    elif settings.auth_mode == "certificate":
        cert = load_certificate(settings.certificate, settings.certificate_password)
        credential, credential_setting = cert.msal_credential(), "GALSYNC_CERTIFICATE"
    else:
        raise AuthError(
            f"GALSYNC_AUTH_MODE is {settings.auth_mode!r}; expected managed_identity, client_secret or certificate",
            setting="GALSYNC_AUTH_MODE",
        )

    authority = endpoints.authority(settings.tenant_id)
    try:
        app = msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=credential,
            authority=authority,
            http_client=session,
            # The authority host comes from settings (national cloud or an override): no discovery round trip.
            instance_discovery=False,
        )
    except requests.exceptions.SSLError as exc:
        raise _unreachable("GALSYNC_GRAPH_CA_BUNDLE", exc) from None
    except requests.RequestException as exc:
        raise _unreachable("GALSYNC_AUTHORITY_HOST", exc) from None
    except ValueError as exc:
        # msal's tenant discovery: an unknown tenant answers 400 on its OpenID configuration.
        if "authority" in str(exc).lower() or "oidc" in str(exc).lower():
            raise AuthError(
                f"GALSYNC_TENANT_ID is {settings.tenant_id!r}, which the authority "
                f"{endpoints.authority_host} does not know",
                setting="GALSYNC_TENANT_ID",
            ) from None
        raise AuthError(f"{credential_setting}: {_first_line(str(exc))}", setting=credential_setting) from None
    return ClientCredentialToken(app, endpoints.scope, credential_setting)


def _msal_error(result: dict[str, Any], credential_setting: str) -> AuthError:
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    for code in codes:
        if code in _AADSTS:
            setting, what = _AADSTS[code]
            return AuthError(f"{setting}: {what} (AADSTS{code})", setting=setting, code=f"AADSTS{code}")
    error = str(result.get("error") or "unknown_error")
    detail = _first_line(str(result.get("error_description") or ""))
    return AuthError(
        f"{credential_setting}: the authority refused a token ({error}: {detail})",
        setting=credential_setting,
        code=error,
    )


def _unreachable(setting: str, exc: Exception) -> AuthError:
    if isinstance(exc, requests.exceptions.SSLError):
        setting = "GALSYNC_GRAPH_CA_BUNDLE"
        return AuthError("GALSYNC_GRAPH_CA_BUNDLE: the authority's TLS certificate is not trusted", setting=setting)
    return AuthError(f"{setting}: the token authority cannot be reached ({type(exc).__name__})", setting=setting)


def _first_line(text: str) -> str:
    """First sentence of an Entra description, without its trace id / timestamp lines."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]

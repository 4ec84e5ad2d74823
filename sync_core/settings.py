"""Every setting galsync reads, with its name, default and meaning: the one place that reads the environment.

The function app reads these from app settings (Bicep declares exactly this list; a test checks it), the
command line from the environment. Secrets (client secret, certificate, webhook key) come from settings
that in Azure are Key Vault references; they are never logged (`Settings.redacted`). A reference the
platform could not resolve (the secret is not stored yet, or the identity cannot read it) reaches the app as
its literal text: it counts as unset, so the setting's own check names it instead of galsync using the text
(a bogus webhook key in every notification URL, say).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

log = logging.getLogger("galsync.settings")

# How App Service passes a Key Vault reference it could not resolve: the app setting's value, unchanged.
UNRESOLVED_REFERENCE_PREFIX = "@Microsoft.KeyVault("

# Leases (sync_core/state/leases.py): a worker's claim on a profile's sync or on a target mailbox. Short, so
# that a worker killed while holding one delays the next run by at most this long; renewed by a heartbeat
# every third of it while the work runs, so that no work is too long for its lease.
LEASE_SECONDS = 60.0

# Writes a push message may do per target mailbox. A message writes each of its mailboxes one `$batch` of 20
# at a time and Graph runs 4 of them at once: 6 round trips of 100 ms per 20 writes at 100 ms per request,
# so 3,000 writes a mailbox are 150 calls, 90 s, and a message ends in under 2 minutes with 30 s left for
# set-up and the state store. GALSYNC_WRITES_PER_MESSAGE is this times GALSYNC_TARGETS_PER_MESSAGE.
MAILBOX_WRITES_PER_MESSAGE = 3_000
# The command line's mailboxes per message: its messages all run side by side in one process, so a message
# of many mailboxes costs nothing there, and fewer parts mean fewer lease hand-offs.
COMMAND_LINE_TARGETS_PER_MESSAGE = 50


class SettingsError(ValueError):
    """A setting has a value galsync cannot use; the message names the setting."""


@dataclass(frozen=True)
class Spec:
    name: str
    default: str
    help: str
    secret: bool = False


# Name -> spec. Order is the order of `local.settings.json.example` and the README table.
SPECS: tuple[Spec, ...] = (
    Spec("GALSYNC_CONFIG_PATH", "galsync.toml", "Path of the profiles file (TOML), relative to the app root."),
    Spec("GALSYNC_TENANT_ID", "", "Entra tenant id (GUID) galsync syncs."),
    Spec("GALSYNC_AUTH_MODE", "managed_identity",
         "How galsync gets Graph tokens: managed_identity, client_secret or certificate."),
    Spec("GALSYNC_CLIENT_ID", "", "App registration client id (client_secret and certificate modes)."),
    Spec("GALSYNC_CLIENT_SECRET", "", "Client secret (client_secret mode); a Key Vault reference in Azure.",
         secret=True),
    Spec("GALSYNC_CERTIFICATE", "",
         "Certificate (certificate mode): a PEM or PFX file path, or base64 PFX from a Key Vault reference.",
         secret=True),
    Spec("GALSYNC_CERTIFICATE_PASSWORD", "", "Password of a PFX certificate, if any.", secret=True),
    Spec("GALSYNC_MANAGED_IDENTITY_CLIENT_ID", "",
         "Client id of the user-assigned managed identity; empty for the system-assigned one."),
    Spec("GALSYNC_GRAPH_CLOUD", "global", "National cloud: global, usgov, usgovdod or china."),
    Spec("GALSYNC_AUTHORITY_HOST", "", "Override of the cloud's Entra authority host (https://...)."),
    Spec("GALSYNC_GRAPH_BASE_URL", "", "Override of the cloud's Graph root, ending in /v1.0."),
    Spec("GALSYNC_GRAPH_CA_BUNDLE", "", "Extra CA file to trust for Graph and the authority (the emulator)."),
    Spec("GALSYNC_MAX_CONCURRENCY", "325",
         "Most Graph calls in flight per process; within it 4 per target mailbox, so the work sets the pace. "
         "325 sends Graph's app-wide rate (130,000 requests per 10 s) at 100 ms per request."),
    Spec("GALSYNC_RETRY_MAX_ATTEMPTS", "6", "Most attempts of one Graph request on 429/503/504/connection faults."),
    Spec("GALSYNC_RETRY_MAX_SECONDS", "120", "Most seconds spent retrying one Graph request."),
    Spec("GALSYNC_HTTP_TIMEOUT_SECONDS", "30", "Read timeout of one Graph request (connect timeout is 10 s)."),
    Spec("GALSYNC_STATE", "sqlite:galsync-state.db",
         "State store: sqlite:PATH, or table: (Azure Table Storage at GALSYNC_TABLES_URI)."),
    Spec("GALSYNC_TABLES_URI", "", "Table service URI, e.g. https://ACCOUNT.table.core.windows.net."),
    Spec("GALSYNC_STORAGE_CONNECTION_STRING", "",
         "Storage connection string instead of managed identity (local runs and Azurite only).", secret=True),
    Spec("GALSYNC_TABLE_PREFIX", "galsync", "Prefix of the state tables' names."),
    Spec("GALSYNC_SYNC_SCHEDULE", "0 */15 * * * *", "Safety-net sync of every profile (NCRONTAB)."),
    Spec("GALSYNC_RECONCILE_SCHEDULE", "0 0 2 * * *", "Nightly reconcile (NCRONTAB, app time zone)."),
    Spec("GALSYNC_SUBSCRIPTIONS_SCHEDULE", "0 30 */4 * * *", "Create, renew and clean Graph subscriptions."),
    Spec("GALSYNC_WEBHOOK_BASE_URL", "", "Public https base URL of the function app, e.g. https://x.azurewebsites.net."),
    Spec("GALSYNC_WEBHOOK_KEY", "", "Function key appended to the notification URLs; a Key Vault reference.",
         secret=True),
    Spec("GALSYNC_TARGETS_PER_MESSAGE", str(COMMAND_LINE_TARGETS_PER_MESSAGE),
         "Target mailboxes per push-targets queue message; a message keeps one $batch call in flight per mailbox, "
         "so in Azure it is an instance's calls (GALSYNC_MAX_CONCURRENCY) / the messages it runs at once (Bicep "
         "derives it)."),
    Spec("GALSYNC_WRITES_PER_MESSAGE", str(COMMAND_LINE_TARGETS_PER_MESSAGE * MAILBOX_WRITES_PER_MESSAGE),
         "Most contact writes one push-targets message does, its mailboxes advancing together; it hands the rest "
         "to a message of its own. Rule: at most 3,000 per mailbox (GALSYNC_TARGETS_PER_MESSAGE x 3,000) keeps "
         "a message under 2 minutes at 100 ms per request: a mailbox takes a $batch of 20 writes at a time, "
         "4 at once, 6 x 100 ms per 20 writes, so 3,000 writes are 90 s."),
    Spec("GALSYNC_RECONCILE_TARGETS_PER_MESSAGE", "25",
         "Target mailboxes per reconcile-targets queue message (the nightly reconcile's groups, 1 to 1000). 25: a "
         "first reconcile at 5,000 contacts is about 26 requests per target, so 65 s at 100 ms per request even "
         "one target after another, about 5 s side by side."),
    Spec("GALSYNC_LOG_LEVEL", "INFO", "Log level of galsync's own loggers."),
)

SETTING_NAMES: frozenset[str] = frozenset(s.name for s in SPECS)
_SPEC_BY_NAME = {s.name: s for s in SPECS}


@dataclass(frozen=True)
class Settings:
    config_path: str
    tenant_id: str
    auth_mode: str
    client_id: str
    client_secret: str
    certificate: str
    certificate_password: str
    managed_identity_client_id: str
    graph_cloud: str
    authority_host: str
    graph_base_url: str
    graph_ca_bundle: str
    max_concurrency: int
    retry_max_attempts: int
    retry_max_seconds: float
    http_timeout_seconds: float
    state: str
    tables_uri: str
    storage_connection_string: str
    table_prefix: str
    sync_schedule: str
    reconcile_schedule: str
    subscriptions_schedule: str
    webhook_base_url: str
    webhook_key: str
    targets_per_message: int
    writes_per_message: int
    reconcile_targets_per_message: int
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Read every setting from `env`, applying defaults; raise SettingsError naming a bad one."""
        values: dict[str, Any] = {}
        for f, spec in zip(fields(cls), SPECS, strict=True):
            raw = env.get(spec.name, spec.default)
            raw = raw.strip() if isinstance(raw, str) else raw
            if isinstance(raw, str) and raw.startswith(UNRESOLVED_REFERENCE_PREFIX):
                log.warning("%s is a Key Vault reference the platform has not resolved; treated as unset", spec.name)
                raw = spec.default
            if f.type in ("int", "float"):
                values[f.name] = _number(spec.name, raw, int if f.type == "int" else float)
            else:
                values[f.name] = raw
        values.update(overrides)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.auth_mode not in ("managed_identity", "client_secret", "certificate"):
            raise SettingsError(
                f"GALSYNC_AUTH_MODE is {self.auth_mode!r}; expected managed_identity, client_secret or certificate"
            )
        if self.graph_cloud not in ("global", "usgov", "usgovdod", "china"):
            raise SettingsError(
                f"GALSYNC_GRAPH_CLOUD is {self.graph_cloud!r}; expected global, usgov, usgovdod or china"
            )
        if not 1 <= self.reconcile_targets_per_message <= 1000:
            raise SettingsError(f"GALSYNC_RECONCILE_TARGETS_PER_MESSAGE is {self.reconcile_targets_per_message}; "
                                "expected a whole number from 1 to 1000")
        if not (self.state.startswith("sqlite:") or self.state == "table:"):
            raise SettingsError(f"GALSYNC_STATE is {self.state!r}; expected sqlite:PATH or table:")

    def redacted(self) -> dict[str, str]:
        """Settings as a dict safe to print or log: secrets show only whether they are set."""
        out: dict[str, str] = {}
        for f, spec in zip(fields(self), SPECS, strict=True):
            value = getattr(self, f.name)
            out[spec.name] = ("(set)" if value else "(empty)") if spec.secret else str(value)
        return out


def _number(name: str, raw: str, kind: type) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} is {raw!r}; expected a number") from None
    if value <= 0:
        raise SettingsError(f"{name} is {raw!r}; expected a number above 0")
    return value


def spec(name: str) -> Spec:
    return _SPEC_BY_NAME[name]


def probable_name(name: str) -> str | None:
    """The setting an unknown GALSYNC_* name was most likely meant to be (a typo galsync would otherwise
    ignore silently), or None when no setting is close."""
    if name in SETTING_NAMES or not name.upper().startswith("GALSYNC_"):
        return None
    close = difflib.get_close_matches(name.upper(), sorted(SETTING_NAMES), n=1, cutoff=0.8)
    return close[0] if close else None

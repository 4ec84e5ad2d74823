"""Where the command line's settings come from: the environment, then `local.settings.json`, then defaults.

An admin who has run the function app locally keeps the settings in `local.settings.json` (its `Values`);
galsync reads that file from the current folder as the Functions tools do, and a variable set in the
environment wins over the file, as it does for `func start`. Each setting remembers its origin, so
`galsync settings` can say why a value is in effect; a `GALSYNC_*` name that is not a setting is reported
with the name it was probably meant to be, instead of being ignored in silence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sync_core.settings import SETTING_NAMES, SettingsError, probable_name

LOCAL_SETTINGS_FILE = "local.settings.json"

ENVIRONMENT = "environment"
DEFAULT = "default"

# Set by the Azure platform where a managed identity can be asked for a token (App Service, Functions,
# Container Apps, Arc, Cloud Shell). A VM's IMDS has no such variable: there the admin sets the mode itself.
MANAGED_IDENTITY_MARKERS = ("IDENTITY_ENDPOINT", "MSI_ENDPOINT")

# Settings that say which tenant and app galsync acts as; with none of them set, nothing is configured.
CREDENTIAL_SETTINGS = ("GALSYNC_AUTH_MODE", "GALSYNC_TENANT_ID", "GALSYNC_CLIENT_ID",
                       "GALSYNC_MANAGED_IDENTITY_CLIENT_ID")


@dataclass(frozen=True)
class Misspelt:
    """A GALSYNC_* name that is no setting, where it was found, and the setting it probably meant."""

    name: str
    origin: str
    meant: str | None


@dataclass(frozen=True)
class SettingSources:
    """The environment and the local settings file, merged the way the Functions tools merge them."""

    environ: Mapping[str, str]
    file_values: Mapping[str, str] = field(default_factory=dict)
    file_path: Path | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)  # setting name -> command-line option

    @classmethod
    def load(cls, environ: Mapping[str, str], folder: Path | None = None) -> SettingSources:
        """Read `local.settings.json` from `folder` (the current one) if it is there."""
        path = (folder or Path.cwd()) / LOCAL_SETTINGS_FILE
        if not path.is_file():
            return cls(dict(environ))
        return cls(dict(environ), read_local_settings(path), path)

    @property
    def file_label(self) -> str:
        return self.file_path.name if self.file_path else LOCAL_SETTINGS_FILE

    def merged(self) -> dict[str, str]:
        """The values to read settings from: the file's, with the environment's on top."""
        return {**{k: v for k, v in self.file_values.items() if k in SETTING_NAMES}, **self.environ}

    def origin(self, name: str) -> str:
        if name in self.overrides:
            return f"command line ({self.overrides[name]})"
        if name in self.environ:
            return ENVIRONMENT
        if name in self.file_values:
            return self.file_label
        return DEFAULT

    def is_set(self, name: str) -> bool:
        """Set to something (an empty value in local.settings.json.example's style counts as not set)."""
        return bool(self.merged().get(name, "").strip())

    def misspelt(self) -> list[Misspelt]:
        """GALSYNC_* names that galsync does not read, from the environment and the file."""
        found: list[Misspelt] = []
        for origin, names in ((ENVIRONMENT, self.environ), (self.file_label, self.file_values)):
            for name in sorted(names):
                if name.upper().startswith("GALSYNC_") and name not in SETTING_NAMES:
                    found.append(Misspelt(name, origin, probable_name(name)))
        return found

    def credentials_configured(self) -> bool:
        """Whether anything says which tenant and app to use (or the platform offers a managed identity)."""
        return (any(self.is_set(n) for n in CREDENTIAL_SETTINGS)
                or any(self.environ.get(m) for m in MANAGED_IDENTITY_MARKERS))


def read_local_settings(path: Path) -> dict[str, str]:
    """The `Values` of a Functions local settings file; SettingsError naming the file when it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SettingsError(f"{path.name} cannot be read as JSON ({error})") from None
    values = document.get("Values") if isinstance(document, dict) else None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SettingsError(f"{path.name}: \"Values\" is not an object of setting names and values")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def current_sources() -> SettingSources:
    return SettingSources.load(os.environ)

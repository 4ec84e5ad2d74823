"""What the command line checks before it asks Graph for anything, so a missing setup is told as such.

Without these checks a fresh shell gets a managed identity's parse error, and a stopped emulator gets a
complaint about its vanished CA file; here each is named with the fix. The state store is opened here too,
so the admin learns where galsync put a state file it had to create.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from sync_core.settings import Settings
from sync_core.state import StateStore, open_store

from .advice import BAD_USAGE
from .errors import CliProblem
from .output import Output
from .setting_sources import LOCAL_SETTINGS_FILE, SettingSources

EMULATOR_HINT = ('start the emulator with `galsync emulator` in another shell, then load its settings here: '
                 'eval "$(galsync emulator --env)"')
CONNECT_TIMEOUT = 2.0


def check_graph_setup(sources: SettingSources, settings: Settings) -> None:
    """Raise CliProblem (exit 2) when no credentials are configured or a local Graph is not listening."""
    if not sources.credentials_configured():
        raise CliProblem(
            "no Graph credentials configured: galsync does not know which tenant and app to act as",
            code=BAD_USAGE,
            details=(
                "set GALSYNC_TENANT_ID, GALSYNC_AUTH_MODE=client_secret, GALSYNC_CLIENT_ID and "
                f"GALSYNC_CLIENT_SECRET in the environment or in {LOCAL_SETTINGS_FILE} "
                "(or GALSYNC_AUTH_MODE=certificate with GALSYNC_CERTIFICATE)",
                "on an Azure machine with a managed identity: GALSYNC_AUTH_MODE=managed_identity",
                "to try galsync on this machine first: " + EMULATOR_HINT,
                "`galsync settings` shows what is set and where it came from",
            ),
        )
    for what, setting, url in (("Graph", "GALSYNC_GRAPH_BASE_URL", settings.graph_base_url),
                               ("the token authority", "GALSYNC_AUTHORITY_HOST", settings.authority_host)):
        if url and is_local(url):
            _check_listening(what, setting, url)
    if settings.graph_ca_bundle and not Path(settings.graph_ca_bundle).is_file() and is_local(
            settings.graph_base_url or settings.authority_host):
        raise CliProblem(
            f"Graph at {settings.graph_base_url or settings.authority_host} is the emulator, but its CA file "
            f"{settings.graph_ca_bundle} is gone: that emulator has stopped; is the emulator running?",
            code=BAD_USAGE, details=(EMULATOR_HINT,))


def check_config_file(settings: Settings) -> None:
    """A missing profiles file is a first-hour problem, not a configuration error: say how to get one."""
    path = Path(settings.config_path)
    if not path.is_file():
        raise CliProblem(
            f"no profiles file at {path.resolve()}", code=BAD_USAGE,
            details=("copy galsync.example.toml to galsync.toml and edit it (docs/config.md describes it), or "
                     "point --config or GALSYNC_CONFIG_PATH at your file",))


def is_local(url: str) -> bool:
    """Whether a URL points at this machine (where only the emulator serves Graph)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unreachable(url: str) -> str | None:
    """Why nothing answers a TCP connection to the URL's host and port (None: something listens)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as error:
        return (error.strerror or type(error).__name__).lower()


def _check_listening(what: str, setting: str, url: str) -> None:
    reason = unreachable(url)
    if reason is not None:
        raise CliProblem(f"{what} at {url} ({setting}) cannot be reached ({reason}); is the emulator running?",
                         code=BAD_USAGE, details=(EMULATOR_HINT,))


def state_path(settings: Settings) -> Path | None:
    """The SQLite file GALSYNC_STATE names (None for Table storage or a path galsync will refuse)."""
    path = settings.state.removeprefix("sqlite:").strip() if settings.state.startswith("sqlite:") else ""
    return Path(path).resolve() if path and path != ":memory:" else None


def open_state(settings: Settings) -> StateStore:
    """The state store; when galsync creates a new state file, it says where."""
    path = state_path(settings)
    existed = path is None or path.exists()
    store = open_store(settings)
    if not existed:
        Output.current().notice(f"created the state file {path} (choose another with --state or GALSYNC_STATE)")
    return store


def warn_misspelt(sources: SettingSources) -> None:
    """Warn (once per run) about each GALSYNC_* name galsync does not read, with the name it probably meant."""
    out = Output.current()
    for found in sources.misspelt():
        meant = f"; did you mean {found.meant}?" if found.meant else ""
        out.warn_once(f"{found.name} ({found.origin}) is not a galsync setting and is ignored{meant}")

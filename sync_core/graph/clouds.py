"""Where Graph and its token authority live for each national cloud, with the settings' overrides applied.

The hosts come from Microsoft's "national cloud deployments" page (learn.microsoft.com/graph/deployments):
an app registered in one cloud can only get tokens from that cloud's authority, and the token's audience
(`.default` scope, or the managed identity `resource`) must name that cloud's Graph host.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sync_core.settings import Settings

from .errors import AuthError


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str  # https://login.microsoftonline.com
    graph_base_url: str  # https://graph.microsoft.com/v1.0


CLOUDS: dict[str, Cloud] = {
    "global": Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0"),
    "usgov": Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0"),
    "usgovdod": Cloud("usgovdod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0"),
    "china": Cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0"),
}


@dataclass(frozen=True)
class Endpoints:
    """The resolved places galsync talks to, and the audience its tokens must carry.

    The audience is the cloud's own Graph host even when GALSYNC_GRAPH_BASE_URL points elsewhere (a
    proxy, the emulator): the token is for Microsoft Graph in that cloud, wherever requests are sent.
    """

    authority_host: str
    graph_base_url: str
    audience: str  # https://graph.microsoft.com: the managed identity `resource`, root of the scope

    @property
    def scope(self) -> str:
        return f"{self.audience}/.default"

    def authority(self, tenant_id: str) -> str:
        return f"{self.authority_host}/{tenant_id}"


def endpoints(settings: Settings) -> Endpoints:
    """The cloud's documented hosts, unless GALSYNC_AUTHORITY_HOST / GALSYNC_GRAPH_BASE_URL override them."""
    cloud = CLOUDS.get(settings.graph_cloud)
    if cloud is None:
        raise AuthError(
            f"GALSYNC_GRAPH_CLOUD is {settings.graph_cloud!r}; expected one of {', '.join(CLOUDS)}",
            setting="GALSYNC_GRAPH_CLOUD",
        )
    authority_host = (settings.authority_host or cloud.authority_host).rstrip("/")
    base_url = (settings.graph_base_url or cloud.graph_base_url).rstrip("/")
    _check_https("GALSYNC_AUTHORITY_HOST", authority_host)
    _check_https("GALSYNC_GRAPH_BASE_URL", base_url)
    if not base_url.endswith(("/v1.0", "/beta")):
        raise AuthError(
            f"GALSYNC_GRAPH_BASE_URL is {base_url!r}; expected a Graph root ending in /v1.0",
            setting="GALSYNC_GRAPH_BASE_URL",
        )
    audience = urlsplit(cloud.graph_base_url)
    return Endpoints(authority_host, base_url, f"{audience.scheme}://{audience.netloc}")


def _check_https(setting: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise AuthError(f"{setting} is {url!r}; expected an https:// URL", setting=setting)

"""What a Graph URL touches: its path under the Graph root, the mailbox it lands in, the permission it needs.

Outlook throttles per (app, mailbox): 4 concurrent requests and a request budget (docs/graph-facts.md,
"Throttling"). The mailbox is read from the URL (`/users/{id-or-upn}/contactFolders/...`) so the client can
hold each mailbox to its own limit without the caller saying which mailbox a request is for.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, urlsplit

# Second path segment after /users/{id} that makes a request an Outlook (per-mailbox) one.
MAILBOX_SEGMENTS = frozenset({"contactfolders", "contacts", "mailboxsettings"})


def relative_path(path_or_url: str, base_url: str) -> str:
    """The request target relative to the Graph root ("/users/x/contacts?$top=5").

    Full URLs (nextLink, deltaLink) are accepted only under `base_url`: a link elsewhere would carry our
    bearer token to another host.
    """
    if path_or_url.startswith(("https://", "http://")):
        if not (
            path_or_url == base_url or path_or_url.startswith(base_url + "/") or path_or_url.startswith(base_url + "?")
        ):
            raise ValueError(f"refusing a Graph URL outside {base_url}: {_origin(path_or_url)}")
        rest = path_or_url[len(base_url) :]
        return rest if rest.startswith("/") else "/" + rest
    if not path_or_url.startswith("/"):
        path_or_url = "/" + path_or_url
    return path_or_url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _segments(path: str) -> list[str]:
    return [s for s in path.split("?", 1)[0].split("/") if s]


@lru_cache(maxsize=4096)
def mailbox_of(path: str) -> str | None:
    """The mailbox a request lands in, normalised (URL-decoded, lower case), or None for directory calls.

    Ids and UPNs are both accepted by Graph; a user addressed once by id and once by UPN counts as two
    mailboxes here, so callers should address each mailbox one way (galsync uses ids). Remembered per
    path: a fill asks it for the same few hundred folder paths tens of thousands of times.
    """
    segs = _segments(path)
    if len(segs) >= 3 and segs[0].lower() == "users" and segs[2].lower() in MAILBOX_SEGMENTS:
        return unquote(segs[1]).lower()
    return None


def redact(path: str) -> str:
    """A path safe for INFO logs: no query string (filters can hold names), UPNs replaced by {upn}."""
    return "/" + "/".join("{upn}" if "@" in unquote(s) else s for s in _segments(path))


def permission_hint(method: str, path: str, code: str) -> str | None:
    """What to grant when Graph answers 403, named the way the admin sees it in Entra."""
    segs = [s.lower() for s in _segments(path)]
    if not segs:
        return None
    write = method.upper() not in ("GET", "HEAD")
    if mailbox_of(path) is not None:
        if segs[2] == "mailboxsettings":
            needed = "MailboxSettings.Read"
        else:
            needed = "Contacts.ReadWrite" if write else "Contacts.Read (or Contacts.ReadWrite)"
        hint = f"needs application permission {needed}"
        if code == "ErrorAccessDenied":
            hint += ", and the mailbox inside the app's Exchange RBAC management scope"
        return hint
    if segs[0] == "users":
        if len(segs) >= 3 and segs[2] in ("photo", "photos"):
            return "needs application permission ProfilePhoto.Read.All"
        return "needs application permission User.Read.All"
    if segs[0] == "contacts":
        return "needs application permission OrgContact.Read.All"
    if segs[0] == "groups":
        return "needs application permission GroupMember.Read.All"
    if segs[0] == "subscriptions":
        return "needs the read permission of the subscribed resource (User.Read.All, Contacts.Read, ...)"
    return None

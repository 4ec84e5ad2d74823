"""Directory routes of the emulated Graph v1.0: users, delta, org contacts, groups, managers, user photos.

Shapes follow the docs (microsoft-graph-docs-contrib, api-reference/v1.0/api/*.md):
- `GET /users`: the 11 default properties unless `$select`; `$top` 1-999 (default page 100); `@odata.nextLink`
  with `$skiptoken`. Properties Graph serves only for a single user (aboutMe, skills, ...) -> 501 on the
  collection (user-list.md). `$expand=manager` on users (user-list-manager.md).
- Delta (`/users/delta`, `/contacts/delta`, `/groups/delta`): the initial round returns every existing object;
  later rounds return objects with a change to a *tracked* property after the token (no `$select`: every
  property; with `$select`: those properties, plus `manager` / `members` when selected). Pages hold
  `Directory.delta_page_size` items (20 by default; `Prefer: odata.maxpagesize` is not honoured because the
  directory delta docs do not offer it), so 45 users take 3 requests. Deleted objects come as
  `{"id", "@removed": {"reason": "changed" | "deleted"}}`; `Prefer: return=minimal` keeps only properties
  changed since the token; `manager@delta` / `members@delta` are lists of `{"@odata.type", "id"}`, a removed
  link carrying `"@removed": {"reason": "deleted"}` (concepts/delta-query-groups.md). `$deltatoken=latest`
  returns only a deltaLink. `$filter` only `id eq '...'` joined by `or`, at most 50. `$top`, `$orderby` and
  `$expand` are not supported with directory delta (delta-query-overview.md), except the documented
  `$expand=members` on groups. `$select` with a `$skiptoken` is refused (same page).
- Tokens are HMAC-signed (deltatoken.py) and carry the tenant's delta epoch. A token from an older epoch
  (tests call `tenant.expire_delta_tokens()`) is answered 410 Gone with a `Location` header holding the
  initial query with an empty `$deltatoken`, code `syncStateNotFound` (delta-query-overview.md,
  "Synchronization reset" and "Token duration"; errors.md). A token we did not issue -> 400.
- Replays: with `tenant.delta_replay_rate` > 0, items of the previous page are re-sent, with that probability
  each, on the next page (drawn from the seeded `tenant.changes.rng`), as Graph may replay (delta-query-overview.md).
- User photos: `/photo`, `/photo/$value`, `/photos`, `/photos/{size}`, `/photos/{size}/$value`; no photo or a
  size larger than the upload -> 404 `ImageNotFound`. In Graph this is an Exchange-backed call; it is kept on
  the directory workload here so that throttling stays simple.

Roles are the application permissions of each API's docs page; all routes are workload "directory".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import deltatoken
from .changes import Changes
from .directory import (
    CONTACT_COLLECTIONS,
    GROUP_COLLECTIONS,
    GROUP_PROPERTIES,
    GROUP_RELATIONSHIPS,
    ORG_CONTACT_PROPERTIES,
    ORG_CONTACT_RELATIONSHIPS,
    PHOTO_SIZES,
    SOFT_DELETED,
    USER_COLLECTIONS,
    USER_DEFAULT_PROPERTIES,
    USER_PROPERTIES,
    USER_RELATIONSHIPS,
    USER_SINGLE_ONLY,
    USER_UNSET_VALUES,
    Directory,
    GroupRecord,
    Photo,
    Record,
    UserRecord,
    json_copy,
)
from .protocol import GraphError, Response, json_response
from .routing import Ctx, route

USER_READ = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
ORG_CONTACT_READ = {"OrgContact.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"}
GROUP_MEMBER_READ = {
    "GroupMember.Read.All",
    "Group.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
PHOTO_READ = {"ProfilePhoto.Read.All", "ProfilePhoto.ReadWrite.All", "User.Read.All", "User.ReadWrite.All"}

LIST_PAGE_SIZE = 100  # Graph's default page for directory collections
MAX_TOP = 999
MAX_FILTER_IDS = 50
_FALLBACK_BASE = "https://graph.microsoft.com/v1.0"


# --- Query options -----------------------------------------------------------------------------------------


def _options(ctx: Ctx, allowed: set[str], not_implemented: tuple[str, ...] = ()) -> dict[str, str]:
    """System query options by lower-case name. Unknown ones -> 400; ones the emulator lacks -> 501."""
    out: dict[str, str] = {}
    for key, value in ctx.req.query.items():
        if not key.startswith("$"):
            continue
        name = key.lower()
        if name in out:
            raise GraphError(400, "BadRequest", f"Query option '{name}' is specified more than once.")
        if name in not_implemented:
            raise GraphError(
                501, "NotImplemented", f"The Graph emulator does not implement '{key}' on {ctx.req.path}."
            )
        if name not in allowed:
            raise GraphError(400, "Request_BadRequest", f"The query parameter '{key}' is not supported.")
        out[name] = value
    return out


def _names(props: tuple[str, ...] | frozenset[str]) -> dict[str, str]:
    return {p.lower(): p for p in props}


_USER_NAMES = _names(USER_PROPERTIES)
_USER_NAV_NAMES = _names(USER_RELATIONSHIPS)
_CONTACT_NAMES = _names(ORG_CONTACT_PROPERTIES)
_CONTACT_NAV_NAMES = _names(ORG_CONTACT_RELATIONSHIPS)
_GROUP_NAMES = _names(GROUP_PROPERTIES)
_GROUP_NAV_NAMES = _names(GROUP_RELATIONSHIPS)


def _parse_select(
    raw: str | None,
    known: dict[str, str],
    type_name: str,
    navigation: dict[str, str] | None = None,
    allowed_navigation: frozenset[str] = frozenset(),
) -> tuple[str, ...] | None:
    """Canonical property names from `$select` (Graph matches them case-insensitively), or None if absent.

    An unknown name gets Graph's 400; a navigation property is accepted only where the API documents it.
    """
    if raw is None:
        return None
    names: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise GraphError(400, "Request_BadRequest", "Invalid $select: empty property name.")
        canonical = known.get(part.lower())
        if canonical is None and navigation and part.lower() in navigation:
            nav = navigation[part.lower()]
            if nav in allowed_navigation:
                canonical = nav
            else:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Navigation property '{nav}' cannot be selected on {type_name}.",
                )
        if canonical is None:
            raise GraphError(
                400, "Request_BadRequest", f"Could not find a property named '{part}' on type '{type_name}'."
            )
        if canonical not in names:
            names.append(canonical)
    return tuple(names)


def _parse_top(raw: str | None) -> int:
    if raw is None:
        return LIST_PAGE_SIZE
    if not re.fullmatch(r"\d+", raw.strip()):
        raise GraphError(400, "Request_BadRequest", f"Invalid value '{raw}' for query option '$top'.")
    top = int(raw)
    if not 1 <= top <= MAX_TOP:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
        )
    return top


def _parse_expand_manager(raw: str | None) -> tuple[bool, tuple[str, ...] | None]:
    """`$expand=manager` or `manager($select=a,b)` -> (expand?, manager's select)."""
    if raw is None:
        return False, None
    m = re.fullmatch(r"\s*manager\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*", raw, re.IGNORECASE)
    if not m:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid $expand '{raw}': only 'manager' can be expanded on users here.",
        )
    select = (
        _parse_select(m.group(1), _USER_NAMES, "microsoft.graph.user") if m.group(1) is not None else None
    )
    return True, select


def _base(ctx: Ctx) -> str:
    """The Graph root as the client reached it: set by the server, else from the Host header."""
    explicit = ctx.extra.get("base_url")
    if explicit:
        return str(explicit).rstrip("/")
    host = ctx.req.headers.get("host")
    return f"https://{host}/v1.0" if host else _FALLBACK_BASE


def _param(ctx: Ctx, name: str) -> str:
    return ctx.params[name]  # the pipeline has already percent-decoded the path


def _context(ctx: Ctx, fragment: str, select: tuple[str, ...] | None = None) -> str:
    suffix = f"({','.join(select)})" if select else ""
    return f"{_base(ctx)}/$metadata#{fragment}{suffix}"


def _token_state(raw: str, kind: str) -> dict[str, Any]:
    state = deltatoken.decode(raw)
    if state is None or state.get("k") != kind:
        raise GraphError(400, "Request_BadRequest", "The $skiptoken value is not valid for this request.")
    return state


# --- Projections -------------------------------------------------------------------------------------------


def _project(
    rec: Record,
    names: tuple[str, ...],
    collections: frozenset[str] = frozenset(),
    unset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A GET representation: each selected property; null, [] or Graph's fixed value when never set."""
    out: dict[str, Any] = {}
    for name in names:
        if name == "id":
            out["id"] = rec.id
        elif name in rec.props:
            out[name] = json_copy(rec.props[name])
        elif unset and name in unset:
            out[name] = unset[name]
        else:
            out[name] = [] if name in collections else None
    return out


def _user_view(
    directory: Directory,
    rec: UserRecord,
    select: tuple[str, ...] | None,
    expand_manager: bool = False,
    manager_select: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    out = _project(rec, select or USER_DEFAULT_PROPERTIES, USER_COLLECTIONS, USER_UNSET_VALUES)
    if expand_manager and rec.manager_id:
        manager = directory.object_record(rec.manager_id)
        if isinstance(manager, UserRecord):
            out["manager"] = {
                "@odata.type": "#microsoft.graph.user",
                **_user_view(directory, manager, manager_select),
            }
    return out


def _object_view(rec: Record, select: tuple[str, ...] | None) -> dict[str, Any]:
    """A directoryObject in a members list: its type's default properties (or the selected ones it has)."""
    known: frozenset[str] | tuple[str, ...]
    unset: dict[str, Any] | None = None
    if isinstance(rec, UserRecord):
        names, known, collections = USER_DEFAULT_PROPERTIES, USER_PROPERTIES, USER_COLLECTIONS
        unset = USER_UNSET_VALUES
    elif isinstance(rec, GroupRecord):
        names, known, collections = GROUP_PROPERTIES, GROUP_PROPERTIES, GROUP_COLLECTIONS
    else:
        names, known, collections = ORG_CONTACT_PROPERTIES, ORG_CONTACT_PROPERTIES, CONTACT_COLLECTIONS
    if select is not None:
        names = tuple(n for n in select if n in known)
    return {"@odata.type": rec.odata_type(), **_project(rec, names, collections, unset)}


def _page(
    ctx: Ctx,
    kind: str,
    items: list[Any],
    render: Callable[[Any], dict[str, Any]],
    top: int,
    skiptoken: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a snapshot list by offset; the nextLink keeps the request's other options."""
    offset = int(_token_state(skiptoken, kind).get("o", 0)) if skiptoken else 0
    chunk = items[offset : offset + top]
    values = [render(x) for x in chunk]
    if offset + top >= len(items):
        return values, None
    return values, _next_link(ctx, deltatoken.encode({"k": kind, "o": offset + top}))


_QUERY_SAFE = ",()$'="


def _next_link(ctx: Ctx, token: str) -> str:
    keep = [
        quote(k, safe="$") + "=" + quote(v, safe=_QUERY_SAFE)
        for k, v in ctx.req.query.items()
        if k.lower() != "$skiptoken"
    ]
    keep.append(f"$skiptoken={token}")
    return f"{_base(ctx)}{ctx.req.path}?{'&'.join(keep)}"


def _collection(context: str, values: list[dict[str, Any]], next_link: str | None) -> Response:
    body: dict[str, Any] = {"@odata.context": context}
    if next_link:
        body["@odata.nextLink"] = next_link
    body["value"] = values
    return json_response(200, body)


# --- Users -------------------------------------------------------------------------------------------------


def _user_select(raw: str | None, collection: bool) -> tuple[str, ...] | None:
    select = _parse_select(raw, _USER_NAMES, "microsoft.graph.user", _USER_NAV_NAMES)
    if collection and select:
        single = [p for p in select if p in USER_SINGLE_ONLY]
        if single:
            raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
    return select


@route("GET", "/users", roles=USER_READ, workload="directory")
def list_users(ctx: Ctx) -> Response:
    opts = _options(
        ctx,
        {"$select", "$top", "$skiptoken", "$expand"},
        ("$filter", "$count", "$orderby", "$search", "$skip"),
    )
    select = _user_select(opts.get("$select"), collection=True)
    top = _parse_top(opts.get("$top"))
    expand, manager_select = _parse_expand_manager(opts.get("$expand"))
    start = int(_token_state(opts["$skiptoken"], "list:users").get("o", 0)) if "$skiptoken" in opts else 0
    directory = ctx.tenant.directory
    with ctx.tenant.lock:
        values: list[dict[str, Any]] = []
        next_link = None
        for position, rec in directory.user_position(start):
            if len(values) == top:
                next_link = _next_link(ctx, deltatoken.encode({"k": "list:users", "o": position}))
                break
            values.append(_user_view(directory, rec, select, expand, manager_select))
    return _collection(_context(ctx, "users", select), values, next_link)


@route("GET", "/users/{user}", roles=USER_READ, workload="directory")
def get_user(ctx: Ctx) -> Response:
    opts = _options(ctx, {"$select", "$expand"})
    select = _user_select(opts.get("$select"), collection=False)
    expand, manager_select = _parse_expand_manager(opts.get("$expand"))
    directory = ctx.tenant.directory
    with ctx.tenant.lock:
        rec = directory.user_record(_param(ctx, "user"))
        body = {"@odata.context": _context(ctx, "users", select) + "/$entity"}
        body.update(_user_view(directory, rec, select, expand, manager_select))
    return json_response(200, body)


@route("GET", "/users/{user}/manager", roles=USER_READ, workload="directory")
def get_manager(ctx: Ctx) -> Response:
    opts = _options(ctx, {"$select"})
    select = _user_select(opts.get("$select"), collection=False)
    directory = ctx.tenant.directory
    with ctx.tenant.lock:
        rec = directory.user_record(_param(ctx, "user"))
        manager = directory.object_record(rec.manager_id) if rec.manager_id else None
        if not isinstance(manager, UserRecord):
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                "Resource 'manager' does not exist or one of its queried reference-property objects are not "
                "present.",
            )
        body = {"@odata.context": f"{_base(ctx)}/$metadata#directoryObjects/$entity"}
        body.update({"@odata.type": "#microsoft.graph.user", **_user_view(directory, manager, select)})
    return json_response(200, body)


# --- Organizational contacts -------------------------------------------------------------------------------


def _contact_select(raw: str | None) -> tuple[str, ...] | None:
    return _parse_select(raw, _CONTACT_NAMES, "microsoft.graph.orgContact", _CONTACT_NAV_NAMES)


@route("GET", "/contacts", roles=ORG_CONTACT_READ, workload="directory")
def list_org_contacts(ctx: Ctx) -> Response:
    opts = _options(
        ctx, {"$select", "$top", "$skiptoken"}, ("$filter", "$count", "$orderby", "$search", "$expand")
    )
    select = _contact_select(opts.get("$select"))
    top = _parse_top(opts.get("$top"))
    with ctx.tenant.lock:
        records = list(ctx.tenant.directory.contact_records())
        values, next_link = _page(
            ctx,
            "list:contacts",
            records,
            lambda r: _project(r, select or ORG_CONTACT_PROPERTIES, CONTACT_COLLECTIONS),
            top,
            opts.get("$skiptoken"),
        )
    return _collection(_context(ctx, "contacts", select), values, next_link)


@route("GET", "/contacts/{contact}", roles=ORG_CONTACT_READ, workload="directory")
def get_org_contact(ctx: Ctx) -> Response:
    opts = _options(ctx, {"$select"})
    select = _contact_select(opts.get("$select"))
    with ctx.tenant.lock:
        rec = ctx.tenant.directory.contact_record(_param(ctx, "contact"))
        body = {"@odata.context": _context(ctx, "contacts", select) + "/$entity"}
        body.update(_project(rec, select or ORG_CONTACT_PROPERTIES, CONTACT_COLLECTIONS))
    return json_response(200, body)


# --- Groups ------------------------------------------------------------------------------------------------


_DISPLAY_NAME_FILTER = re.compile(r"\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


@route("GET", "/groups", roles=GROUP_MEMBER_READ, workload="directory")
def list_groups(ctx: Ctx) -> Response:
    """GET /groups (group-list.md); of `$filter` only `displayName eq '...'`, which galsync uses to resolve
    the group names written in a profile. Other filters answer 501 rather than a wrong result."""
    opts = _options(
        ctx, {"$select", "$top", "$skiptoken", "$filter"}, ("$count", "$orderby", "$search", "$expand")
    )
    select = _parse_select(opts.get("$select"), _GROUP_NAMES, "microsoft.graph.group", _GROUP_NAV_NAMES)
    top = _parse_top(opts.get("$top"))
    wanted: str | None = None
    if "$filter" in opts:
        m = _DISPLAY_NAME_FILTER.fullmatch(opts["$filter"])
        if not m:
            raise GraphError(
                501, "NotImplemented", "The emulator supports only $filter=displayName eq '...'."
            )
        wanted = m.group(1).replace("''", "'")
    with ctx.tenant.lock:
        records = [
            r for r in ctx.tenant.directory.group_records()
            if wanted is None or str(r.props.get("displayName", "")).lower() == wanted.lower()
        ]
        values, next_link = _page(
            ctx, "list:groups", records,
            lambda r: _project(r, select or GROUP_PROPERTIES, GROUP_COLLECTIONS), top, opts.get("$skiptoken"),
        )
    return _collection(_context(ctx, "groups", select), values, next_link)


@route("GET", "/groups/{group}", roles=GROUP_MEMBER_READ, workload="directory")
def get_group(ctx: Ctx) -> Response:
    opts = _options(ctx, {"$select"}, ("$expand",))
    select = _parse_select(opts.get("$select"), _GROUP_NAMES, "microsoft.graph.group", _GROUP_NAV_NAMES)
    with ctx.tenant.lock:
        rec = ctx.tenant.directory.group_record(_param(ctx, "group"))
        body = {"@odata.context": _context(ctx, "groups", select) + "/$entity"}
        body.update(_project(rec, select or GROUP_PROPERTIES, GROUP_COLLECTIONS))
    return json_response(200, body)


def _members(ctx: Ctx, transitive: bool) -> Response:
    opts = _options(
        ctx, {"$select", "$top", "$skiptoken"}, ("$filter", "$count", "$orderby", "$search", "$expand")
    )
    known = {**_USER_NAMES, **_GROUP_NAMES, **_CONTACT_NAMES}
    select = _parse_select(opts.get("$select"), known, "microsoft.graph.directoryObject")
    top = _parse_top(opts.get("$top"))
    directory = ctx.tenant.directory
    with ctx.tenant.lock:
        group = directory.group_record(_param(ctx, "group"))
        records = (
            directory.transitive_member_records(group) if transitive else directory.member_records(group)
        )
        kind = f"{'transitive' if transitive else 'members'}:{group.id}"
        values, next_link = _page(
            ctx, kind, records, lambda r: _object_view(r, select), top, opts.get("$skiptoken")
        )
    return _collection(_context(ctx, "directoryObjects", select), values, next_link)


@route("GET", "/groups/{group}/members", roles=GROUP_MEMBER_READ, workload="directory")
def list_members(ctx: Ctx) -> Response:
    return _members(ctx, transitive=False)


@route("GET", "/groups/{group}/transitiveMembers", roles=GROUP_MEMBER_READ, workload="directory")
def list_transitive_members(ctx: Ctx) -> Response:
    return _members(ctx, transitive=True)


# --- Delta -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaKind:
    """What differs between the three directory delta functions."""

    resource: str  # change-log name and URL segment: "users", "contacts", "groups"
    type_name: str
    defaults: tuple[str, ...]  # properties returned without $select
    names: dict[str, str]
    navigation: dict[str, str]
    relation: str | None  # "manager" (users) or "members" (groups): tracked only when selected / by default
    relation_by_default: bool


USERS_DELTA = DeltaKind(
    "users", "microsoft.graph.user", USER_DEFAULT_PROPERTIES, _USER_NAMES, _USER_NAV_NAMES, "manager", False
)
CONTACTS_DELTA = DeltaKind(
    "contacts",
    "microsoft.graph.orgContact",
    ORG_CONTACT_PROPERTIES,
    _CONTACT_NAMES,
    _CONTACT_NAV_NAMES,
    None,
    False,
)
GROUPS_DELTA = DeltaKind(
    "groups", "microsoft.graph.group", GROUP_PROPERTIES, _GROUP_NAMES, _GROUP_NAV_NAMES, "members", True
)


def _parse_id_filter(raw: str) -> list[str]:
    ids: list[str] = []
    for term in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
        m = re.fullmatch(r"\s*id\s+eq\s+'([^']*)'\s*", term, re.IGNORECASE)
        if not m:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported query. Delta supports only $filter=id eq '{id}', several joined with 'or'.",
            )
        ids.append(m.group(1).lower())
    if len(ids) > MAX_FILTER_IDS:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            f"Unsupported query: at most {MAX_FILTER_IDS} ids can be filtered.",
        )
    return ids


def _relation_tracked(kind: DeltaKind, select: tuple[str, ...] | None) -> bool:
    if kind.relation is None:
        return False
    return kind.relation_by_default if select is None else kind.relation in select


def _relevant(rec: Record, since: int, kind: DeltaKind, select: tuple[str, ...] | None) -> bool:
    """Does this object belong in a round that started at `since`?"""
    if not rec.active:
        # Created and deleted before an initial round: not returned (delta-query-overview.md).
        return since > 0 and rec.state_seq > since
    if rec.born_seq > since:
        return True
    if select is None:
        if rec.props_seq > since:
            return True
    elif any(rec.seqs.get(p, 0) > since for p in select if p != kind.relation):
        return True
    if _relation_tracked(kind, select):
        if isinstance(rec, UserRecord):
            return rec.manager_seq > since
        if isinstance(rec, GroupRecord):
            return rec.members_seq > since
    return False


def _delta_item(
    directory: Directory,
    rec: Record,
    since: int,
    kind: DeltaKind,
    select: tuple[str, ...] | None,
    minimal: bool,
) -> dict[str, Any]:
    if not rec.active:
        reason = "changed" if rec.state == SOFT_DELETED else "deleted"
        return {"id": rec.id, "@removed": {"reason": reason}}
    fresh = rec.born_seq > since
    item: dict[str, Any] = {}
    for name in select or kind.defaults:
        if name in ("id", kind.relation) or name not in rec.seqs:
            continue  # a property never set is left out (user-delta.md)
        if minimal and not fresh and rec.seqs[name] <= since:
            continue
        item[name] = json_copy(rec.props[name])
    item["id"] = rec.id
    if _relation_tracked(kind, select):
        links = _relation_delta(directory, rec, since, minimal and not fresh)
        if links:
            item[f"{kind.relation}@delta"] = links
    return item


def _link(directory: Directory, object_id: str, removed: bool = False) -> dict[str, Any]:
    rec = directory.any_record(object_id)
    out: dict[str, Any] = {"@odata.type": rec.odata_type() if rec else "#microsoft.graph.directoryObject"}
    out["id"] = object_id
    if removed:
        out["@removed"] = {"reason": "deleted"}
    return out


def _relation_delta(directory: Directory, rec: Record, since: int, minimal: bool) -> list[dict[str, Any]]:
    if isinstance(rec, UserRecord):
        if rec.manager_id is not None and (not minimal or rec.manager_seq > since):
            return [_link(directory, rec.manager_id)]
        if rec.manager_id is None and rec.prev_manager_id and since > 0 and rec.manager_seq > since:
            return [_link(directory, rec.prev_manager_id, removed=True)]
        return []
    if isinstance(rec, GroupRecord):
        # Only membership changes since the token; all current members in an initial round.
        links = [_link(directory, m) for m, seq in rec.members.items() if seq > since]
        if since > 0:
            links += [
                _link(directory, m, removed=True) for m, seq in rec.removed_members.items() if seq > since
            ]
        return links
    return []


def _delta(ctx: Ctx, kind: DeltaKind) -> Response:
    allowed = {"$select", "$filter", "$deltatoken", "$skiptoken", "$top", "$orderby", "$expand"}
    opts = _options(ctx, allowed)
    expand_members = kind is GROUPS_DELTA and opts.get("$expand", "").strip() == "members"
    for option in ("$top", "$orderby", "$expand"):
        if option in opts and not (option == "$expand" and expand_members):
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"The query option '{option}' is not supported with delta query.",
            )
    if "$skiptoken" in opts and "$deltatoken" in opts:
        raise GraphError(400, "Request_BadRequest", "Specify either $skiptoken or $deltatoken, not both.")
    if "$skiptoken" in opts and ("$select" in opts or "$filter" in opts):
        raise GraphError(
            400,
            "Request_BadRequest",
            "$select and $filter cannot be combined with $skiptoken; use the nextLink.",
        )
    select = _parse_select(opts.get("$select"), kind.names, kind.type_name, kind.navigation, _navigable(kind))
    if select is not None and expand_members:
        select = select if "members" in select else (*select, "members")
    if kind is USERS_DELTA and select and any(p in USER_SINGLE_ONLY for p in select):
        raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
    filter_ids = _parse_id_filter(opts["$filter"]) if "$filter" in opts else None
    minimal = ctx.req.prefer().get("return") == "minimal"
    raw_token = opts.get("$skiptoken") or opts.get("$deltatoken") or ""
    changes = ctx.tenant.changes
    with changes.lock:
        if raw_token.lower() == "latest":  # "sync from now": only a deltaLink
            state = _round_state(kind, select, filter_ids, changes.seq, changes.delta_epoch)
            return _delta_response(ctx, kind, select, [], deltalink=deltatoken.encode(state))
        if raw_token:
            state = _decode_delta_token(ctx, kind, raw_token)
            if "$select" in opts:  # a deltaLink may change the tracked properties (delta-query-overview.md)
                state["s"] = list(select) if select else None
            if "$filter" in opts:
                raise GraphError(
                    400, "Request_BadRequest", "$filter must be given in the initial delta request."
                )
        else:
            state = _round_state(kind, select, filter_ids, 0, changes.delta_epoch)
        return _delta_page(ctx, kind, state, minimal)


def _navigable(kind: DeltaKind) -> frozenset[str]:
    return frozenset({kind.relation}) if kind.relation else frozenset()


def _round_state(
    kind: DeltaKind, select: tuple[str, ...] | None, filter_ids: list[str] | None, since: int, epoch: int
) -> dict[str, Any]:
    return {
        "k": f"delta:{kind.resource}",
        "s": list(select) if select else None,
        "f": filter_ids,
        "since": since,
        "cur": since,
        "e": epoch,
        "rp": [],
    }


def _decode_delta_token(ctx: Ctx, kind: DeltaKind, raw: str) -> dict[str, Any]:
    state = deltatoken.decode(raw)
    if state is None or state.get("k") != f"delta:{kind.resource}":
        raise GraphError(400, "Request_BadRequest", "The delta token is not valid for this request.")
    if int(state.get("e", -1)) < ctx.tenant.changes.delta_epoch:
        restart = [f"$select={','.join(state['s'])}"] if state.get("s") else []
        if state.get("f"):
            restart.append("$filter=" + quote(" or ".join(f"id eq '{i}'" for i in state["f"]), safe="'="))
        restart.append("$deltatoken=")
        location = f"{_base(ctx)}/{kind.resource}/delta?{'&'.join(restart)}"
        raise GraphError(
            410,
            "syncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must be "
            "synchronized again.",
            headers={"Location": location},
        )
    return state


def _delta_page(ctx: Ctx, kind: DeltaKind, state: dict[str, Any], minimal: bool) -> Response:
    """One page of a round (call under the tenant lock). See the module docstring for the rules."""
    changes = ctx.tenant.changes
    directory = ctx.tenant.directory
    records = directory.records(kind.resource)
    select = tuple(state["s"]) if state.get("s") else None
    since, cursor = int(state["since"]), int(state["cur"])
    wanted = set(state["f"]) if state.get("f") else None
    page_size = directory.delta_page_size
    items: list[dict[str, Any]] = []
    emitted: list[str] = []
    last, more = cursor, False
    for seq, rec in directory.logs[kind.resource].after(cursor):
        if wanted is not None and rec.id not in wanted:
            continue
        if not _relevant(rec, since, kind, select):
            continue
        if len(items) == page_size:
            more = True  # exact: a nextLink is given only when another item really follows
            break
        items.append(_delta_item(directory, rec, since, kind, select, minimal))
        emitted.append(rec.id)
        last = seq
    items += _replays(changes, directory, records, state.get("rp") or [], emitted, since, kind, select)
    if more:
        nxt = dict(state, cur=last, rp=emitted)
        return _delta_response(ctx, kind, select, items, nextlink=deltatoken.encode(nxt))
    done = dict(state, since=changes.seq, cur=changes.seq, rp=emitted, e=changes.delta_epoch)
    return _delta_response(ctx, kind, select, items, deltalink=deltatoken.encode(done))


def _replays(
    changes: Changes,
    directory: Directory,
    records: dict[str, Any],
    previous: list[str],
    emitted: list[str],
    since: int,
    kind: DeltaKind,
    select: tuple[str, ...] | None,
) -> list[dict[str, Any]]:
    """Re-send some items of the previous page, as Graph's replays do (clients must be idempotent)."""
    rate = changes.delta_replay_rate
    if rate <= 0 or not previous:
        return []
    rng = changes.rng
    out = []
    for object_id in previous:
        rec = records.get(object_id)
        if rec is not None and object_id not in emitted and rng.random() < rate:
            out.append(_delta_item(directory, rec, since, kind, select, minimal=False))
    return out


def _delta_response(
    ctx: Ctx,
    kind: DeltaKind,
    select: tuple[str, ...] | None,
    items: list[dict[str, Any]],
    nextlink: str | None = None,
    deltalink: str | None = None,
) -> Response:
    body: dict[str, Any] = {"@odata.context": _context(ctx, kind.resource, select)}
    if nextlink:
        body["@odata.nextLink"] = f"{_base(ctx)}/{kind.resource}/delta?$skiptoken={nextlink}"
    else:
        body["@odata.deltaLink"] = f"{_base(ctx)}/{kind.resource}/delta?$deltatoken={deltalink}"
    body["value"] = items
    return json_response(200, body)


# Graph answers a function both by its short name and qualified with its namespace.
@route("GET", "/users/delta", roles=USER_READ, workload="directory")
@route("GET", "/users/microsoft.graph.delta()", roles=USER_READ, workload="directory")
def users_delta(ctx: Ctx) -> Response:
    return _delta(ctx, USERS_DELTA)


@route("GET", "/contacts/delta", roles=ORG_CONTACT_READ, workload="directory")
@route("GET", "/contacts/microsoft.graph.delta()", roles=ORG_CONTACT_READ, workload="directory")
def org_contacts_delta(ctx: Ctx) -> Response:
    return _delta(ctx, CONTACTS_DELTA)


@route("GET", "/groups/delta", roles=GROUP_MEMBER_READ, workload="directory")
@route("GET", "/groups/microsoft.graph.delta()", roles=GROUP_MEMBER_READ, workload="directory")
def groups_delta(ctx: Ctx) -> Response:
    return _delta(ctx, GROUPS_DELTA)


# --- User photos -------------------------------------------------------------------------------------------
# Exchange-backed in Graph; kept on the directory workload here for throttling simplicity.


def _image_not_found() -> GraphError:
    return GraphError(
        404,
        "ImageNotFound",
        "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
    )


def _photo(ctx: Ctx) -> tuple[str, Photo]:
    _options(ctx, set())
    with ctx.tenant.lock:
        rec = ctx.tenant.directory.user_record(_param(ctx, "user"))
        if rec.photo is None:
            raise _image_not_found()
        return rec.id, rec.photo


def _size(photo: Photo, raw: str) -> tuple[str, int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", raw)
    if not m or m.group(1) != m.group(2) or int(m.group(1)) not in PHOTO_SIZES:
        raise _image_not_found()
    size = f"{m.group(1)}x{m.group(2)}"
    if size not in photo.sizes():
        raise _image_not_found()
    edge = int(m.group(1))
    return size, edge, edge


def _photo_metadata(
    ctx: Ctx, user_id: str, photo: Photo, size: tuple[str, int, int], entity: str
) -> dict[str, Any]:
    return {
        "@odata.context": f"{_base(ctx)}/$metadata#users('{user_id}')/{entity}",
        "@odata.mediaContentType": "image/jpeg",
        "@odata.mediaEtag": photo.etag,
        "id": size[0],
        "width": size[1],
        "height": size[2],
    }


def _photo_bytes(photo: Photo) -> Response:
    return Response(200, photo.jpeg, {"Content-Type": "image/jpeg", "ETag": photo.etag})


@route("GET", "/users/{user}/photo", roles=PHOTO_READ, workload="directory")
def get_photo(ctx: Ctx) -> Response:
    user_id, photo = _photo(ctx)
    return json_response(200, _photo_metadata(ctx, user_id, photo, photo.largest(), "photo/$entity"))


@route("GET", "/users/{user}/photo/$value", roles=PHOTO_READ, workload="directory")
def get_photo_value(ctx: Ctx) -> Response:
    return _photo_bytes(_photo(ctx)[1])


@route("GET", "/users/{user}/photos", roles=PHOTO_READ, workload="directory")
def list_photos(ctx: Ctx) -> Response:
    user_id, photo = _photo(ctx)
    values = []
    for size in photo.sizes():
        edge = int(size.split("x")[0])
        meta = _photo_metadata(ctx, user_id, photo, (size, edge, edge), "photos")
        del meta["@odata.context"]
        values.append(meta)
    return json_response(
        200, {"@odata.context": f"{_base(ctx)}/$metadata#users('{user_id}')/photos", "value": values}
    )


@route("GET", "/users/{user}/photos/{size}", roles=PHOTO_READ, workload="directory")
def get_photo_size(ctx: Ctx) -> Response:
    user_id, photo = _photo(ctx)
    return json_response(
        200, _photo_metadata(ctx, user_id, photo, _size(photo, _param(ctx, "size")), "photos/$entity")
    )


@route("GET", "/users/{user}/photos/{size}/$value", roles=PHOTO_READ, workload="directory")
def get_photo_size_value(ctx: Ctx) -> Response:
    _, photo = _photo(ctx)
    _size(photo, _param(ctx, "size"))
    return _photo_bytes(photo)

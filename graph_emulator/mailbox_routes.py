"""Graph v1.0 routes for Outlook contact folders, contacts, contact delta, contact photos and userPurpose.

URL shapes, query options and JSON follow the v1.0 docs (user-list-contacts, user-post-contactfolders,
contact-delta, profilephoto-get/update, singlevaluelegacyextendedproperty-get, user-get-mailboxsettings).
What the docs do not list is refused with a 400 naming the problem rather than silently accepted:
- contacts `$filter`: only `emailAddresses/any(a:a/address eq '...')` (user-list-contacts.md) and numeric
  extended-property filters (`cast(ep/value, Edm.Int32) <op> N`); string-valued extended-property filters are
  documented for messages and events only (docs/graph-facts.md), so they get a 400 here;
- contact folders `$filter`: only `displayName eq '...'`;
- contact delta takes only `$select` (contact-delta.md), so `$expand`, `$filter`, `$top` are refused;
- `$expand` only as `singleValueExtendedProperties($filter=id eq '...')`, which returns the matching
  properties and omits the key when the contact has none of them;
- contact photos cannot be deleted (profilephoto-delete.md: user and group photos only);
- the default Contacts folder is `/users/{id}/contacts` (lists, creates; `/contacts/{id}` is any contact of
  the mailbox, contact-get.md); its delta needs its real id (contact-delta.md documents delta on a folder
  only), so `/users/{id}/contacts/delta` and well-known names such as `contactFolders/contacts` (beta only)
  are refused with a 400 saying so.
Page sizes: lists default to 10 and allow `$top` up to 1000 (paged with `$skip` in `@odata.nextLink`);
delta pages hold `Prefer: odata.maxpagesize` items, at most 200 (also the default).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .mailbox import (
    CONTACT_PROPERTIES,
    FOLDER_PROPERTIES,
    STRING_FIELDS,
    extended_property_key,
    parse_extended_properties,
)
from .protocol import GraphError, Response, json_response
from .routing import Ctx, route

READ = {"Contacts.Read", "Contacts.ReadWrite"}
WRITE = {"Contacts.ReadWrite"}
SETTINGS_READ = {"MailboxSettings.Read", "MailboxSettings.ReadWrite"}
LIST_DEFAULT_TOP = 10
LIST_MAX_TOP = 1000

U = "/users/{user}"
CONTACT_BASES = (
    f"{U}/contacts",
    f"{U}/contactFolders/{{folder}}/contacts",
    f"{U}/contactFolders/{{folder}}/childFolders/{{child}}/contacts",
)


def _outlook(method: str, template: str, roles: set[str]) -> Callable[[Callable[[Ctx], Response]], Any]:
    return route(method, template, roles=roles, workload="outlook", mailbox_param="user")


# --- URLs, query options --------------------------------------------------------------------------


def _root(ctx: Ctx) -> str:
    base = ctx.extra.get("base_url")
    if isinstance(base, str):
        return base.rstrip("/")
    return f"https://{ctx.req.headers.get('host') or 'graph.microsoft.com'}/v1.0"


_PATH_SAFE = "/@=-_.~'()!*+,;:$"


def _link(ctx: Ctx, query: dict[str, str]) -> str:
    encoded = "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in query.items())
    path = quote(ctx.req.path, safe=_PATH_SAFE)
    return f"{_root(ctx)}{path}?{encoded}"


def _context(ctx: Ctx, suffix: str) -> str:
    return _context_url(_root(ctx), ctx.params["user"], suffix)


@functools.lru_cache(maxsize=1024)
def _context_url(root: str, user: str, suffix: str) -> str:
    """Built once per mailbox and folder: every answer about a mailbox's contacts names them again."""
    return f"{root}/$metadata#users('{quote(user, safe='@')}')/{suffix}"


def _check_options(ctx: Ctx, allowed: set[str]) -> None:
    for name in ctx.req.query:
        if name.startswith("$") and name not in allowed:
            raise GraphError(400, "BadRequest", f"Query option '{name}' is not supported on {ctx.req.path}.")


def _int_option(ctx: Ctx, name: str, low: int, high: int, default: int) -> int:
    raw = ctx.req.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise GraphError(
            400, "BadRequest", f"Invalid value '{raw}' for query option '{name}': {low}..{high}."
        )
    return int(raw)


def _select(ctx: Ctx, allowed: tuple[str, ...], type_name: str) -> list[str] | None:
    raw = ctx.req.query.get("$select")
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for n in names:
        if n not in allowed:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{n}' on type '{type_name}'.",
            )
    return names


_EXPAND = re.compile(r"^singleValueExtendedProperties\(\$filter=(?P<filter>.+)\)$", re.IGNORECASE)
_ID_EQ = re.compile(r"^\s*id\s+eq\s+'(?P<id>(?:[^']|'')*)'\s*$")


def _expand(ctx: Ctx) -> list[str] | None:
    """The extended-property keys asked for with $expand, or None without $expand."""
    raw = ctx.req.query.get("$expand")
    if raw is None:
        return None
    m = _EXPAND.match(raw.strip())
    if not m:
        raise GraphError(
            400,
            "BadRequest",
            "Only $expand=singleValueExtendedProperties($filter=id eq '...') is supported: "
            "Graph cannot return every extended property of an item.",
        )
    keys = []
    for part in re.split(r"\s+or\s+", m.group("filter")):
        idm = _ID_EQ.match(part)
        if not idm:
            raise GraphError(400, "BadRequest", f"Invalid filter clause in $expand: {part!r}.")
        keys.append(extended_property_key(idm.group("id").replace("''", "'")))
    return keys


def _shape(
    item: dict[str, Any], ext: dict[str, tuple[str, str]], select: list[str] | None, expand: list[str] | None
) -> dict[str, Any]:
    """Apply $select (id always kept) and $expand (matching extended properties, key omitted when none)."""
    out = {k: v for k, v in item.items() if k.startswith("@")}
    if select is None:
        out.update(item)
    else:
        out["id"] = item["id"]
        out.update({k: item[k] for k in select if k in item})
    if expand:
        found = [{"id": ext[k][0], "value": ext[k][1]} for k in expand if k in ext]
        if found:
            out["singleValueExtendedProperties"] = found
    return out


def _preference_headers(ctx: Ctx, *applied: str) -> dict[str, str]:
    prefer = ctx.req.prefer()
    names = []
    if "idtype" in prefer:
        if prefer["idtype"] not in ("ImmutableId", "RestId"):
            raise GraphError(400, "BadRequest", f"Unknown IdType '{prefer['idtype']}' in the Prefer header.")
        names.append(f'IdType="{prefer["idtype"]}"')  # ids here are immutable already
    names.extend(applied)
    return {"Preference-Applied": ", ".join(names)} if names else {}


# --- $filter --------------------------------------------------------------------------------------

_EMAIL_FILTER = re.compile(
    r"^emailAddresses/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)/address\s+eq\s+'(?P<addr>(?:[^']|'')*)'\s*\)$",
    re.IGNORECASE,
)
_EXT_FILTER = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)/id\s+eq\s+'(?P<id>(?:[^']|'')*)'\s+and\s+"
    r"(?P<rest>.+)\)$",
    re.IGNORECASE,
)
_NUMERIC = re.compile(
    r"^cast\(\s*\w+/value\s*,\s*'?Edm\.(?:Int16|Int32|Int64|Double)'?\s*\)\s+(?P<op>eq|ne|ge|gt|le|lt)\s+"
    r"(?P<num>-?\d+(?:\.\d+)?)\s*$",
    re.IGNORECASE,
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


def _filter_error(detail: str) -> GraphError:
    return GraphError(400, "ErrorInvalidUrlQueryFilter", detail)


def _contact_filter(raw: str) -> Callable[[dict[str, Any], dict[str, tuple[str, str]]], bool]:
    text = raw.strip()
    m = _EMAIL_FILTER.match(text)
    if m:
        wanted = m.group("addr").replace("''", "'").lower()
        return lambda c, _e: any((a.get("address") or "").lower() == wanted for a in c["emailAddresses"])
    m = _EXT_FILTER.match(text)
    if m:
        key = extended_property_key(m.group("id").replace("''", "'"))
        num = _NUMERIC.match(m.group("rest"))
        if not num:
            raise _filter_error(
                "Filtering contacts on the value of a string-typed extended property is not documented for "
                "contacts (only for messages and events); only numeric comparisons with "
                "cast(ep/value, Edm.Int32) are."
            )
        op, bound = _OPS[num.group("op").lower()], float(num.group("num"))

        def numeric(_c: dict[str, Any], ext: dict[str, tuple[str, str]]) -> bool:
            if key not in ext:
                return False
            try:
                return op(float(ext[key][1]), bound)
            except ValueError:
                return False

        return numeric
    raise _filter_error(
        f"Unsupported $filter on contacts: {raw!r}. Documented: emailAddresses/any(a:a/address eq '...') and "
        "numeric singleValueExtendedProperties/any(...) filters."
    )


_FOLDER_FILTER = re.compile(r"^displayName\s+eq\s+'(?P<name>(?:[^']|'')*)'$")


def _folder_filter(raw: str) -> Callable[[dict[str, Any]], bool]:
    m = _FOLDER_FILTER.match(raw.strip())
    if not m:
        raise _filter_error(
            f"Unsupported $filter on contact folders: {raw!r}. Supported: displayName eq '...'."
        )
    name = m.group("name").replace("''", "'")
    return lambda f: f["displayName"] == name


# --- collections ----------------------------------------------------------------------------------


def _page(ctx: Ctx, items: list[dict[str, Any]], context: str) -> Response:
    top = _int_option(ctx, "$top", 1, LIST_MAX_TOP, LIST_DEFAULT_TOP)
    skip = _int_option(ctx, "$skip", 0, 10**9, 0)
    count = ctx.req.query.get("$count")
    if count not in (None, "true", "false"):
        raise GraphError(400, "BadRequest", f"Invalid value '{count}' for $count: true or false.")
    body: dict[str, Any] = {"@odata.context": context}
    if count == "true":
        body["@odata.count"] = len(items)
    body["value"] = items[skip : skip + top]
    if skip + top < len(items):
        query = {k: v for k, v in ctx.req.query.items() if k != "$skip"}
        query["$skip"] = str(skip + top)
        body["@odata.nextLink"] = _link(ctx, query)
    return json_response(200, body, **_preference_headers(ctx))


def _orderby(
    ctx: Ctx, items: list[Any], key: Callable[[Any], dict[str, Any]], allowed: tuple[str, ...]
) -> None:
    raw = ctx.req.query.get("$orderby")
    if raw is None:
        return
    parts = raw.strip().split()
    if (
        not parts
        or parts[0] not in allowed
        or len(parts) > 2
        or (len(parts) == 2 and parts[1] not in ("asc", "desc"))
    ):
        raise GraphError(
            400, "BadRequest", f"Unsupported $orderby {raw!r}: one string property, asc or desc."
        )
    items.sort(
        key=lambda it: (key(it).get(parts[0]) or "").lower(), reverse=len(parts) == 2 and parts[1] == "desc"
    )


# --- contact folders ------------------------------------------------------------------------------


# Well-known folder names v1.0 documents for mail folders (mailfolder.md) and beta for contact folders only.
_WELL_KNOWN = frozenset({"contacts", "root", "msgfolderroot", "inbox"})


def _folder_id(ctx: Ctx) -> str | None:
    """The folder a path names: .../childFolders/{child} must be a child of {folder}."""
    folder = ctx.params.get("folder")
    if folder is not None and folder.lower() in _WELL_KNOWN:
        raise GraphError(
            400, "ErrorInvalidIdMalformed",
            f"'{folder}' is a well-known folder name; Graph v1.0 documents none for contact folders. Use the "
            "folder's id (the default Contacts folder's is the parentFolderId of its contacts), or "
            "/users/{id}/contacts for the default folder.",
        )
    child = ctx.params.get("child")
    if child is None:
        return folder
    parent = ctx.tenant.mailboxes.get_folder(ctx.params["user"], child)["parentFolderId"]
    if parent != folder:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return child


def _folder_json(ctx: Ctx, folder: dict[str, Any], expand: list[str] | None) -> dict[str, Any]:
    ext = ctx.tenant.mailboxes.folder_extended_properties(ctx.params["user"], folder["id"]) if expand else {}
    return _shape(
        folder, ext, _select(ctx, FOLDER_PROPERTIES, "Microsoft.OutlookServices.ContactFolder"), expand
    )


def _list_folders(ctx: Ctx) -> Response:
    _check_options(ctx, {"$top", "$skip", "$select", "$filter", "$expand", "$count", "$orderby"})
    parent = ctx.params.get("folder")
    folders = ctx.tenant.mailboxes.child_folders(ctx.params["user"], parent)
    if "$filter" in ctx.req.query:
        keep = _folder_filter(ctx.req.query["$filter"])
        folders = [f for f in folders if keep(f)]
    _orderby(ctx, folders, lambda f: f, ("displayName",))
    expand = _expand(ctx)
    items = [_folder_json(ctx, f, expand) for f in folders]
    suffix = "contactFolders" if parent is None else f"contactFolders('{parent}')/childFolders"
    return _page(ctx, items, _context(ctx, suffix))


def _folder_body(ctx: Ctx, creating: bool) -> tuple[str | None, dict[str, tuple[str, str]]]:
    body = ctx.req.json_object()
    ext: dict[str, tuple[str, str]] = {}
    name: str | None = None
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key == "displayName":
            if not isinstance(value, str):
                raise GraphError(
                    400, "RequestBodyRead", "Cannot convert the literal to the expected type 'Edm.String'."
                )
            name = value
        elif key == "singleValueExtendedProperties":
            ext = parse_extended_properties(value)
        elif key in ("id", "parentFolderId"):
            raise GraphError(400, "ErrorInvalidPropertySet", f"The property '{key}' is read-only.")
        else:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{key}' does not exist on type 'Microsoft.OutlookServices.ContactFolder'.",
            )
    if creating and name is None:
        raise GraphError(400, "ErrorInvalidRequest", "The contact folder's displayName is required.")
    return name, ext


def _create_folder(ctx: Ctx) -> Response:
    name, ext = _folder_body(ctx, creating=True)
    assert name is not None
    parent = _folder_id(ctx) if "folder" in ctx.params else None
    folder = ctx.tenant.mailboxes.create_folder(ctx.params["user"], name, parent, ext)
    suffix = "contactFolders/$entity"
    return json_response(201, {"@odata.context": _context(ctx, suffix), **folder}, **_preference_headers(ctx))


def _get_folder(ctx: Ctx) -> Response:
    _check_options(ctx, {"$select", "$expand"})
    folder = ctx.tenant.mailboxes.get_folder(ctx.params["user"], _folder_id(ctx) or "")
    body = {
        "@odata.context": _context(ctx, "contactFolders/$entity"),
        **_folder_json(ctx, folder, _expand(ctx)),
    }
    return json_response(200, body, **_preference_headers(ctx))


def _update_folder(ctx: Ctx) -> Response:
    name, ext = _folder_body(ctx, creating=False)
    folder = ctx.tenant.mailboxes.update_folder(ctx.params["user"], _folder_id(ctx) or "", name, ext)
    return json_response(200, {"@odata.context": _context(ctx, "contactFolders/$entity"), **folder})


def _delete_folder(ctx: Ctx) -> Response:
    ctx.tenant.mailboxes.delete_folder(ctx.params["user"], _folder_id(ctx) or "")
    return Response(204)


_outlook("GET", f"{U}/contactFolders", READ)(_list_folders)
_outlook("POST", f"{U}/contactFolders", WRITE)(_create_folder)
for _tpl in (f"{U}/contactFolders/{{folder}}", f"{U}/contactFolders/{{folder}}/childFolders/{{child}}"):
    _outlook("GET", _tpl, READ)(_get_folder)
    _outlook("PATCH", _tpl, WRITE)(_update_folder)
    _outlook("DELETE", _tpl, WRITE)(_delete_folder)
_outlook("GET", f"{U}/contactFolders/{{folder}}/childFolders", READ)(_list_folders)
_outlook("POST", f"{U}/contactFolders/{{folder}}/childFolders", WRITE)(_create_folder)


# --- contacts -------------------------------------------------------------------------------------

_CONTACT_TYPE = "Microsoft.OutlookServices.Contact"


def _contact_context(ctx: Ctx, entity: bool) -> str:
    folder = _folder_id(ctx)
    suffix = "contacts" if folder is None else f"contactFolders('{folder}')/contacts"
    return _context(ctx, suffix + ("/$entity" if entity else ""))


def _contact_out(
    contact: dict[str, Any],
    ext: dict[str, tuple[str, str]],
    select: list[str] | None,
    expand: list[str] | None,
) -> dict[str, Any]:
    etagged = {"@odata.etag": f'W/"{contact["changeKey"]}"', **contact}
    if select is None and not expand:
        return etagged  # what _shape would return, without copying it again
    return _shape(etagged, ext, select, expand)


def _list_contacts(ctx: Ctx) -> Response:
    _check_options(ctx, {"$top", "$skip", "$select", "$filter", "$expand", "$count", "$orderby"})
    select = _select(ctx, CONTACT_PROPERTIES, _CONTACT_TYPE)
    expand = _expand(ctx)
    rows = ctx.tenant.mailboxes.list_contacts(ctx.params["user"], _folder_id(ctx))
    if "$filter" in ctx.req.query:
        keep = _contact_filter(ctx.req.query["$filter"])
        rows = [r for r in rows if keep(r[0], r[1])]
    _orderby(ctx, rows, lambda r: r[0], STRING_FIELDS)
    items = [_contact_out(c, ext, select, expand) for c, ext in rows]
    return _page(ctx, items, _contact_context(ctx, entity=False))


def _create_contact(ctx: Ctx) -> Response:
    contact = ctx.tenant.mailboxes.create_contact(ctx.params["user"], ctx.req.json_object(), _folder_id(ctx))
    return json_response(201, _written_contact(ctx, contact), **_preference_headers(ctx))


def _written_contact(ctx: Ctx, contact: dict[str, Any]) -> dict[str, Any]:
    """What a create or update answers: the whole contact with its context and etag, built in one copy."""
    context = _contact_context(ctx, entity=True)
    return {"@odata.context": context, "@odata.etag": f'W/"{contact["changeKey"]}"', **contact}


def _get_contact(ctx: Ctx) -> Response:
    _check_options(ctx, {"$select", "$expand"})
    select = _select(ctx, CONTACT_PROPERTIES, _CONTACT_TYPE)
    expand = _expand(ctx)
    boxes, user, folder = ctx.tenant.mailboxes, ctx.params["user"], _folder_id(ctx)
    contact = boxes.get_contact(user, ctx.params["contact"], folder)
    ext = boxes.contact_extended_properties(user, ctx.params["contact"], folder) if expand else {}
    body = {
        "@odata.context": _contact_context(ctx, entity=True),
        **_contact_out(contact, ext, select, expand),
    }
    return json_response(200, body, **_preference_headers(ctx))


def _update_contact(ctx: Ctx) -> Response:
    contact = ctx.tenant.mailboxes.update_contact(
        ctx.params["user"], ctx.params["contact"], ctx.req.json_object(), _folder_id(ctx)
    )
    return json_response(200, _written_contact(ctx, contact), **_preference_headers(ctx))


def _delete_contact(ctx: Ctx) -> Response:
    ctx.tenant.mailboxes.delete_contact(ctx.params["user"], ctx.params["contact"], _folder_id(ctx))
    return Response(204)


for _base in CONTACT_BASES:
    _outlook("GET", _base, READ)(_list_contacts)
    _outlook("POST", _base, WRITE)(_create_contact)
    _outlook("GET", f"{_base}/{{contact}}", READ)(_get_contact)
    _outlook("PATCH", f"{_base}/{{contact}}", WRITE)(_update_contact)
    _outlook("DELETE", f"{_base}/{{contact}}", WRITE)(_delete_contact)


# --- contact delta --------------------------------------------------------------------------------


def _contact_delta(ctx: Ctx) -> Response:
    _check_options(ctx, {"$select", "$deltatoken", "$skiptoken"})
    _folder_id(ctx)  # refuses a well-known name
    prefer = ctx.req.prefer()
    page_size = None
    applied = []
    if "odata.maxpagesize" in prefer:
        raw = prefer["odata.maxpagesize"]
        if not raw.isdigit() or int(raw) < 1:
            raise GraphError(400, "BadRequest", f"Invalid odata.maxpagesize '{raw}' in the Prefer header.")
        page_size = int(raw)
        applied.append(f"odata.maxpagesize={min(page_size, 200)}")
    token, kind = None, None
    for option, option_kind in (("$skiptoken", "skip"), ("$deltatoken", "delta")):
        if option in ctx.req.query:
            if token is not None:
                raise GraphError(400, "BadRequest", "Use either $skiptoken or $deltatoken, not both.")
            token, kind = ctx.req.query[option], option_kind
    select = _select(ctx, CONTACT_PROPERTIES, _CONTACT_TYPE)
    if token is not None and select is not None:
        raise GraphError(
            400, "BadRequest", "$select goes on the first delta request only; the token already carries it."
        )
    page, select = ctx.tenant.mailboxes.delta_page(
        ctx.params["user"], ctx.params["folder"], token, kind, select, page_size
    )
    items = [item if "@removed" in item else _shape(item, {}, select, None) for item in page.items]
    body: dict[str, Any] = {
        "@odata.context": _context(ctx, f"contactFolders('{ctx.params['folder']}')/contacts")
    }
    if page.skip_token is not None:
        body["@odata.nextLink"] = _link(ctx, {"$skiptoken": page.skip_token})
    else:
        body["@odata.deltaLink"] = _link(ctx, {"$deltatoken": page.delta_token or ""})
    body["value"] = items
    return json_response(200, body, **_preference_headers(ctx, *applied))


_outlook("GET", f"{U}/contactFolders/{{folder}}/contacts/delta", READ)(_contact_delta)


def _default_folder_delta(ctx: Ctx) -> Response:
    raise GraphError(
        400, "BadRequest",
        "Contact delta is documented for a contact folder only (contact-delta.md): "
        "GET /users/{id}/contactFolders/{folderId}/contacts/delta, with the default folder's id.",
    )


_outlook("GET", f"{U}/contacts/delta", READ)(_default_folder_delta)


# --- contact photos -------------------------------------------------------------------------------


def _photo_meta(ctx: Ctx) -> Response:
    _check_options(ctx, {"$select"})
    data, (width, height) = ctx.tenant.mailboxes.photo(
        ctx.params["user"], ctx.params["contact"], _folder_id(ctx)
    )
    body = {
        "@odata.context": _contact_context(ctx, entity=False) + f"('{ctx.params['contact']}')/photo/$entity",
        "@odata.mediaContentType": "image/jpeg",
        "@odata.mediaEtag": f'"{zlib.crc32(data):08X}"',
        "id": f"{width}X{height}",
        "height": height,
        "width": width,
    }
    return json_response(200, body)


def _photo_value(ctx: Ctx) -> Response:
    data, _ = ctx.tenant.mailboxes.photo(ctx.params["user"], ctx.params["contact"], _folder_id(ctx))
    return Response(200, data, {"Content-Type": "image/jpeg"})


def _put_photo(ctx: Ctx) -> Response:
    ctype = (ctx.req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype not in ("image/jpeg", "image/jpg"):
        raise GraphError(415, "UnsupportedMediaType", "The photo's Content-Type must be image/jpeg.")
    # The throttle counts uploaded bytes against the mailbox's upload budget (150 MB / 5 min).
    ctx.extra["upload_bytes"] = len(ctx.req.body)
    ctx.tenant.mailboxes.set_photo(ctx.params["user"], ctx.params["contact"], ctx.req.body, _folder_id(ctx))
    return Response(200)


for _base in CONTACT_BASES:
    _outlook("GET", f"{_base}/{{contact}}/photo", READ)(_photo_meta)
    _outlook("GET", f"{_base}/{{contact}}/photo/$value", READ)(_photo_value)
    _outlook("PUT", f"{_base}/{{contact}}/photo/$value", WRITE)(_put_photo)
    _outlook("PATCH", f"{_base}/{{contact}}/photo/$value", WRITE)(_put_photo)


# --- mailboxSettings/userPurpose ------------------------------------------------------------------


def _user_purpose(ctx: Ctx) -> Response:
    value = ctx.tenant.mailboxes.purpose(ctx.params["user"])
    return json_response(
        200, {"@odata.context": _context(ctx, "mailboxSettings/userPurpose"), "value": value}
    )


_outlook("GET", f"{U}/mailboxSettings/userPurpose", SETTINGS_READ)(_user_purpose)

"""Group membership a profile depends on (its target groups and its user-filter groups), kept cheaply.

Each run asks Graph one question: has any of these groups changed? (`/groups/delta?$select=members`
filtered to the groups' ids, from the stored delta link.) Only when the answer is yes, or on the first run,
are the transitive members re-read. Memberships are stored in the state store as chunked documents so a
run with no change costs exactly one request for all of a profile's groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.graph import DeltaTokenExpired, GraphClient
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.groups")

GROUPS_SOURCE = "groups"  # delta-link name of the membership watch
_CHUNK = 400  # member ids per stored document (about 15 KB, well under a Table property's 32K characters)
MAX_WATCHED_GROUPS = 50  # Graph's limit on ids in one delta $filter


class GroupConfigError(ValueError):
    """A group named in a profile does not exist, or its name is ambiguous."""


@dataclass(frozen=True)
class Memberships:
    """Config group ref -> ids of its transitive user members; `changed` says whether they were re-read."""

    members: Mapping[str, frozenset[str]]
    changed: bool
    delta_link: str | None
    group_ids: Mapping[str, str]  # ref -> group id


def group_refs(profile: Profile) -> tuple[str, ...]:
    """Every group a profile depends on: target groups first, then filter groups."""
    return tuple(dict.fromkeys(profile.targets.groups + profile.group_refs))


def read_memberships(client: GraphClient, store: StateStore, profile: Profile, *, force: bool) -> Memberships:
    """Current memberships of the profile's groups; re-read from Graph only when a group changed.

    `force` re-reads regardless (first run, config change). Nothing is stored here: call `save` once the run
    has used them, so a crash re-reads rather than trusting half-saved state.
    """
    refs = group_refs(profile)
    if not refs:
        return Memberships({}, False, None, {})
    ids = resolve_ids(client, store, profile, refs)
    watched = sorted(set(ids.values()))
    link = None if force else store.get_delta_link(profile.name, GROUPS_SOURCE)
    stored = None if force else load(store, profile, refs)
    changed_groups, new_link = _watch(client, watched, link)
    if stored is not None and link is not None and not changed_groups:
        return Memberships(stored, False, new_link, ids)
    members = {ref: frozenset(_transitive_users(client, ids[ref])) for ref in refs}
    log.info("profile %s: re-read members of %d group(s)", profile.name, len(refs))
    return Memberships(members, True, new_link, ids)


def save(store: StateStore, profile: Profile, memberships: Memberships) -> None:
    """Store re-read memberships and the watch's delta link (after the run used them)."""
    if memberships.changed:
        for ref, members in memberships.members.items():
            ordered = sorted(members)
            chunks = [ordered[i:i + _CHUNK] for i in range(0, len(ordered), _CHUNK)] or [[]]
            for n, chunk in enumerate(chunks):
                store.put_doc("members", f"{profile.name}|{ref}|{n}", {"ids": chunk, "chunks": len(chunks)})
            old = store.get_doc("members", f"{profile.name}|{ref}|0")
            del old  # later chunks beyond len(chunks) are ignored by `load` (it reads "chunks" from chunk 0)
    if memberships.delta_link is not None:
        store.set_delta_link(profile.name, GROUPS_SOURCE, memberships.delta_link)


def load(store: StateStore, profile: Profile, refs: Iterable[str]) -> dict[str, frozenset[str]] | None:
    """Stored memberships of `refs`, or None if any is missing (then they must be re-read)."""
    out: dict[str, frozenset[str]] = {}
    for ref in refs:
        first = store.get_doc("members", f"{profile.name}|{ref}|0")
        if first is None:
            return None
        count = int(first[0].get("chunks", 1))
        ids = list(first[0].get("ids", []))
        for n in range(1, count):
            doc = store.get_doc("members", f"{profile.name}|{ref}|{n}")
            if doc is None:
                return None
            ids += doc[0].get("ids", [])
        out[ref] = frozenset(ids)
    return out


def resolve_ids(client: GraphClient, store: StateStore, profile: Profile, refs: Iterable[str]) -> dict[str, str]:
    """Group ref (id or display name) -> id; names are looked up once and remembered."""
    out: dict[str, str] = {}
    for ref in refs:
        if looks_like_object_id(ref):
            out[ref] = ref.lower()
            continue
        cached = store.get_doc("group-names", f"{profile.name}|{ref}")
        if cached is not None:
            out[ref] = str(cached[0]["id"])
            continue
        escaped = ref.replace("'", "''")
        found = list(client.iter_pages("/groups", params={"$filter": f"displayName eq '{escaped}'",
                                                          "$select": "id,displayName"}))
        if not found:
            raise GroupConfigError(f'profile "{profile.name}": no group named "{ref}" in the directory')
        if len(found) > 1:
            raise GroupConfigError(
                f'profile "{profile.name}": {len(found)} groups are named "{ref}"; use the group\'s object id'
            )
        out[ref] = str(found[0]["id"]).lower()
        store.put_doc("group-names", f"{profile.name}|{ref}", {"id": out[ref]})
    if len(set(out.values())) > MAX_WATCHED_GROUPS:
        raise GroupConfigError(f'profile "{profile.name}": at most {MAX_WATCHED_GROUPS} groups can be watched')
    return out


def _watch(client: GraphClient, group_ids: list[str], link: str | None) -> tuple[set[str], str | None]:
    """Ids of watched groups that changed since `link` (all of them on a first read), and the new link."""
    if link is not None:
        try:
            delta = client.delta(link)
            changed = {str(item.get("id", "")).lower() for item in delta}
            return changed, delta.delta_link
        except DeltaTokenExpired:
            log.info("group watch token expired; re-reading memberships")
    flt = " or ".join(f"id eq '{gid}'" for gid in group_ids)
    delta = client.delta("/groups/delta", params={"$select": "members", "$filter": flt})
    changed = {str(item.get("id", "")).lower() for item in delta}
    return changed | set(group_ids), delta.delta_link


def _transitive_users(client: GraphClient, group_id: str) -> set[str]:
    items = client.iter_pages(f"/groups/{group_id}/transitiveMembers", params={"$select": "id"})
    return {str(m["id"]) for m in items if str(m.get("@odata.type", "")).endswith(".user")}

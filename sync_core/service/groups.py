"""Group membership a profile depends on (its target groups and its user-filter groups), kept cheaply.

Each run asks Graph one question: has any of these groups changed? (`/groups/delta?$select=members`
filtered to the groups' ids, from the stored delta link.) The watched groups are the named groups and every
group nested in them (a driver added to "Drivers", itself a member of "All Staff", changes only "Drivers").
Only when the answer is yes, or on the first run, are the transitive members re-read, and the watch starts
again over the groups nested now. Memberships are stored as chunked documents, so a run with no change
costs exactly one request for all of a profile's groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.graph import DeltaTokenExpired, GraphClient
from sync_core.state import docs
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
    watched: tuple[str, ...] = ()  # group ids the delta link watches (named groups and those nested in them)


def group_refs(profile: Profile) -> tuple[str, ...]:
    """Every group a profile depends on: target groups first, then filter groups."""
    return tuple(dict.fromkeys(profile.targets.groups + profile.group_refs))


def read_memberships(client: GraphClient, store: StateStore, profile: Profile, *, force: bool) -> Memberships:
    """Current memberships of the profile's groups; re-read from Graph only when a watched group changed.

    `force` re-reads regardless (first run, config change). Nothing is stored here: call `save` once the run
    has used them, so a crash re-reads rather than trusting half-saved state.
    """
    refs = group_refs(profile)
    if not refs:
        return Memberships({}, False, None, {})
    ids = resolve_ids(client, store, profile, refs)
    stored_watch = docs.read(store, docs.GroupWatch, profile.name)
    watched = stored_watch.groups if stored_watch is not None else ()
    link = None if force or not set(ids.values()) <= set(watched) else store.get_delta_link(profile.name,
                                                                                             GROUPS_SOURCE)
    stored = None if link is None else load(store, profile, refs)
    if link is not None and stored is not None:
        changed, new_link = _watch(client, [], link)
        if not changed and new_link is not None:
            return Memberships(stored, False, new_link, ids, watched)
    members: dict[str, frozenset[str]] = {}
    nested: set[str] = set()
    for ref in refs:
        users, groups = _transitive(client, ids[ref])
        members[ref] = frozenset(users)
        nested |= groups
    watch = tuple(sorted(set(ids.values()) | nested))[:MAX_WATCHED_GROUPS]
    _, new_link = _watch(client, list(watch), None)  # a fresh watch, over the groups nested now
    log.info("profile %s: re-read members of %d group(s); watching %d group(s)", profile.name, len(refs), len(watch))
    return Memberships(members, True, new_link, ids, watch)


def save(store: StateStore, profile: Profile, memberships: Memberships) -> None:
    """Store re-read memberships and the watch's delta link (after the run used them)."""
    if memberships.changed:
        for ref, members in memberships.members.items():
            ordered = sorted(members)
            chunks = [ordered[i:i + _CHUNK] for i in range(0, len(ordered), _CHUNK)] or [[]]
            for n, chunk in enumerate(chunks):
                docs.write(store, docs.members_key(profile.name, ref, n), docs.Members(tuple(chunk), len(chunks)))
            # chunks beyond len(chunks) left by a larger earlier membership are ignored by `load`
    if memberships.delta_link is not None:
        store.set_delta_link(profile.name, GROUPS_SOURCE, memberships.delta_link)
        if memberships.changed:
            docs.write(store, profile.name, docs.GroupWatch(memberships.watched))


def load(store: StateStore, profile: Profile, refs: Iterable[str]) -> dict[str, frozenset[str]] | None:
    """Stored memberships of `refs`, or None if any is missing (then they must be re-read)."""
    out: dict[str, frozenset[str]] = {}
    for ref in refs:
        first = docs.read(store, docs.Members, docs.members_key(profile.name, ref, 0))
        if first is None:
            return None
        ids = list(first.ids)
        for n in range(1, first.chunks):
            chunk = docs.read(store, docs.Members, docs.members_key(profile.name, ref, n))
            if chunk is None:
                return None
            ids += chunk.ids
        out[ref] = frozenset(ids)
    return out


def resolve_ids(client: GraphClient, store: StateStore, profile: Profile, refs: Iterable[str]) -> dict[str, str]:
    """Group ref (id or display name) -> id; names are looked up once and remembered."""
    out: dict[str, str] = {}
    for ref in refs:
        if looks_like_object_id(ref):
            out[ref] = ref.lower()
            continue
        cached = docs.read(store, docs.GroupName, docs.group_name_key(profile.name, ref))
        if cached is not None:
            out[ref] = cached.id
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
        docs.write(store, docs.group_name_key(profile.name, ref), docs.GroupName(out[ref]))
    if len(set(out.values())) > MAX_WATCHED_GROUPS:
        raise GroupConfigError(f'profile "{profile.name}": at most {MAX_WATCHED_GROUPS} groups can be watched')
    return out


def _watch(client: GraphClient, group_ids: list[str], link: str | None) -> tuple[set[str], str | None]:
    """Ids of watched groups that changed since `link`, and the new link; without a link, start a watch
    over `group_ids` (its first round lists them all; the caller has just read them in full)."""
    if link is not None:
        try:
            delta = client.delta(link)
            changed = {str(item.get("id", "")).lower() for item in delta}
            return changed, delta.delta_link
        except DeltaTokenExpired:
            log.info("group watch token expired; re-reading memberships")
            return {"*"}, None
    flt = " or ".join(f"id eq '{gid}'" for gid in group_ids)
    delta = client.delta("/groups/delta", params={"$select": "members", "$filter": flt})
    for _item in delta:
        pass
    return set(group_ids), delta.delta_link


def _transitive(client: GraphClient, group_id: str) -> tuple[set[str], set[str]]:
    """Transitive user members of a group, and the groups nested in it."""
    users: set[str] = set()
    groups: set[str] = set()
    for member in client.iter_pages(f"/groups/{group_id}/transitiveMembers", params={"$select": "id"}):
        kind = str(member.get("@odata.type", ""))
        if kind.endswith(".user"):
            users.add(str(member["id"]))
        elif kind.endswith(".group"):
            groups.add(str(member["id"]).lower())
    return users, groups

"""Which mailboxes receive a profile's contacts, and what kind of mailbox each one is.

Targets are members of the profile's target groups (transitively) plus its explicit mailboxes, minus its
exclusions. A new target's `userPurpose` is read once (MailboxSettings.Read): a shared mailbox is where many
phones share one address book, which the doctor warns about. A member without a mailbox is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.core.records import Target
from sync_core.graph import BatchRequest, Forbidden, GraphClient, NotFound
from sync_core.state import docs
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.targets")


class TargetConfigError(ValueError):
    """A mailbox named in a profile does not exist."""


@dataclass(frozen=True)
class TargetChanges:
    active: dict[str, Target]  # mailbox id -> target, every target that should receive contacts now
    new: tuple[str, ...]  # mailbox ids that joined (to be filled completely)
    removed: tuple[str, ...]  # mailbox ids that left (their contacts go per policy)
    new_folders: set[str] = field(default_factory=set)  # mailbox ids whose managed folder this run made


def resolve(client: GraphClient, store: StateStore, profile: Profile, group_members: Mapping[str, Iterable[str]],
            stored: Mapping[str, Target]) -> TargetChanges:
    """Compare the wanted target set with the stored one; look up purpose of the new ones."""
    wanted: set[str] = set()
    for ref in profile.targets.groups:
        wanted |= {m.lower() for m in group_members.get(ref, ())}
    addresses: dict[str, str] = {}
    for ref in profile.targets.mailboxes:
        user_id, address = _mailbox_id(client, store, profile, ref)
        wanted.add(user_id)
        addresses[user_id] = address
    for ref in profile.targets.exclude:
        try:
            wanted.discard(_mailbox_id(client, store, profile, ref)[0])
        except TargetConfigError:
            continue  # excluding a mailbox that does not exist excludes nothing
    active: dict[str, Target] = {}
    unknown: list[str] = []
    for mailbox in sorted(wanted):
        known = stored.get(mailbox)
        if known is not None and known.active:
            active[mailbox] = known
        elif known is None or known.purpose != "none":  # "none": no mailbox last time; re-checked on config change
            unknown.append(mailbox)
    new: list[str] = []
    for target in describe(client, unknown, addresses):
        if target.purpose == "none":
            store.put_target(profile.name, target)
            continue
        active[target.mailbox] = target
        new.append(target.mailbox)
    removed = tuple(sorted(m for m, t in stored.items() if t.active and m not in wanted))
    return TargetChanges(active, tuple(new), removed)


def _mailbox_id(client: GraphClient, store: StateStore, profile: Profile, ref: str) -> tuple[str, str]:
    """User id and address of a mailbox named by id or address (remembered after the first look-up)."""
    if looks_like_object_id(ref):
        return ref.lower(), ""
    cached = docs.read(store, docs.MailboxId, docs.mailbox_id_key(ref))
    if cached is not None:
        return cached.id, ref
    try:
        user = client.get(f"/users/{ref}", params={"$select": "id,userPrincipalName,mail"})
    except NotFound:
        raise TargetConfigError(f'profile "{profile.name}": mailbox "{ref}" does not exist in the directory') from None
    user_id = str(user["id"]).lower()
    docs.write(store, docs.mailbox_id_key(ref), docs.MailboxId(user_id))
    return user_id, ref


def describe(client: GraphClient, mailboxes: list[str], addresses: Mapping[str, str]) -> list[Target]:
    """New targets with their userPurpose, read in `$batch` calls (20 per round trip, mailboxes in parallel).

    A user without a mailbox gets purpose "none" and is not a target; a missing permission is raised, since
    then no target can be described.
    """
    if not mailboxes:
        return []
    results = client.batch([BatchRequest("GET", f"/users/{m}/mailboxSettings/userPurpose") for m in mailboxes])
    out: list[Target] = []
    for mailbox, result in zip(mailboxes, results, strict=True):
        address = addresses.get(mailbox, "")
        if result.ok:
            value = result.body.get("value") if isinstance(result.body, dict) else None
            out.append(Target(mailbox, address, None, value if isinstance(value, str) else None, active=True))
        elif isinstance(result.error, Forbidden):
            raise result.error
        elif result.status == 404 or getattr(result.error, "code", "") in _NO_MAILBOX:
            log.info("target %s has no mailbox; skipped", mailbox)
            out.append(Target(mailbox, address, None, "none", active=False))
        elif result.error is not None:
            raise result.error
    return out


_NO_MAILBOX = ("MailboxNotEnabledForRESTAPI", "ResourceNotFound", "ErrorInvalidUser")

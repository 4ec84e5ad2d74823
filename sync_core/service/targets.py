"""Which mailboxes receive a profile's contacts, and what kind of mailbox each one is.

Targets are members of the profile's target groups (transitively) plus its explicit mailboxes, minus its
exclusions. A new target's `userPurpose` is read once (MailboxSettings.Read): a shared mailbox is where many
phones share one address book, which the doctor warns about. A member without a mailbox is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.core.records import Target
from sync_core.graph import Forbidden, GraphClient, GraphError, NotFound
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.targets")


class TargetConfigError(ValueError):
    """A mailbox named in a profile does not exist."""


@dataclass(frozen=True)
class TargetChanges:
    active: dict[str, Target]  # mailbox id -> target, every target that should receive contacts now
    new: tuple[str, ...]  # mailbox ids that joined (to be filled completely)
    removed: tuple[str, ...]  # mailbox ids that left (their contacts go per policy)


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
    new: list[str] = []
    for mailbox in sorted(wanted):
        known = stored.get(mailbox)
        if known is not None and known.active:
            active[mailbox] = known
            continue
        if known is not None and known.purpose == "none":
            continue  # no mailbox last time we looked; re-checked when the config changes
        target = _describe(client, mailbox, addresses.get(mailbox, ""))
        if target.purpose == "none":
            store.put_target(profile.name, Target(mailbox, target.address, None, "none", active=False))
            continue
        active[mailbox] = target
        new.append(mailbox)
    removed = tuple(sorted(m for m, t in stored.items() if t.active and m not in wanted))
    return TargetChanges(active, tuple(new), removed)


def _mailbox_id(client: GraphClient, store: StateStore, profile: Profile, ref: str) -> tuple[str, str]:
    """User id and address of a mailbox named by id or address (remembered after the first look-up)."""
    if looks_like_object_id(ref):
        return ref.lower(), ""
    cached = store.get_doc("mailbox-ids", ref.lower())
    if cached is not None:
        return str(cached[0]["id"]), ref
    try:
        user = client.get(f"/users/{ref}", params={"$select": "id,userPrincipalName,mail"})
    except NotFound:
        raise TargetConfigError(f'profile "{profile.name}": mailbox "{ref}" does not exist in the directory') from None
    user_id = str(user["id"]).lower()
    store.put_doc("mailbox-ids", ref.lower(), {"id": user_id})
    return user_id, ref


def _describe(client: GraphClient, mailbox: str, address: str) -> Target:
    """A new target with its userPurpose; purpose "none" when the user has no mailbox."""
    try:
        answer = client.get(f"/users/{mailbox}/mailboxSettings/userPurpose")
    except NotFound:
        log.info("target %s has no mailbox; skipped", mailbox)
        return Target(mailbox, address, None, "none", active=False)
    except Forbidden:
        raise
    except GraphError as exc:
        if exc.code in ("MailboxNotEnabledForRESTAPI", "ResourceNotFound", "ErrorInvalidUser"):
            return Target(mailbox, address, None, "none", active=False)
        raise
    value = answer.get("value")
    purpose = value if isinstance(value, str) else None
    return Target(mailbox, address, None, purpose, active=True)

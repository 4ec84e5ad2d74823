"""Which mailboxes receive a profile's contacts, and what kind of mailbox each one is.

Targets are members of the profile's target groups (transitively) plus its explicit mailboxes, minus its
exclusions. A new target's `userPurpose` is read once (MailboxSettings.Read): a shared mailbox is where many
phones share one address book, which the doctor warns about. A member without a mailbox is skipped.
A target that cannot be looked up (its mailbox refuses, or no user has the configured address) fails alone:
it is left out of this run, not stored, and looked up again on the next run (failing_targets.py). Its failure
is what remembers it: a mailbox that refused and then leaves the targets is emptied like any leaver (sync.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.core.records import Target
from sync_core.graph import BatchRequest, GraphClient, GraphError, NotFound
from sync_core.state import docs
from sync_core.state.base import StateStore

log = logging.getLogger("galsync.targets")


class TargetConfigError(ValueError):
    """A mailbox named in a profile does not exist."""

    def __init__(self, message: str, error: GraphError) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class TargetChanges:
    active: dict[str, Target]  # mailbox id -> target, every target that should receive contacts now
    new: tuple[str, ...]  # mailbox ids that joined (to be filled completely)
    removed: tuple[str, ...]  # mailbox ids that left (their contacts go per policy)
    new_folders: set[str] = field(default_factory=set)  # mailbox ids whose managed folder this run made
    # Wanted targets that could not be looked up this time, by mailbox id (or by the configured address when
    # no user has it): (address, Graph's answer). Not stored, so the next run looks them up again.
    failed: dict[str, tuple[str, GraphError]] = field(default_factory=dict)


def resolve(client: GraphClient, store: StateStore, profile: Profile, group_members: Mapping[str, Iterable[str]],
            stored: Mapping[str, Target]) -> TargetChanges:
    """Compare the wanted target set with the stored one; look up purpose of the new ones."""
    wanted: set[str] = set()
    for ref in profile.targets.groups:
        wanted |= {m.lower() for m in group_members.get(ref, ())}
    addresses: dict[str, str] = {}
    failed: dict[str, tuple[str, GraphError]] = {}
    for ref in profile.targets.mailboxes:
        try:
            user_id, address = _mailbox_id(client, store, profile, ref)
        except TargetConfigError as exc:
            failed[ref.lower()] = (ref, exc.error)
            continue
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
    described, refused = describe(client, unknown, addresses)
    for target in described:
        if target.purpose == "none":
            store.put_target(profile.name, target)
            continue
        active[target.mailbox] = target
        new.append(target.mailbox)
    removed = tuple(sorted(m for m, t in stored.items() if t.active and m not in wanted))
    return TargetChanges(active, tuple(new), removed, failed={**failed, **refused})


def _mailbox_id(client: GraphClient, store: StateStore, profile: Profile, ref: str) -> tuple[str, str]:
    """User id and address of a mailbox named by id or address (remembered after the first look-up)."""
    if looks_like_object_id(ref):
        return ref.lower(), ""
    cached = docs.read(store, docs.MailboxId, docs.mailbox_id_key(ref))
    if cached is not None:
        return cached.id, ref
    try:
        user = client.get(f"/users/{ref}", params={"$select": "id,userPrincipalName,mail"})
    except NotFound as exc:
        raise TargetConfigError(f'profile "{profile.name}": mailbox "{ref}" does not exist in the directory',
                                exc) from None
    user_id = str(user["id"]).lower()
    docs.write(store, docs.mailbox_id_key(ref), docs.MailboxId(user_id))
    return user_id, ref


def describe(client: GraphClient, mailboxes: list[str], addresses: Mapping[str, str]
             ) -> tuple[list[Target], dict[str, tuple[str, GraphError]]]:
    """New targets with their userPurpose, read in `$batch` calls (20 per round trip, mailboxes in parallel),
    and the mailboxes that refused (mailbox id -> (address, Graph's answer)).

    A user without a mailbox gets purpose "none" and is not a target. A mailbox that answers 403 (outside
    galsync's Exchange scope, or the permission is missing) or fails otherwise fails alone.
    """
    if not mailboxes:
        return [], {}
    results = client.batch([BatchRequest("GET", f"/users/{m}/mailboxSettings/userPurpose") for m in mailboxes])
    out: list[Target] = []
    refused: dict[str, tuple[str, GraphError]] = {}
    for mailbox, result in zip(mailboxes, results, strict=True):
        address = addresses.get(mailbox, "")
        if result.ok:
            value = result.body.get("value") if isinstance(result.body, dict) else None
            out.append(Target(mailbox, address, None, value if isinstance(value, str) else None, active=True))
        elif result.status == 404 or getattr(result.error, "code", "") in _NO_MAILBOX:
            log.info("target %s has no mailbox; skipped", mailbox)
            out.append(Target(mailbox, address, None, "none", active=False))
        else:
            refused[mailbox] = (address, result.error or GraphError(result.status, f"HTTP{result.status}",
                                                                    "no usable answer"))
    return out, refused


_NO_MAILBOX = ("MailboxNotEnabledForRESTAPI", "ResourceNotFound", "ErrorInvalidUser")

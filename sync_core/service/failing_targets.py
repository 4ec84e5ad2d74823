"""Target mailboxes that fail: which ones, since when, why, and what the admin can do about it.

A mailbox that refuses (outside galsync's Exchange scope, gone, full, a foreign folder in the way) fails
alone (I10): the run goes on with the other targets and ends "partial". Each failing target has a document
of its own (docs.FailingTarget, key "profile|mailbox"), written by whoever met the failure: the sync's
target look-ups (under the profile's lease), a push or reconcile (under that mailbox's lease). The first
failure's time stays until the target works again; then the document goes, as it does when the mailbox is
no longer a target. The sync tries every failing target again on each run, and `galsync status` and
`galsync doctor` list them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sync_core.core.profile import looks_like_object_id
from sync_core.graph import AuthError, GraphClient, GraphError
from sync_core.state import docs
from sync_core.state.base import StateStore

from .folders import FolderConflict

log = logging.getLogger("galsync.targets")

GRANT_SCRIPT = "infra/grant-graph-permissions.sh"
SCOPE_SCRIPT = "infra/scope-mailboxes.ps1"

# Where the failure was met: the target's look-up (its userPurpose, or its address), its managed folder,
# the writes of a push, the nightly reconcile, the removal of its contacts after it left the targets.
RESOLVE, FOLDER, WRITE, RECONCILE, REMOVE = "resolve", "folder", "write", "reconcile", "remove"
_DOING = {RESOLVE: "reading its mailbox type", FOLDER: "finding or making its folder",
          WRITE: "writing its contacts", RECONCILE: "reading its folder",
          REMOVE: "removing its contacts (it left the targets)"}

# Exchange's codes for a mailbox that is not there (user deleted, licence removed, hosted on-premises) and
# for a full one; 507 is Graph's status for a storage quota reached (concepts/errors.md).
MAILBOX_GONE = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ErrorNonExistentMailbox",
                          "ResourceNotFound", "Request_ResourceNotFound"})
MAILBOX_FULL = frozenset({"ErrorQuotaExceeded", "ErrorQuotaExceededOnDelete"})
FOLDER_CONFLICT = "FolderConflict"  # galsync's own refusal: a folder with the managed name is not its own


def refuses_mailbox(status: int, code: str) -> bool:
    """True for an answer about the whole mailbox (out of scope, gone, full), not about one contact."""
    return status in (403, 507) or code in MAILBOX_GONE or code in MAILBOX_FULL


def mailbox_refusal(refused: Mapping[tuple[int, str], int]) -> tuple[int, str] | None:
    """Of a mailbox's refused writes ((status, code) -> count), the one that says the mailbox refuses."""
    return next((answer for answer in refused if refuses_mailbox(*answer)), None)


class TargetFailure(docs.FailingTarget):
    """A failing target as `status`, `doctor` and run reports show it (no contact data)."""

    @property
    def label(self) -> str:
        """The mailbox by address; by its id only when its address could not be found out."""
        return self.address or self.key

    def what(self) -> str:
        """The mailbox and Graph's answer: "ann@contoso.com: 403 ErrorAccessDenied while writing its contacts"."""
        answer = f"{self.status} {self.code}" if self.status else self.code
        return f"{self.label}: {answer} while {_DOING.get(self.stage, self.stage)}"

    def line(self) -> str:
        """One line for run reports: what failed, and what to do."""
        return f"{self.what()}; {self.hint}"


def load(store: StateStore, profile: str) -> dict[str, TargetFailure]:
    """The profile's failing targets by key (one read of the documents)."""
    return {f.key: f for f in _read_all(store) if f.profile == profile}


def load_all(store: StateStore, profiles: Iterable[str]) -> list[TargetFailure]:
    """The failing targets of these profiles, oldest failure first."""
    wanted = set(profiles)
    return sorted((f for f in _read_all(store) if f.profile in wanted), key=lambda f: (f.since, f.profile, f.key))


def _read_all(store: StateStore) -> list[TargetFailure]:
    """Every failing target; a damaged document is logged and left out (the next failure there replaces it)."""
    def damaged(key: str, error: docs.DocumentError) -> None:
        log.warning("failing target document %s cannot be read: %s", key, error)
    return [failure for _, failure in docs.read_all(store, TargetFailure, on_damaged=damaged)]


def hint(profile: str, stage: str, status: int, code: str, key: str, *, others_work: bool,
         request_id: str | None = None) -> str:
    """What the admin can do about one failing target, from Graph's answer and whether other targets work."""
    if stage == RESOLVE and status == 404 and not looks_like_object_id(key):
        return (f'no user in the directory has this address: correct it in profile "{profile}" '
                "(targets.mailboxes), or create the mailbox; galsync looks it up again on every run")
    if code in MAILBOX_GONE or (stage == RESOLVE and status == 404):
        return ("the mailbox no longer exists or has no Exchange Online mailbox (user deleted, licence removed, "
                f'or hosted on-premises): restore it, or take it out of profile "{profile}"\'s targets')
    if status == 507 or code in MAILBOX_FULL:
        return "the mailbox is full (over its storage quota): free space in it or raise its quota"
    if status == 403 and stage == REMOVE:
        return ("the mailbox left the targets but galsync may no longer open it, so galsync's contacts are still "
                f"in it: keep it in galsync's Exchange scope ({SCOPE_SCRIPT}) until a sync has emptied it, or delete "
                "galsync's folder in it by hand")
    if status == 403:
        if others_work:
            return ("galsync works in the other target mailboxes, so this one is outside galsync's Exchange scope "
                    "(RBAC for Applications), or a scope change has not applied yet (that takes 30 minutes to 2 "
                    f"hours): add the mailbox to the scope ({SCOPE_SCRIPT}); galsync tries it again on every run")
        permission = "MailboxSettings.Read" if stage == RESOLVE else "Contacts.ReadWrite"
        return (f"grant the application permission {permission} ({GRANT_SCRIPT}), or add the mailbox to "
                f"galsync's Exchange scope ({SCOPE_SCRIPT}; a scope change takes 30 minutes to 2 hours to apply); "
                "`galsync doctor` checks both")
    ids = f" (request-id {request_id})" if request_id else ""
    return f"quote the request-id{ids} when asking Microsoft support; galsync tries it again on every run"


@dataclass(frozen=True)
class _Met:
    """A failure met in this run, before it is saved."""

    stage: str
    status: int
    code: str
    address: str
    request_id: str | None
    advice: str | None


class FailingTargets:
    """One run's (or push's) bookkeeping of its targets' failures: met ones recorded, working ones cleared.

    `known` is read once when made; `save` writes only what changed (nothing on a run where every target
    works and none was failing).
    """

    def __init__(self, store: StateStore, client: GraphClient, profile: str, run_id: str,
                 now: Callable[[], str]) -> None:
        self.store, self.client, self.profile, self.run_id, self.now = store, client, profile, run_id, now
        self.known = load(store, profile)
        self._failed: dict[str, _Met] = {}
        self._working: set[str] = set()

    def fail(self, key: str, stage: str, status: int, code: str, *, address: str = "",
             request_id: str | None = None, advice: str | None = None) -> None:
        self._failed[key] = _Met(stage, status, code, address, request_id, advice)
        self._working.discard(key)
        log.warning("profile %s: target %s failed while %s: %s %s", self.profile, _logged(key),
                    _DOING.get(stage, stage), status, code)

    def fail_error(self, key: str, stage: str, error: GraphError | FolderConflict, *, address: str = "") -> None:
        """Record a failure from the error that stopped the target (AuthError is no target's: re-raised)."""
        if isinstance(error, AuthError):
            raise error
        if isinstance(error, FolderConflict):
            self.fail(key, FOLDER, 0, FOLDER_CONFLICT, address=address, advice=error.advice)
        else:
            self.fail(key, stage, error.status, error.code, address=address, request_id=error.request_id)

    def fail_refused(self, key: str, stage: str, refused: Mapping[tuple[int, str], int] | None, *,
                     address: str = "") -> bool:
        """Record a failure if the mailbox's refused writes say the mailbox refuses; else note it works."""
        answer = mailbox_refusal(refused or Counter())
        if answer is None:
            self.works(key)
            return False
        self.fail(key, stage, *answer, address=address)
        return True

    def works(self, key: str) -> None:
        """The target answered: its failing document (if any) goes when saved."""
        if key not in self._failed:
            self._working.add(key)

    def drop(self, key: str) -> None:
        """No longer a target (or no longer named): its failing document goes when saved."""
        self._failed.pop(key, None)
        self._working.add(key)

    @property
    def unresolved(self) -> bool:
        """Whether a wanted target's look-up failed before: then the target set is looked up again."""
        return any(f.stage == RESOLVE for f in self.known.values())

    @property
    def failed(self) -> set[str]:
        return set(self._failed)

    def save(self, *, others_work: bool | None = None) -> list[TargetFailure]:
        """Write the failures met (keeping each streak's first time) and clear the targets that work again.

        `others_work`: whether other targets of the profile work (for the hint on a 403); by default, whether
        any target met here worked. Returns this run's failures.
        """
        if others_work is None:
            others_work = bool(self._working)
        now = self.now()
        out: list[TargetFailure] = []
        for key, met in sorted(self._failed.items()):
            before = self.known.get(key)
            address = met.address or (before.address if before is not None else "") or self._address(key)
            advice = met.advice or hint(self.profile, met.stage, met.status, met.code, key, others_work=others_work,
                                        request_id=met.request_id)
            failure = TargetFailure(self.profile, key, address, met.stage, met.status, met.code, advice,
                                    before.since if before is not None else now, now, self.run_id, met.request_id)
            docs.write(self.store, docs.failing_target_key(self.profile, key), failure)
            out.append(failure)
        for key in sorted(self._working & set(self.known)):
            docs.delete(self.store, TargetFailure, docs.failing_target_key(self.profile, key))
            log.info("profile %s: target %s is no longer failing", self.profile, _logged(key))
        self.known = {**{k: f for k, f in self.known.items() if k not in self._working},
                      **{f.key: f for f in out}}
        self._failed, self._working = {}, set()
        return out

    def _address(self, key: str) -> str:
        """The mailbox's address from the directory (a directory read: the Exchange scope does not limit it)."""
        if not looks_like_object_id(key):
            return key
        try:
            user = self.client.get(f"/users/{key}", params={"$select": "mail,userPrincipalName"})
        except GraphError:
            return ""
        return str(user.get("mail") or user.get("userPrincipalName") or "")


def _logged(key: str) -> str:
    """A target's key as logs show it: mailbox ids only, never a configured address."""
    return key if looks_like_object_id(key) else "(named by address)"

"""What a push learns about its target mailboxes, so that one mailbox fails alone and a deleted folder heals.

Before writing, a target listed as failing is asked for its folder (one GET, all of them in `$batch`
calls): one that still refuses is recorded again and written nothing, so a mailbox out of scope costs one
request per run, not one per contact. After writing, each mailbox's answers are read:
- a refusal of the whole mailbox (403, 404 with a "no mailbox" code, 507/quota) makes it a failing target;
- any other 404 may be a contact deleted on a phone or the whole folder deleted: one GET of the folder
  tells; a deleted folder is forgotten (folder_heal.py), and the caller makes it again and fills it;
- a mailbox that answered is cleared from the failing targets.
A failing mailbox that left the targets stays listed until it has been emptied (it refused the removal of
galsync's contacts, or failed before it left): each sync empties it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sync_core.core.profile import Profile
from sync_core.core.records import Target
from sync_core.graph import GraphError

from .failing_targets import FOLDER, MAILBOX_GONE, REMOVE, WRITE, FailingTargets, TargetFailure
from .folder_heal import folder_gone, forget_folder, probe_folders
from .folders import FolderConflict
from .runtime import Runtime
from .target_work import ExecReport


class MailboxChecks:
    """One push's checks of its mailboxes; `save` once at the end of the push."""

    def __init__(self, rt: Runtime, profile: Profile, run_id: str, targets: Mapping[str, Target]) -> None:
        self.rt, self.profile = rt, profile
        self.failing = FailingTargets(rt.store, rt.client, profile.name, run_id, rt.now_iso)
        self._active = [m for m, t in targets.items() if t.active]
        self._forgotten: list[Target] = []

    def ready(self, targets: Sequence[Target], report: ExecReport, *, heal: bool = True) -> list[Target]:
        """The targets to write to now. Those listed as failing are asked for their folder first: one that still
        refuses is left out; one whose folder is gone is forgotten, to be filled again after the writes. With
        `heal` False (a removal), a folder or a mailbox that is gone is kept: its deletes find nothing, which
        is what a removal wants, and drop its records."""
        again = [t for t in targets if t.mailbox in self.failing.known and t.folder_id]
        answers = probe_folders(self.rt.client, again) if again else {}
        out: list[Target] = []
        for target in targets:
            error = answers.get(target.mailbox)
            if error is None or (not heal and (folder_gone(error) or error.code in MAILBOX_GONE)):
                out.append(target)
            elif folder_gone(error):
                self._forget(target, report)
            else:  # still refuses: listed as before (a removal stays a removal)
                self.failing.fail_error(target.mailbox, self.failing.known[target.mailbox].stage, error,
                                        address=target.address)
        return out

    def folder_failed(self, target: Target, error: FolderConflict | GraphError) -> None:
        """The target's folder could not be found or made (a foreign namesake, a mailbox that refuses)."""
        self.failing.fail_error(target.mailbox, FOLDER, error, address=target.address)

    def settle(self, targets: Iterable[Target], report: ExecReport, *, heal: bool = True) -> list[Target]:
        """Read each written mailbox's answers (see the module doc); the targets whose folders were forgotten
        (here or in `ready`) and need filling again."""
        unsure: list[Target] = []
        for target in targets:
            mailbox = target.mailbox
            if self.failing.fail_refused(mailbox, WRITE, report.refused.get(mailbox), address=target.address):
                continue
            code = report.not_found.get(mailbox)
            if code in MAILBOX_GONE:
                self.failing.fail(mailbox, WRITE, 404, str(code), address=target.address)
            elif code is not None and heal:
                unsure.append(target)
        answers = probe_folders(self.rt.client, unsure) if unsure else {}
        for target in unsure:
            error = answers[target.mailbox]
            if error is None:
                continue  # the folder is there: the 404s were contacts deleted on phones
            if folder_gone(error):
                report.drop_failures(target.mailbox)
                self._forget(target, report)
            else:
                self.failing.fail_error(target.mailbox, WRITE, error, address=target.address)
        forgotten, self._forgotten = self._forgotten, []
        return forgotten

    def removal_failed(self, target: Target, error: GraphError) -> None:
        """A mailbox that left refused the look-up of its folder: it stays listed, to be emptied again."""
        self.failing.fail_error(target.mailbox, REMOVE, error, address=target.address)

    def removed(self, targets: Iterable[Target], report: ExecReport, *, unknown: Iterable[str] = ()) -> None:
        """After emptying mailboxes that left the targets (those galsync never stored, `unknown`, too): one that
        refused stays listed, to be emptied again; one that answered is no longer failing."""
        for target in targets:
            self.failing.fail_refused(target.mailbox, REMOVE, report.refused.get(target.mailbox),
                                      address=target.address)
        for mailbox in unknown:
            self.failing.fail_refused(mailbox, REMOVE, report.refused.get(mailbox))

    def save(self) -> list[TargetFailure]:
        """Record the failures met and clear the targets that work again; a 403's hint says whether other
        targets of the profile work."""
        failed = self.failing.failed
        others = any(m not in failed and m not in self.failing.known for m in self._active)
        return self.failing.save(others_work=others or None)

    def _forget(self, target: Target, report: ExecReport) -> None:
        report.counts["folders_recreated"] += 1
        self._forgotten.append(forget_folder(self.rt.store, self.profile, target))

"""A first fill's writes, begun while the directory is still being read (command line, inline fan-out).

A new target mailbox gets every contact. Without this, its first write waits for the whole directory read:
at Graph's page sizes a 50,000-user tenant is hundreds of delta pages, minutes before anything reaches a
phone. Instead, once the targets are known (they are resolved beside the read) and their folders exist,
each set of source records the read has stored is pushed to the new targets at once, by one thread, while
the read goes on. Keys that arrive while a push runs wait for the next one, so pushes grow with the backlog.

Only creates of stored records go out early, and only to targets new in this run whose folder this run made
or that galsync has records of (a folder found with no records may hold contacts to adopt first), of a
profile with one source (with several, a later page of another source may win a merge and undo an
early write). Everything else (removals; source records this run did not change, after a full re-read) is
left to the run's fan-out, which follows and finds the early writes already recorded: it writes only what is
still missing, and skips a target the early fill brought fully in step (`covering`). A crash costs nothing
either: before the first early write the targets are made known (`claim`: stored, and named in the outbox),
so the next run fills them, or empties them if they have left (I1); and target records are written before
each create (I2), so the next run's fill adopts what an early push created instead of creating it twice.
If an early push fails, early writes stop and the fan-out does the rest: it writes the failed writes again,
and the run reports what fails then (not the early attempt, which it repaired).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future

from sync_core.core.records import Target

from .target_work import ExecReport
from .targets import TargetChanges

log = logging.getLogger("galsync.sync")

# Counts of writes a push left undone (the fan-out's fill push picks them up again).
UNFINISHED = ("failed", "photos_failed", "photos_deferred")

# Writes the stored records of `keys` to `targets` (push.push_targets for this run's profile).
Push = Callable[[tuple[str, ...], Mapping[str, Target]], ExecReport]

# Makes `targets` known to the next run (stored, named in the outbox) before anything is written to them.
Claim = Callable[[Mapping[str, Target]], None]


class EarlyFill:
    """Pushes stored keys to this run's new targets from a thread of its own; `finish` waits for it.

    `is_empty(mailbox)`: whether galsync has no record of any contact in that mailbox yet (see `covering`).
    `claim(targets)`: called once, before the first push.
    """

    def __init__(self, profile: str, targets: Future[TargetChanges], push: Push,
                 is_empty: Callable[[str], bool], claim: Claim) -> None:
        self.profile = profile
        self.report = ExecReport()
        self._targets = targets
        self._push = push
        self._claim = claim
        self._is_empty = is_empty
        self._pending: list[str] = []
        self._closed = False
        self._failed = False
        self._pushed: set[str] = set()  # keys written to every one of the targets, without a failure
        self._fresh: set[str] = set()  # targets that held no record of ours when the early fill began
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="galsync-early-fill", daemon=True)
        self._thread.start()

    def stored(self, keys: Collection[str]) -> None:
        """New or changed source records of these keys are stored: write them to the new targets."""
        with self._wake:
            if not self._closed:
                self._pending.extend(keys)
                self._wake.notify()

    def finish(self) -> ExecReport:
        """Write what is still pending, then stop; what the early pushes wrote."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        return self.report

    def covering(self, source_keys: Collection[str]) -> set[str]:
        """Targets the early fill brought fully in step, given every source key stored after the read.

        True of a target that held no record of ours when the early fill began, when every push succeeded and
        the keys written are exactly the stored ones: its records are then this run's creates of every
        stored key, so the fan-out's fill would only plan and write nothing (for 100,000 users, 100,000
        comparisons per target). Otherwise none: the fan-out fills them as it always does.
        """
        if self._failed or self._pushed != set(source_keys):
            return set()
        return set(self._fresh)

    def cancel(self) -> None:
        """Write nothing more (the read failed); returns once a push under way has ended."""
        self._stop()
        self._thread.join()

    def _next_keys(self) -> tuple[str, ...] | None:
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            if not self._pending:
                return None
            keys, self._pending = tuple(dict.fromkeys(self._pending)), []
            return keys

    def _stop(self) -> None:
        with self._wake:
            self._closed = self._failed = True
            self._pending = []
            self._wake.notify()

    def _run(self) -> None:
        try:
            changes = self._targets.result()
        except Exception:  # noqa: BLE001 - the sync raises the same error itself when it asks for the targets
            self._stop()
            return
        targets = {m: changes.active[m] for m in changes.new if changes.active[m].folder_id}
        pushes = 0
        try:
            empty = {m for m in targets if self._is_empty(m)}
            # A folder this run found (not made) with no record of ours may hold contacts galsync wrote before
            # its state was lost: the fan-out's fill adopts them (adoption.py), seeing every desired contact.
            targets = {m: t for m, t in targets.items() if m not in empty or m in changes.new_folders}
            if not targets:
                self._stop()
                return
            self._fresh = empty & set(targets)
            while (keys := self._next_keys()) is not None:
                if not pushes:
                    self._claim(targets)
                report = self._push(keys, targets)
                left = sum(report.counts[k] for k in UNFINISHED)
                if left:  # the fan-out's fill push writes these again, and reports what fails then
                    for k in UNFINISHED:
                        del report.counts[k]
                    report.errors.clear()
                self.report.merge(report)
                if left:
                    raise RuntimeError(f"{left} write(s) failed or deferred")
                self._pushed.update(keys)
                pushes += 1
        except Exception as exc:  # noqa: BLE001 - the fan-out that follows does the rest and reports it
            log.warning("profile %s: early fill stopped after %d push(es), the fan-out does the rest: %s",
                        self.profile, pushes, type(exc).__name__)
            self._stop()
            return
        log.info("profile %s: early fill of %d new target(s) in %d push(es): %s", self.profile, len(targets),
                 pushes, dict(self.report.counts))

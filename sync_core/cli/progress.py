"""Progress that says something: mailboxes done of how many, contacts written, the rate and the time left.

On a terminal it is a live line redrawn as the work goes (rich); piped or redirected, it is two plain lines,
one when the work starts and one when it ends, so logs stay readable. Nothing at all with --json or --quiet.
The numbers come from the work itself: a sync learns how many mailboxes it will write to when it fans out,
each push tells how many writes it is about to send and how many contacts each `$batch` wave wrote (so a
fill of one push moves wave by wave, not from nothing to everything), and a reconcile counts the mailboxes
it has read. With contacts to count, the bar and the time left follow the contacts written of those planned.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from types import TracebackType

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .output import Output


class _CountsColumn(ProgressColumn):
    """"12/124 mailboxes, 1,500/6,000 contacts written, 230/s, 0:00:20 left" (the task's fields hold the
    mailbox counts). The time left is from the average rate since the start: the planned total grows while a
    fill's pushes begin one after another, which would reset rich's own estimate each time."""

    def __init__(self, unit: str, counting_contacts: bool) -> None:
        super().__init__()
        self.unit = unit
        self.counting_contacts = counting_contacts

    def render(self, task: Task) -> Text:
        total = task.fields.get("mailboxes")
        text = f"{task.fields.get('done', 0)}/{'?' if total is None else total} {self.unit}"
        if self.counting_contacts:
            contacts = int(task.completed)
            planned = "?" if task.total is None else f"{task.total:,.0f}"
            elapsed = task.elapsed or 0.0
            rate = contacts / elapsed if elapsed > 0 else 0.0
            text += f", {contacts:,}/{planned} contacts written"
            if rate and contacts:
                text += f", {rate:.0f}/s"
                if task.total is not None and task.total > contacts:
                    text += f", {timedelta(seconds=round((task.total - contacts) / rate))} left"
        return Text(text)


class WorkProgress:
    """One piece of work's progress; thread-safe (pushes run side by side). Use as a context manager."""

    def __init__(self, out: Output, label: str, *, unit: str | None = "mailboxes", contacts: bool = True,
                 until_known: str | None = None) -> None:
        """`unit` None: work with nothing to count (a dry run's planning) shows a spinner and the time taken.
        `until_known`: what the line says until the total is known (a sync reads the directory first)."""
        self.out = out
        self.label = label
        self.until_known = until_known
        self.unit = unit
        self.counting_contacts = contacts and unit is not None
        self.done = 0
        self.total: int | None = None
        self.contacts = 0
        self.planned = 0  # contact writes the pushes said they would send (less those that did not happen)
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._task = None
        self._started = 0.0
        self._plain = False

    def __enter__(self) -> WorkProgress:
        self._started = time.monotonic()
        if self.out.json_mode or self.out.quiet:
            return self
        if self.out.console.is_terminal:
            columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
            if self.unit is None:
                columns.append(TimeElapsedColumn())
            else:
                columns += [BarColumn(), _CountsColumn(self.unit, self.counting_contacts)]
                if not self.counting_contacts:
                    columns.append(TimeRemainingColumn())
            self._bar = Progress(*columns, console=self.out.console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.until_known or self.label, total=None, done=0)
        else:
            self._plain = True
            self.out.console.print(f"{self.label} ...", markup=False, soft_wrap=True)
        return self

    def set_total(self, total: int) -> None:
        """How many mailboxes the work covers, once it is known."""
        with self._lock:
            self.total = max(total, self.done)
            self._show(description=self.label)

    def plan(self, writes: int) -> None:
        """`writes` more contact writes are coming (negative: planned writes that did not happen after all)."""
        with self._lock:
            self.planned = max(self.planned + writes, self.contacts)
            self._show()

    def advance(self, done: int = 0, contacts: int = 0) -> None:
        """`done` more mailboxes in step, `contacts` more written; a change of contacts is drawn at once, so
        each `$batch` wave shows (the bar would otherwise redraw on its own clock, missing quick waves)."""
        with self._lock:
            self.done += done
            self.contacts += contacts
            self.planned = max(self.planned, self.contacts)
            self._show(redraw=contacts > 0)

    def _show(self, *, redraw: bool = False, final: bool = False, **changes: object) -> None:
        """The bar's task as the counts now are: with contacts to count, the bar (and the time left) follows
        contacts written of planned; otherwise mailboxes done of their total. `final`: the work is over, so
        nothing planned means nothing to do (a full bar), not "not known yet"."""
        if self._bar is None:
            return
        if self.counting_contacts:
            completed, total = self.contacts, (self.planned if self.planned or final else None)
        else:
            completed, total = self.done, self.total
        self._bar.update(self._task, completed=completed, total=total, done=self.done, mailboxes=self.total,
                         **changes)
        if redraw:
            self._bar.refresh()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            with self._lock:
                if self.total is None:  # the amount is known now: show it whole
                    self.total = self.done
                if exc_type is None:
                    self.planned = self.contacts  # what was planned and did not happen is counted as failed
                self._show(description=self.label, final=True)
            self._bar.stop()
        elif self._plain:
            total = "?" if self.total is None else str(self.total)
            line = f"{self.label}: done" if self.unit is None else f"{self.label}: {self.done}/{total} {self.unit}"
            if self.counting_contacts:
                line += f", {self.contacts} contacts written"
            line += f" in {time.monotonic() - self._started:.1f} s" + (" (stopped)" if exc_type else "")
            self.out.console.print(line, markup=False, soft_wrap=True)


class PushCounts:
    """One push's writes told to the progress as they go (a `WriteCounter`), then made exact when it ends:
    writes that failed or were never sent leave the planned total, and writes made outside the waves count."""

    def __init__(self, progress: WorkProgress | None) -> None:
        self.progress = progress
        self.planned_writes = 0
        self.written_writes = 0

    def planned(self, writes: int) -> None:
        self.planned_writes += writes
        if self.progress is not None:
            self.progress.plan(writes)

    def written(self, writes: int) -> None:
        self.written_writes += writes
        if self.progress is not None and writes:
            self.progress.advance(contacts=writes)

    def settle(self, mailboxes: int, writes: int) -> None:
        """The push is over: `mailboxes` more in step, and `writes` contacts written in all (its report's)."""
        if self.progress is not None:
            self.progress.plan(writes - self.planned_writes)
            self.progress.advance(mailboxes, writes - self.written_writes)

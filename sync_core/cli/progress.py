"""Progress that says something: mailboxes done of how many, contacts written, the rate and the time left.

On a terminal it is a live line redrawn as the work goes (rich); piped or redirected, it is two plain lines,
one when the work starts and one when it ends, so logs stay readable. Nothing at all with --json or --quiet.
The numbers come from the work itself: a sync learns how many mailboxes it will write to when it fans out,
and each push tells how many contacts it wrote; a reconcile counts the mailboxes it has read.
"""

from __future__ import annotations

import threading
import time
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
    """"12/124 mailboxes, 1,500 contacts written, 230/s"."""

    def __init__(self, unit: str, counting_contacts: bool) -> None:
        super().__init__()
        self.unit = unit
        self.counting_contacts = counting_contacts

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{task.total:.0f}"
        text = f"{task.completed:.0f}/{total} {self.unit}"
        if self.counting_contacts:
            contacts = int(task.fields.get("contacts", 0))
            elapsed = task.elapsed or 0.0
            rate = f", {contacts / elapsed:.0f}/s" if elapsed > 0 and contacts else ""
            text += f", {contacts:,} contacts written{rate}"
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
                columns += [BarColumn(), _CountsColumn(self.unit, self.counting_contacts), TimeRemainingColumn()]
            self._bar = Progress(*columns, console=self.out.console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.until_known or self.label, total=None, contacts=0)
        else:
            self._plain = True
            self.out.console.print(f"{self.label} ...", markup=False, soft_wrap=True)
        return self

    def set_total(self, total: int) -> None:
        """How many mailboxes the work covers, once it is known."""
        with self._lock:
            self.total = max(total, self.done)
            if self._bar is not None:
                self._bar.update(self._task, total=self.total, description=self.label)

    def advance(self, done: int = 0, contacts: int = 0) -> None:
        with self._lock:
            self.done += done
            self.contacts += contacts
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done, contacts=self.contacts)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            if self.total is None:  # the amount is known now: show it whole
                self._bar.update(self._task, total=self.done, description=self.label)
            self._bar.stop()
        elif self._plain:
            total = "?" if self.total is None else str(self.total)
            line = f"{self.label}: done" if self.unit is None else f"{self.label}: {self.done}/{total} {self.unit}"
            if self.counting_contacts:
                line += f", {self.contacts} contacts written"
            line += f" in {time.monotonic() - self._started:.1f} s" + (" (stopped)" if exc_type else "")
            self.out.console.print(line, markup=False, soft_wrap=True)

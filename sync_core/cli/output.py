"""What the command line prints: rich tables for people, one JSON object for scripts, progress on stderr.

Every command builds a report first and hands it here with a function that renders it for people, so the
two forms always carry the same facts. With --json, stdout holds exactly one JSON document and nothing else;
progress bars, notes and advice go to stderr (and progress is not drawn at all), so `galsync ... --json | jq`
always works.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sync_core.service.status import parse_time

from .advice import Advice


class Output:
    """The output of one command run (set up by the global options, found with `Output.current()`)."""

    _current: ClassVar[Output | None] = None

    def __init__(self, *, json_mode: bool = False, debug: bool = False, verbose: bool = False, quiet: bool = False,
                 width: int | None = None) -> None:
        self.json_mode = json_mode
        self.debug = debug
        self.verbose = verbose or debug
        self.quiet = quiet
        self._warned: set[str] = set()
        # file=None: rich writes to whatever sys.stdout / sys.stderr is when it prints (test runners swap them).
        self.console = Console(width=width, highlight=False, soft_wrap=False)
        self.err = Console(stderr=True, width=width, highlight=False)

    @classmethod
    def install(cls, output: Output) -> Output:
        cls._current = output
        return output

    @classmethod
    def current(cls) -> Output:
        if cls._current is None:
            cls._current = Output()
        return cls._current

    # --- results ------------------------------------------------------------------------------------

    def result(self, data: dict[str, Any], render: Callable[[Console], None]) -> None:
        """Print a command's result: `data` as JSON with --json, else what `render` draws."""
        if self.json_mode:
            sys.stdout.write(to_json_text(data) + "\n")
            sys.stdout.flush()
        else:
            render(self.console)

    def say(self, text: str = "", style: str | None = None) -> None:
        """A line for people (story text, headings); nothing with --json."""
        if not self.json_mode:
            self.console.print(text, style=style)

    def note(self, text: str) -> None:
        """A progress note: stdout for people, stderr with --json (so stdout stays one JSON document);
        nothing with --quiet."""
        if not self.quiet:
            (self.err if self.json_mode else self.console).print(text, style="dim")

    def notice(self, text: str) -> None:
        """Something galsync did that the admin should know of (a file it created): stderr, not with --quiet."""
        if not self.quiet:
            self.err.print(f"galsync: {escape(text)}", soft_wrap=True)

    def warn_once(self, text: str) -> None:
        """A warning on stderr, once per run however often it is found (even with --quiet)."""
        if text not in self._warned:
            self._warned.add(text)
            self.err.print(f"[yellow]galsync: warning:[/] {escape(text)}", soft_wrap=True)

    # --- problems -----------------------------------------------------------------------------------

    def advice(self, advice: Advice) -> None:
        if self.json_mode:
            sys.stdout.write(to_json_text(advice.to_json()) + "\n")
            sys.stdout.flush()
        # soft_wrap: problem lines stay whole (one per line), so they can be copied and searched.
        self.err.print(f"[bold red]galsync:[/] {escape(advice.message)}", soft_wrap=True)
        for line in advice.details:
            self.err.print(f"  {escape(line)}", soft_wrap=True)
        if advice.hint:
            self.err.print(f"[yellow]what to do:[/] {escape(advice.hint)}", soft_wrap=True)

    def error_line(self, text: str) -> None:
        self.err.print(f"[bold red]galsync:[/] {escape(text)}", soft_wrap=True)

    def error_text(self, text: str) -> None:
        self.err.print(escape(text), end="", soft_wrap=True)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
          caption: str | None = None) -> Table:
    """A plain table; cells are text (escaped, so names with [brackets] print as they are)."""
    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left", show_lines=False)
    for name in columns:
        t.add_column(name, overflow="fold", min_width=min(len(name), 16))  # a header is never cut mid-word
    for row in rows:
        t.add_row(*(escape(cell_text(c)) for c in row))
    return t


def cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def to_json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def age_text(iso: str | None, now: datetime | None = None) -> str:
    """'3 h ago' style age of an ISO 8601 time, for tables ('-' when unknown)."""
    if not iso:
        return "-"
    when = parse_time(iso)
    if when is None:
        return iso
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if -60 < seconds < 1:  # report times are to the second; a run that started this second is "just now"
        return "just now"
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def short_time(iso: str | None) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS UTC' for people."""
    if not iso:
        return "-"
    when = parse_time(iso)
    if when is None:
        return iso
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

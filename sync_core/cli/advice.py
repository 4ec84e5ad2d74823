"""Exit codes, and `Advice`: a failure told as what went wrong and what to do.

0: everything went well. 1: the command ran but failures were recorded (a Graph error, a failed target, a
doctor finding that needs action). 2: galsync could not start because of how it was called or configured
(bad usage, a configuration file with problems, a setting it cannot use, credentials the authority refuses).

This module sits below both `errors` (which turns exceptions into advice) and `output` (which prints it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK = 0
FAILURES = 1
BAD_USAGE = 2


@dataclass(frozen=True)
class Advice:
    """What went wrong and what to do, for the terminal (lines) and for --json (one object)."""

    code: int
    kind: str
    message: str
    details: tuple[str, ...] = ()
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error": {"kind": self.kind, "message": self.message}}
        if self.details:
            out["error"]["details"] = list(self.details)
        if self.hint:
            out["error"]["hint"] = self.hint
        return out

"""A clone of the repository is all a user has: no tracked file may send them to a path outside it, or to
a page under docs/ that does not exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./" + "shared")  # split so this file does not name it
DOCS_PAGE = re.compile(r"(?<![\w./-])docs/[\w./-]*\w")


def _tracked_texts() -> dict[str, str]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    texts = {}
    for name in filter(None, names):
        path = ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            texts[name] = data.decode("utf-8", errors="replace")
    return texts


def test_no_tracked_file_names_a_folder_beside_the_checkout() -> None:
    found = [f"{name}: {m.group(0)}" for name, text in _tracked_texts().items() for m in OUTSIDE.finditer(text)]
    assert found == []


def test_every_docs_page_a_tracked_file_names_exists() -> None:
    missing = sorted(
        f"{name} names {m.group(0)}"
        for name, text in _tracked_texts().items()
        for m in DOCS_PAGE.finditer(text)
        if not (ROOT / m.group(0)).exists()
    )
    assert missing == []


def test_the_checks_see_what_they_look_for() -> None:
    """The patterns find a reference written the usual ways (guards against a pattern that never matches)."""
    assert OUTSIDE.search("read ../" + "shared/DESIGN.md first")
    absent = "docs/" + "deploy.md"  # built, so this file names no page that does not exist
    assert [m.group(0) for m in DOCS_PAGE.finditer(f"see {absent}, or [x](docs/config.md).")] == [
        absent, "docs/config.md",
    ]
    assert DOCS_PAGE.search("sync_core/docs/x.md") is None

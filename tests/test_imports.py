"""The import graph of `sync_core/` and `graph_emulator/` has no cycle and no private name crosses a module.

Every import statement counts: module level, under `if TYPE_CHECKING:`, and inside functions, because a
cycle hidden in a function or a type-only import is still two modules that cannot be understood, tested or
moved apart one without the other. Relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sync_core", "graph_emulator")


@dataclass
class ImportScan:
    """Edges between the scanned modules, and each private name one of them takes from another module."""

    modules: set[str] = field(default_factory=set)
    edges: dict[str, set[str]] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(importer: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute module a (possibly relative) `from` import names."""
    if level == 0:
        return target or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, target] if target else base)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def scan(root: Path, packages: Iterable[str]) -> ImportScan:
    """Read every `.py` file of `packages` under `root` and collect the imports between them."""
    files = {module_name(root, path): path for package in packages for path in sorted((root / package).rglob("*.py"))}
    result = ImportScan(modules=set(files), edges={name: set() for name in files})

    def known(dotted: str) -> str | None:
        """The longest prefix of `dotted` that is a scanned module (`a.b.c` may be a name inside `a.b`)."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in files:
                return candidate
        return None

    for importer, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = resolve(importer, is_package, node.level, node.module)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in files else source)
                    if is_private(alias.name) and source != importer:
                        result.private.append(f"{importer} imports {alias.name} from {source}")
            for target in targets:
                found = known(target)
                if found is not None and found != importer:
                    result.edges[importer].add(found)
    return result


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycle() -> None:
    found = cycles(scan(ROOT, PACKAGES).edges)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(component) for component in found)


def test_no_private_name_crosses_a_module() -> None:
    found = sorted(scan(ROOT, PACKAGES).private)
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def test_the_scan_reads_the_whole_tree() -> None:
    result = scan(ROOT, PACKAGES)
    assert {"sync_core.cli.main", "graph_emulator.tenant", "sync_core.service.runtime"} <= result.modules
    assert "graph_emulator.routing" in result.edges["graph_emulator.mailbox_routes"]


def test_the_scan_finds_a_cycle_and_a_private_import_wherever_they_hide(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def late():\n    from pkg.sub import b\n    return b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n",
        "c.py": "from .a import late as C\nfrom .sub.b import _hidden, __version__\n",
        "d.py": "import pkg.c\nfrom . import a\n",
    }
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")

    result = scan(tmp_path, ["pkg"])

    assert cycles(result.edges) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert result.private == ["pkg.c imports _hidden from pkg.sub.b"]
    assert result.edges["pkg.d"] == {"pkg.a", "pkg.c"}

"""Reading pycep-parser's JSON tree of a Bicep file: what the deployment tests need and no more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def parse(path: Path) -> dict[str, Any]:
    """pycep's tree of one Bicep file; raises lark's ParseError on a syntax error."""
    tree: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return tree


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body, also when it is conditional (`= if (...)`), which pycep nests deeper."""
    config = declaration["config"]
    return config["config"] if "condition" in config else config


def key_name(key: str) -> str:
    """An object key as Bicep means it: pycep keeps the quotes of a quoted key ('azd-service-name')."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def strings(expression: Any) -> Iterator[str]:
    """Every string leaf of an expression: literals and, indistinguishably, identifiers."""
    if isinstance(expression, str):
        yield expression
    elif isinstance(expression, dict):
        for value in expression.values():
            yield from strings(value)
    elif isinstance(expression, list):
        for value in expression:
            yield from strings(value)

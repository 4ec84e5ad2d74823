"""The numbers infra/app/function-app.bicep derives for the fleet, evaluated from the parsed Bicep.

The fleet's arithmetic (bench/fleet_sizing.py) and the deployment tests read what Bicep would deploy instead
of repeating its formulas. Bicep's integer expressions that those app settings use are evaluated here:
literals, parameters (main.bicep's defaults, or given values), variables, + - * / (integer division, as
Bicep's), max, min and string(). Anything else raises ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "infra" / "main.bicep"
FUNCTION_APP = ROOT / "infra" / "app" / "function-app.bicep"

_OPERATORS = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: (abs(a) // abs(b)) * (1 if (a < 0) == (b < 0) else -1),  # truncated, as Bicep's
}
_FUNCTIONS = {"max": max, "min": min, "string": lambda v: v, "int": int}


def parse(path: Path) -> dict[str, Any]:
    """pycep's tree of one Bicep file."""
    from pycep import BicepParser  # a development dependency, as bench/ is

    tree: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return tree


class FleetSettings:
    """The fleet's numbers as function-app.bicep derives them, from main.bicep's parameter defaults
    (`parameters` overrides some, as `azd env set` would)."""

    def __init__(self, parameters: Mapping[str, int] | None = None, *, main: dict[str, Any] | None = None,
                 app: dict[str, Any] | None = None) -> None:
        main = main if main is not None else parse(MAIN)
        app = app if app is not None else parse(FUNCTION_APP)
        defaults = {name: p["default"] for name, p in main["parameters"].items()
                    if isinstance(p.get("default"), int) and not isinstance(p.get("default"), bool)}
        self.parameters: dict[str, int] = {**defaults, **(parameters or {})}
        self._variables = {name: v["value"] for name, v in app.get("variables", {}).items()}
        settings = app["resources"]["appSettings"]["config"]["properties"]
        self._settings: dict[str, Any] = dict(settings)

    def setting(self, name: str) -> int:
        """An app setting Bicep derives from numbers (GALSYNC_MAX_CONCURRENCY, say), as an integer."""
        return self.value(self._settings[name])

    def variable(self, name: str) -> int:
        return self.value(self._variables[name])

    def value(self, expression: Any) -> int:
        """One integer expression of the tree."""
        if isinstance(expression, bool):
            raise ValueError(f"not a number: {expression!r}")
        if isinstance(expression, int):
            return expression
        if isinstance(expression, str):
            if expression in self._variables:
                return self.variable(expression)
            if expression in self.parameters:
                return self.parameters[expression]
            if expression.isdigit():
                return int(expression)
            raise ValueError(f"not a number Bicep derives here: {expression!r}")
        if isinstance(expression, dict) and "operator" in expression:
            operator = expression["operator"]
            kind, operands = operator["type"], list(operator["operands"].values())
            if kind in _OPERATORS and len(operands) == 2:
                return int(_OPERATORS[kind](self.value(operands[0]), self.value(operands[1])))
            raise ValueError(f"Bicep operator not evaluated here: {kind}")
        if isinstance(expression, dict) and "function" in expression:
            function = expression["function"]
            kind, arguments = function["type"], [self.value(a) for a in function["parameters"].values()]
            if kind in _FUNCTIONS:
                return int(_FUNCTIONS[kind](*arguments))
            raise ValueError(f"Bicep function not evaluated here: {kind}")
        raise ValueError(f"not a Bicep number: {expression!r}")

"""Fixtures for the deployment tests: every Bicep file under infra/, parsed once with pycep-parser."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.bicep_tree import BICEP_FILES, INFRA, parse


@pytest.fixture(scope="session")
def bicep() -> dict[str, dict[str, Any]]:
    """Parsed Bicep files by path relative to infra/, e.g. 'app/function-app.bicep'."""
    return {path.relative_to(INFRA).as_posix(): parse(path) for path in BICEP_FILES}

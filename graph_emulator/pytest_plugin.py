"""pytest fixtures for the Graph emulator (listed in tests/conftest.py through `pytest_plugins`).

- `graph`: a fresh emulator with the `logistics` scenario for each test.
- `graph_empty`: a fresh emulator with an empty tenant (galsync's app is registered).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from graph_emulator import GraphEmulator


@pytest.fixture
def graph() -> Iterator[GraphEmulator]:
    with GraphEmulator.start(scenario="logistics") as g:
        yield g


@pytest.fixture
def graph_empty() -> Iterator[GraphEmulator]:
    with GraphEmulator.start(scenario=None) as g:
        yield g

"""Fixtures for the Graph client tests: a fresh emulator (real HTTPS), a mailbox in it, a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from graph_emulator import GraphEmulator
from sync_core.graph import GraphClient

from .support import Mailbox, add_mailbox, make_client


@pytest.fixture
def emu(graph_empty: GraphEmulator) -> GraphEmulator:
    """An empty tenant (users are added by each test, so tests do not depend on a scenario's contents)."""
    return graph_empty


@pytest.fixture
def mailbox(emu: GraphEmulator) -> Mailbox:
    return add_mailbox(emu, "Ann Driver")


@pytest.fixture
def client(emu: GraphEmulator) -> Iterator[GraphClient]:
    c = make_client(emu)
    yield c
    c.close()

"""Runtime wiring for service tests: the real Graph client (msal against the emulator) and a real state store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.profile import parse_config
from sync_core.service.runtime import PushMessage, Runtime
from sync_core.settings import Settings

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "galsync.example.toml"
# A one-profile config for small tenants: directory users into the mailboxes of the group "Phones".
SMALL_CONFIG = """
[[profile]]
name = "Small"
folder = "Directory"

[[profile.source]]
type = "users"

[profile.targets]
groups = ["Phones"]
"""


class Collect:
    """Fan-out that keeps the messages (as the queue would) instead of running them."""

    def __init__(self) -> None:
        self.messages: list[PushMessage] = []

    def push(self, message: PushMessage) -> None:
        self.messages.append(message)


def emulator_env(g: GraphEmulator, state: str) -> dict[str, str]:
    """The settings galsync needs to talk to this emulator (as an admin would export them)."""
    return {**g.galsync_settings(), "GALSYNC_STATE": state, "GALSYNC_RETRY_MAX_SECONDS": "20"}


MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[MakeRuntime]:
    """Build Runtimes over one SQLite file (several runtimes = several workers sharing state)."""
    made: list[Runtime] = []

    def make(g: GraphEmulator, config_text: str | None = None, state: str | None = None,
             **overrides: str) -> Runtime:
        env = emulator_env(g, state or f"sqlite:{tmp_path / 'state.db'}")
        env.update(overrides)
        settings = Settings.from_env(env)
        text = config_text if config_text is not None else EXAMPLE_CONFIG.read_text(encoding="utf-8")
        rt = Runtime.from_settings(settings, config=parse_config(text, "test.toml"))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()

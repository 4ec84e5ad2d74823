"""The executor against the emulator: what a failed write leaves behind for the next run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from graph_emulator import GraphEmulator
from sync_core.core.actions import Create
from sync_core.core.profile import Profile, parse_config
from sync_core.core.tags import contact_tag_properties
from sync_core.graph import GraphClient, RetryPolicy, StaticToken
from sync_core.service.executor import execute
from sync_core.service.target_work import TargetWork
from sync_core.service.waves import WAVE_PER_MAILBOX
from sync_core.state.sqlite_store import SqliteStore

from .conftest import SMALL_CONFIG

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
NOW = "2024-05-01T08:00:00Z"


@pytest.fixture
def client(graph_empty: GraphEmulator) -> Iterator[GraphClient]:
    retry = RetryPolicy(max_attempts=2, max_seconds=10, backoff_base=0.01)
    with GraphClient(graph_empty.base_url, StaticToken(graph_empty.access_token()), ca_bundle=graph_empty.ca_file,
                     retry=retry) as c:
        yield c


def _target(g: GraphEmulator, name: str) -> tuple[str, str]:
    user = g.tenant.directory.add_user(displayName=name)
    return user["id"], g.tenant.mailboxes.create_folder(user["id"], "Directory")["id"]


def _create(profile: Profile, key: str) -> Create:
    body = {"displayName": key, "singleValueExtendedProperties": contact_tag_properties(profile.name, key)}
    return Create(key, body, "fp", ("displayName",))


def test_a_create_in_doubt_keeps_its_in_flight_record_and_a_refused_one_leaves_none(
    graph_empty: GraphEmulator, client: GraphClient, tmp_path: Path
) -> None:
    """A create that timed out may have landed: its record (no contact id yet) stays, so the next run looks
    for the contact by its tag before creating it. One Graph refused cannot have landed: no record, no lookup."""
    g = graph_empty
    profile = parse_config(SMALL_CONFIG, "test.toml").profiles[0]
    store = SqliteStore(tmp_path / "state.db")
    (timed_out, t_folder), (refused, r_folder), (fine, f_folder) = (_target(g, n) for n in ("A", "B", "C"))
    g.faults.fail_next(1, 504, route=f"POST {CONTACTS}", mailbox=timed_out)
    g.faults.fail_next(1, 400, route=f"POST {CONTACTS}", mailbox=refused)
    works = [TargetWork(mailbox, folder, [_create(profile, "user:1")], {})
             for mailbox, folder in ((timed_out, t_folder), (refused, r_folder), (fine, f_folder))]

    report = execute(client, store, profile, works, lambda: NOW)

    assert report.counts["failed"] == 2 and report.counts["created"] == 1 and len(report.errors) == 2
    assert g.log.count(method="POST", route=CONTACTS) == 3  # neither failure was sent again
    [in_flight] = store.get_target_records(profile.name, timed_out).values()
    assert in_flight.source_key == "user:1" and in_flight.contact_id is None
    assert store.get_target_records(profile.name, refused) == {}
    [created] = store.get_target_records(profile.name, fine).values()
    assert created.contact_id == g.tenant.mailboxes.contacts(fine, f_folder)[0]["id"]


class _Counter:
    """Hears what a push plans and what each wave wrote, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, int]] = []

    def planned(self, writes: int) -> None:
        self.heard.append(("planned", writes))

    def written(self, writes: int) -> None:
        self.heard.append(("written", writes))


def test_a_counter_hears_each_waves_writes_as_it_is_answered(
    graph_empty: GraphEmulator, client: GraphClient, tmp_path: Path
) -> None:
    """Two waves and a half of creates into one folder go in three waves; the counter hears them planned, then
    wave by wave what was written: a refused create is not counted, and the sum is the report's writes."""
    g = graph_empty
    profile = parse_config(SMALL_CONFIG, "test.toml").profiles[0]
    store = SqliteStore(tmp_path / "state.db")
    mailbox, folder = _target(g, "A")
    g.faults.fail_next(1, 400, route=f"POST {CONTACTS}", mailbox=mailbox)
    counter = _Counter()
    wave, creates = WAVE_PER_MAILBOX, 2 * WAVE_PER_MAILBOX + 30
    work = TargetWork(mailbox, folder, [_create(profile, f"user:{n}") for n in range(creates)], {})

    report = execute(client, store, profile, [work], lambda: NOW, held=lambda: True, counter=counter)

    assert counter.heard == [("planned", creates), ("written", wave - 1), ("written", wave), ("written", 30)]
    assert report.writes == creates - 1 == report.counts["created"]

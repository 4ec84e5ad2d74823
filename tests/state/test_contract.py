"""The state store contract: every test runs against SQLite (a temp file) and Table Storage (Azurite).

The service layer relies on exactly what is asserted here, whichever store it is given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import MISSING, fields
from typing import Any

import pytest

from sync_core.core.records import Run, SourceRecord, Target, TargetRecord
from sync_core.state import ConcurrencyError, StateStore, StateValueError, ValueTooLargeError
from sync_core.state.base import Lease, StateMismatch
from sync_core.state.leases import claim_pending, run_exclusively, take_over_stale_pending
from tests.state.conftest import FakeClock, StoreUnderTest

GUID = "7c1f7a0e-52d4-4c0b-9a8e-3f1a6f0d2b91"
OUTLOOK_ID = (
    "AAMkADkzZjY4NWE0LTRlNWMtNDgxNi1hMWQ2LTQ0ZDdlNmM3MWQ2MQBGAAAAAAC-_R1rxJ3eSp6AtVbU7CcGBwBkZ-iP_6KdSZxvHSQ3"
    "ZLqyAAAAAAEOAABkZ-iP_6KdSZxvHSQ3ZLqyAABxJk7pAAA="
)
NASTY_KEYS = [
    OUTLOOK_ID,
    f"folder:{GUID}:{OUTLOOK_ID}",
    "a/b\\c#d?e",
    "100% ~tilde~ |pipe| ~2F",
    "it's \"quoted\" & <tagged>",
    "Zoë Ångström 日本語 😀 עברית",
    "tab\there\nnew\x00nul\x1f\x7f\x9f",
    " leading and trailing ",
    "x" * 1000,
    "/#?\\" * 250,  # 1000 characters, every one forbidden in Table keys
    "😀" * 1000,
]


def source(key: str, n: int = 0, **payload: Any) -> SourceRecord:
    body = {"displayName": f"Person {n}", "mobilePhone": f"+33 6 12 34 {n:04d}",
            "emailAddresses": [{"name": f"Person {n}", "address": f"p{n}@example.com"}], **payload}
    return SourceRecord(source_key=key, fingerprint=f"fp-{n}", payload=body)


def record(mailbox: str, key: str, n: int = 0) -> TargetRecord:
    return TargetRecord(mailbox=mailbox, source_key=key, contact_id=f"contact-{n}", fingerprint=f"fp-{n}",
                        change_key=f"ck-{n}", written_at="2026-11-20T10:00:00Z")


def run(run_id: str, profile: str, started_at: str, **changes: Any) -> Run:
    values: dict[str, Any] = {"kind": "sync", "finished_at": None, "outcome": "ok", "counts": {"writes": 3}}
    values.update(changes)
    return Run(run_id=run_id, profile=profile, started_at=started_at, **values)


# --- every field of every record


FULL_SOURCE = SourceRecord(source_key="user:full", fingerprint="fp", payload={"displayName": "F"},
                           photo_etag="photo-etag")
FULL_TARGET_RECORD = TargetRecord(mailbox="mbx", source_key="user:full", contact_id="c", fingerprint="fp",
                                  change_key="ck", written_at="2026-11-20T10:00:00Z", photo_etag="pe",
                                  deleted_on_device=True)
FULL_TARGET = Target(mailbox="mbx", address="a@contoso.example", folder_id="f", purpose="shared",
                     active=False)
FULL_RUN = Run(run_id="r", profile="Company", kind="push", started_at="2026-11-20T10:00:00Z",
               finished_at="2026-11-20T10:01:00Z", outcome="failed", counts={"writes": 1}, error="boom")


@pytest.mark.parametrize("sample", [FULL_SOURCE, FULL_TARGET_RECORD, FULL_TARGET, FULL_RUN],
                         ids=lambda s: type(s).__name__)
def test_samples_set_every_field_away_from_its_default(sample: Any) -> None:
    """Guard: a field added to sync_core/core/records.py must be added to these samples (and the stores)."""
    for f in fields(sample):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        assert getattr(sample, f.name) != default, f"{type(sample).__name__}.{f.name} left at its default"


def test_every_field_of_every_record_survives(store: StateStore) -> None:
    store.put_source_records("Company", [FULL_SOURCE])
    store.put_target_records("Company", "mbx", [FULL_TARGET_RECORD])
    store.put_target("Company", FULL_TARGET)
    store.record_run(FULL_RUN)

    assert store.get_source_records("Company") == {"user:full": FULL_SOURCE}
    assert store.get_target_records("Company", "mbx") == {"user:full": FULL_TARGET_RECORD}
    assert store.get_targets("Company") == {"mbx": FULL_TARGET}
    assert store.recent_runs() == [FULL_RUN]


# --- delta links


def test_delta_link_round_trip_and_forget(store: StateStore) -> None:
    assert store.get_delta_link("Company", "users") is None
    store.set_delta_link("Company", "users", "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc")
    store.set_delta_link("Company", "orgContacts", "link-2")
    store.set_delta_link("Dispatch", "users", "link-3")
    store.set_delta_link("Company", "users", "link-1b")  # replaces

    assert store.get_delta_link("Company", "users") == "link-1b"
    assert store.get_delta_link("Company", "orgContacts") == "link-2"
    assert store.get_delta_link("Dispatch", "users") == "link-3"

    store.set_delta_link("Company", "users", None)
    store.set_delta_link("Company", "never-set", None)
    assert store.get_delta_link("Company", "users") is None
    assert store.get_delta_link("Dispatch", "users") == "link-3"


# --- source records


def test_source_records_round_trip(store: StateStore) -> None:
    nested = {"businessAddress": {"street": "1 rue de la Paix", "city": "Paris"}, "businessPhones": ["+33 1"],
              "note": "Zoë 日本 😀 \"quotes\" \\ back"}
    records = [source("user:1", 1, **nested), source("user:2", 2),
               SourceRecord("orgcontact:3", "fp-3", {"displayName": "C"}, photo_etag="W/\"photo-1\"")]
    store.put_source_records("Company", records)
    store.put_source_records("Dispatch", [source("user:1", 99)])

    assert store.get_source_records("Company") == {r.source_key: r for r in records}
    assert store.get_source_records("Dispatch") == {"user:1": source("user:1", 99)}
    assert store.get_source_records("Company", keys=["user:2", "user:missing"]) == {"user:2": records[1]}
    assert store.get_source_records("Company", keys=[]) == {}


def test_source_record_put_replaces_and_delete_ignores_missing(store: StateStore) -> None:
    store.put_source_records("Company", [source("user:1", 1), source("user:2", 2)])
    store.put_source_records("Company", [source("user:1", 10)])
    store.delete_source_records("Company", ["user:2", "user:never-there"])

    assert store.get_source_records("Company") == {"user:1": source("user:1", 10)}


def test_source_records_stream_in_and_out_over_several_pages(store: StateStore) -> None:
    count = 1_050  # more than one page of the Table service (1,000) and of the SQLite reader

    def generate() -> Iterator[SourceRecord]:
        for n in range(count):
            yield source(f"user:{n:05d}", n)

    store.put_source_records("Company", generate())

    streamed = list(store.iter_source_records("Company"))
    assert len(streamed) == count
    assert {r.source_key for r in streamed} == {f"user:{n:05d}" for n in range(count)}
    assert streamed[0] == source(streamed[0].source_key, int(streamed[0].source_key[5:]))
    wanted = [f"user:{n:05d}" for n in range(0, count, 25)] + ["user:absent"]
    found = store.get_source_records("Company", keys=wanted)
    assert sorted(found) == wanted[:-1]
    assert found["user:00025"] == source("user:00025", 25)


def test_records_stream_from_any_key_in_one_order_for_sources_and_targets(store: StateStore) -> None:
    # A push stops after a key and the next one resumes after it: both streams share the store's order.
    keys = [f"user:{n:05d}" for n in range(0, 1_050)] + NASTY_KEYS[:8]
    store.put_source_records("Company", [source(k, n) for n, k in enumerate(keys)])
    store.put_target_records("Company", "mbx", [record("mbx", k, n) for n, k in enumerate(keys)])
    store.put_target_records("Company", "other", [record("other", keys[0])])

    order = [r.source_key for r in store.iter_source_records("Company")]
    assert sorted(order) == sorted(keys)
    assert [r.source_key for r in store.iter_target_records("Company", "mbx")] == order
    for cut in (0, 3, 999, 1_001, len(order) - 1):
        after = order[cut]
        assert [r.source_key for r in store.iter_source_records("Company", after=after)] == order[cut + 1:]
        upto = order[min(cut + 70, len(order) - 1)]
        between = list(store.iter_target_records("Company", "mbx", after=after, upto=upto))
        assert [r.source_key for r in between] == order[cut + 1:min(cut + 70, len(order) - 1) + 1]
        if between:
            assert between[0] == record("mbx", order[cut + 1], keys.index(order[cut + 1]))
    assert [r.source_key for r in store.iter_target_records("Company", "mbx", upto=order[2])] == order[:3]
    assert list(store.iter_target_records("Company", "none")) == []


def test_duplicate_keys_in_one_put_keep_the_last(store: StateStore) -> None:
    store.put_source_records("Company", [source("user:1", 1), source("user:1", 2), source("user:1", 3)])
    store.put_target_records("Company", "mbx", [record("mbx", "user:1", 1), record("mbx", "user:1", 2)])

    assert store.get_source_records("Company") == {"user:1": source("user:1", 3)}
    assert store.get_target_records("Company", "mbx") == {"user:1": record("mbx", "user:1", 2)}


# --- target records


def test_target_records_round_trip_per_mailbox(store: StateStore) -> None:
    in_flight = TargetRecord(mailbox="mbx-a", source_key="user:2", contact_id=None, fingerprint="",
                             change_key=None, written_at="2026-11-20T10:00:00Z", photo_etag=None)
    with_photo = TargetRecord(mailbox="mbx-a", source_key="user:3", contact_id="c3", fingerprint="fp",
                              change_key="ck", written_at="2026-11-20T10:00:00Z", photo_etag="p1")
    store.put_target_records("Company", "mbx-a", [record("mbx-a", "user:1", 1), in_flight, with_photo])
    store.put_target_records("Company", "mbx-b", [record("mbx-b", "user:1", 5)])
    store.put_target_records("Dispatch", "mbx-a", [record("mbx-a", "user:9", 9)])

    assert store.get_target_records("Company", "mbx-a") == {
        "user:1": record("mbx-a", "user:1", 1), "user:2": in_flight, "user:3": with_photo}
    assert store.get_target_records("Company", "mbx-b") == {"user:1": record("mbx-b", "user:1", 5)}
    assert store.get_target_records("Dispatch", "mbx-a") == {"user:9": record("mbx-a", "user:9", 9)}
    assert store.get_target_records("Company", "mbx-unknown") == {}


def test_250_target_records_in_one_put_then_delete_most(store: StateStore) -> None:
    """More than two full transactions (Azurite refuses a transaction of 101 operations)."""
    keys = [f"user:{GUID}-{n:03d}" for n in range(250)]
    store.put_target_records("Company", "mbx", [record("mbx", k, n) for n, k in enumerate(keys)])

    stored = store.get_target_records("Company", "mbx")
    assert len(stored) == 250
    assert stored[keys[249]] == record("mbx", keys[249], 249)
    # a push for a few changed contacts reads only their records
    few = store.get_target_records("Company", "mbx", keys=[keys[3], keys[200], "user:absent"])
    assert few == {keys[3]: record("mbx", keys[3], 3), keys[200]: record("mbx", keys[200], 200)}
    assert store.get_target_records("Company", "mbx", keys=[]) == {}
    assert len(store.get_target_records("Company", "mbx", keys=keys[:60])) == 60

    store.delete_target_records("Company", "mbx", keys[:120] + ["user:gone-1", "user:gone-2"] + keys[130:230])

    assert sorted(store.get_target_records("Company", "mbx")) == sorted(keys[120:130] + keys[230:])


def test_target_record_for_another_mailbox_is_refused_and_nothing_is_written(store: StateStore) -> None:
    with pytest.raises(StateValueError, match="mbx-b"):
        store.put_target_records("Company", "mbx-a", [record("mbx-a", "user:1"), record("mbx-b", "user:2")])

    assert store.get_target_records("Company", "mbx-a") == {}


# --- targets


def test_targets_round_trip(store: StateStore) -> None:
    driver = Target(mailbox=GUID, address="driver1@contoso.example", folder_id=OUTLOOK_ID, purpose="user")
    shared = Target(mailbox="shared-1", address="trucks@contoso.example", purpose="shared", active=False)
    bare = Target(mailbox="bare")
    for target in (driver, shared, bare):
        store.put_target("Company", target)
    store.put_target("Dispatch", driver)

    assert store.get_targets("Company") == {GUID: driver, "shared-1": shared, "bare": bare}

    moved = Target(mailbox=GUID, address="driver1@contoso.example", folder_id="other", purpose="user")
    store.put_target("Company", moved)
    store.delete_target("Company", "shared-1")
    store.delete_target("Company", "never-there")

    assert store.get_targets("Company") == {GUID: moved, "bare": bare}
    assert store.get_targets("Dispatch") == {GUID: driver}


# --- keys


@pytest.mark.parametrize("key", NASTY_KEYS, ids=lambda k: repr(k[:12]) + f"..{len(k)}")
def test_nasty_keys_round_trip_everywhere(store: StateStore, key: str) -> None:
    store.set_delta_link(key, key, "link")
    store.put_source_records(key, [source(key, 1)])
    store.put_target_records(key, key, [record(key, key, 2)])
    store.put_target(key, Target(mailbox=key, address=key))
    etag = store.put_doc(key, key, {"id": key})
    assert store.acquire_lease(key, key, 60)
    store.mark_pending(key)
    store.record_run(run(key, key, "2026-11-20T10:00:00Z"))

    assert store.get_delta_link(key, key) == "link"
    assert store.get_source_records(key) == {key: source(key, 1)}
    assert store.get_source_records(key, keys=[key]) == {key: source(key, 1)}
    assert list(store.iter_source_records(key)) == [source(key, 1)]
    assert store.get_target_records(key, key) == {key: record(key, key, 2)}
    assert store.get_targets(key) == {key: Target(mailbox=key, address=key)}
    assert store.get_doc(key, key) == ({"id": key}, etag)
    assert store.list_docs(key) == [(key, {"id": key})]
    assert store.acquire_lease(key, "someone else", 60) is False
    assert store.take_pending(key) is True
    assert store.recent_runs(key) == [run(key, key, "2026-11-20T10:00:00Z")]

    store.delete_source_records(key, [key])
    store.delete_target_records(key, key, [key])
    store.delete_doc(key, key)
    assert store.get_source_records(key) == {}
    assert store.get_target_records(key, key) == {}
    assert store.get_doc(key, key) is None


def test_keys_that_escape_or_truncate_alike_stay_distinct(store: StateStore) -> None:
    lookalikes = ["a/b", "a~2Fb", "a~7E2Fb", "a|b", "a%7Cb",
                  "x" * 1000, "x" * 999 + "y", "x" * 600 + "/" * 400]
    store.put_source_records("Company", [source(k, n) for n, k in enumerate(lookalikes)])
    store.put_target_records("Company", "mbx", [record("mbx", k, n) for n, k in enumerate(lookalikes)])
    # The partition key joins profile and mailbox: these two pairs must not meet in one partition.
    store.put_target_records("a|b", "c", [record("c", "user:1", 1)])
    store.put_target_records("a", "b|c", [record("b|c", "user:1", 2)])

    assert store.get_source_records("Company") == {k: source(k, n) for n, k in enumerate(lookalikes)}
    assert store.get_target_records("Company", "mbx") == {
        k: record("mbx", k, n) for n, k in enumerate(lookalikes)}
    assert store.get_target_records("a|b", "c") == {"user:1": record("c", "user:1", 1)}
    assert store.get_target_records("a", "b|c") == {"user:1": record("b|c", "user:1", 2)}


@pytest.mark.parametrize(("bad", "problem"), [
    ("", "empty"),
    ("k" * 3000, "3000 characters"),
    ("lone \ud800 surrogate", "surrogate"),
    (42, "must be a string"),
])
def test_unusable_keys_get_a_clear_error_and_write_nothing(store: StateStore, bad: Any, problem: str) -> None:
    with pytest.raises(StateValueError, match=problem):
        store.put_source_records("Company", [source(bad)])
    with pytest.raises(StateValueError, match=problem):
        store.put_target("Company", Target(mailbox=bad))
    with pytest.raises(StateValueError, match=f"profile.*{problem}|{problem}"):
        store.get_source_records(bad)

    assert store.get_source_records("Company") == {}
    assert store.get_targets("Company") == {}


def test_a_single_string_where_keys_are_expected_is_refused(store: StateStore) -> None:
    store.put_source_records("Company", [source("u", 1)])
    with pytest.raises(StateValueError, match="collection of keys"):
        store.delete_source_records("Company", "user:1")
    with pytest.raises(StateValueError, match="collection of keys"):
        store.get_source_records("Company", keys="user:1")
    assert list(store.get_source_records("Company")) == ["u"]


# --- values


def test_payload_over_the_table_limit_is_refused_by_name_and_nothing_is_written(store: StateStore) -> None:
    huge = source("user:huge", 1, personalNotes="n" * 40_000)
    with pytest.raises(ValueTooLargeError, match="payload of source user:huge"):
        store.put_source_records("Company", [source("user:ok", 0), huge])

    assert store.get_source_records("Company") == {}


def test_target_record_fields_are_held_to_the_table_limit_in_utf16_units(store: StateStore) -> None:
    # 16,384 emoji are 32,768 UTF-16 code units: exactly what a Table string property holds.
    at_limit = TargetRecord(mailbox="mbx", source_key="user:at", contact_id="c", fingerprint="fp",
                            change_key="😀" * 16_384, written_at="2026-11-20T10:00:00Z")
    over = TargetRecord(mailbox="mbx", source_key="user:over", contact_id="c", fingerprint="fp",
                        change_key="😀" * 16_385, written_at="2026-11-20T10:00:00Z")
    with pytest.raises(ValueTooLargeError, match="change_key of target record of source user:over in mailbox mbx"):
        store.put_target_records("Company", "mbx", [at_limit, over])
    assert store.get_target_records("Company", "mbx") == {}

    store.put_target_records("Company", "mbx", [at_limit])
    assert store.get_target_records("Company", "mbx") == {"user:at": at_limit}


def test_payload_just_under_the_limit_round_trips(store: StateStore) -> None:
    big = source("user:big", 1, personalNotes="日" * 32_000)
    store.put_source_records("Company", [big])

    assert store.get_source_records("Company") == {"user:big": big}


@pytest.mark.parametrize("payload", [{"when": {1, 2}}, {"ratio": float("nan")}])
def test_payload_that_is_not_json_is_refused(store: StateStore, payload: dict[str, Any]) -> None:
    with pytest.raises(StateValueError, match="payload of source user:1 is not JSON"):
        store.put_source_records("Company", [SourceRecord("user:1", "fp", payload)])


# --- leases and pending


def test_lease_is_exclusive_renewable_and_released(store: StateStore) -> None:
    assert store.acquire_lease("sync:Company", "worker-a", 60) is True
    assert store.acquire_lease("sync:Company", "worker-b", 60) is False
    assert store.acquire_lease("sync:Company", "worker-a", 60) is True  # renewal
    assert store.acquire_lease("sync:Dispatch", "worker-b", 60) is True  # another name is independent

    store.release_lease("sync:Company", "worker-b")  # not the holder: nothing happens
    assert store.acquire_lease("sync:Company", "worker-b", 60) is False

    store.release_lease("sync:Company", "worker-a")
    assert store.acquire_lease("sync:Company", "worker-b", 60) is True


def test_expired_lease_can_be_taken_by_another_owner(store: StateStore, clock: FakeClock) -> None:
    assert store.acquire_lease("sync:Company", "worker-a", 30) is True
    clock.advance(29.5)
    assert store.acquire_lease("sync:Company", "worker-b", 30) is False
    clock.advance(0.5)
    assert store.acquire_lease("sync:Company", "worker-b", 30) is True
    assert store.acquire_lease("sync:Company", "worker-a", 30) is False

    store.release_lease("sync:Company", "worker-a")  # a's release after losing it must not free b's lease
    assert store.acquire_lease("sync:Company", "worker-c", 30) is False


def test_renewal_extends_the_lease(store: StateStore, clock: FakeClock) -> None:
    assert store.acquire_lease("sync:Company", "worker-a", 30) is True
    clock.advance(20)
    assert store.acquire_lease("sync:Company", "worker-a", 30) is True
    clock.advance(20)  # 40 s after the first acquire, 20 s after the renewal
    assert store.acquire_lease("sync:Company", "worker-b", 30) is False


@pytest.mark.parametrize("ttl", [0, -5, "60"])
def test_lease_needs_a_positive_ttl(store: StateStore, ttl: Any) -> None:
    with pytest.raises(StateValueError, match="ttl_seconds"):
        store.acquire_lease("sync:Company", "worker-a", ttl)


def test_a_held_lease_says_who_holds_it_and_until_when(store: StateStore, clock: FakeClock) -> None:
    long_name = "push:Company:" + OUTLOOK_ID + "/#?" * 200  # over Table's key limit: stored as a digest
    assert store.get_lease("sync:Company") is None
    assert store.list_leases() == []

    assert store.acquire_lease("sync:Company", "host-a:4242:0badf00d", 60)
    assert store.acquire_lease(long_name, "host-b:7:cafe", 30)
    store.mark_pending("sync:Dispatch")  # a pending flag is not a lease

    assert store.get_lease("sync:Company") == Lease("sync:Company", "host-a:4242:0badf00d", clock.now + 60)
    assert store.list_leases() == [Lease(long_name, "host-b:7:cafe", clock.now + 30),
                                   Lease("sync:Company", "host-a:4242:0badf00d", clock.now + 60)]
    clock.advance(30)  # the second one expires: no one holds it any more
    assert store.get_lease(long_name) is None
    assert store.list_leases() == [Lease("sync:Company", "host-a:4242:0badf00d", clock.now + 30)]
    store.release_lease("sync:Company", "host-a:4242:0badf00d")
    assert store.get_lease("sync:Company") is None
    assert store.list_leases() == []


def _race(contenders: int, attempt: Callable[[int], bool]) -> list[int]:
    """Start `contenders` threads at once; return the indexes whose attempt returned True."""
    barrier = threading.Barrier(contenders)
    winners: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def contend(i: int) -> None:
        try:
            barrier.wait()
            if attempt(i):
                with lock:
                    winners.append(i)
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return winners


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_acquirers_of_a_free_lease_exactly_one_wins(store: StateStore, round_: int) -> None:
    winners = _race(6, lambda i: store.acquire_lease(f"race-{round_}", f"worker-{i}", 60))

    assert len(winners) == 1
    assert store.acquire_lease(f"race-{round_}", f"worker-{winners[0]}", 60) is True


def test_concurrent_takers_of_an_expired_lease_exactly_one_wins(store: StateStore, clock: FakeClock) -> None:
    assert store.acquire_lease("race", "crashed-worker", 10) is True
    clock.advance(11)

    winners = _race(6, lambda i: store.acquire_lease("race", f"worker-{i}", 60))

    assert len(winners) == 1


def test_pending_flag_takes_many_marks_at_once(store: StateStore) -> None:
    assert store.take_pending("sync:Company") is False
    for _ in range(5):
        store.mark_pending("sync:Company")
    store.mark_pending("sync:Dispatch")

    assert store.has_pending("sync:Company") is True
    assert store.take_pending("sync:Company") is True
    assert store.has_pending("sync:Company") is False
    assert store.take_pending("sync:Company") is False
    assert store.take_pending("sync:Dispatch") is True


def test_the_pending_flag_keeps_the_time_it_was_first_raised(store: StateStore, clock: FakeClock) -> None:
    assert store.pending_age("sync:Company") is None
    store.mark_pending("sync:Company")
    assert store.pending_age("sync:Company") == 0
    clock.advance(45)
    store.mark_pending("sync:Company")  # a second trigger does not make the waiting work younger
    clock.advance(30)

    assert store.pending_age("sync:Company") == 75
    assert store.pending_age("sync:Dispatch") is None
    assert store.take_pending("sync:Company") is True
    assert store.pending_age("sync:Company") is None
    store.mark_pending("sync:Company")
    assert store.pending_age("sync:Company") == 0


def test_a_flag_left_by_a_dead_holder_is_claimed_once_after_its_lease_ends(store: StateStore,
                                                                           clock: FakeClock) -> None:
    assert claim_pending(store, "sync:Company", 60) is True  # clear: this trigger sends the work
    assert store.acquire_lease("sync:Company", "holder", 60) and store.take_pending("sync:Company")
    assert claim_pending(store, "sync:Company", 60) is True  # a change while it runs: one more message
    assert claim_pending(store, "sync:Company", 60) is False  # that message covers the next ones

    clock.advance(50)
    assert store.acquire_lease("sync:Company", "holder", 60)  # the holder lives: its heartbeat renews
    clock.advance(50)
    assert claim_pending(store, "sync:Company", 60) is False  # 100 s old, but the holder runs once more for it
    assert take_over_stale_pending(store, "sync:Company", 60) is False

    clock.advance(61)  # the holder died: no renewal, its lease has ended
    assert take_over_stale_pending(store, "sync:Company", 60) is True
    assert store.pending_age("sync:Company") == 0  # raised afresh for the work just sent
    assert claim_pending(store, "sync:Company", 60) is False
    assert take_over_stale_pending(store, "sync:Company", 60) is False


def test_a_flag_is_restarted_only_once_it_is_old_enough(store: StateStore, clock: FakeClock) -> None:
    assert store.restart_pending("sync:Company", 60) is False  # clear: stays clear
    store.mark_pending("sync:Company")
    clock.advance(30)

    assert store.restart_pending("sync:Company", 60) is False
    assert store.pending_age("sync:Company") == 30
    clock.advance(30)
    assert store.restart_pending("sync:Company", 60) is True
    assert store.pending_age("sync:Company") == 0
    assert store.take_pending("sync:Company") is True  # still one flag, taken as any other
    assert store.has_pending("sync:Company") is False


def test_concurrent_restarts_of_a_stale_flag_exactly_one_wins(store: StateStore, clock: FakeClock) -> None:
    store.mark_pending("sync:Company")
    clock.advance(61)

    assert len(_race(6, lambda i: store.restart_pending("sync:Company", 60))) == 1
    assert store.pending_age("sync:Company") == 0


def test_a_stale_flag_is_taken_over_by_one_of_several_callers(store: StateStore, clock: FakeClock) -> None:
    store.mark_pending("sync:Company")
    clock.advance(61)

    assert len(_race(6, lambda i: claim_pending(store, "sync:Company", 60))) == 1


def test_the_sweep_leaves_a_clear_flag_clear(store: StateStore, clock: FakeClock) -> None:
    assert take_over_stale_pending(store, "sync:Company", 60) is False
    assert store.has_pending("sync:Company") is False


def test_concurrent_takers_of_the_pending_flag_exactly_one_wins(store: StateStore) -> None:
    store.mark_pending("sync:Company")

    assert len(_race(6, lambda i: store.take_pending("sync:Company"))) == 1


def test_a_burst_of_triggers_during_a_run_makes_the_holder_run_once_more(store: StateStore) -> None:
    running = threading.Event()
    burst_done = threading.Event()
    runs: list[str] = []

    def work() -> None:
        runs.append("run")
        if len(runs) == 1:
            running.set()
            assert burst_done.wait(30)

    holder_runs: list[int] = []
    holder = threading.Thread(
        target=lambda: holder_runs.append(run_exclusively(store, "sync:Company", "holder", 300, work)))
    holder.start()
    assert running.wait(30)
    burst = [run_exclusively(store, "sync:Company", f"trigger-{i}", 300, work) for i in range(5)]
    burst_done.set()
    holder.join()

    assert burst == [0, 0, 0, 0, 0]
    assert holder_runs == [2]
    assert runs == ["run", "run"]
    assert store.has_pending("sync:Company") is False
    assert store.acquire_lease("sync:Company", "next", 60) is True  # released at the end


def test_a_quiet_trigger_runs_once(store: StateStore) -> None:
    runs: list[int] = []

    assert run_exclusively(store, "sync:Company", "worker", 60, lambda: runs.append(1)) == 1
    assert runs == [1]


# --- run history


def test_runs_come_back_newest_first_per_profile_and_overall(store: StateStore) -> None:
    store.record_run(run("r1", "Company", "2026-11-20T08:00:00Z"))
    store.record_run(run("r2", "Dispatch", "2026-11-20T09:30:00+02:00"))  # 07:30 UTC: older than r1
    store.record_run(run("r3", "Company", "2026-11-20T10:00:00.250000Z", kind="push", outcome="partial",
                         counts={"writes": 7, "failed": 1}, error="mailbox mbx-3: 403 ErrorAccessDenied"))
    store.record_run(run("r4", "Company", "2026-11-20T10:00:00.250000Z"))  # same instant as r3: by run_id
    store.record_run(run("r5", "Dispatch", "2026-11-21T00:00:00Z"))

    assert [r.run_id for r in store.recent_runs()] == ["r5", "r3", "r4", "r1", "r2"]
    assert [r.run_id for r in store.recent_runs("Company")] == ["r3", "r4", "r1"]
    assert [r.run_id for r in store.recent_runs(limit=2)] == ["r5", "r3"]
    assert store.recent_runs(limit=0) == []
    assert store.recent_runs("Nobody") == []
    assert store.recent_runs("Company")[0] == run(
        "r3", "Company", "2026-11-20T10:00:00.250000Z", kind="push", outcome="partial",
        counts={"writes": 7, "failed": 1}, error="mailbox mbx-3: 403 ErrorAccessDenied")


def test_recording_a_run_again_updates_it(store: StateStore) -> None:
    store.record_run(run("r1", "Company", "2026-11-20T08:00:00Z", outcome="running", counts={}))
    finished = run("r1", "Company", "2026-11-20T08:00:00Z", finished_at="2026-11-20T08:00:09Z",
                   counts={"writes": 12})
    store.record_run(finished)

    assert store.recent_runs() == [finished]
    assert store.recent_runs("Company") == [finished]


@pytest.mark.parametrize(("started_at", "problem"), [("2026-11-20T08:00:00", "time zone"),
                                                     ("yesterday", "ISO 8601")])
def test_run_with_unusable_start_time_is_refused(store: StateStore, started_at: str, problem: str) -> None:
    with pytest.raises(StateValueError, match=problem):
        store.record_run(run("r1", "Company", started_at))
    assert store.recent_runs() == []


# --- documents


def test_documents_round_trip_with_etags(store: StateStore) -> None:
    assert store.get_doc("subscription", "users") is None
    etag1 = store.put_doc("subscription", "users", {"id": "sub-1", "expires": "2026-11-23T10:00:00Z"})
    etag_other = store.put_doc("subscription", "orgcontacts", {"id": "sub-2"})
    store.put_doc("poison", "users", {"body": "x"})

    first = {"id": "sub-1", "expires": "2026-11-23T10:00:00Z"}
    renewed = {"id": "sub-1", "expires": "2026-11-26T10:00:00Z"}
    assert store.get_doc("subscription", "users") == (first, etag1)
    assert store.list_docs("subscription") == [("orgcontacts", {"id": "sub-2"}), ("users", first)]
    etag2 = store.put_doc("subscription", "users", renewed, etag=etag1)
    assert etag2 != etag1
    assert store.get_doc("subscription", "users") == (renewed, etag2)
    assert store.get_doc("subscription", "orgcontacts") == ({"id": "sub-2"}, etag_other)

    store.delete_doc("subscription", "users")
    store.delete_doc("subscription", "never-there")
    assert store.list_docs("subscription") == [("orgcontacts", {"id": "sub-2"})]
    assert store.list_docs("poison") == [("users", {"body": "x"})]


def test_document_write_with_a_stale_etag_is_refused_and_changes_nothing(store: StateStore) -> None:
    stale = store.put_doc("subscription", "users", {"v": 1})
    current = store.put_doc("subscription", "users", {"v": 2}, etag=stale)

    with pytest.raises(ConcurrencyError, match="subscription/users"):
        store.put_doc("subscription", "users", {"v": 3}, etag=stale)
    assert store.get_doc("subscription", "users") == ({"v": 2}, current)

    store.delete_doc("subscription", "users")
    with pytest.raises(ConcurrencyError):
        store.put_doc("subscription", "users", {"v": 4}, etag=current)
    assert store.get_doc("subscription", "users") is None


def test_concurrent_etag_writers_of_a_document_exactly_one_wins(store: StateStore) -> None:
    etag = store.put_doc("subscription", "users", {"v": 0})

    def write(i: int) -> bool:
        try:
            store.put_doc("subscription", "users", {"v": i}, etag=etag)
            return True
        except ConcurrencyError:
            return False

    winners = _race(6, write)

    assert len(winners) == 1
    doc = store.get_doc("subscription", "users")
    assert doc is not None and doc[0] == {"v": winners[0]}


def test_documents_that_cannot_be_stored_are_refused(store: StateStore) -> None:
    with pytest.raises(StateValueError, match="must be a JSON object"):
        store.put_doc("poison", "m1", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueTooLargeError, match="document poison/m2"):
        store.put_doc("poison", "m2", {"body": "b" * 40_000})
    assert store.list_docs("poison") == []


# --- whose state this is


def test_a_bound_store_refuses_a_stored_link_of_another_endpoint(store: StateStore) -> None:
    link = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=opaque-token-value"
    store.set_delta_link("Company", "users", link)
    assert store.get_delta_link("Company", "users") == link  # not bound: links come back as stored

    store.bind("https://graph.microsoft.com/v1.0/")
    assert store.get_delta_link("Company", "users") == link
    store.bind("https://127.0.0.1:4443/v1.0")
    with pytest.raises(StateMismatch) as refused:
        store.get_delta_link("Company", "users")

    message = str(refused.value)
    assert "https://graph.microsoft.com/v1.0" in message and "https://127.0.0.1:4443/v1.0" in message
    assert "'Company'" in message and "'users'" in message
    assert "opaque-token-value" not in message
    assert "--reset-state" in refused.value.advice
    assert store.get_delta_link("Company", "groups") is None  # no link: nothing to refuse


def test_clear_forgets_everything_and_the_store_stays_usable(store: StateStore) -> None:
    store.set_delta_link("Company", "users", "link")
    store.put_source_records("Company", [source(f"user:{n}", n) for n in range(250)])
    store.put_target_records("Company", "mbx", [record("mbx", f"user:{n}", n) for n in range(250)])
    store.put_target("Company", Target(mailbox="mbx"))
    assert store.acquire_lease("sync:Company", "worker-a", 60)
    store.mark_pending("sync:Company")
    store.record_run(run("r1", "Company", "2026-11-20T08:00:00Z"))
    for n in range(3):
        store.put_doc("members", f"Company|Phones|{n}", {"ids": []})

    store.clear()

    assert store.get_delta_link("Company", "users") is None
    assert store.get_source_records("Company") == {}
    assert store.get_target_records("Company", "mbx") == {}
    assert store.get_targets("Company") == {}
    assert store.list_leases() == []
    assert store.has_pending("sync:Company") is False
    assert store.recent_runs() == [] and store.recent_runs("Company") == []
    assert store.list_docs("members") == []
    store.put_source_records("Company", [source("user:1", 1)])
    assert list(store.get_source_records("Company")) == ["user:1"]


# --- durability


def test_state_survives_a_new_store_instance(subject: StoreUnderTest) -> None:
    first = subject.store
    first.set_delta_link("Company", "users", "link")
    first.put_source_records("Company", [source("user:1", 1)])
    first.put_target_records("Company", "mbx", [record("mbx", "user:1", 1)])
    first.put_target("Company", Target(mailbox="mbx"))
    etag = first.put_doc("subscription", "users", {"id": "s"})
    assert first.acquire_lease("sync:Company", "worker-a", 60)
    first.mark_pending("sync:Company")
    first.record_run(run("r1", "Company", "2026-11-20T08:00:00Z"))

    second = subject.reopen()

    assert second.get_delta_link("Company", "users") == "link"
    assert second.get_source_records("Company") == {"user:1": source("user:1", 1)}
    assert second.get_target_records("Company", "mbx") == {"user:1": record("mbx", "user:1", 1)}
    assert second.get_targets("Company") == {"mbx": Target(mailbox="mbx")}
    assert second.get_doc("subscription", "users") == ({"id": "s"}, etag)
    assert second.acquire_lease("sync:Company", "worker-b", 60) is False
    assert second.take_pending("sync:Company") is True
    assert [r.run_id for r in second.recent_runs()] == ["r1"]

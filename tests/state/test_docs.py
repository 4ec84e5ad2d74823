"""Typed state documents: each kind reads back what galsync stores, in the JSON shape it has always stored,
and a damaged document is refused with an error that names its kind and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync_core.core.records import SourceRecord
from sync_core.state import StateError, docs
from sync_core.state.sqlite_store import SqliteStore

# One document of each kind: its key, the JSON galsync stores (as written before the typed classes), and the
# typed document that JSON is.
STORED: list[tuple[str, str, dict[str, Any], Any]] = [
    (docs.OUTBOX, "Dispatch",
     {"run_id": "20260301T120000Z-ab12cd34", "keys": ["user:b", "user:a"], "fill": ["m1"], "remove": ["m2", "m3"]},
     docs.Outbox("20260301T120000Z-ab12cd34", ("user:b", "user:a"), ("m1",), ("m2", "m3"))),
    (docs.OUTBOX, "Office",
     {"run_id": "r2", "keys": None, "fill": [], "remove": []},
     docs.Outbox("r2", None)),
    (docs.PREV, "Dispatch|user:a",
     {"fingerprint": "f" * 32, "payload": {"displayName": "Ana", "mobilePhone": "+33 6 12 34 56 78"}},
     docs.Prev("f" * 32, {"displayName": "Ana", "mobilePhone": "+33 6 12 34 56 78"})),
    (docs.PROFILE_STATE, "Dispatch", {"config": "c" * 32}, docs.ProfileState("c" * 32)),
    (docs.DELTA_TIMES, "Dispatch", {"drivers": "2026-03-01T12:00:00.000000Z"},
     docs.DeltaTimes({"drivers": "2026-03-01T12:00:00.000000Z"})),
    (docs.GROUP_WATCH, "Dispatch", {"groups": ["g1", "g2"]}, docs.GroupWatch(("g1", "g2"))),
    (docs.MEMBERS, "Dispatch|Phones|0", {"ids": ["u1", "u2"], "chunks": 2}, docs.Members(("u1", "u2"), 2)),
    (docs.GROUP_NAMES, "Dispatch|Phones", {"id": "0b6c1f6e-5c4b-4d1e-9f0e-2a1b3c4d5e6f"},
     docs.GroupName("0b6c1f6e-5c4b-4d1e-9f0e-2a1b3c4d5e6f")),
    (docs.MAILBOX_IDS, "fleet@contoso.example", {"id": "u9"}, docs.MailboxId("u9")),
    (docs.FOLDER_SOURCE, "Suppliers|shared", {"mailbox": "u7", "folder": "AAMkAD="},
     docs.FolderSource("u7", "AAMkAD=")),
    (docs.FOREIGN, "Dispatch|u1",
     {"checked_at": "2026-03-01T02:00:00.000000Z", "purpose": "shared", "contacts": [
         {"id": "c1", "displayName": "Maman", "createdDateTime": "2026-02-01T10:00:00Z",
          "lastModifiedDateTime": "2026-02-01T10:00:00Z", "otherProfile": None, "folder": "managed"},
         {"id": "c2", "displayName": None, "createdDateTime": None, "lastModifiedDateTime": None,
          "folder": "Contacts"}]},
     docs.Foreign("2026-03-01T02:00:00.000000Z", "shared", (
         {"id": "c1", "displayName": "Maman", "createdDateTime": "2026-02-01T10:00:00Z",
          "lastModifiedDateTime": "2026-02-01T10:00:00Z", "otherProfile": None, "folder": "managed"},
         {"id": "c2", "displayName": None, "createdDateTime": None, "lastModifiedDateTime": None,
          "folder": "Contacts"}))),
    (docs.FOREIGN, "Dispatch|u2", {"checked_at": "2026-03-01T02:00:00.000000Z", "purpose": None, "contacts": []},
     docs.Foreign("2026-03-01T02:00:00.000000Z", None)),
    (docs.FOREIGN, "Dispatch|u3", {"checked_at": "2026-03-01T02:00:00.000000Z", "purpose": "user", "contacts": [],
                                   "owner_contacts": 1200},
     docs.Foreign("2026-03-01T02:00:00.000000Z", "user", (), 1200)),
    (docs.MOVE, "Dispatch|u1", {"old_folder": "AAMkAD=", "started_at": "2026-03-01T12:00:00.000000Z"},
     docs.Move("AAMkAD=", "2026-03-01T12:00:00.000000Z")),
    (docs.FAILING_TARGET, "Dispatch|u3",
     {"profile": "Dispatch", "key": "u3", "address": "trucks.west@contoso.example", "stage": "write",
      "status": 403, "code": "ErrorAccessDenied", "hint": "add the mailbox to the scope",
      "since": "2026-03-01T12:00:00.000000Z", "last": "2026-03-01T13:00:00.000000Z", "run_id": "r7",
      "request_id": None},
     docs.FailingTarget("Dispatch", "u3", "trucks.west@contoso.example", "write", 403, "ErrorAccessDenied",
                        "add the mailbox to the scope", "2026-03-01T12:00:00.000000Z",
                        "2026-03-01T13:00:00.000000Z", "r7")),
    (docs.SUBSCRIPTION, "7f3c0b1e-sub",
     {"resource": "users", "change_type": "updated,deleted", "client_state": "s3cret", "profiles": ["Dispatch"],
      "expiration": "2026-03-30T12:00:00.000000Z", "created_at": "2026-03-01T12:00:00.000000Z"},
     docs.Subscription("users", "updated,deleted", "s3cret", ("Dispatch",), "2026-03-30T12:00:00.000000Z",
                       "2026-03-01T12:00:00.000000Z")),
    (docs.POISON, "2026-03-01T12:00:00.000000Z|sync-source|msg-1",
     {"queue": "sync-source", "message_id": "msg-1", "profile": None, "reason": "BadMessage: not JSON",
      "body": "{", "dequeue_count": 5, "recorded_at": "2026-03-01T12:00:00.000000Z"},
     docs.Poison("sync-source", "msg-1", None, "BadMessage: not JSON", "{", 5, "2026-03-01T12:00:00.000000Z")),
    (docs.STATE_IDENTITY, "store",
     {"tenant_id": "7c1f7a0e-52d4-4c0b-9a8e-3f1a6f0d2b91", "graph_endpoint": "https://graph.microsoft.com/v1.0"},
     docs.StateIdentity("7c1f7a0e-52d4-4c0b-9a8e-3f1a6f0d2b91", "https://graph.microsoft.com/v1.0")),
    (docs.QUEUE_FAILURE, "9c" * 32, {"queue": "push-targets", "reason": "TargetsBusy: retry later", "tries": 2},
     docs.QueueFailure("push-targets", "TargetsBusy: retry later", 2)),
    (docs.RECONCILE_RUN, "Dispatch",
     {"run_id": "r8", "started_at": "2026-03-01T02:00:00.000000Z", "groups": 3, "done": [2, 0], "targets": 50,
      "busy": 1, "drift": {"intact": 7, "deleted_on_device": 1}, "exec_counts": {"created": 1, "failed": 0},
      "errors": ["trucks.west@contoso.example: 403 ErrorAccessDenied while reading its folder; add it"],
      "exec_errors": [], "finished": False},
     docs.ReconcileRun("r8", "2026-03-01T02:00:00.000000Z", 3, (2, 0), 50, 1, {"intact": 7, "deleted_on_device": 1},
                       {"created": 1, "failed": 0},
                       ("trucks.west@contoso.example: 403 ErrorAccessDenied while reading its folder; add it",))),
    (docs.OUTBOX, "Yard", {"run_id": "r3", "keys": ["user:a"], "fill": [], "remove": [],
                           "notified_at": "2026-03-01T12:00:00.250000Z"},
     docs.Outbox("r3", ("user:a",), notified_at="2026-03-01T12:00:00.250000Z")),
    (docs.NOTIFIED, "Dispatch", {"arrived_at": "2026-03-01T12:00:00.250000Z"},
     docs.Notified("2026-03-01T12:00:00.250000Z")),
    (docs.PROPAGATION, "Dispatch",
     {"runs": {"r1": {"notified_at": "2026-03-01T12:00:00.250000Z", "left": [0, 2], "wrote_at": None},
               "r2": {"notified_at": "2026-03-01T12:00:09.000000Z", "left": [1],
                      "wrote_at": "2026-03-01T12:00:12.000000Z"}}},
     docs.Propagation({"r1": docs.PushesLeft("2026-03-01T12:00:00.250000Z", (0, 2)),
                       "r2": docs.PushesLeft("2026-03-01T12:00:09.000000Z", (1,), "2026-03-01T12:00:12.000000Z")})),
    (docs.PROPAGATION_SAMPLES, "Dispatch|12", {"hour": "2026-03-01T12", "samples": [[5, 4750], [3599, 800]]},
     docs.PropagationSamples("2026-03-01T12", ((5, 4750), (3599, 800)))),
]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with SqliteStore(str(tmp_path / "state.db")) as opened:
        yield opened


def test_every_kind_is_covered() -> None:
    kinds = {value for name, value in vars(docs).items() if name.isupper() and isinstance(value, str)
             and not name.startswith("_")}
    assert {kind for kind, *_ in STORED} == kinds


@pytest.mark.parametrize(("kind", "key", "stored", "typed"), STORED, ids=[f"{k}:{key}" for k, key, *_ in STORED])
def test_a_stored_document_reads_back_typed_and_is_written_in_the_same_shape(
    store: Any, kind: str, key: str, stored: dict[str, Any], typed: Any
) -> None:
    store.put_doc(kind, key, stored)
    assert docs.read(store, type(typed), key) == typed
    assert kind == typed.KIND
    docs.write(store, key, typed)
    found = store.get_doc(kind, key)
    assert found is not None and found[0] == stored
    assert docs.read_all(store, type(typed)) == [(key, typed)]
    docs.delete(store, type(typed), key)
    assert docs.read(store, type(typed), key) is None


def test_optional_fields_take_the_values_the_readers_always_assumed(store: Any) -> None:
    store.put_doc(docs.OUTBOX, "P", {"run_id": "r"})
    store.put_doc(docs.MEMBERS, "P|G|0", {"ids": []})
    store.put_doc(docs.SUBSCRIPTION, "s", {"resource": "users", "client_state": "s3cret", "profiles": ["P"]})
    store.put_doc(docs.PROFILE_STATE, "P", {})
    assert docs.read(store, docs.Outbox, "P") == docs.Outbox("r", None, (), ())  # keys missing: push every key
    assert docs.read(store, docs.Members, "P|G|0") == docs.Members((), 1)
    subscription = docs.read(store, docs.Subscription, "s")
    assert subscription == docs.Subscription("users", "", "s3cret", ("P",), None, None)
    assert docs.read(store, docs.ProfileState, "P") == docs.ProfileState(None)  # no fingerprint: a full re-read
    assert subscription is not None and "s3cret" not in repr(subscription)  # the client state is a secret


MALFORMED: list[tuple[type[Any], str, dict[str, Any], str]] = [
    (docs.Outbox, "Dispatch", {"run_id": "r", "keys": "user:a", "fill": [], "remove": []},
     "'keys' must be a list of strings, got str"),
    (docs.Outbox, "Office", {"run_id": "r", "keys": None, "fill": [3], "remove": []},
     "'fill' must be a list of strings"),
    (docs.Prev, "Dispatch|user:a", {"fingerprint": "f"}, "'payload' is missing"),
    (docs.ProfileState, "Dispatch", {"config": 7}, "'config' must be a string or null, got int"),
    (docs.DeltaTimes, "Dispatch", {"drivers": None}, "'drivers' must be a string, got null"),
    (docs.GroupWatch, "Dispatch", {"groups": "g1"}, "'groups' must be a list of strings"),
    (docs.Members, "Dispatch|Phones|0", {"ids": ["u1"], "chunks": "2"}, "'chunks' must be an integer, got str"),
    (docs.GroupName, "Dispatch|Phones", {}, "'id' is missing"),
    (docs.MailboxId, "fleet@contoso.example", {"id": None}, "'id' must be a string, got null"),
    (docs.FolderSource, "Suppliers|shared", {"mailbox": "u7"}, "'folder' is missing"),
    (docs.Foreign, "Dispatch|u1", {"checked_at": "t", "purpose": None, "contacts": [{"displayName": "Maman"}]},
     "'contacts' item 0 must be an object with a string 'id'"),
    (docs.Subscription, "7f3c0b1e-sub", {"resource": "users", "profiles": "Dispatch"},
     "'profiles' must be a list of strings"),
    (docs.Poison, "2026|sync-source|m", {"queue": "sync-source", "dequeue_count": True},
     "'dequeue_count' must be an integer, got bool"),
    (docs.QueueFailure, "9c", {"queue": "push-targets", "tries": 1.5}, "'tries' must be an integer, got float"),
    (docs.ReconcileRun, "Dispatch", {"run_id": "r8", "started_at": "t", "groups": 2, "done": ["0"]},
     "'done' must be a list of integers, got list"),
    (docs.ReconcileRun, "Office", {"run_id": "r8", "started_at": "t", "groups": 2, "drift": {"intact": "7"}},
     "'drift' must be an object of integer counts, got dict"),
    (docs.Notified, "Dispatch", {"arrived_at": None}, "'arrived_at' must be a string, got null"),
    (docs.Propagation, "Dispatch", {"runs": {"r1": {"notified_at": "t", "left": ["0"]}}},
     "'runs' item 'r1': 'left' must be a list of integers"),
    (docs.PropagationSamples, "Dispatch|12", {"hour": "2026-03-01T12", "samples": [[5]]},
     "'samples' must be a list of [second, milliseconds] pairs of integers"),
]


@pytest.mark.parametrize(("kind", "key", "stored", "problem"), MALFORMED, ids=[k.__name__ for k, *_ in MALFORMED])
def test_a_malformed_document_is_refused_naming_its_kind_key_and_field(
    store: Any, kind: type[Any], key: str, stored: dict[str, Any], problem: str
) -> None:
    store.put_doc(kind.KIND, key, stored)
    with pytest.raises(docs.DocumentError) as read_one:
        docs.read(store, kind, key)
    with pytest.raises(docs.DocumentError) as read_every:
        docs.read_all(store, kind)
    for error in (read_one.value, read_every.value):
        assert f"stored {kind.KIND} document {key!r} is malformed: " in str(error)
        assert problem in str(error)
        assert isinstance(error, StateError)  # callers that handle a failing store handle this too


def test_keys_join_their_parts_as_the_stored_documents_always_did() -> None:
    assert docs.prev_key("Dispatch", "user:a") == "Dispatch|user:a"
    assert docs.members_key("Dispatch", "Phones", 2) == "Dispatch|Phones|2"
    assert docs.group_name_key("Dispatch", "All Staff") == "Dispatch|All Staff"
    assert docs.mailbox_id_key("Fleet@Contoso.example") == "fleet@contoso.example"
    assert docs.folder_source_key("Suppliers", "shared") == "Suppliers|shared"
    assert docs.foreign_key("Dispatch", "u1") == "Dispatch|u1"
    assert docs.foreign_mailbox(docs.foreign_key("Dispatch", "u1")) == "u1"
    assert docs.poison_key("2026-03-01T12:00:00Z", "sync-source", "m1") == "2026-03-01T12:00:00Z|sync-source|m1"
    assert docs.poison_recorded_at(docs.poison_key("2026-03-01T12:00:00Z", "sync-source", "m1")) == \
        "2026-03-01T12:00:00Z"


def test_a_previous_version_becomes_the_source_record_a_push_diffs_against() -> None:
    prev = docs.Prev("f" * 32, {"displayName": "Ana"})
    assert prev.record("user:a") == SourceRecord("user:a", "f" * 32, {"displayName": "Ana"})

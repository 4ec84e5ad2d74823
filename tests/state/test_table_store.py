"""Table Storage specifics, against Azurite: transaction sizes, request counts, key forms, failures.

Counts are HTTP requests seen by an azure-core response hook on the store's own client, so they are exact.
"""

from __future__ import annotations

import pytest
from azure.data.tables import TableServiceClient

from sync_core.core.records import SourceRecord, TargetRecord
from sync_core.state import StateError, StateValueError
from sync_core.state.table_store import TABLES, TableStore, check_prefix
from tests.azurite import Azurite
from tests.state.conftest import StorageRequests, fresh_prefix, table_service

pytestmark = pytest.mark.azurite


def record(key: str, n: int = 0) -> TargetRecord:
    return TargetRecord(mailbox="mbx", source_key=key, contact_id=f"c{n}", fingerprint=f"fp{n}",
                        change_key=f"ck{n}", written_at="2026-11-20T10:00:00Z")


def test_250_target_records_are_written_and_deleted_in_three_transactions(
        table_store: TableStore, storage_requests: StorageRequests) -> None:
    keys = [f"user:{n:03d}" for n in range(250)]

    table_store.put_target_records("Company", "mbx", [record(k, n) for n, k in enumerate(keys)])
    assert storage_requests.batches() == 3
    storage_requests.clear()

    table_store.delete_target_records("Company", "mbx", keys)
    assert storage_requests.batches() == 3
    assert table_store.get_target_records("Company", "mbx") == {}


def test_large_payloads_are_split_to_stay_under_the_4_mib_body_limit(
        table_store: TableStore, storage_requests: StorageRequests) -> None:
    # 10,000 CJK characters are ~60 KB once JSON-escaped on the wire: 100 of them make a 6 MB body,
    # which Azurite (like Azure) refuses in one transaction.
    records = [SourceRecord(f"user:{n}", "fp", {"personalNotes": "漢" * 10_000}) for n in range(100)]

    table_store.put_source_records("Company", records)

    assert storage_requests.batches() == 2
    assert table_store.get_source_records("Company") == {r.source_key: r for r in records}


def test_deleting_missing_entities_resubmits_the_rest(
        table_store: TableStore, storage_requests: StorageRequests) -> None:
    table_store.put_target_records("Company", "mbx", [record("user:1"), record("user:2"), record("user:3")])
    storage_requests.clear()

    table_store.delete_target_records("Company", "mbx", ["user:1", "user:gone", "user:2", "user:lost"])

    assert storage_requests.batches() == 3  # fails on user:gone, then on user:lost, then succeeds
    assert list(table_store.get_target_records("Company", "mbx")) == ["user:3"]


def test_reading_some_source_records_sends_filtered_queries_not_a_scan(
        table_store: TableStore, storage_requests: StorageRequests) -> None:
    table_store.put_source_records("Company", [SourceRecord(f"user:{n}", "fp", {}) for n in range(200)])
    storage_requests.clear()

    found = table_store.get_source_records("Company", keys=[f"user:{n}" for n in range(30)])

    assert len(found) == 30
    assert storage_requests.queries() == 3  # 14 + 14 + 2 keys: Table allows 15 comparisons per filter


def test_long_keys_are_stored_as_digests_and_read_back_whole(
        azurite: Azurite, table_store: TableStore) -> None:
    key = "user:" + "/" * 600
    table_store.put_source_records("Company", [SourceRecord(key, "fp", {"a": 1})])

    with table_service(azurite) as service:
        stored = list(service.get_table_client(table_store.prefix + "sources").list_entities())
    assert len(stored) == 1
    assert stored[0]["RowKey"].startswith("~~") and len(stored[0]["RowKey"]) <= 512
    assert table_store.get_source_records("Company") == {key: SourceRecord(key, "fp", {"a": 1})}


def test_tables_are_created_with_the_prefix_and_reused(azurite: Azurite) -> None:
    prefix = fresh_prefix()
    with table_service(azurite) as service:
        TableStore(service, prefix).put_source_records("Company", [SourceRecord("user:1", "fp", {})])
        reopened = TableStore(service, prefix)
        names = {t.name for t in service.list_tables()}
        assert {prefix + t for t in TABLES} <= names
        assert list(reopened.get_source_records("Company")) == ["user:1"]
        for t in TABLES:
            service.delete_table(prefix + t)


@pytest.mark.parametrize("prefix", ["", "9lives", "with-dash", "x" * 51])
def test_a_prefix_that_makes_bad_table_names_is_refused_by_setting_name(prefix: str) -> None:
    with pytest.raises(StateValueError, match="GALSYNC_TABLE_PREFIX"):
        check_prefix(prefix)


def test_unreachable_storage_is_a_clear_state_error() -> None:
    dead = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    service = TableServiceClient.from_connection_string(dead, retry_total=0)

    with pytest.raises(StateError, match="unreachable during creating table"):
        TableStore(service, fresh_prefix())


def test_a_pending_flag_written_before_flags_had_an_age_counts_as_stale(azurite: Azurite) -> None:
    prefix = fresh_prefix()
    with TableStore(table_service(azurite), prefix, clock=lambda: 1_800_000_000.0) as store:
        with table_service(azurite) as service:  # the flag as galsync wrote it before it kept raised_at
            service.get_table_client(prefix + "leases").upsert_entity({"PartitionKey": "pending",
                                                                       "RowKey": "sync:Company"})
        assert store.pending_age("sync:Company") == 1_800_000_000.0  # raised "at the epoch": long ago
        assert store.restart_pending("sync:Company", 60) is True
        assert store.pending_age("sync:Company") == 0
        with table_service(azurite) as service:
            for name in TABLES:
                service.delete_table(prefix + name)

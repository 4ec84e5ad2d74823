"""The Azure state store: Azure Table Storage through azure-data-tables (Azurite locally).

Layout (every table name starts with the configured prefix):

| table           | PartitionKey          | RowKey                      |
|-----------------|-----------------------|-----------------------------|
| `deltalinks`    | profile               | source                      |
| `sources`       | profile               | source key                  |
| `targetrecords` | profile `|` mailbox   | source key                  |
| `targets`       | profile               | mailbox                     |
| `leases`        | `lease` or `pending`  | lease name                  |
| `runs`          | profile, and `~all`   | inverted start time `|` run |
| `docs`          | kind                  | key                         |

Keys go through `keys.table_key`; key columns are also kept as escaped properties so they read back exactly
even when the RowKey is a digest. One target's records share a partition, so they are written with entity
group transactions, split at 100 operations and under the 4 MiB body limit (Azurite and Azure refuse more).
Lease and document races are settled by the service: insert conflicts (409) and ETag conditions (412).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from itertools import groupby, islice
from typing import Any, ParamSpec, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableServiceClient, TableTransactionError, UpdateMode

from sync_core.core.records import Run, SourceRecord, Target, TargetRecord
from sync_core.state import rows
from sync_core.state.base import (
    DEFAULT_CLOCK,
    Clock,
    ConcurrencyError,
    Lease,
    StateError,
    StateStore,
    StateValueError,
)
from sync_core.state.keys import check as check_key
from sync_core.state.keys import check_each, escape, table_key, unescape
from sync_core.state.payload import from_json

log = logging.getLogger("galsync.state.table")

TABLES = ("deltalinks", "sources", "targetrecords", "targets", "leases", "runs", "docs")
MAX_BATCH_OPERATIONS = 100
MAX_BATCH_BYTES = 4 * 1024 * 1024 - 512 * 1024  # the service limit is 4 MiB; keep room for multipart framing
OPERATION_OVERHEAD_BYTES = 1024  # headers and URL of one operation inside the batch body
MAX_FILTER_KEYS = 14  # Table allows 15 comparisons in one $filter; one is the PartitionKey
SCAN_ABOVE_KEYS = 1500  # more wanted keys than this: one partition scan beats 100+ filtered queries
RACE_ATTEMPTS = 8  # re-reads after losing an ETag race before a lease call gives up (returns False)

LEASE_PARTITION = "lease"
PENDING_PARTITION = "pending"
ALL_RUNS_PARTITION = "~all"  # `~` followed by non-hex: a form table_key never produces

_ESCAPED_COLUMNS = frozenset({"source_key", "mailbox", "key", "profile", "run_id"})
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_PREFIX_MAX = 63 - max(len(t) for t in TABLES)

P = ParamSpec("P")
R = TypeVar("R")


def _storage_call(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the SDK's errors into StateError naming the operation, status, error code and request id."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AzureError as error:
            raise _state_error(fn.__name__, error) from error

    return call


def _state_error(operation: str, error: AzureError) -> StateError:
    if isinstance(error, HttpResponseError):
        headers = getattr(error.response, "headers", None) or {}
        code = getattr(error, "error_code", None) or ""
        return StateError(
            f"Table Storage refused {operation}: HTTP {error.status_code} {code} "
            f"(request id {headers.get('x-ms-request-id') or 'unknown'})"
        )
    return StateError(f"Table Storage unreachable during {operation}: {error.__class__.__name__}")


def check_prefix(prefix: str) -> str:
    """The prefix must leave valid table names (letters and digits, starting with a letter, at most 63)."""
    if not _PREFIX.fullmatch(prefix) or len(prefix) > _PREFIX_MAX:
        raise StateValueError(
            f"GALSYNC_TABLE_PREFIX is {prefix!r}; expected letters and digits, starting with a letter, "
            f"at most {_PREFIX_MAX} characters"
        )
    return prefix


class TableStore(StateStore):
    """State in Azure Table Storage; threads may share one instance (the SDK clients are thread-safe)."""

    def __init__(self, service: TableServiceClient, prefix: str, *, clock: Clock = DEFAULT_CLOCK) -> None:
        self.prefix = check_prefix(prefix)
        self._service = service
        self._clock = clock
        self._tables: dict[str, TableClient] = {}
        for name in TABLES:
            try:
                self._tables[name] = service.create_table_if_not_exists(prefix + name)
            except AzureError as error:
                raise _state_error(f"creating table {prefix + name}", error) from error

    @_storage_call
    def clear(self) -> None:
        """Delete every entity, a partition at a time (deleting the tables would block their re-creation for
        a while in Azure)."""
        for name in TABLES:
            keys = self._query(name, "PartitionKey ne @none", {"none": ""}, select=["PartitionKey", "RowKey"])
            for pk, entities in groupby(keys, key=lambda e: str(e["PartitionKey"])):
                self._submit(name, (("delete", {"PartitionKey": pk, "RowKey": e["RowKey"]}) for e in entities))
        log.info("emptied the state tables of prefix %s", self.prefix)

    def close(self) -> None:
        for table in self._tables.values():
            table.close()
        self._service.close()

    # --- entity helpers

    def _get(self, table: str, pk: str, rk: str) -> TableEntity | None:
        try:
            return self._tables[table].get_entity(pk, rk)
        except ResourceNotFoundError:
            return None

    def _query(self, table: str, query_filter: str, parameters: dict[str, Any],
               select: list[str] | None = None) -> Iterator[TableEntity]:
        """Entities matching the filter, page by page. In filters, spaces keep @tokens apart from `(`."""
        pages = self._tables[table].query_entities(query_filter, parameters=parameters, select=select)
        try:
            yield from pages
        except AzureError as error:
            raise _state_error(f"query of {self.prefix + table}", error) from error

    def _partition(self, table: str, pk: str) -> Iterator[TableEntity]:
        return self._query(table, "PartitionKey eq @pk", {"pk": pk})

    def _submit(self, table: str, operations: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Run operations on ONE partition as transactions of <= 100 operations and < 4 MiB each.

        A key repeated in `operations` keeps its last operation (a batch may not name an entity twice).
        Deleting an entity that is already gone is not an error: that operation is dropped and the rest
        of its transaction is resubmitted.
        """
        batch: dict[str, tuple[str, dict[str, Any]]] = {}
        size = 0
        for op, entity in operations:
            cost = len(json.dumps(entity, default=str)) + OPERATION_OVERHEAD_BYTES
            if batch and (len(batch) >= MAX_BATCH_OPERATIONS or size + cost > MAX_BATCH_BYTES) \
                    and entity["RowKey"] not in batch:
                self._transact(table, list(batch.values()))
                batch, size = {}, 0
            batch[entity["RowKey"]] = (op, entity)
            size += cost
        if batch:
            self._transact(table, list(batch.values()))

    def _transact(self, table: str, operations: list[tuple[str, dict[str, Any]]]) -> None:
        while operations:
            try:
                self._tables[table].submit_transaction(operations)
                log.debug("table %s: transaction of %d operations", self.prefix + table, len(operations))
                return
            except TableTransactionError as error:
                failed = operations[error.index] if 0 <= error.index < len(operations) else None
                if error.status_code == 404 and failed is not None and failed[0] == "delete":
                    operations = operations[: error.index] + operations[error.index + 1:]
                    continue
                raise

    # --- delta links

    @_storage_call
    def get_delta_link(self, profile: str, source: str) -> str | None:
        entity = self._get("deltalinks", table_key(check_key("profile", profile)),
                           table_key(check_key("source", source)))
        return self.checked_link(profile, source, None if entity is None else entity["link"])

    @_storage_call
    def set_delta_link(self, profile: str, source: str, link: str | None) -> None:
        pk, rk = table_key(check_key("profile", profile)), table_key(check_key("source", source))
        if link is None:
            self._tables["deltalinks"].delete_entity(pk, rk)
        else:
            link = rows.text(f"delta link of {profile}/{source}", link)
            self._tables["deltalinks"].upsert_entity({"PartitionKey": pk, "RowKey": rk, "link": link},
                                                     mode=UpdateMode.REPLACE)

    # --- source records

    def iter_source_records(self, profile: str, after: str | None = None) -> Iterator[SourceRecord]:
        pk = table_key(check_key("profile", profile))
        for entity in self._range("sources", pk, after, None):
            yield rows.source_record(_row(entity))

    @_storage_call
    def get_source_records(self, profile: str, keys: Iterable[str] | None = None) -> dict[str, SourceRecord]:
        if keys is None:
            return {r.source_key: r for r in self.iter_source_records(profile)}
        pk = table_key(check_key("profile", profile))
        wanted = dict.fromkeys(check_each("source key", keys))
        if len(wanted) > SCAN_ABOVE_KEYS:
            return {r.source_key: r for r in self.iter_source_records(profile) if r.source_key in wanted}
        found = (rows.source_record(_row(e)) for e in self._by_row_keys("sources", pk, wanted))
        return {r.source_key: r for r in found}

    @_storage_call
    def put_source_records(self, profile: str, records: Iterable[SourceRecord]) -> None:
        pk = table_key(check_key("profile", profile))
        self._submit("sources", (("upsert", _entity(pk, table_key(row["source_key"]), row))
                                 for row in map(rows.source_row, records)))

    @_storage_call
    def delete_source_records(self, profile: str, keys: Iterable[str]) -> None:
        pk = table_key(check_key("profile", profile))
        self._submit("sources", (("delete", {"PartitionKey": pk, "RowKey": table_key(k)})
                                 for k in check_each("source key", keys)))

    # --- target records

    def _records_partition(self, profile: str, mailbox: str) -> str:
        return table_key(check_key("profile", profile), check_key("target mailbox", mailbox))

    @_storage_call
    def get_target_records(self, profile: str, mailbox: str, keys: Iterable[str] | None = None
                           ) -> dict[str, TargetRecord]:
        pk = self._records_partition(profile, mailbox)
        wanted = None if keys is None else dict.fromkeys(check_each("source key", keys))
        if wanted is None or len(wanted) > SCAN_ABOVE_KEYS:
            found = (rows.target_record(_row(e)) for e in self._partition("targetrecords", pk))
            return {r.source_key: r for r in found if wanted is None or r.source_key in wanted}
        records = (rows.target_record(_row(e)) for e in self._by_row_keys("targetrecords", pk, wanted))
        return {r.source_key: r for r in records}

    def iter_target_records(self, profile: str, mailbox: str, after: str | None = None, upto: str | None = None
                            ) -> Iterator[TargetRecord]:
        for entity in self._range("targetrecords", self._records_partition(profile, mailbox), after, upto):
            yield rows.target_record(_row(entity))

    def _range(self, table: str, pk: str, after: str | None, upto: str | None) -> Iterator[TableEntity]:
        """A partition's entities in RowKey order (the Table service's), after `after` and up to `upto`."""
        query, params = "PartitionKey eq @pk", {"pk": pk}
        if after is not None:
            query, params["after"] = query + " and RowKey gt @after", table_key(check_key("source key", after))
        if upto is not None:
            query, params["upto"] = query + " and RowKey le @upto", table_key(check_key("source key", upto))
        return self._query(table, query, params)

    def _by_row_keys(self, table: str, pk: str, keys: Iterable[str]) -> Iterator[Any]:
        """Entities of one partition by source key, MAX_FILTER_KEYS point look-ups per query."""
        it = iter(keys)
        while chunk := list(islice(it, MAX_FILTER_KEYS)):
            params = {"pk": pk, **{f"k{i}": table_key(k) for i, k in enumerate(chunk)}}
            either = " or ".join(f"RowKey eq @k{i}" for i in range(len(chunk)))
            yield from self._query(table, f"PartitionKey eq @pk and ( {either} )", params)

    @_storage_call
    def put_target_records(self, profile: str, mailbox: str, records: Iterable[TargetRecord]) -> None:
        pk = self._records_partition(profile, mailbox)
        checked = [rows.target_record_row(mailbox, r) for r in records]  # all checked before any write
        self._submit("targetrecords",
                     [("upsert", _entity(pk, table_key(row["source_key"]), row)) for row in checked])

    @_storage_call
    def delete_target_records(self, profile: str, mailbox: str, source_keys: Iterable[str]) -> None:
        pk = self._records_partition(profile, mailbox)
        self._submit("targetrecords", (("delete", {"PartitionKey": pk, "RowKey": table_key(k)})
                                       for k in check_each("source key", source_keys)))

    # --- targets

    @_storage_call
    def get_targets(self, profile: str) -> dict[str, Target]:
        pk = table_key(check_key("profile", profile))
        return {t.mailbox: t for t in (rows.target(_row(e)) for e in self._partition("targets", pk))}

    @_storage_call
    def put_target(self, profile: str, target: Target) -> None:
        row = rows.target_row(target)
        entity = _entity(table_key(check_key("profile", profile)), table_key(row["mailbox"]), row)
        self._tables["targets"].upsert_entity(entity, mode=UpdateMode.REPLACE)

    @_storage_call
    def delete_target(self, profile: str, mailbox: str) -> None:
        self._tables["targets"].delete_entity(table_key(check_key("profile", profile)),
                                              table_key(check_key("target mailbox", mailbox)))

    # --- leases and the pending flag

    @_storage_call
    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        rk = table_key(check_key("lease name", name))
        check_key("lease owner", owner)
        ttl = rows.check_ttl(ttl_seconds)
        leases = self._tables["leases"]
        for _ in range(RACE_ATTEMPTS):
            now = self._clock()
            held = self._get("leases", LEASE_PARTITION, rk)
            mine = {"PartitionKey": LEASE_PARTITION, "RowKey": rk, "name": escape(name), "owner": owner,
                    "expires_at": now + ttl}
            try:
                if held is None:
                    leases.create_entity(mine)
                    return True
                if held["owner"] != owner and held["expires_at"] > now:
                    return False
                leases.update_entity(mine, mode=UpdateMode.REPLACE, etag=held.metadata["etag"],
                                     match_condition=MatchConditions.IfNotModified)
                return True
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue  # another acquirer or releaser moved first: look again
        log.warning("lease %s: gave up after %d lost races", rk, RACE_ATTEMPTS)
        return False

    @_storage_call
    def release_lease(self, name: str, owner: str) -> None:
        rk = table_key(check_key("lease name", name))
        check_key("lease owner", owner)
        held = self._get("leases", LEASE_PARTITION, rk)
        if held is None or held["owner"] != owner:
            return
        with suppress(ResourceModifiedError):  # it expired and another owner took it meanwhile: not ours
            self._tables["leases"].delete_entity(LEASE_PARTITION, rk, etag=held.metadata["etag"],
                                                 match_condition=MatchConditions.IfNotModified)

    @_storage_call
    def get_lease(self, name: str) -> Lease | None:
        held = self._get("leases", LEASE_PARTITION, table_key(check_key("lease name", name)))
        return None if held is None or held["expires_at"] <= self._clock() else Lease(name, held["owner"],
                                                                                      held["expires_at"])

    @_storage_call
    def list_leases(self) -> list[Lease]:
        now = self._clock()
        held = [_lease(e) for e in self._partition("leases", LEASE_PARTITION) if e["expires_at"] > now]
        return sorted(held, key=lambda lease: lease.name)

    @_storage_call
    def mark_pending(self, name: str) -> None:
        rk = table_key(check_key("lease name", name))
        with suppress(ResourceExistsError):  # already raised: it keeps the time it was raised
            self._tables["leases"].create_entity({"PartitionKey": PENDING_PARTITION, "RowKey": rk,
                                                  "raised_at": self._clock()})

    @_storage_call
    def take_pending(self, name: str) -> bool:
        rk = table_key(check_key("lease name", name))
        for _ in range(RACE_ATTEMPTS):
            flag = self._get("leases", PENDING_PARTITION, rk)
            if flag is None:
                return False
            # A one-operation transaction, because delete_entity hides 404 and we must know who took it.
            delete = ("delete", {"PartitionKey": PENDING_PARTITION, "RowKey": rk},
                      {"etag": flag.metadata["etag"], "match_condition": MatchConditions.IfNotModified})
            try:
                self._tables["leases"].submit_transaction([delete])
                return True
            except TableTransactionError as error:
                if error.status_code == 404:
                    return False  # another taker cleared it
                if error.status_code != 412:
                    raise
                # taken and raised again since we read it: read the new ETag and take the new flag
        raise StateError(f"pending flag {rk} kept changing during {RACE_ATTEMPTS} attempts to take it")

    @_storage_call
    def restart_pending(self, name: str, min_age: float) -> bool:
        rk = table_key(check_key("lease name", name))
        for _ in range(RACE_ATTEMPTS):
            flag = self._get("leases", PENDING_PARTITION, rk)
            now = self._clock()
            if flag is None or rows.flag_age(now, flag.get("raised_at")) < min_age:
                return False
            try:
                self._tables["leases"].update_entity(
                    {"PartitionKey": PENDING_PARTITION, "RowKey": rk, "raised_at": now}, mode=UpdateMode.REPLACE,
                    etag=flag.metadata["etag"], match_condition=MatchConditions.IfNotModified)
                return True
            except ResourceModifiedError:
                continue  # taken and raised again, or restarted by another caller: look again
            except ResourceNotFoundError:
                return False  # taken meanwhile
        raise StateError(f"pending flag {rk} kept changing during {RACE_ATTEMPTS} attempts to restart it")

    @_storage_call
    def pending_age(self, name: str) -> float | None:
        flag = self._get("leases", PENDING_PARTITION, table_key(check_key("lease name", name)))
        return None if flag is None else rows.flag_age(self._clock(), flag.get("raised_at"))

    # --- run history

    @_storage_call
    def record_run(self, run: Run) -> None:
        row = rows.run_row(run)
        for pk in (table_key(row["profile"]), ALL_RUNS_PARTITION):
            self._tables["runs"].upsert_entity(_entity(pk, row["order_key"], row), mode=UpdateMode.REPLACE)

    @_storage_call
    def recent_runs(self, profile: str | None = None, limit: int = 20) -> list[Run]:
        rows.check_limit(limit)
        if limit == 0:
            return []
        pk = ALL_RUNS_PARTITION if profile is None else table_key(check_key("profile", profile))
        pages = self._tables["runs"].query_entities("PartitionKey eq @pk", parameters={"pk": pk},
                                                   results_per_page=min(limit, 1000))
        return [rows.run(_row(e)) for e in islice(pages, limit)]

    # --- documents

    @_storage_call
    def put_doc(self, kind: str, key: str, data: dict[str, Any], etag: str | None = None) -> str:
        pk, rk = table_key(check_key("document kind", kind)), table_key(check_key("document key", key))
        entity = _entity(pk, rk, {"key": key, "data": rows.doc_data(f"document {kind}/{key}", data)})
        docs = self._tables["docs"]
        if etag is None:
            written = docs.upsert_entity(entity, mode=UpdateMode.REPLACE)
        else:
            try:
                written = docs.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                             match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConcurrencyError(
                    f"document {kind}/{key} changed or was deleted since it was read") from None
        return str(written["etag"])

    @_storage_call
    def get_doc(self, kind: str, key: str) -> tuple[dict[str, Any], str] | None:
        entity = self._get("docs", table_key(check_key("document kind", kind)),
                           table_key(check_key("document key", key)))
        if entity is None:
            return None
        return from_json(f"document {kind}/{key}", entity["data"]), str(entity.metadata["etag"])

    @_storage_call
    def list_docs(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        found = [_row(e) for e in self._partition("docs", table_key(check_key("document kind", kind)))]
        docs = [(r["key"], from_json(f"document {kind}/{r['key']}", r["data"])) for r in found]
        return sorted(docs, key=lambda doc: doc[0])

    @_storage_call
    def delete_doc(self, kind: str, key: str) -> None:
        self._tables["docs"].delete_entity(table_key(check_key("document kind", kind)),
                                           table_key(check_key("document key", key)))


def _entity(pk: str, rk: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as an entity: key columns escaped (Table properties then never hold control characters)."""
    entity = {"PartitionKey": pk, "RowKey": rk}
    for name, value in row.items():
        entity[name] = escape(value) if name in _ESCAPED_COLUMNS else value
    return entity


def _lease(entity: Mapping[str, Any]) -> Lease:
    """A lease entity as a Lease; one written before leases kept their name is named by its RowKey."""
    name = entity.get("name")
    return Lease(unescape(name) if isinstance(name, str) else str(entity["RowKey"]), str(entity["owner"]),
                 float(entity["expires_at"]))


def _row(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {name: unescape(value) if name in _ESCAPED_COLUMNS else value for name, value in entity.items()}

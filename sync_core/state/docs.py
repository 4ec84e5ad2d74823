"""The documents galsync keeps in the state store (`put_doc`, `get_doc`), one typed class per kind.

A document is a small JSON object stored under a kind and a key. Each kind has its name here as a constant,
a frozen dataclass with `to_json` (what is stored) and `from_json` (what is read back, checked), and a
helper that builds its key, so no caller spells a kind, a key layout or a field name by hand. The JSON is
the shape galsync has always stored: documents written before these classes existed read back as they are.

`read`, `read_all`, `write` and `delete` move documents in and out of a store. A stored document that does
not have its kind's shape raises DocumentError naming the kind and the key (I8): a damaged outbox must stop
a run loudly, never be taken for "nothing left to push".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypeVar

from sync_core.core.records import SourceRecord
from sync_core.state.base import ConcurrencyError, StateError, StateStore

OUTBOX = "outbox"
PREV = "prev"
PROFILE_STATE = "profile-state"
DELTA_TIMES = "delta-times"
GROUP_WATCH = "group-watch"
MEMBERS = "members"
GROUP_NAMES = "group-names"
MAILBOX_IDS = "mailbox-ids"
FOLDER_SOURCE = "folder-source"
FOREIGN = "foreign"
FAILING_TARGET = "failing-target"
SUBSCRIPTION = "subscription"
POISON = "poison"
QUEUE_FAILURE = "queue-failure"
STATE_IDENTITY = "state-identity"
MOVE = "move"
RECONCILE_RUN = "reconcile-run"
NOTIFIED = "notified"
PROPAGATION = "propagation"
PROPAGATION_SAMPLES = "propagation-samples"

_JOIN = "|"  # between the parts of a composite document key ("profile|mailbox")


class DocumentError(StateError):
    """A stored document does not have the shape of its kind; the message names the kind and the key."""


class ShapeError(ValueError):
    """Raised by `from_json` for data that is not a document of its kind; the message names the field."""


class Document(Protocol):
    KIND: ClassVar[str]

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self: ...


D = TypeVar("D", bound=Document)


def read(store: StateStore, kind: type[D], key: str) -> D | None:
    """The document of `kind` stored under `key`, or None if there is none."""
    found = store.get_doc(kind.KIND, key)
    return None if found is None else _parse(kind, key, found[0])


def read_all(store: StateStore, kind: type[D], *,
             on_damaged: Callable[[str, DocumentError], None] | None = None) -> list[tuple[str, D]]:
    """Every document of `kind` as (key, document), ordered by key.

    With `on_damaged`, a document that cannot be read is handed to it and left out instead of raising: for
    the callers that must go on with the others (a listing the admin uses to find and delete that one).
    """
    out: list[tuple[str, D]] = []
    for key, data in store.list_docs(kind.KIND):
        try:
            out.append((key, _parse(kind, key, data)))
        except DocumentError as error:
            if on_damaged is None:
                raise
            on_damaged(key, error)
    return out


def read_versioned(store: StateStore, kind: type[D], key: str) -> tuple[D, str] | None:
    """The document of `kind` under `key` with its ETag (for a `write` that must not overwrite another's), or
    None if there is none."""
    found = store.get_doc(kind.KIND, key)
    return None if found is None else (_parse(kind, key, found[0]), found[1])


def write(store: StateStore, key: str, doc: Document, etag: str | None = None) -> None:
    """Store `doc` under `key`, replacing what was there; with `etag`, only if the stored document still has
    it (else ConcurrencyError: read it again and redo the change)."""
    store.put_doc(doc.KIND, key, doc.to_json(), etag)


def update(store: StateStore, kind: type[D], key: str, change: Callable[[D | None], D | None], *,
           tries: int) -> D | None:
    """Apply `change` to the stored document (None: there is none) under its ETag, again after another
    worker's write, at most `tries` times; the document as it stands after: the one written, or the stored one
    when `change` returns None (no write). A missing document is written unconditionally."""
    for _ in range(tries):
        found = read_versioned(store, kind, key)
        current = None if found is None else found[0]
        updated = change(current)
        if updated is None:
            return current
        try:
            write(store, key, updated, None if found is None else found[1])
            return updated
        except ConcurrencyError:
            continue
    raise ConcurrencyError(f"{kind.KIND} document {key!r} changed {tries} times while being updated")


def delete(store: StateStore, kind: type[Document], key: str) -> None:
    """Forget the document of `kind` under `key`; a missing one is ignored."""
    store.delete_doc(kind.KIND, key)


def _parse(kind: type[D], key: str, data: Mapping[str, Any]) -> D:
    try:
        return kind.from_json(data)
    except ShapeError as error:
        raise DocumentError(f"stored {kind.KIND} document {key!r} is malformed: {error}") from None


# --- keys ------------------------------------------------------------------------------------------------------


def prev_key(profile: str, source_key: str) -> str:
    return _JOIN.join((profile, source_key))


def members_key(profile: str, group_ref: str, chunk: int) -> str:
    return _JOIN.join((profile, group_ref, str(chunk)))


def group_name_key(profile: str, group_ref: str) -> str:
    return _JOIN.join((profile, group_ref))


def mailbox_id_key(mailbox_ref: str) -> str:
    """Mailbox addresses are looked up once for every profile, whatever their case."""
    return mailbox_ref.lower()


def folder_source_key(profile: str, source: str) -> str:
    return _JOIN.join((profile, source))


def state_identity_key() -> str:
    """The key of the store's one state-identity document."""
    return "store"


def foreign_key(profile: str, mailbox: str) -> str:
    return _JOIN.join((profile, mailbox))


def move_key(profile: str, mailbox: str) -> str:
    return _JOIN.join((profile, mailbox))


def propagation_samples_key(profile: str, hour: str) -> str:
    """One document per profile and hour of the day ("00" to "23"): a ring of 24 that never needs pruning."""
    return _JOIN.join((profile, hour))


def foreign_mailbox(key: str) -> str:
    """The mailbox id of a `foreign` document's key."""
    return key.partition(_JOIN)[2]


def foreign_profile(key: str) -> str:
    """The profile of a `foreign` document's key."""
    return key.partition(_JOIN)[0]


def failing_target_key(profile: str, target: str) -> str:
    """`target`: the mailbox's user id, or the configured address when no user has it."""
    return _JOIN.join((profile, target))


def poison_key(recorded_at: str, queue: str, message_ref: str) -> str:
    """Time first, so that the poison records list oldest first."""
    return _JOIN.join((recorded_at, queue, message_ref))


def poison_recorded_at(key: str) -> str:
    """When a poison record was made, from its key (for a record whose body cannot be read)."""
    return key.partition(_JOIN)[0]


# --- the kinds --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outbox:
    """What a sync still has to push (key: profile): written before its first source record changes, removed
    once its fan-out is done, so a crash anywhere in between replays the pushes on the next run."""

    KIND: ClassVar[str] = OUTBOX

    run_id: str
    keys: tuple[str, ...] | None  # changed source keys; None: push every key
    fill: tuple[str, ...] = ()  # mailboxes to give every contact
    remove: tuple[str, ...] = ()  # mailboxes that left the targets
    notified_at: str | None = None  # the first change notification these pushes serve arrived then

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.run_id, "keys": None if self.keys is None else list(self.keys),
                               "fill": list(self.fill), "remove": list(self.remove)}
        if self.notified_at is not None:
            out["notified_at"] = self.notified_at
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "run_id", ""), _optional_texts(data, "keys"), _texts(data, "fill"),
                   _texts(data, "remove"), _optional_text(data, "notified_at"))


@dataclass(frozen=True)
class Prev:
    """A changed source contact's previous version (key: `prev_key`), so a push sends only changed fields."""

    KIND: ClassVar[str] = PREV

    fingerprint: str
    payload: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "payload": dict(self.payload)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "fingerprint"), _object(data, "payload"))

    def record(self, source_key: str) -> SourceRecord:
        return SourceRecord(source_key, self.fingerprint, self.payload)


@dataclass(frozen=True)
class ProfileState:
    """The profile's fingerprint when it last synced (key: profile); another one means a full re-read."""

    KIND: ClassVar[str] = PROFILE_STATE

    config: str | None

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_optional_text(data, "config"))


@dataclass(frozen=True)
class StateIdentity:
    """The tenant and Graph endpoint the store was made for (key: `state_identity_key()`; state/identity.py)."""

    KIND: ClassVar[str] = STATE_IDENTITY

    tenant_id: str
    graph_endpoint: str

    def to_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "graph_endpoint": self.graph_endpoint}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "tenant_id", ""), _text(data, "graph_endpoint"))


@dataclass(frozen=True)
class DeltaTimes:
    """When each source's delta link was stored (key: profile): the doctor warns before a link expires."""

    KIND: ClassVar[str] = DELTA_TIMES

    times: Mapping[str, str]  # source name -> ISO time

    def to_json(self) -> dict[str, Any]:
        return dict(self.times)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        for name, value in data.items():
            if not isinstance(value, str):
                raise ShapeError(f"'{name}' must be a string, got {_type(value)}")
        return cls(dict(data))


@dataclass(frozen=True)
class GroupWatch:
    """The group ids the membership watch's delta link covers (key: profile)."""

    KIND: ClassVar[str] = GROUP_WATCH

    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"groups": list(self.groups)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_texts(data, "groups"))


@dataclass(frozen=True)
class Members:
    """One chunk of a group's transitive user members (key: `members_key`); chunk 0 says how many there are."""

    KIND: ClassVar[str] = MEMBERS

    ids: tuple[str, ...] = ()
    chunks: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "chunks": self.chunks}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_texts(data, "ids"), _integer(data, "chunks", 1))


@dataclass(frozen=True)
class GroupName:
    """The id of a group a profile names by display name (key: `group_name_key`)."""

    KIND: ClassVar[str] = GROUP_NAMES

    id: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "id"))


@dataclass(frozen=True)
class MailboxId:
    """The user id of a mailbox a profile names by address (key: `mailbox_id_key`)."""

    KIND: ClassVar[str] = MAILBOX_IDS

    id: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "id"))


@dataclass(frozen=True)
class FolderSource:
    """Where a folder source lives: its mailbox's user id and the folder's id (key: `folder_source_key`)."""

    KIND: ClassVar[str] = FOLDER_SOURCE

    mailbox: str
    folder: str

    def to_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "folder": self.folder}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "mailbox"), _text(data, "folder"))


@dataclass(frozen=True)
class Foreign:
    """Contacts galsync did not write, found by the last reconcile in one mailbox (key: `foreign_key`).

    Each contact is a JSON object with at least an "id"; "folder" says where it was ("managed", or
    "Contacts" for a shared mailbox's own folder), beside its name and times for the doctor and `explain`.
    """

    KIND: ClassVar[str] = FOREIGN

    checked_at: str
    purpose: str | None
    contacts: tuple[Mapping[str, Any], ...] = ()
    # With place = "default_folder": how many of the mailbox owner's own contacts share the folder. They are
    # counted, not listed (a mailbox may hold thousands); None where galsync writes into its own folder.
    owner_contacts: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checked_at": self.checked_at, "purpose": self.purpose,
                               "contacts": [dict(c) for c in self.contacts]}
        if self.owner_contacts is not None:
            out["owner_contacts"] = self.owner_contacts
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        contacts = data.get("contacts") or []
        if not isinstance(contacts, list):
            raise ShapeError(f"'contacts' must be a list, got {_type(contacts)}")
        for n, contact in enumerate(contacts):
            if not isinstance(contact, dict) or not isinstance(contact.get("id"), str):
                raise ShapeError(f"'contacts' item {n} must be an object with a string 'id'")
        owner = data.get("owner_contacts")
        if owner is not None and (not isinstance(owner, int) or isinstance(owner, bool) or owner < 0):
            raise ShapeError(f"'owner_contacts' must be a count or null, got {_type(owner)}")
        return cls(_text(data, "checked_at", ""), _optional_text(data, "purpose"), tuple(contacts), owner)


@dataclass(frozen=True)
class Move:
    """A target whose profile changed place (key: `move_key`): galsync's contacts are still to be removed from
    `old_folder` (a folder id, or records.DEFAULT_CONTACTS_FOLDER) once each has its copy in the new place."""

    KIND: ClassVar[str] = MOVE

    old_folder: str
    started_at: str

    def to_json(self) -> dict[str, Any]:
        return {"old_folder": self.old_folder, "started_at": self.started_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "old_folder"), _text(data, "started_at"))


@dataclass(frozen=True)
class ReconcileRun:
    """A profile's nightly reconcile on the function app (key: profile), its targets split into `groups` queue
    messages: which groups are done and what they found, summed, so the last group to finish records the run.
    Errors are kept to the first few (the run record shows five)."""

    KIND: ClassVar[str] = RECONCILE_RUN
    MAX_ERRORS: ClassVar[int] = 5

    run_id: str
    started_at: str
    groups: int
    done: tuple[int, ...] = ()
    targets: int = 0
    busy: int = 0
    drift: Mapping[str, int] = field(default_factory=dict)
    exec_counts: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    exec_errors: tuple[str, ...] = ()
    finished: bool = False

    @property
    def complete(self) -> bool:
        return len(self.done) >= self.groups

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at, "groups": self.groups, "done": list(self.done),
                "targets": self.targets, "busy": self.busy, "drift": dict(self.drift),
                "exec_counts": dict(self.exec_counts), "errors": list(self.errors),
                "exec_errors": list(self.exec_errors), "finished": self.finished}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        done = data.get("done") or []
        if not isinstance(done, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in done):
            raise ShapeError(f"'done' must be a list of integers, got {_type(done)}")
        finished = data.get("finished", False)
        if not isinstance(finished, bool):
            raise ShapeError(f"'finished' must be true or false, got {_type(finished)}")
        return cls(_text(data, "run_id"), _text(data, "started_at"), _integer(data, "groups", 0), tuple(done),
                   _integer(data, "targets", 0), _integer(data, "busy", 0), _counts(data, "drift"),
                   _counts(data, "exec_counts"), _texts(data, "errors"), _texts(data, "exec_errors"), finished)


@dataclass(frozen=True)
class FailingTarget:
    """A target mailbox that fails alone: since when, Graph's answer, what to do (key: `failing_target_key`).

    Written by whoever met the failure (the sync's target look-up, a push, reconcile), deleted once the
    target works again or is no longer a target.
    """

    KIND: ClassVar[str] = FAILING_TARGET

    profile: str
    key: str  # the mailbox's user id, or the configured address when no user has it
    address: str  # how people know the mailbox ("" when it could not be found out)
    stage: str  # where it failed: resolve | folder | write | reconcile | remove
    status: int  # Graph's HTTP status (0: galsync's own refusal, e.g. a foreign folder in the way)
    code: str
    hint: str
    since: str  # first failure of this streak (ISO 8601)
    last: str  # latest failure
    run_id: str  # the run (or push) that met the latest failure
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "key": self.key, "address": self.address, "stage": self.stage,
                "status": self.status, "code": self.code, "hint": self.hint, "since": self.since,
                "last": self.last, "run_id": self.run_id, "request_id": self.request_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "profile"), _text(data, "key"), _text(data, "address", ""), _text(data, "stage"),
                   _integer(data, "status", 0), _text(data, "code", ""), _text(data, "hint", ""),
                   _text(data, "since"), _text(data, "last", ""), _text(data, "run_id", ""),
                   _optional_text(data, "request_id"))


@dataclass(frozen=True)
class Subscription:
    """A Graph subscription galsync created (key: the subscription id). `client_state` is a secret."""

    KIND: ClassVar[str] = SUBSCRIPTION

    resource: str = ""
    change_type: str = ""
    client_state: str = field(default="", repr=False)  # never in a log or a traceback
    profiles: tuple[str, ...] = ()
    expiration: str | None = None
    created_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resource": self.resource, "change_type": self.change_type,
                               "client_state": self.client_state, "profiles": list(self.profiles)}
        if self.expiration is not None:
            out["expiration"] = self.expiration
        if self.created_at is not None:
            out["created_at"] = self.created_at
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "resource", ""), _text(data, "change_type", ""), _text(data, "client_state", ""),
                   _texts(data, "profiles"), _optional_text(data, "expiration"),
                   _optional_text(data, "created_at"))


@dataclass(frozen=True)
class Poison:
    """A queue message galsync gave up on, with why (key: `poison_key`)."""

    KIND: ClassVar[str] = POISON

    queue: str = ""
    message_id: str = ""
    profile: str | None = None
    reason: str = ""
    body: str = ""
    dequeue_count: int = 0
    recorded_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"queue": self.queue, "message_id": self.message_id, "profile": self.profile,
                "reason": self.reason, "body": self.body, "dequeue_count": self.dequeue_count,
                "recorded_at": self.recorded_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "queue", ""), _text(data, "message_id", ""), _optional_text(data, "profile"),
                   _text(data, "reason", ""), _text(data, "body", ""), _integer(data, "dequeue_count", 0),
                   _text(data, "recorded_at", ""))


@dataclass(frozen=True)
class QueueFailure:
    """Why processing a queue message failed last, and how often (key: a digest of queue and body)."""

    KIND: ClassVar[str] = QUEUE_FAILURE

    queue: str = ""
    reason: str = ""
    tries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"queue": self.queue, "reason": self.reason, "tries": self.tries}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "queue", ""), _text(data, "reason", ""), _integer(data, "tries", 0))


@dataclass(frozen=True)
class Notified:
    """When the first change notification not yet served by a sync of the profile arrived (key: profile).

    The webhook writes it when there is none; the sync that serves it (it read it before reading the sources)
    takes it, so a later notification starts the next one."""

    KIND: ClassVar[str] = NOTIFIED

    arrived_at: str

    def to_json(self) -> dict[str, Any]:
        return {"arrived_at": self.arrived_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(_text(data, "arrived_at"))


@dataclass(frozen=True)
class PushesLeft:
    """A notified sync whose pushes are not all done: the arrival it serves, the parts (push messages, by
    number) still to finish, and the end of the latest push so far that wrote."""

    notified_at: str
    left: tuple[int, ...]
    wrote_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"notified_at": self.notified_at, "left": list(self.left), "wrote_at": self.wrote_at}


@dataclass(frozen=True)
class Propagation:
    """The notified syncs of a profile whose pushes are still running, by run id (key: profile)."""

    KIND: ClassVar[str] = PROPAGATION

    runs: Mapping[str, PushesLeft] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"runs": {run_id: run.to_json() for run_id, run in self.runs.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        runs: dict[str, PushesLeft] = {}
        for run_id, run in _object(data, "runs").items():
            if not isinstance(run, dict):
                raise ShapeError(f"'runs' item {run_id!r} must be an object, got {_type(run)}")
            left = run.get("left")
            if not isinstance(left, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in left):
                raise ShapeError(f"'runs' item {run_id!r}: 'left' must be a list of integers")
            runs[run_id] = PushesLeft(_text(run, "notified_at"), tuple(left), _optional_text(run, "wrote_at"))
        return cls(runs)


@dataclass(frozen=True)
class PropagationSamples:
    """Propagation times measured in one hour (key: `propagation_samples_key`, by the hour of the day): each
    the second of the hour it was measured and the milliseconds from notification to last write."""

    KIND: ClassVar[str] = PROPAGATION_SAMPLES

    hour: str  # "2026-03-01T12": the hour these samples belong to; an older one is a day or more old
    samples: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"hour": self.hour, "samples": [list(s) for s in self.samples]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        samples = _get(data, "samples", [])
        if not isinstance(samples, list) or not all(
                isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in s)
                for s in samples):
            raise ShapeError("'samples' must be a list of [second, milliseconds] pairs of integers")
        return cls(_text(data, "hour"), tuple((s[0], s[1]) for s in samples))


# --- checked fields ---------------------------------------------------------------------------------------------

_REQUIRED: Any = object()


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _get(data: Mapping[str, Any], name: str, default: Any) -> Any:
    if name in data:
        return data[name]
    if default is _REQUIRED:
        raise ShapeError(f"'{name}' is missing")
    return default


def _text(data: Mapping[str, Any], name: str, default: Any = _REQUIRED) -> str:
    value = _get(data, name, default)
    if not isinstance(value, str):
        raise ShapeError(f"'{name}' must be a string, got {_type(value)}")
    return value


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ShapeError(f"'{name}' must be a string or null, got {_type(value)}")
    return value


def _texts(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _optional_texts(data, name)
    return () if value is None else value


def _optional_texts(data: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ShapeError(f"'{name}' must be a list of strings, got {_type(value)}")
    return tuple(value)


def _integer(data: Mapping[str, Any], name: str, default: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ShapeError(f"'{name}' must be an integer, got {_type(value)}")
    return value


def _object(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = _get(data, name, _REQUIRED)
    if not isinstance(value, dict):
        raise ShapeError(f"'{name}' must be an object, got {_type(value)}")
    return value


def _counts(data: Mapping[str, Any], name: str) -> dict[str, int]:
    value = data.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
        raise ShapeError(f"'{name}' must be an object of integer counts, got {_type(value)}")
    return {str(k): v for k, v in value.items()}

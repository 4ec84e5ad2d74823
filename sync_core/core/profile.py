"""Profiles: what to sync, to whom, and how; read from one TOML file and validated as a whole.

A profile names its sources (directory users, organizational contacts, shared-mailbox contact folders), which
users count, which mailboxes receive the contacts, the managed folder, a policy per contact field and what to
do when things disappear. The full reference is docs/config.md; galsync.example.toml is a worked example.

Validation is strict because a typo must never silently do nothing: unknown keys are errors, every problem
names the file, the profile, the key, what was expected and what was found, all problems are reported at
once, and `parse_config` returns a value only when the whole file is valid (an invalid file changes nothing).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .attributes import OPERATORS, USER_ATTRIBUTES
from .custom_fields import MAPPABLE_ATTRIBUTES, PLACEHOLDERS, SETTABLE_FIELDS, TEMPLATE_FIELDS, placeholders
from .fields import CONTACT_FIELDS, EXTRA_FIELDS, FIELD_POLICIES, FieldPolicy
from .phones import REGIONS, Phones

DEFAULT_FOLDER = "Company Directory"
DEFAULT_PHOTO_SIZE = "240x240"
# The sizes Microsoft 365 keeps for user photos (docs/graph-facts.md, profilephoto-get.md).
PHOTO_SIZES: tuple[str, ...] = (
    "48x48", "64x64", "96x96", "120x120", "240x240", "360x360", "432x432", "504x504", "648x648",
)
PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9 _-]{1,40}")
_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ADDRESS_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_FOLDER_NAME = 255
_MAX_CATEGORY = 255

SourceKind = Literal["users", "org_contacts", "folder"]
SOURCE_KINDS: tuple[str, ...] = ("users", "org_contacts", "folder")
RemovedPolicy = Literal["delete", "keep"]
DeletedOnDevicePolicy = Literal["recreate", "respect"]
ForeignPolicy = Literal["report", "delete"]
# Where a profile's contacts go in each target mailbox: galsync's own folder (named by `folder`, a child of the
# mailbox's default Contacts folder, as Graph creates every contact folder), or the default Contacts folder
# itself, which every phone app shows (docs/config.md has the table of which app shows which).
Place = Literal["own_folder", "default_folder"]
PLACES: tuple[str, ...] = ("own_folder", "default_folder")


class ConfigError(ValueError):
    """The configuration cannot be used. `problems` holds one line per problem; str() joins them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


def looks_like_object_id(ref: str) -> bool:
    """True if `ref` is a directory object id (GUID) rather than a display name or an address."""
    return bool(_GUID_RE.fullmatch(ref))


@dataclass(frozen=True)
class Source:
    """One source of contacts; for `folder`, the mailbox (id or address) and the folder's display name."""

    kind: SourceKind
    mailbox: str | None = None
    folder: str | None = None
    categories: tuple[str, ...] = ()  # put on every contact from this source, after the profile's
    static: tuple[tuple[str, str], ...] = ()  # contact field -> value for every contact from this source

    @property
    def name(self) -> str:
        """Stable name of this source within its profile, e.g. for the delta link's state key."""
        if self.kind == "folder":
            return f"folder:{self.mailbox}:{self.folder}"
        return self.kind


@dataclass(frozen=True)
class Condition:
    """One condition of [profile.users.where]: the user's `attribute` compared with `values`, ignoring case.

    equals / in: the value is one of `values`; starts_with: it starts with one of them; not: it is none of
    them (an empty value is none of them). An empty value matches nothing else.
    """

    attribute: str  # a key of attributes.USER_ATTRIBUTES
    operator: str  # one of attributes.OPERATORS
    values: tuple[str, ...]


@dataclass(frozen=True)
class UserFilter:
    """Which directory users count. Group refs are ids or display names; the caller resolves membership."""

    enabled_only: bool = True
    members_only: bool = True  # userType Member, not Guest
    licensed_only: bool = True
    in_address_list_only: bool = True
    require_phone_or_email: bool = True
    in_groups: tuple[str, ...] = ()  # if any: the user must be in at least one (transitively)
    not_in_groups: tuple[str, ...] = ()  # the user must be in none of these (transitively)
    where: tuple[Condition, ...] = ()  # every condition must hold


@dataclass(frozen=True)
class Targets:
    """Who receives the contacts: members of `groups` (transitively) plus `mailboxes`, minus `exclude`."""

    groups: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policies:
    removed_source: RemovedPolicy = "delete"
    removed_target: RemovedPolicy = "delete"
    deleted_on_device: DeletedOnDevicePolicy = "recreate"
    foreign_contacts: ForeignPolicy = "report"


@dataclass(frozen=True)
class Photos:
    enabled: bool = True
    size: str = DEFAULT_PHOTO_SIZE


def field_policies(**overrides: FieldPolicy) -> tuple[tuple[str, FieldPolicy], ...]:
    """Every contact field with its policy, in CONTACT_FIELDS order: "always" unless overridden, and "never"
    for the EXTRA_FIELDS no source fills by itself."""
    unknown = set(overrides) - set(CONTACT_FIELDS)
    if unknown:
        raise ValueError(f"unknown contact fields: {sorted(unknown)}")
    return tuple((name, overrides.get(name, "never" if name in EXTRA_FIELDS else "always"))
                 for name in CONTACT_FIELDS)


@dataclass(frozen=True)
class Profile:
    name: str
    sources: tuple[Source, ...] = (Source("users"),)
    users: UserFilter = field(default_factory=UserFilter)
    targets: Targets = field(default_factory=Targets)
    folder: str = DEFAULT_FOLDER
    fields: tuple[tuple[str, FieldPolicy], ...] = field(default_factory=field_policies)
    place: Place = "own_folder"
    policies: Policies = field(default_factory=Policies)
    photos: Photos = field(default_factory=Photos)
    categories: tuple[str, ...] = ()  # put on every contact galsync writes for this profile
    phones: Phones = field(default_factory=Phones)
    exclude: tuple[str, ...] = ()  # people never copied: a user or org contact id, or an address of theirs
    # custom_fields.py: contact field -> user attribute; -> a static value; -> a template
    map: tuple[tuple[str, str], ...] = ()
    static: tuple[tuple[str, str], ...] = ()
    templates: tuple[tuple[str, str], ...] = ()

    def field_policy(self, name: str) -> FieldPolicy:
        for field_name, policy in self.fields:
            if field_name == name:
                return policy
        raise KeyError(name)

    def static_of(self, source: Source | None) -> dict[str, str]:
        """Static values for contacts from `source`: the profile's, then the source's over them."""
        return {**dict(self.static), **dict(source.static if source is not None else ())}

    def fields_with(self, *policies: FieldPolicy) -> tuple[str, ...]:
        """Contact fields whose policy is one of `policies`, in CONTACT_FIELDS order."""
        return tuple(name for name, policy in self.fields if policy in policies)

    @functools.cached_property
    def mapped_fields(self) -> tuple[str, ...]:
        """Fields galsync writes at least on create (policy always, overwrite or if_empty)."""
        return self.fields_with("always", "overwrite", "if_empty")

    def categories_of(self, source: Source | None) -> tuple[str, ...]:
        """The categories galsync puts on a contact from `source` (None: the profile's only source of its
        kind is meant by the caller): the profile's, then the source's, each once (ignoring case)."""
        return _unique_ignoring_case(self.categories + (source.categories if source is not None else ()))

    def source_of(self, kind: str) -> Source | None:
        """The profile's source of `kind` ("users" and "org_contacts" appear at most once)."""
        return next((s for s in self.sources if s.kind == kind), None)

    @functools.cached_property
    def writes_categories(self) -> bool:
        return bool(self.categories) or any(s.categories for s in self.sources)

    @functools.cached_property
    def written_fields(self) -> tuple[str, ...]:
        """Contact properties galsync writes: the mapped fields, and `categories` if it puts any."""
        return self.mapped_fields + (("categories",) if self.writes_categories else ())

    @property
    def group_refs(self) -> tuple[str, ...]:
        """Groups whose members the user filter needs (the caller resolves them before filtering)."""
        return tuple(dict.fromkeys(self.users.in_groups + self.users.not_in_groups))


def _unique_ignoring_case(names: Sequence[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class Config:
    """A validated configuration file: its profiles, in file order."""

    source_name: str
    profiles: tuple[Profile, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)

    def profile(self, name: str) -> Profile:
        """The profile called `name`, ignoring case (names are unique ignoring case); ConfigError naming the
        known profiles if there is none."""
        for p in self.profiles:
            if p.name.casefold() == name.casefold():
                return p
        known = ", ".join(f'"{n}"' for n in self.names)
        raise ConfigError([f'{self.source_name}: no profile named "{name}"; profiles are: {known}'])

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at `path`; ConfigError naming the file if unreadable or invalid."""
    source_name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError([f"{source_name}: cannot read the configuration: {e.strerror or e}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"{source_name}: not UTF-8 text (byte {e.start})"]) from None
    return parse_config(text, source_name)


def parse_config(text: str, source_name: str = "galsync.toml") -> Config:
    """Validate TOML `text`; `source_name` is the file name used in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source_name}: not valid TOML: {e}"]) from None
    problems: list[str] = []
    profiles = _read_document(document, source_name, problems)
    if problems:
        raise ConfigError(problems)
    return Config(source_name=source_name, profiles=tuple(profiles))


# --- reading ------------------------------------------------------------------------------------------------

class _Reader:
    """Reads one table, recording problems prefixed with the file and the profile instead of raising."""

    def __init__(self, problems: list[str], prefix: str) -> None:
        self.problems = problems
        self.prefix = prefix

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.prefix}{key}: {message}")

    def expected(self, key: str, expected: str, got: Any) -> None:
        self.problem(key, f"expected {expected}, got {_describe(got)}")

    def table(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.expected(path, f"a table [{path}]", value)
            return {}
        return value

    def known_keys(self, table: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                self.problem(
                    f"{path}{key}",
                    f"unknown key (expected one of: {', '.join(allowed)}){hint}",
                )

    def boolean(self, table: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.expected(f"{path}{key}", "true or false", value)
            return default
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, path: str, choices: Sequence[str], default: str,
    ) -> Any:
        """One of `choices` (typed Any so it fits the Literal fields it fills)."""
        value = table.get(key, default)
        if not isinstance(value, str) or value not in choices:
            self.expected(f"{path}{key}", _or_list(choices), value)
            return default
        return value

    def text(
        self, table: Mapping[str, Any], key: str, path: str, *, default: str | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> str | None:
        """A string; `check` returns what was expected when the string is not acceptable."""
        if key not in table:
            if default is None:
                self.problem(f"{path}{key}", "missing (required)")
            return default
        value = table[key]
        if not isinstance(value, str):
            self.expected(f"{path}{key}", "a string", value)
            return default
        if check is not None and (expected := check(value)) is not None:
            self.expected(f"{path}{key}", expected, value)
            return default
        return value

    def texts(
        self, table: Mapping[str, Any], key: str, path: str, check: Callable[[str], str | None],
    ) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list):
            self.expected(f"{path}{key}", "a list of strings", value)
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.expected(f"{path}{key}[{i}]", "a string", item)
            elif (expected := check(item)) is not None:
                self.expected(f"{path}{key}[{i}]", expected, item)
            else:
                out.append(item)
        return tuple(out)


def _describe(value: Any) -> str:
    """A found value as the message shows it: TOML-like literals, tables and lists by shape."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"a {type(value).__name__} value"


def _or_list(choices: Sequence[str]) -> str:
    quoted = [f'"{c}"' for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _nonblank(value: str) -> str | None:
    if not value.strip() or value != value.strip():
        return "a non-empty string without leading or trailing spaces"
    return None


def _mailbox_ref(value: str) -> str | None:
    if looks_like_object_id(value) or _ADDRESS_RE.fullmatch(value):
        return None
    return "a mailbox user id (GUID) or address (name@domain)"


def _person_ref(value: str) -> str | None:
    if looks_like_object_id(value) or _ADDRESS_RE.fullmatch(value):
        return None
    return "a user or organizational contact id (GUID), or an address (name@domain)"


def _folder_name(value: str) -> str | None:
    if _nonblank(value) is not None or len(value) > _MAX_FOLDER_NAME or any(ord(c) < 32 for c in value):
        return f"a folder name of 1-{_MAX_FOLDER_NAME} characters, no control characters or outer spaces"
    return None


def _category(value: str) -> str | None:
    if _nonblank(value) is not None or len(value) > _MAX_CATEGORY or any(ord(c) < 32 for c in value):
        return f"a category name of 1-{_MAX_CATEGORY} characters, no control characters or outer spaces"
    return None


def _profile_name(value: str) -> str | None:
    if PROFILE_NAME_RE.fullmatch(value) is None or value != value.strip():
        return "1-40 characters of A-Z a-z 0-9 space _ -, not starting or ending with a space"
    return None


_TOP_KEYS = ("profile",)
_PROFILE_KEYS = ("name", "place", "folder", "categories", "exclude", "source", "users", "targets", "map", "static",
                 "templates", "fields", "policy", "photos", "phones")
_USER_KEYS = ("enabled_only", "members_only", "licensed_only", "in_address_list_only",
              "require_phone_or_email", "in_groups", "not_in_groups", "where")
_TARGET_KEYS = ("groups", "mailboxes", "exclude")
_POLICY_KEYS = ("removed_source", "removed_target", "deleted_on_device", "foreign_contacts")
_PHOTO_KEYS = ("enabled", "size")
_PHONE_KEYS = ("dialable", "region")


def _read_document(document: Mapping[str, Any], source_name: str, problems: list[str]) -> list[Profile]:
    top = _Reader(problems, f"{source_name}: ")
    top.known_keys(document, _TOP_KEYS, "")
    tables = document.get("profile", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        top.expected("profile", "[[profile]] tables", tables)
        return []
    if not tables:
        top.problem("profile", "expected at least one [[profile]] table, got none")
        return []
    profiles = [_read_profile(t, i, source_name, problems) for i, t in enumerate(tables, start=1)]
    found = [p for p in profiles if p is not None]
    _check_across_profiles(found, top)
    return found


def _check_across_profiles(profiles: Sequence[Profile], top: _Reader) -> None:
    names: dict[str, str] = {}
    folders: dict[str, str] = {}
    for p in profiles:
        prefix = f'profile "{p.name}": '
        first = names.get(p.name.casefold())
        if first is not None:
            same = "" if first == p.name else f' (same as "{first}" ignoring case)'
            top.problem(f"{prefix}name", f'expected a name no other profile uses, got "{p.name}" again{same}')
            continue
        names[p.name.casefold()] = p.name
        if p.place == "default_folder":
            continue  # profiles may share the default folder: each tells its contacts by its own tag
        owner = folders.setdefault(p.folder.casefold(), p.name)
        if owner != p.name:
            top.problem(
                f"{prefix}folder",
                f'expected a folder no other profile uses, got "{p.folder}" '
                f'(the folder of profile "{owner}"); each profile needs its own managed folder',
            )


def _read_profile(
    table: Mapping[str, Any], index: int, source_name: str, problems: list[str],
) -> Profile | None:
    before = len(problems)
    raw_name = table.get("name")
    label = f'profile "{raw_name}"' if isinstance(raw_name, str) and raw_name else f"profile #{index}"
    r = _Reader(problems, f"{source_name}: {label}: ")
    r.known_keys(table, _PROFILE_KEYS, "")
    name = r.text(table, "name", "", check=_profile_name) or ""
    folder = r.text(table, "folder", "", default=DEFAULT_FOLDER, check=_folder_name) or DEFAULT_FOLDER
    place = r.choice(table, "place", "", PLACES, "own_folder")
    categories = r.texts(table, "categories", "", _category)
    exclude = r.texts(table, "exclude", "", _person_ref)
    sources = _read_sources(table, r)
    users = _read_users(r.table(table, "users", "users"), r)
    targets = _read_targets(r.table(table, "targets", "targets"), r)
    profile_map = _read_map(r.table(table, "map", "map"), r)
    static = _read_static(r.table(table, "static", "static"), "static.", r)
    templates = _read_templates(r.table(table, "templates", "templates"), r)
    filled = {f for f, _ in profile_map} | {f for f, _ in static} | {f for f, _ in templates} | {
        f for source in sources for f, _ in source.static}
    fields = _read_fields(r.table(table, "fields", "fields"), r, filled)
    for field_name, policy in fields:
        if field_name in filled and policy == "never":
            r.problem(f"fields.{field_name}", '"never", yet a map, static value or template fills it: remove one '
                      "of them")
    policies = _read_policies(r.table(table, "policy", "policy"), r)
    photos = _read_photos(r.table(table, "photos", "photos"), r)
    phones = _read_phones(r.table(table, "phones", "phones"), r)
    _check_place(table, place, policies, r)
    if len(problems) > before:
        return None
    return Profile(name=name, sources=sources, users=users, targets=targets, folder=folder, fields=fields,
                   policies=policies, photos=photos, place=place, categories=categories, phones=phones,
                   exclude=exclude, map=profile_map, static=static, templates=templates)


def _check_place(table: Mapping[str, Any], place: str, policies: Policies, r: _Reader) -> None:
    """In the default Contacts folder the owner's own contacts sit beside galsync's: never theirs to delete."""
    if place != "default_folder":
        return
    if "folder" in table:
        r.problem("folder", 'not used with place = "default_folder" (galsync writes into the mailbox\'s '
                  'Contacts folder itself); remove it, or set place = "own_folder"')
    if policies.foreign_contacts == "delete":
        r.expected("policy.foreign_contacts", '"report" with place = "default_folder" (there, contacts '
                   "galsync did not create are the mailbox owner's own)", "delete")


def _read_sources(table: Mapping[str, Any], r: _Reader) -> tuple[Source, ...]:
    raw = table.get("source")
    if raw is None:
        r.problem("source", "expected at least one [[profile.source]] table, got none")
        return ()
    if not isinstance(raw, list) or not raw:
        r.expected("source", "one or more [[profile.source]] tables", raw)
        return ()
    sources: list[Source] = []
    for i, item in enumerate(raw):
        path = f"source[{i}]."
        if not isinstance(item, dict):
            r.expected(f"source[{i}]", "a [[profile.source]] table", item)
            continue
        if "type" not in item:
            r.problem(f"{path}type", f"missing (required: {_or_list(SOURCE_KINDS)})")
            continue
        kind = r.choice(item, "type", path, SOURCE_KINDS, "")
        categories = r.texts(item, "categories", path, _category)
        static = _read_static(r.table(item, "static", f"{path}static"), f"{path}static.", r)
        if kind == "folder":
            r.known_keys(item, ("type", "mailbox", "folder", "categories", "static"), path)
            mailbox = r.text(item, "mailbox", path, check=_mailbox_ref)
            folder = r.text(item, "folder", path, check=_folder_name)
            if mailbox and folder:
                sources.append(Source("folder", mailbox=mailbox, folder=folder, categories=categories,
                                      static=static))
        elif kind:
            r.known_keys(item, ("type", "categories", "static"), path)
            sources.append(Source(kind, categories=categories, static=static))
    names = [s.name for s in sources]
    for n in sorted({n for n in names if names.count(n) > 1}):
        r.problem("source", f"expected each source once, got {n} {names.count(n)} times")
    return tuple(sources)


def _read_users(table: Mapping[str, Any], r: _Reader) -> UserFilter:
    r.known_keys(table, _USER_KEYS, "users.")
    d = UserFilter()
    return UserFilter(
        enabled_only=r.boolean(table, "enabled_only", "users.", d.enabled_only),
        members_only=r.boolean(table, "members_only", "users.", d.members_only),
        licensed_only=r.boolean(table, "licensed_only", "users.", d.licensed_only),
        in_address_list_only=r.boolean(table, "in_address_list_only", "users.", d.in_address_list_only),
        require_phone_or_email=r.boolean(table, "require_phone_or_email", "users.", d.require_phone_or_email),
        in_groups=r.texts(table, "in_groups", "users.", _group_ref),
        not_in_groups=r.texts(table, "not_in_groups", "users.", _group_ref),
        where=_read_where(r.table(table, "where", "users.where"), r),
    )


def _read_where(table: Mapping[str, Any], r: _Reader) -> tuple[Condition, ...]:
    """[profile.users.where]: attribute = { operator = value(s), ... }."""
    r.known_keys(table, tuple(USER_ATTRIBUTES), "users.where.")
    out: list[Condition] = []
    for attribute, ops in table.items():
        if attribute not in USER_ATTRIBUTES:
            continue
        path = f"users.where.{attribute}"
        if not isinstance(ops, dict) or not ops:
            r.expected(path, '{ operator = value }, e.g. { in = ["Transport", "Dispatch"] }', ops)
            continue
        r.known_keys(ops, OPERATORS, f"{path}.")
        for operator in OPERATORS:
            if operator not in ops:
                continue
            raw = ops[operator]
            many = operator != "equals"
            values = [raw] if isinstance(raw, str) else raw if many and isinstance(raw, list) else None
            if not values or not all(isinstance(v, str) and _nonblank(v) is None for v in values):
                shape = "a non-empty string" if not many else "a non-empty string or a list of them"
                r.expected(f"{path}.{operator}", shape, raw)
                continue
            out.append(Condition(attribute, operator, tuple(values)))
    return tuple(out)


def _group_ref(value: str) -> str | None:
    if _nonblank(value) is not None:
        return "a group id (GUID) or display name"
    return None


def _read_targets(table: Mapping[str, Any], r: _Reader) -> Targets:
    r.known_keys(table, _TARGET_KEYS, "targets.")
    targets = Targets(
        groups=r.texts(table, "groups", "targets.", _group_ref),
        mailboxes=r.texts(table, "mailboxes", "targets.", _mailbox_ref),
        exclude=r.texts(table, "exclude", "targets.", _mailbox_ref),
    )
    if not table.get("groups") and not table.get("mailboxes"):
        r.problem("targets", "expected targets.groups or targets.mailboxes to name a target, got none")
    return targets


def _read_map(table: Mapping[str, Any], r: _Reader) -> tuple[tuple[str, str], ...]:
    """[profile.map]: contact field = "user attribute"."""
    r.known_keys(table, SETTABLE_FIELDS, "map.")
    out = []
    for name in SETTABLE_FIELDS:
        attribute = table.get(name)
        if attribute is None:
            continue
        if isinstance(attribute, str) and attribute in MAPPABLE_ATTRIBUTES:
            out.append((name, attribute))
            continue
        close = difflib.get_close_matches(str(attribute), MAPPABLE_ATTRIBUTES, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        r.expected(f"map.{name}", f"a user attribute (see docs/config.md, e.g. \"employeeId\"){hint}", attribute)
    return tuple(out)


def _read_static(table: Mapping[str, Any], path: str, r: _Reader) -> tuple[tuple[str, str], ...]:
    """[profile.static] or a source's `static`: contact field = "value"."""
    r.known_keys(table, SETTABLE_FIELDS, path)
    return tuple((name, value) for name in SETTABLE_FIELDS
                 if name in table and (value := r.text(table, name, path, check=_nonblank)))


def _read_templates(table: Mapping[str, Any], r: _Reader) -> tuple[tuple[str, str], ...]:
    """[profile.templates]: displayName, fileAs, nickName or personalNotes = "{surname}, {givenName}"."""
    r.known_keys(table, TEMPLATE_FIELDS, "templates.")
    out = []
    for name in TEMPLATE_FIELDS:
        template = r.text(table, name, "templates.", check=_nonblank) if name in table else None
        if not template:
            continue
        try:
            used = placeholders(template)
        except ValueError as error:
            r.problem(f"templates.{name}", f"not a template: {error}")
            continue
        unknown = [n for n in used if n not in PLACEHOLDERS]
        for n in unknown:
            close = difflib.get_close_matches(n, PLACEHOLDERS, n=1)
            hint = f'; did you mean "{{{close[0]}}}"?' if close else ""
            r.problem(f"templates.{name}", f"unknown placeholder {{{n}}} (a contact field or user attribute){hint}")
        if not used:
            r.problem(f"templates.{name}", 'names no field: use static for a fixed value, e.g. "{surname}"')
        elif not unknown:
            out.append((name, template))
    return tuple(out)


def _read_fields(table: Mapping[str, Any], r: _Reader, filled: set[str] | frozenset[str] = frozenset(),
                 ) -> tuple[tuple[str, FieldPolicy], ...]:
    """Field policies; a field that only a map, static value or template fills is "always" unless set."""
    r.known_keys(table, CONTACT_FIELDS, "fields.")
    policies: dict[str, FieldPolicy] = {name: "always" for name in filled if name in EXTRA_FIELDS}
    for name in CONTACT_FIELDS:
        if name in table:
            policies[name] = r.choice(table, name, "fields.", FIELD_POLICIES, "always")
    if policies.get("displayName", "always") != "always":
        r.expected("fields.displayName", '"always" (galsync resends displayName with every update, as Graph '
                   "requires)", table["displayName"])
        policies["displayName"] = "always"
    return field_policies(**policies)


def _read_policies(table: Mapping[str, Any], r: _Reader) -> Policies:
    r.known_keys(table, _POLICY_KEYS, "policy.")
    return Policies(
        removed_source=r.choice(table, "removed_source", "policy.", ("delete", "keep"), "delete"),
        removed_target=r.choice(table, "removed_target", "policy.", ("delete", "keep"), "delete"),
        deleted_on_device=r.choice(
            table, "deleted_on_device", "policy.", ("recreate", "respect"), "recreate"),
        foreign_contacts=r.choice(table, "foreign_contacts", "policy.", ("report", "delete"), "report"),
    )


def _read_phones(table: Mapping[str, Any], r: _Reader) -> Phones:
    r.known_keys(table, _PHONE_KEYS, "phones.")
    dialable = r.boolean(table, "dialable", "phones.", False)
    region = table.get("region")
    if region is not None and (not isinstance(region, str) or region.upper() not in REGIONS):
        close = difflib.get_close_matches(str(region).upper(), sorted(REGIONS), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        r.expected("phones.region", f"a region code such as \"FR\" or \"GB\" (ISO 3166-1 alpha-2){hint}", region)
        region = None
    return Phones(dialable, region.upper() if isinstance(region, str) else None)


def _read_photos(table: Mapping[str, Any], r: _Reader) -> Photos:
    r.known_keys(table, _PHOTO_KEYS, "photos.")
    return Photos(
        enabled=r.boolean(table, "enabled", "photos.", True),
        size=r.choice(table, "size", "photos.", PHOTO_SIZES, DEFAULT_PHOTO_SIZE),
    )

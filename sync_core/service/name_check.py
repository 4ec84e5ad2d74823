"""The names a profile uses (groups, mailboxes, source folders), resolved against the directory at once.

`config validate` checks a profiles file offline; a group called "Driverz" is only found by Graph, and a
sync stops at the first unknown name, so an admin used to fix one name per run. This check resolves every
name of every profile in one go and lists each one Graph does not know, with the names from the directory
that are closest to it (did you mean "Drivers"?). It reads only: one GET per name, and a listing of the
groups, users or folders only when a name of that kind is unknown (for the suggestions).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sync_core.core.profile import Profile, looks_like_object_id
from sync_core.graph import Forbidden, GraphClient, NotFound

MAX_SUGGESTIONS = 3
SUGGESTION_CUTOFF = 0.6  # difflib similarity below which a directory name is no suggestion at all
SUGGESTION_SPREAD = 0.03  # only names about as close as the closest one are suggested beside it
MAX_LISTED = 20_000  # directory objects read for suggestions at most (a big tenant gets fewer suggestions)


@dataclass(frozen=True)
class UnknownName:
    """A name in a profile that Graph does not resolve to exactly one object."""

    profile: str
    kind: str  # "group", "mailbox", "folder"
    name: str
    where: str  # the profile key that holds it, e.g. "targets.groups"
    problem: str  # "not found", or "2 groups have this name"
    suggestions: tuple[str, ...] = ()

    def message(self) -> str:
        return f'{self.where}: {self.kind} "{self.name}": {self.problem}'

    def advice(self) -> str:
        if self.suggestions:
            return "did you mean " + " or ".join(f'"{s}"' for s in self.suggestions) + "?"
        if self.problem != "not found":
            return f"name the {self.kind} by its object id instead"
        return f"check the {self.kind}'s name in the directory (or give its object id)"

    def to_json(self) -> dict[str, object]:
        return {"profile": self.profile, "kind": self.kind, "name": self.name, "where": self.where,
                "problem": self.problem, "did_you_mean": list(self.suggestions)}


def check_names(client: GraphClient, profiles: Sequence[Profile]) -> list[UnknownName]:
    """Every group, mailbox and source folder the profiles name that Graph does not know (all of them)."""
    names = _Directory(client)
    unknown: list[UnknownName] = []
    for p in profiles:
        for where, refs in (("targets.groups", p.targets.groups), ("users.in_groups", p.users.in_groups),
                            ("users.not_in_groups", p.users.not_in_groups)):
            for ref in refs:
                problem = names.group_problem(ref)
                if problem:
                    unknown.append(UnknownName(p.name, "group", ref, where, problem,
                                               _closest(ref, names.group_names())))
        for where, refs in (("targets.mailboxes", p.targets.mailboxes), ("targets.exclude", p.targets.exclude)):
            for ref in refs:
                if not names.mailbox_exists(ref):
                    unknown.append(UnknownName(p.name, "mailbox", ref, where, "not found",
                                               _closest(ref, names.mailbox_names())))
        for source in p.sources:
            if source.kind != "folder" or not source.mailbox:
                continue
            if not names.mailbox_exists(source.mailbox):
                unknown.append(UnknownName(p.name, "mailbox", source.mailbox, "source.mailbox", "not found",
                                           _closest(source.mailbox, names.mailbox_names())))
                continue
            folders = names.folders(source.mailbox)
            matching = [f for f in folders if f == source.folder]
            if len(matching) != 1 and folders is not None:
                problem = "not found" if not matching else f"{len(matching)} folders have this name"
                unknown.append(UnknownName(p.name, "folder", source.folder or "", f"source.folder in {source.mailbox}",
                                           problem, _closest(source.folder or "", folders)))
    return unknown


def _closest(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """Directory names nearest to `name`: the same name in another case, else the closest spellings."""
    wanted = name.casefold()
    by_fold = {c.casefold(): c for c in dict.fromkeys(candidates)}
    if wanted in by_fold:
        return (by_fold[wanted],)
    scored = sorted(((difflib.SequenceMatcher(None, wanted, c).ratio(), c) for c in by_fold), reverse=True)
    if not scored or scored[0][0] < SUGGESTION_CUTOFF:
        return ()
    best = scored[0][0]
    return tuple(by_fold[c] for ratio, c in scored[:MAX_SUGGESTIONS] if ratio >= best - SUGGESTION_SPREAD)


class _Directory:
    """Look-ups with the answers kept, so a name used by several profiles costs one request."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client
        self._groups: dict[str, str | None] = {}
        self._mailboxes: dict[str, bool] = {}
        self._folders: dict[str, list[str] | None] = {}
        self._group_names: list[str] | None = None
        self._mailbox_names: list[str] | None = None

    def group_problem(self, ref: str) -> str | None:
        """Why the group name does not resolve; None when it does, or when galsync may not read groups
        (the permission probe reports that)."""
        if ref not in self._groups:
            try:
                self._groups[ref] = self._group_problem(ref)
            except Forbidden:
                self._groups[ref] = None
        return self._groups[ref]

    def _group_problem(self, ref: str) -> str | None:
        if looks_like_object_id(ref):
            try:
                self._client.get(f"/groups/{ref}", params={"$select": "id"})
                return None
            except NotFound:
                return "not found"
        escaped = ref.replace("'", "''")
        found = list(self._client.iter_pages("/groups", params={"$filter": f"displayName eq '{escaped}'",
                                                                "$select": "id"}))
        if len(found) == 1:
            return None
        return "not found" if not found else f"{len(found)} groups have this name"

    def mailbox_exists(self, ref: str) -> bool:
        key = ref.lower()
        if key not in self._mailboxes:
            try:
                self._client.get(f"/users/{ref}", params={"$select": "id"})
                self._mailboxes[key] = True
            except NotFound:
                self._mailboxes[key] = False
            except Forbidden:  # cannot be checked without User.Read.All; the permission probe says so
                self._mailboxes[key] = True
        return self._mailboxes[key]

    def folders(self, mailbox: str) -> list[str] | None:
        """Display names of the mailbox's contact folders (None when galsync may not read them)."""
        key = mailbox.lower()
        if key not in self._folders:
            try:
                self._folders[key] = [str(f.get("displayName") or "") for f in self._client.iter_pages(
                    f"/users/{mailbox}/contactFolders", params={"$select": "displayName"})]
            except (Forbidden, NotFound):
                self._folders[key] = None
        return self._folders[key]

    def group_names(self) -> list[str]:
        if self._group_names is None:
            self._group_names = self._listed("/groups", ("displayName",))
        return self._group_names

    def mailbox_names(self) -> list[str]:
        if self._mailbox_names is None:
            self._mailbox_names = self._listed("/users", ("mail", "userPrincipalName"))
        return self._mailbox_names

    def _listed(self, path: str, fields: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        try:
            for item in self._client.iter_pages(path, params={"$select": ",".join(fields), "$top": "999"}):
                value = next((item.get(f) for f in fields if item.get(f)), None)
                if value:
                    out.append(str(value))
                if len(out) >= MAX_LISTED:
                    break
        except Forbidden:
            pass  # no suggestions without the permission; the permission probe reports it
        return out

"""The naive strategy public sync scripts use, implemented here for comparison only (never shipped).

Every run: list the whole directory, list the target group, then for every target mailbox find (or create)
the contact folder and list every contact in it; compare; write the differences. No state is kept between
runs, so a run with nothing to do costs as much reading as the first one.

To measure the strategy and nothing else, it is given every advantage galsync has: the same GraphClient
(msal, retries, per-mailbox limits), the same mapping and hidden tag (so it writes the same contacts and
recognises its own), `$batch` for the writes, the largest page sizes Graph allows, and the target folders
read in parallel. A script that writes one request at a time would be slower still.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sync_core.core.mapping import map_folder_contact, user_select
from sync_core.core.plan import update_changes
from sync_core.core.profile import Profile, parse_config
from sync_core.core.sources import Mapped, read_user
from sync_core.core.tags import contact_tag_properties, folder_tag_properties, read_contact_tag
from sync_core.graph import BatchRequest, GraphClient
from sync_core.settings import Settings

from .emulator_process import EmulatorProcess
from .measure import CONFIG, NEW_MOBILE, PROFILE, StrategyRuns, changed_user, measure
from .verify import Listing, check_targets, find_folder, list_folder

USERS_PAGE = 999  # the most /users returns per page

TARGET_GROUP = "Targets"


def naive_runs(emulator: EmulatorProcess, workdir: Path, overrides: Mapping[str, str]) -> StrategyRuns:
    """The same runs as galsync's; its "reconcile" is one more full run (it has nothing else)."""
    env = emulator.galsync_env(f"sqlite:{workdir / 'unused.db'}")
    env.update(overrides)
    settings = Settings.from_env(env)
    profile = parse_config(CONFIG, "bench.toml").profile(PROFILE)
    with GraphClient.from_settings(settings) as client:

        def once() -> dict[str, int]:
            return run(client, profile, TARGET_GROUP, settings.max_concurrency)

        results = [measure(emulator, "fill", "naive", once), measure(emulator, "quiet", "naive", once)]
        emulator.update_user(changed_user(emulator), mobilePhone=NEW_MOBILE)
        results.append(measure(emulator, "one change", "naive", once))
        results.append(measure(emulator, "reconcile", "naive", once))
        problems = check_targets(client, profile, emulator.info["target_ids"], emulator.info["users"],
                                 changed_user(emulator), NEW_MOBILE)
    return StrategyRuns("naive", results, problems)


def run(client: GraphClient, profile: Profile, target_group: str, readers: int) -> dict[str, int]:
    """One naive run; returns counts (created, updated, deleted, failed)."""
    desired = _directory(client, profile)
    mailboxes = _targets(client, target_group)
    with ThreadPoolExecutor(readers, thread_name_prefix="naive-read") as pool:
        listings = list(pool.map(lambda m: read_folder(client, profile, m), mailboxes))
    writes: list[tuple[str, BatchRequest]] = []
    for listing in listings:
        writes += _differences(profile, listing, desired)
    counts: Counter[str] = Counter()
    for (kind, _), result in zip(writes, client.batch([w for _, w in writes]), strict=True):
        counts[kind if result.ok else "failed"] += 1
    return dict(counts)


def _directory(client: GraphClient, profile: Profile) -> dict[str, dict[str, Any]]:
    """Source key -> contact payload for every user the profile's filters keep."""
    out: dict[str, dict[str, Any]] = {}
    params = {"$select": ",".join(user_select(profile)), "$top": str(USERS_PAGE)}
    for user in client.iter_pages("/users", params=params):
        change = read_user(user, profile)
        if isinstance(change, Mapped):
            out[change.source_key] = change.payload
    return out


def _targets(client: GraphClient, group_name: str) -> list[str]:
    escaped = group_name.replace("'", "''")
    groups = client.get("/groups", params={"$filter": f"displayName eq '{escaped}'", "$select": "id"})["value"]
    if len(groups) != 1:
        raise RuntimeError(f'naive: expected one group named "{group_name}", found {len(groups)}')
    members = client.iter_pages(f"/groups/{groups[0]['id']}/transitiveMembers", params={"$select": "id"})
    return sorted(str(m["id"]) for m in members if str(m.get("@odata.type", "")).endswith(".user"))


def read_folder(client: GraphClient, profile: Profile, mailbox: str) -> Listing:
    """The target folder in full; created (empty) if it does not exist yet."""
    folder_id = find_folder(client, profile, mailbox)
    if folder_id is not None:
        return list_folder(client, profile, mailbox, folder_id)
    body = {"displayName": profile.folder, "singleValueExtendedProperties": folder_tag_properties(profile.name)}
    created = client.request("POST", f"/users/{mailbox}/contactFolders", json=body).json()
    return Listing(mailbox, str(created["id"]), ())


def _differences(profile: Profile, listing: Listing, desired: Mapping[str, dict[str, Any]]
                 ) -> list[tuple[str, BatchRequest]]:
    """Creates, updates and deletes that make the folder hold exactly the desired contacts."""
    url = f"/users/{listing.mailbox}/contactFolders/{listing.folder_id}/contacts"
    seen: dict[str, dict[str, Any]] = {}
    out: list[tuple[str, BatchRequest]] = []
    for contact in listing.contacts:
        tag = read_contact_tag(contact)
        if tag is None or tag.profile != profile.name:
            continue  # not ours: never touched
        if tag.source_key in seen or tag.source_key not in desired:
            out.append(("deleted", BatchRequest("DELETE", f"{url}/{contact['id']}")))
            continue
        seen[tag.source_key] = contact
        changes = update_changes(profile.fields_with("always"), map_folder_contact(contact, profile),
                                 desired[tag.source_key])
        if changes:
            out.append(("updated", BatchRequest("PATCH", f"{url}/{contact['id']}", body=changes)))
    for key, payload in desired.items():
        if key not in seen:
            body = {**payload, "singleValueExtendedProperties": contact_tag_properties(profile.name, key)}
            out.append(("created", BatchRequest("POST", url, body=body)))
    return out

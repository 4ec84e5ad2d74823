"""Contact photos against the emulator: the directory photo on every target contact, written only when it changed.

A small tenant: six users, three with a photo (one smaller than the profile's 240x240, so it has no such
variant), four of them in "Phones" (the target mailboxes). Every count comes from the emulator's request log
($batch inner requests logged one by one) and every photo from the emulator's mailboxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from graph_emulator.protocol import GraphError
from graph_emulator.scenarios import make_jpeg
from sync_core.core.records import TargetRecord
from sync_core.core.tags import read_contact_tag
from sync_core.service import photos
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, SyncReport, sync_profile

from .conftest import SMALL_CONFIG, MakeRuntime

CONFIG = SMALL_CONFIG
PHOTOS_OFF = CONFIG + "\n[profile.photos]\nenabled = false\n"

META = "/users/{user}/photo"
SIZED = "/users/{user}/photos/{size}/$value"
WHOLE = "/users/{user}/photo/$value"
CONTACT = "/users/{user}/contactFolders/{folder}/contacts/{contact}"
CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"
UPLOAD = CONTACT + "/photo/$value"
CONTACT_PHOTO = CONTACT + "/photo"
TARGETS = 4


class Tenant:
    """The emulator and the ids the tests need."""

    def __init__(self, g: GraphEmulator) -> None:
        self.g = g
        names = ["Ana Costa", "Bo Li", "Chloé Martin", "Dev Patel", "Émile O'Brien", "Farah Haddad"]
        self.users = [g.tenant.directory.add_user(displayName=n, givenName=n.split()[0], surname=n.split()[1],
                                                  mailNickname=f"u{i}", mobilePhone=f"+33 6 00 00 00 0{i}")["id"]
                      for i, n in enumerate(names)]
        g.tenant.directory.add_group("Phones", members=self.users[1:5])
        self.photos: dict[str, bytes] = {}
        for user, edge, shade in ((self.users[0], 360, 60), (self.users[1], 240, 120), (self.users[2], 96, 200)):
            self.set_photo(user, make_jpeg(edge, edge, shade=shade, comment=f"photo of {user}"))

    def set_photo(self, user: str, jpeg: bytes | None) -> None:
        self.g.tenant.directory.set_photo(user, jpeg)
        if jpeg is None:
            self.photos.pop(user, None)
        else:
            self.photos[user] = jpeg


@pytest.fixture
def small() -> Iterator[Tenant]:
    photos.CACHE.clear()  # one process, many emulators: start each test with nothing downloaded
    with GraphEmulator.start(scenario=None) as g:
        yield Tenant(g)


def sync(rt: Runtime) -> SyncReport:
    fanout = InlineFanOut(rt)
    report = sync_profile(rt, "Small", fanout)
    report.exec = fanout.report
    return report


def downloads(g: GraphEmulator) -> int:
    return g.log.count(method="GET", route=SIZED, status=200) + g.log.count(method="GET", route=WHOLE, status=200)


def uploads(g: GraphEmulator, status: int | None = 200) -> int:
    return g.log.count(method="PUT", route=UPLOAD, status=status)


def field_writes(g: GraphEmulator) -> int:
    return sum(g.log.count(method=m, route=r) for m, r in (("POST", CONTACTS), ("PATCH", CONTACT), ("DELETE", CONTACT)))


def contacts_of(t: Tenant, rt: Runtime, user: str) -> list[tuple[str, dict[str, Any]]]:
    """(mailbox, contact) of `user`'s managed contact in every target."""
    out = []
    for mailbox, target in sorted(rt.store.get_targets("Small").items()):
        assert target.folder_id
        mine = [c for c in t.g.tenant.mailboxes.contacts(mailbox, target.folder_id)
                if read_contact_tag(c).source_key == f"user:{user}"]  # type: ignore[union-attr]
        assert len(mine) == 1, f"{len(mine)} contacts of {user} in {mailbox}"
        out.append((mailbox, mine[0]))
    assert len(out) == TARGETS
    return out


def contact_photo(t: Tenant, mailbox: str, contact: dict[str, Any]) -> bytes | None:
    try:
        return t.g.tenant.mailboxes.photo(mailbox, contact["id"])[0]
    except GraphError as exc:
        assert exc.status == 404
        return None


def record(rt: Runtime, mailbox: str, user: str) -> TargetRecord:
    return rt.store.get_target_records("Small", mailbox)[f"user:{user}"]


def etag(t: Tenant, user: str) -> str | None:
    photo = t.g.tenant.directory.photo(user)
    return photo.etag if photo is not None else None


def assert_photos_in_step(t: Tenant, rt: Runtime) -> None:
    """Every contact shows its user's directory photo (or none), and its record says which one."""
    for user in t.users:
        for mailbox, contact in contacts_of(t, rt, user):
            assert contact_photo(t, mailbox, contact) == t.photos.get(user), (mailbox, user)
            assert record(rt, mailbox, user).photo_etag == etag(t, user)


def filled(t: Tenant, make_runtime: MakeRuntime, **overrides: str) -> Runtime:
    rt = make_runtime(t.g, CONFIG, **overrides)
    sync(rt)
    reconcile_profile(rt, "Small")  # first night: full read of each folder
    t.g.log.clear()
    return rt


def test_the_first_fill_puts_each_photo_on_every_target_and_downloads_it_once(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = make_runtime(g, CONFIG)
    report = sync(rt)
    assert g.log.count(method="GET", route=META) == 6  # one check per user whose delta item arrived
    assert g.log.count(route=SIZED, status=404) == 1  # the 96x96 photo has no 240x240 variant...
    assert g.log.count(route=WHOLE) == 1  # ...so it is taken whole
    assert downloads(g) == 3
    assert uploads(g) == 3 * TARGETS == report.exec.counts["photos_set"]
    assert uploads(g, status=None) == 3 * TARGETS  # nothing throttled, nothing repeated
    assert report.exec.counts["created"] == 6 * TARGETS and not report.exec.errors
    assert_photos_in_step(small, rt)
    # galsync recorded the changeKey each photo write left: the first night takes none of them for an edit.
    assert reconcile_profile(rt, "Small").drift["edited"] == 0

    g.log.clear()
    again = sync(rt)
    assert again.changed == 0
    assert g.log.count(route=META) == 0 and downloads(g) == 0 and uploads(g, status=None) == 0


def test_a_night_without_photo_changes_checks_each_user_once_and_downloads_and_uploads_nothing(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = filled(small, make_runtime)
    report = reconcile_profile(rt, "Small")
    assert g.log.count(method="GET", route=META) == 6  # the one cheap check per user, with or without a photo
    assert downloads(g) == 0 and uploads(g, status=None) == 0 and field_writes(g) == 0
    assert report.exec.counts["photos_checked"] == 6 and report.exec.counts["photos_changed"] == 0
    # galsync recorded the changeKey its own photo writes left: the night sees no edit on a phone.
    assert report.drift["edited"] == 0 and report.exec.writes == 0


def test_one_changed_photo_is_downloaded_once_and_uploaded_once_per_target(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = filled(small, make_runtime)
    someone = small.users[1]
    small.set_photo(someone, make_jpeg(480, 480, shade=30, comment="new photo"))
    # Not in the users delta: a sync sees nothing...
    quiet = sync(rt)
    assert quiet.changed == 0 and g.log.count(route=META) == 0 and uploads(g, status=None) == 0
    # ...the night does.
    report = reconcile_profile(rt, "Small")
    assert g.log.count(method="GET", route=META) == 6
    assert g.log.count(method="GET", route=SIZED) == 1 and downloads(g) == 1
    assert uploads(g) == TARGETS == uploads(g, status=None) == report.exec.counts["photos_set"]
    assert field_writes(g) == 0 and report.exec.counts["photos_changed"] == 1
    assert_photos_in_step(small, rt)

    g.log.clear()
    next_night = reconcile_profile(rt, "Small")
    assert downloads(g) == 0 and uploads(g, status=None) == 0 and next_night.drift["edited"] == 0


def test_a_user_who_changes_gets_a_photo_check_and_the_new_photo_comes_with_the_fields(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = filled(small, make_runtime)
    someone = small.users[3]  # had no photo
    g.tenant.directory.update_user(someone, jobTitle="Planner")
    small.set_photo(someone, make_jpeg(240, 240, shade=99))
    report = sync(rt)
    assert report.changed == 1
    assert g.log.count(method="GET", route=META) == 1  # only the user whose delta item arrived
    assert downloads(g) == 1 and uploads(g) == TARGETS
    assert g.log.count(method="PATCH", route=CONTACT) == TARGETS
    assert_photos_in_step(small, rt)
    assert {c["jobTitle"] for _, c in contacts_of(small, rt, someone)} == {"Planner"}


def test_a_removed_photo_is_removed_from_every_contact_and_what_phones_wrote_stays(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = filled(small, make_runtime)
    someone = small.users[0]
    (edited_box, edited), *_ = contacts_of(small, rt, someone)
    g.tenant.mailboxes.phone_update_contact(edited_box, edited["id"], {"personalNotes": "Gate code 1234"})
    small.set_photo(someone, None)
    g.log.clear()
    report = reconcile_profile(rt, "Small")
    assert g.log.count(method="GET", route=META) == 6 and downloads(g) == 0 and uploads(g, status=None) == 0
    # Graph cannot delete a contact photo: each contact is asked (it has one), then replaced by a copy without.
    assert g.log.count(method="GET", route=CONTACT_PHOTO) == TARGETS
    assert g.log.count(method="POST", route=CONTACTS) == TARGETS == g.log.count(method="DELETE", route=CONTACT)
    assert report.exec.counts["photos_removed"] == TARGETS and not report.exec.errors
    assert_photos_in_step(small, rt)  # exactly one contact each, none with a photo, records say so
    after = dict(contacts_of(small, rt, someone))
    assert after[edited_box]["personalNotes"] == "Gate code 1234"
    assert after[edited_box]["id"] != edited["id"]
    assert record(rt, edited_box, someone).contact_id == after[edited_box]["id"]

    g.log.clear()
    next_night = reconcile_profile(rt, "Small")
    assert field_writes(g) == 0 and uploads(g, status=None) == 0 and next_night.drift["edited"] == 0
    assert g.log.count(route=CONTACT_PHOTO) == 0  # nothing more to check: the records know


def test_a_photo_over_4_mb_is_a_clear_error_per_contact_and_the_fields_still_sync(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = filled(small, make_runtime)
    someone = small.users[1]
    before = {m: contact_photo(small, m, c) for m, c in contacts_of(small, rt, someone)}
    old_etag = etag(small, someone)
    jpeg = make_jpeg(240, 240, shade=10)
    padding = (b"\xff\xfe" + (65535).to_bytes(2, "big") + b"\x00" * 65533) * 66  # comment segments: 4.3 MB
    g.tenant.directory.set_photo(someone, jpeg[:2] + padding + jpeg[2:])
    g.tenant.directory.update_user(someone, mobilePhone="+33 6 99 99 99 99")
    report = sync(rt)
    assert g.log.count(method="PATCH", route=CONTACT, status=200) == TARGETS  # the fields went out
    assert {c["mobilePhone"] for _, c in contacts_of(small, rt, someone)} == {"+33 6 99 99 99 99"}
    # Sent once, refused by Graph (413), and not sent to the other contacts to be refused again.
    assert uploads(g, status=413) == 1 == uploads(g, status=None)
    assert report.exec.counts["photos_failed"] == TARGETS and report.exec.counts["failed"] == 0
    assert len(report.exec.errors) == TARGETS
    for error in report.exec.errors:
        assert f"user:{someone}: photo" in error and "413 ErrorRequestEntityTooLarge" in error
    for mailbox, contact in contacts_of(small, rt, someone):
        assert contact_photo(small, mailbox, contact) == before[mailbox]  # the old photo stays
        assert record(rt, mailbox, someone).photo_etag == old_etag  # not recorded as written: retried
    assert rt.store.recent_runs("Small")[0].outcome == "ok"  # not a failed push

    g.log.clear()
    night = reconcile_profile(rt, "Small")
    assert downloads(g) == 0 and uploads(g, status=None) == 0  # remembered: not downloaded nor sent again
    assert night.exec.counts["photos_failed"] == TARGETS


def test_photos_switched_off_cost_no_request(small: Tenant, make_runtime: MakeRuntime) -> None:
    g = small.g
    rt = make_runtime(g, PHOTOS_OFF)
    report = sync(rt)
    reconcile_profile(rt, "Small")
    assert report.exec.counts["created"] == 6 * TARGETS
    assert g.log.count(route=META) == 0 and downloads(g) == 0 and uploads(g, status=None) == 0
    for mailbox, contact in contacts_of(small, rt, small.users[0]):
        assert contact_photo(small, mailbox, contact) is None


def test_a_first_fill_over_the_upload_budget_slows_down_and_completes(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    # Per mailbox about two contacts' or one photo's worth of bytes per second (Graph: 150 MB per 5 minutes).
    g.throttle.configure(upload_bytes=1500, upload_window_seconds=1)
    rt = make_runtime(g, CONFIG)
    report = sync(rt)
    assert g.log.count(status=429) > 0 and rt.client.stats.throttles > 0
    assert uploads(g) == 3 * TARGETS == report.exec.counts["photos_set"]
    assert report.exec.counts["photos_deferred"] == 0 and not report.exec.errors
    assert_photos_in_step(small, rt)


def test_photos_over_the_upload_budget_are_deferred_and_the_next_night_writes_only_those(
    small: Tenant, make_runtime: MakeRuntime
) -> None:
    g = small.g
    rt = filled(small, make_runtime, GALSYNC_RETRY_MAX_SECONDS="2")
    new = {u: make_jpeg(240, 240, shade=50 + i, comment="x" * 3000) for i, u in enumerate(small.users[3:6])}
    for user, jpeg in new.items():
        small.set_photo(user, jpeg)
    # Room for two of the three new photos per mailbox; the third would have to wait ten minutes.
    g.throttle.configure(upload_bytes=2 * max(map(len, new.values())) + 100, upload_window_seconds=600)
    first = reconcile_profile(rt, "Small")
    assert downloads(g) == 3
    assert uploads(g) == 2 * TARGETS == first.exec.counts["photos_set"]
    assert uploads(g, status=429) == TARGETS == first.exec.counts["photos_deferred"]
    assert not first.exec.errors  # deferred is not an error: the records say what is still to do
    missing = [(m, u) for u in new for m, c in contacts_of(small, rt, u) if contact_photo(small, m, c) is None]
    assert len(missing) == TARGETS and all(record(rt, m, u).photo_etag is None for m, u in missing)

    g.throttle.reset()
    g.log.clear()
    second = reconcile_profile(rt, "Small")
    assert downloads(g) == 0  # still in this worker's cache
    assert uploads(g) == TARGETS == uploads(g, status=None) == second.exec.counts["photos_set"]
    assert sorted(str(e.mailbox) for e in g.log.entries(method="PUT", route=UPLOAD)) == sorted(m for m, _ in missing)
    assert_photos_in_step(small, rt)


@pytest.mark.parametrize("copy_landed", [False, True], ids=["after-delete", "after-copy"])
def test_a_photo_removal_cut_short_by_a_crash_converges_at_the_next_night(
    small: Tenant, make_runtime: MakeRuntime, copy_landed: bool
) -> None:
    """A crash after the original was deleted (and maybe the copy created), before the copy was recorded."""
    g = small.g
    rt = filled(small, make_runtime)
    someone = small.users[0]
    small.set_photo(someone, None)
    mailbox, original = contacts_of(small, rt, someone)[0]
    folder = rt.store.get_targets("Small")[mailbox].folder_id
    rt.store.put_target_records("Small", mailbox, [TargetRecord(mailbox, f"user:{someone}", None, "", None,
                                                                rt.now_iso())])
    g.tenant.mailboxes.phone_delete_contact(mailbox, original["id"])
    if copy_landed:
        copy = {k: v for k, v in original.items()
                if k in ("displayName", "givenName", "surname", "mobilePhone", "emailAddresses")}
        copy["singleValueExtendedProperties"] = original["singleValueExtendedProperties"]
        g.tenant.mailboxes.create_contact(mailbox, copy, folder)
    report = reconcile_profile(rt, "Small")
    assert not report.exec.errors
    assert report.exec.counts["recorded" if copy_landed else "created"] == 1
    assert_photos_in_step(small, rt)  # one contact per target again, none with the removed photo

"""Hypothesis strategies for profiles and desired contact sets (small alphabets, so values collide often)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sync_core.core.fields import CONTACT_FIELDS
from sync_core.core.fingerprint import fingerprint
from sync_core.core.mapping import normalise_contact
from sync_core.core.profile import Photos, Policies, Profile, field_policies
from sync_core.core.sources import DesiredContact

KEYS = [f"user:{i}" for i in range(6)] + ["orgcontact:a", "folder:mbx-9:AAMk=_-x"]

_words = st.sampled_from(["Ana", "Bo", "Zoë", "O'Brien", "Lyon", "Driver"])
_phones = st.sampled_from(["+33 1", "+33 2", "+44 3"])

_email: st.SearchStrategy[dict[str, str]] = st.sampled_from(["a@nw.example", "b@nw.example"]).map(
    lambda a: {"name": a, "address": a})
_required: dict[str, st.SearchStrategy[Any]] = {"displayName": _words}
_optional: dict[str, st.SearchStrategy[Any]] = {
    "givenName": _words,
    "surname": _words,
    "jobTitle": _words,
    "department": _words,
    "mobilePhone": _phones,
    "businessPhones": st.lists(_phones, min_size=1, max_size=2, unique=True),
    "emailAddresses": st.lists(_email, min_size=1, max_size=2, unique_by=lambda e: e["address"]),
    "businessAddress": st.fixed_dictionaries({}, optional={"city": _words, "street": _words}),
    "manager": _words,
}
payloads = st.fixed_dictionaries(_required, optional=_optional).map(normalise_contact)


def desired_sets(photos: bool = True) -> st.SearchStrategy[dict[str, DesiredContact]]:
    photo = st.sampled_from([None, "etag-1", "etag-2"]) if photos else st.none()

    def build(entries: dict[str, tuple[dict[str, Any], str | None]]) -> dict[str, DesiredContact]:
        return {k: DesiredContact(p, fingerprint(p), e) for k, (p, e) in entries.items()}

    return st.dictionaries(st.sampled_from(KEYS), st.tuples(payloads, photo), max_size=len(KEYS)).map(build)


_optional_fields = [f for f in CONTACT_FIELDS if f != "displayName"]

profiles = st.builds(
    lambda policies, removed, deleted, foreign, photos: Profile(
        name="Company directory",
        fields=field_policies(**dict(zip(_optional_fields, policies, strict=True))),
        policies=Policies(removed_source=removed, removed_target="delete", deleted_on_device=deleted,
                          foreign_contacts=foreign),
        photos=Photos(enabled=photos),
    ),
    st.lists(st.sampled_from(["always", "always", "overwrite", "if_empty", "never"]), min_size=len(_optional_fields),
             max_size=len(_optional_fields)),
    st.sampled_from(["delete", "keep"]),
    st.sampled_from(["recreate", "respect"]),
    st.sampled_from(["report", "delete"]),
    st.booleans(),
)

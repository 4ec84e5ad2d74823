"""How $batch input is validated and cut into chunks (pure: no HTTP)."""

from __future__ import annotations

import pytest

from sync_core.graph.batch import BatchRequest, chunk, prepare

BASE = "https://graph.example/v1.0"


def _post(mailbox: str, n: int, id: str | None = None, depends_on: list[str] | None = None) -> BatchRequest:  # noqa: A002
    return BatchRequest(
        "POST",
        f"/users/{mailbox}/contactFolders/f/contacts",
        body={"displayName": f"c{n}"},
        id=id,
        depends_on=depends_on,
    )


def test_41_requests_make_3_chunks() -> None:
    items = prepare(BASE, [_post(f"m{i}", i) for i in range(41)])
    assert [len(c) for c in chunk(items)] == [20, 20, 1]


def test_requests_to_one_mailbox_travel_together() -> None:
    mixed = [_post("a" if i % 2 else "b", i) for i in range(40)]
    chunks = chunk(prepare(BASE, mixed))
    assert [{it.mailbox for it in c} for c in chunks] == [{"a"}, {"b"}]


def test_chunks_alternate_between_mailboxes() -> None:
    # 60 requests each for a and b: a's three chunks must not queue up ahead of b's (one runs at a time).
    reqs = [_post("a", i) for i in range(60)] + [_post("b", i) for i in range(60)]
    chunks = chunk(prepare(BASE, reqs))
    assert [c[0].mailbox for c in chunks] == ["a", "b", "a", "b", "a", "b"]
    assert all(len(c) == 20 and len({it.mailbox for it in c}) == 1 for c in chunks)


def test_dependency_groups_are_never_split() -> None:
    reqs = [_post("m", i, id=f"r{i}") for i in range(19)]
    reqs += [_post("m", 100, id="x"), _post("m", 101, id="y", depends_on=["x"])]
    chunks = chunk(prepare(BASE, reqs))
    assert [len(c) for c in chunks] == [19, 2]
    assert {it.id for it in chunks[1]} == {"x", "y"}


def test_bodies_get_content_type_and_mailbox_calls_immutable_ids() -> None:
    (item,) = prepare(
        BASE,
        [
            BatchRequest(
                "PATCH",
                f"{BASE}/users/m/contacts/c1",
                body={"displayName": "A"},
                headers={"Prefer": "return=minimal"},
            )
        ],
    )
    assert item.path == "/users/m/contacts/c1"
    assert item.headers["Content-Type"] == "application/json"
    assert item.headers["Prefer"] == 'IdType="ImmutableId", return=minimal'


def test_plain_writes_carry_exactly_immutable_ids_and_json_whatever_their_neighbours_ask() -> None:
    own = BatchRequest("PATCH", "/users/m/contacts/c1", body={"displayName": "A"}, headers={"Prefer": "return=minimal"})
    plain, patched, again = prepare(BASE, [_post("m", 1), own, _post("n", 2)])
    expected = {"Prefer": 'IdType="ImmutableId"', "Content-Type": "application/json"}
    assert dict(plain.headers) == dict(again.headers) == expected
    assert patched.headers["Prefer"] == 'IdType="ImmutableId", return=minimal'
    directory = prepare(BASE, [BatchRequest("POST", "/users/m/manager", body={"a": 1})])[0]
    assert dict(directory.headers) == {"Content-Type": "application/json"}  # not a mailbox: no IdType


@pytest.mark.parametrize(
    ("reqs", "message"),
    [
        ([_post("m", 1, id="a"), _post("m", 2, id="a")], "used twice"),
        ([_post("m", 1, id="a", depends_on=["zz"])], "unknown id"),
        ([BatchRequest("MERGE", "/users/m/contacts")], "unsupported method"),
        ([BatchRequest("GET", "https://elsewhere.example/v1.0/users")], "outside"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(reqs: list[BatchRequest], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare(BASE, reqs)


def test_a_dependency_chain_longer_than_a_batch_is_refused() -> None:
    reqs = [_post("m", 0, id="0")] + [_post("m", i, id=str(i), depends_on=[str(i - 1)]) for i in range(1, 21)]
    with pytest.raises(ValueError, match="at most 20"):
        chunk(prepare(BASE, reqs))

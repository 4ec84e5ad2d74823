"""Graph bodies go through orjson, and read and write exactly as the standard library would, edge cases too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graph_emulator import GraphEmulator
from sync_core.graph import GraphClient, jsonbody

from .support import Mailbox

# Values orjson refuses on its own, which the standard library writes or reads.
EDGE_BODIES: list[Any] = [
    {"displayName": "broken \ud83d pair"},  # a lone surrogate (ensure_ascii escapes it)
    {"id": 2**70},  # beyond 64 bits
    {1: "a key that is not a string"},
]


@pytest.mark.parametrize("body", EDGE_BODIES)
def test_bodies_orjson_refuses_are_written_as_the_standard_library_writes_them(body: Any) -> None:
    written = jsonbody.encode(body)
    assert written == json.dumps(body, separators=(",", ":")).encode()
    assert jsonbody.decode(written) == json.loads(written)


def test_answers_orjson_refuses_are_read_as_the_standard_library_reads_them() -> None:
    for text in ['{"name": "broken \\ud83d pair"}', '{"n": NaN}', '{"s": "\\u00e9"}']:
        expected = json.loads(text)
        decoded = jsonbody.decode(text.encode())
        assert json.dumps(decoded) == json.dumps(expected)


def test_integers_beyond_64_bits_in_an_answer_are_read_as_floats() -> None:
    # The one known difference from the standard library (Graph sends no such numbers): see jsonbody.py.
    assert jsonbody.decode(b'{"big": 123456789012345678901234567890}') == {"big": 1.2345678901234568e29}


def test_an_ordinary_body_round_trips() -> None:
    body = {"displayName": "Zoë Ångström 日本語 😀", "businessPhones": ["+33 1"], "birthday": None, "n": 3}
    assert jsonbody.decode(jsonbody.encode(body)) == body


def test_invalid_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        jsonbody.decode(b'{"responses": [')


def test_a_body_that_is_not_json_data_is_refused_before_anything_is_sent(
    emu: GraphEmulator, client: GraphClient, mailbox: Mailbox
) -> None:
    with pytest.raises(ValueError, match=r"body of Graph POST /users/.+/contacts is not JSON data"):
        client.request("POST", mailbox.contacts, json={"displayName": {"a", "set"}})
    assert emu.log.count() == 0

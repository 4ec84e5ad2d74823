"""Fingerprints: equal contacts hash equal in any order, process and normalisation form; others differ."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.core.fingerprint import canonical, fingerprint

PAYLOAD: dict[str, Any] = {
    "displayName": "Zoë O'Brien",
    "givenName": "Zoë",
    "emailAddresses": [{"name": "Zoë O'Brien", "address": "zoe.obrien@northwind.example"}],
    "businessPhones": ["+33 1 23 45 67 89"],
    "businessAddress": {"city": "Lyon", "street": "1 rue du Dépôt"},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


def test_canonical_form_is_sorted_compact_utf8_json() -> None:
    expected = (
        '{"businessAddress":{"city":"Lyon","street":"1 rue du Dépôt"},"businessPhones":["+33 1 23 45 67 89"],'
        '"displayName":"Zoë O\'Brien","emailAddresses":[{"address":"zoe.obrien@northwind.example",'
        '"name":"Zoë O\'Brien"}],"givenName":"Zoë"}'
    ).encode()
    assert canonical(PAYLOAD) == expected
    assert fingerprint(PAYLOAD) == hashlib.sha256(expected).hexdigest()


def test_same_fingerprint_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import json,sys; from sync_core.core.fingerprint import fingerprint; "
        "print(fingerprint(json.loads(sys.stdin.read())))"
    )
    outputs = set()
    for seed in ("1", "12345"):
        result = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(PAYLOAD), capture_output=True, text=True,
            check=True, env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        outputs.add(result.stdout.strip())
    assert outputs == {fingerprint(PAYLOAD)}


def test_decomposed_unicode_equals_precomposed() -> None:
    nfd = json.loads(json.dumps(PAYLOAD))
    nfd["displayName"] = unicodedata.normalize("NFD", nfd["displayName"])
    assert nfd["displayName"] != PAYLOAD["displayName"]
    assert fingerprint(nfd) == fingerprint(PAYLOAD)


def test_tuples_hash_like_lists() -> None:
    assert fingerprint({"businessPhones": ("1", "2")}) == fingerprint({"businessPhones": ["1", "2"]})


@pytest.mark.parametrize("bad", [{"x": 1.5}, {"x": float("nan")}, {"x": b"bytes"}, {1: "int key"}])
def test_values_without_a_stable_form_are_refused(bad: dict[Any, Any]) -> None:
    with pytest.raises(TypeError, match="fingerprint"):
        fingerprint(bad)


def test_a_refused_value_is_named_by_its_path() -> None:
    with pytest.raises(TypeError, match=r"floats are not allowed .*\(at \$\.emailAddresses\[1\]\.score\)"):
        fingerprint({"emailAddresses": [{"address": "a@b.example"}, {"score": 0.5}]})
    with pytest.raises(ValueError, match=r"two keys at \$\.a are the same after NFC"):
        fingerprint({"a": {"e\u0301": 1, "\u00e9": 2}})


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.randoms())
def test_key_order_never_matters(payload: dict[str, Any], rnd: Any) -> None:
    items = list(payload.items())
    rnd.shuffle(items)
    assert fingerprint(dict(items)) == fingerprint(payload)


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(json_values, json_values)
def test_different_values_give_different_fingerprints(a: Any, b: Any) -> None:
    same = json.dumps(_nfc(a), sort_keys=True) == json.dumps(_nfc(b), sort_keys=True)
    assert (fingerprint({"v": a}) == fingerprint({"v": b})) == same


def _nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    if isinstance(value, dict):
        return {unicodedata.normalize("NFC", k): _nfc(v) for k, v in value.items()}
    return value

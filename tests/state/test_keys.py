"""Key escaping for Table Storage: reversible, never a forbidden character, never over 1 KiB, injective."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.state import StateError
from sync_core.state.keys import TABLE_KEY_MAX_UNITS, escape, table_key, unescape

FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
# Any Unicode text except lone surrogates (which keys.check refuses before escaping is reached).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
biased = st.text(st.sampled_from(list("/\\#?%~|'\x00\x1f\x7f\x9f a7EF2é😀")), max_size=60)
any_text = texts | biased
key_parts = st.lists(any_text.filter(bool), min_size=1, max_size=3)


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(any_text)
def test_escape_round_trips_and_leaves_no_forbidden_character(value: str) -> None:
    escaped = escape(value)
    assert unescape(escaped) == value
    assert not FORBIDDEN.search(escaped)
    assert "%" not in escaped


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(key_parts, key_parts)
def test_different_parts_give_different_keys(left: list[str], right: list[str]) -> None:
    if left != right:
        assert table_key(*left) != table_key(*right)


@settings(deadline=None)  # no timing in tests: the machine is shared
@given(key_parts)
def test_every_key_fits_in_one_kib_of_utf16(parts: list[str]) -> None:
    key = table_key(*parts)
    assert len(key.encode("utf-16-le")) // 2 <= TABLE_KEY_MAX_UNITS
    assert not FORBIDDEN.search(key)


def test_known_forms() -> None:
    assert escape("a/b#c?d\\e") == "a~2Fb~23c~3Fd~5Ce"
    assert escape("100% ~|") == "100~25 ~7E~7C"
    assert table_key("Company", "mbx|1") == "Company|mbx~7C1"
    assert table_key("x" * 600).startswith("~~")


@pytest.mark.parametrize("damaged", ["a~2", "a~ZZb", "a/b", "~C3"])
def test_damaged_stored_keys_are_reported(damaged: str) -> None:
    with pytest.raises(StateError, match="stored key"):
        unescape(damaged)

"""The fleet bench, small: two worker processes run function_app's queue triggers over Azurite queues, and what
they did is exact (never its times).

`python -m bench.fleet` with K=2, U=50 users, T=6 targets, GALSYNC_WRITES_PER_MESSAGE=W=30 (below U, so one
target's fill is split across messages) and no latency, against the session's Azurite and an emulator
process: a fill, a first and a quiet reconcile, each started by one message on sync-source. Counts come from
the emulator's request log and from the run records the workers collected per message; the bench itself
reads every target folder afterwards.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bench.fleet import CONTACT_DELTA, main
from tests.azurite import Azurite

K, U, T, W = 2, 50, 6, 30
USERS_DELTA_PAGE = 20  # the emulator's users delta page (graph_emulator/directory_routes.py)


@pytest.fixture(scope="module")
def results(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fleet") / "fleet-results.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZURITE_CONNECTION_STRING", azurite.connection_string)  # the bench uses the session's
        code = main(["--workers", str(K), "--users", str(U), "--targets", str(T), "--latency-ms", "0",
                     "--set", f"GALSYNC_WRITES_PER_MESSAGE={W}", "--out", str(out)])
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    data["exit_code"] = code
    return data


def run(results: dict[str, Any], name: str) -> dict[str, Any]:
    found = [r for r in results["runs"] if r["run"] == name]
    assert len(found) == 1, f"{name}: {len(found)} runs recorded"
    return found[0]


def test_every_phone_holds_every_contact_exactly_once_and_nothing_was_given_up(results: dict[str, Any]) -> None:
    # problems: each target folder read after the runs (one contact per user, none twice), poison records in
    # the state store, any invocation that raised, and any message that reached a -poison queue
    assert results["problems"] == []
    assert results["exit_code"] == 0
    assert all(r["not_ok"] == [] for r in results["runs"])
    assert all(not queue.endswith("-poison") for r in results["runs"] for queue in r["messages"])


def test_the_fill_writes_each_contact_once_in_messages_of_at_most_w_writes(results: dict[str, Any]) -> None:
    fill = run(results, "fill")
    assert fill["contact_writes"] == U * T
    per_message = fill["writes_per_message"]  # from each push's run record, as the worker collected it
    assert sum(per_message) == U * T and max(per_message) <= W
    assert fill["messages"]["sync-source"] == 1 and fill["messages"]["push-targets"] >= math.ceil(U * T / W)
    assert fill["peak_rss_mb_per_worker"] and len(fill["peak_rss_mb_per_worker"]) == K


def test_the_fill_sends_the_writes_the_set_up_and_the_directory_reads_and_nothing_else(
    results: dict[str, Any],
) -> None:
    fill = run(results, "fill")
    pages = math.ceil(U / USERS_DELTA_PAGE)
    assert fill["by_route"]["GET /users/delta"] == pages
    # per target: its userPurpose, its folder looked up and created; the target group resolved by name, its
    # members listed once, and its membership watch (one delta request)
    assert fill["requests"] == U * T + 3 * T + pages + 3
    assert fill["throttled"] == 0


def test_reconciles_read_each_folder_once_and_write_nothing(results: dict[str, Any]) -> None:
    for name in ("first reconcile", "quiet reconcile"):
        night = run(results, name)
        assert night["by_route"][CONTACT_DELTA] == T  # 50 contacts: one page of contact delta per folder
        assert night["contact_writes"] == 0 and night["most_writes_in_a_message"] == 0

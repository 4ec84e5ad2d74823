"""The benchmark suite, small: the one command runs, and what it counts is exact (never its times).

`python -m bench` at U=60 users and T=8 targets, without latency, on real emulator processes: galsync's and
the naive strategy's runs, the goals table and bench/results.json. Every count below comes from the
emulator's request log, so if galsync starts reading a target folder on a quiet run, or writing a contact
that did not change, a goal here turns MISSED and the test fails. Nothing is mocked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import core_speed
from bench.bound import fill_bound
from bench.run_all import main, one_change_round_trips

U, T = 60, 8


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    code = main(["--users", str(U), "--targets", str(T), "--latency-ms", "0", "--skip-core", "--out", str(out)])
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    data["exit_code"] = code
    return data


def run(results: dict[str, Any], strategy: str, name: str) -> dict[str, Any]:
    found = [r for r in results["runs"] if r["strategy"] == strategy and r["run"] == name]
    assert len(found) == 1, f"{strategy} {name}: {len(found)} runs recorded"
    return found[0]


def test_every_target_ends_with_exactly_the_desired_contacts_for_both_strategies(results: dict[str, Any]) -> None:
    assert results["problems"] == {"galsync": [], "naive": []}
    assert results["exit_code"] == 0


def test_galsync_fill_writes_each_contact_once_within_the_per_mailbox_limit(results: dict[str, Any]) -> None:
    fill = run(results, "galsync", "fill")
    assert fill["contact_writes"] == U * T == fill["outcome"]["created"]
    # each mailbox's creates in $batch calls of 20, after three calls that set up all T (<= 20) targets at
    # once: their userPurpose, their managed folder's look-up, and its creation
    assert fill["batches"] == T * -(-U // 20) + 3
    assert fill["throttled"] == 0 and fill["max_in_flight_per_mailbox"] <= 4


def test_galsync_quiet_run_reads_one_delta_per_source_and_the_group_watch_and_writes_nothing(
    results: dict[str, Any],
) -> None:
    quiet = run(results, "galsync", "quiet")
    assert quiet["by_route"] == {"GET /users/delta": 1, "GET /groups/delta": 1}
    assert quiet["requests"] == quiet["round_trips"] == 2 and quiet["contact_writes"] == 0


def test_one_changed_user_costs_one_write_per_target_in_one_batch(results: dict[str, Any]) -> None:
    change = run(results, "galsync", "one change")
    assert change["by_route"] == {"GET /users/delta": 1, "GET /groups/delta": 1, "POST /$batch": 1,
                                  "PATCH /users/{user}/contactFolders/{folder}/contacts/{contact}": T}
    assert change["round_trips"] == one_change_round_trips(T, 50) == 3


def test_nightly_reconcile_without_drift_costs_one_request_per_target(results: dict[str, Any]) -> None:
    for name in ("first reconcile", "reconcile"):  # 60 contacts fit one page of contact delta
        night = run(results, "galsync", name)
        assert night["by_route"] == {"GET /users/{user}/contactFolders/{folder}/contacts/delta": T}
        assert night["contact_writes"] == 0


def test_the_naive_strategy_rereads_every_folder_each_run(results: dict[str, Any]) -> None:
    # /users, the group, its members, then per target: find the folder, list its contacts
    for name in ("quiet", "reconcile"):
        naive = run(results, "naive", name)
        assert naive["requests"] == 3 + 2 * T and naive["contact_writes"] == 0
    assert run(results, "naive", "fill")["contact_writes"] == U * T
    change = run(results, "naive", "one change")
    assert change["contact_writes"] == change["outcome"]["updated"] == T


def test_every_count_goal_is_met_and_reported_against_naive(results: dict[str, Any]) -> None:
    goals = {(g["run"], g["measure"]): g for g in results["goals"]}
    for key in [("fill", "contact writes"), ("quiet", "Graph requests"), ("quiet", "contact writes"),
                ("one change", "contact writes"), ("one change", "HTTP round trips"),
                ("reconcile", "Graph requests"), ("reconcile", "contact writes")]:
        assert goals[key]["met"] is True, goals[key]
    assert goals[("quiet", "Graph requests")]["naive"] == 3 + 2 * T
    assert goals[("fill", "wall time")]["met"] is None  # no latency, no bound: times are never judged here


def test_the_fill_bound_follows_graphs_per_mailbox_limit_and_the_client_cap() -> None:
    # issue 9's case: 500 contacts into 100 mailboxes at 30 ms, 4 at a time per mailbox
    wide = fill_bound(mailboxes=100, contacts=500, latency=0.03, client_cap=100, directory_pages=25)
    assert wide.per_mailbox == pytest.approx(126 * 0.03) and wide.seconds == pytest.approx(0.06 + 126 * 0.03)
    narrow = fill_bound(mailboxes=100, contacts=500, latency=0.03, client_cap=16, directory_pages=25)
    assert narrow.seconds == pytest.approx(0.06 + (782 + 1) * 0.03)  # 50,000 / (4 x 16) rounds of 30 ms
    budget = fill_bound(mailboxes=1, contacts=25_000, latency=0.03, client_cap=100, directory_pages=0)
    assert budget.budget == 2 * 600.0 and budget.seconds == pytest.approx(0.06 + 1200.0)


def test_core_speed_plans_and_reads_every_contact_it_times() -> None:
    speeds = core_speed.throughputs(400)  # asserts inside: every plan yields the expected number of actions
    assert [t.contacts for t in speeds] == [400] * 5 and all(t.cpu_seconds > 0 for t in speeds)
    memory = core_speed.peak_memory([150])
    assert [(m.mode, m.users, m.read) for m in memory] == [("reader", 150, 150), ("sync", 150, 150)]
    assert all(m.peak_mb >= m.baseline_mb > 0 for m in memory)


def test_the_fill_reports_client_cpu_by_role_and_per_contact_write(results: dict[str, Any]) -> None:
    fill = run(results, "galsync", "fill")
    roles = fill["client_cpu_by_role_seconds"]
    assert set(roles) == {"read", "plan", "record", "send", "other"}
    assert all(roles[name] > 0 for name in ("read", "plan", "record", "send"))  # each role's code is marked
    assert sum(roles.values()) == pytest.approx(fill["client_cpu_seconds"], abs=0.01)
    goals = {(g["run"], g["measure"]): g for g in results["goals"]}
    per_write = goals[("fill", "client CPU per contact write")]
    assert per_write["galsync"] == pytest.approx(fill["client_cpu_seconds"] * 1000 / (U * T), abs=0.002)
    assert per_write["met"] is None  # U x T = 480 writes: set-up weighs too much to judge the goal
    naive_roles = run(results, "naive", "fill")["client_cpu_by_role_seconds"]
    assert naive_roles["send"] > 0 and naive_roles["plan"] == naive_roles["record"] == 0  # same client, no push

"""The fleet's arithmetic in docs/performance.md ("The fleet on Flex Consumption") stays true to what is deployed.

bench/fleet_sizing.py reads host.json, the Bicep defaults and the settings' defaults; the page quotes its two
tables verbatim, so changing batchSize, maximumInstanceCount, the fleet's budget or the per-message limits
without redoing the arithmetic fails here. The other tests check the choices the page argues for: the fleet
sends Graph's app-wide rate at the latency it is sized for and no more, and an instance holds enough
mailboxes to use its share of calls.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bench.bound import BATCH_SIZE
from bench.fleet_sizing import (
    LATENCIES,
    TENANT_MAILBOXES,
    TENANT_USERS,
    call_seconds,
    calls_for_rate,
    compared_fleets,
    deployed_fleet,
    fill,
    inputs_table,
    table,
)
from sync_core.graph.concurrency import GRAPH_APP_REQUESTS_PER_SECOND, GRAPH_REQUEST_SECONDS
from sync_core.settings import spec
from tests.infra.bicep_tree import ROOT

PAGE = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
WRITE_KB = 1.8  # the most one in-flight contact write holds in memory (docs/performance.md)


def test_the_page_quotes_the_arithmetic_of_the_deployed_files() -> None:
    fleet = deployed_fleet()
    assert inputs_table(fleet) in PAGE, "docs/performance.md: rerun `python -m bench.fleet_sizing`"
    fills = table(compared_fleets(fleet), users=TENANT_USERS, mailboxes=TENANT_MAILBOXES, latencies=LATENCIES)
    assert fills in PAGE, "docs/performance.md: rerun `python -m bench.fleet_sizing`"


def test_the_readme_gives_the_same_fill_times_and_instances() -> None:
    fleet = deployed_fleet()
    section = README.split("## Performance", 1)[1].split("\n## ", 1)[0]
    for latency in LATENCIES:
        run = fill(fleet, users=TENANT_USERS, mailboxes=TENANT_MAILBOXES, latency=latency)
        row = (f"| {latency * 1000:.0f} ms | {run.seconds / 60:.1f} minutes | {run.instances} "
               f"| {run.asked_of_rate:.2g} x")
        assert row in section, f"README, Performance: no row {row!r}"


def test_the_sizing_reads_what_is_deployed(bicep: dict[str, dict[str, Any]]) -> None:
    fleet = deployed_fleet()
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    main = bicep["main.bicep"]["parameters"]
    assert (fleet.batch_size, fleet.new_batch_threshold) == (queues["batchSize"], queues["newBatchThreshold"])
    assert fleet.max_instances == main["maximumInstanceCount"]["default"]
    assert fleet.calls_per_instance == main["fleetCallsInFlight"]["default"] // main["maximumInstanceCount"]["default"]
    assert fleet.writes_per_message == int(spec("GALSYNC_WRITES_PER_MESSAGE").default)
    assert fleet.instance_gb * 1024 == main["instanceMemoryMB"]["default"]


def test_the_fleet_sends_graphs_rate_at_the_latency_it_is_sized_for_and_no_more(
    bicep: dict[str, dict[str, Any]],
) -> None:
    # The budget is what sends the rate at the latency the Graph client's own cap is sized for (100 ms).
    assert bicep["main.bicep"]["parameters"]["fleetCallsInFlight"]["default"] == calls_for_rate(GRAPH_REQUEST_SECONDS)
    fleet = deployed_fleet()
    calls = fleet.max_instances * fleet.calls_per_instance
    rate = calls * BATCH_SIZE / call_seconds(GRAPH_REQUEST_SECONDS)
    assert 0.95 * GRAPH_APP_REQUESTS_PER_SECOND <= rate <= GRAPH_APP_REQUESTS_PER_SECOND
    # As deployed before (each instance its own 325 calls, up to 100 instances) the fleet asked several times more.
    before = compared_fleets(fleet)[-1][1]
    run = fill(before, users=TENANT_USERS, mailboxes=TENANT_MAILBOXES, latency=GRAPH_REQUEST_SECONDS)
    assert run.asked_of_rate > 4


def test_an_instance_holds_mailboxes_enough_for_its_calls_and_memory_for_their_writes() -> None:
    fleet = deployed_fleet()
    mailboxes = fleet.messages_per_instance * fleet.targets_per_push(TENANT_USERS)
    assert mailboxes >= fleet.calls_per_instance  # the cap, not the queue settings, sets the pace
    held_mb = fleet.messages_per_instance * fleet.writes_per_message * WRITE_KB / 1024
    assert held_mb <= fleet.instance_gb * 1024 / 2
    # Flex shrinks the fleet once fewer than instances x batchSize messages remain: the last tenth at most.
    messages = math.ceil(TENANT_MAILBOXES / fleet.targets_per_push(TENANT_USERS))
    assert fleet.max_instances * fleet.batch_size <= messages / 10

"""The fleet's arithmetic in docs/performance.md ("The fleet on Flex Consumption") stays true to what is deployed.

bench/fleet_sizing.py reads host.json and what the Bicep derives from its defaults; the page quotes its two
tables verbatim, so changing batchSize, maximumInstanceCount, the fleet's budget or the per-message limits
without redoing the arithmetic fails here. The other tests check the choices the page argues for: the fleet
sends Graph's app-wide rate at the latency it is sized for and no more, an instance's messages keep its calls
busy, and every message ends in under 2 minutes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bench.bicep_values import FleetSettings
from bench.bound import BATCH_SIZE
from bench.fleet_sizing import (
    LATENCIES,
    TENANT_MAILBOXES,
    TENANT_USERS,
    bound_seconds,
    call_seconds,
    calls_for_rate,
    compared_fleets,
    deployed_fleet,
    fill,
    inputs_table,
    table,
)
from sync_core.graph.concurrency import GRAPH_APP_REQUESTS_PER_SECOND, GRAPH_REQUEST_SECONDS
from sync_core.service.waves import WAVE_PER_MAILBOX
from sync_core.settings import MAILBOX_WRITES_PER_MESSAGE, Settings
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
    assert fleet.instance_gb * 1024 == main["instanceMemoryMB"]["default"]
    # A message's mailboxes: the instance's calls shared among its messages; its writes: 3,000 a mailbox.
    assert fleet.targets_per_message == fleet.calls_per_instance // fleet.messages_per_instance == 4
    assert fleet.writes_per_message == fleet.targets_per_message * MAILBOX_WRITES_PER_MESSAGE == 12_000
    app = FleetSettings(main=bicep["main.bicep"], app=bicep["app/function-app.bicep"])
    assert app.variable("mailboxWritesPerMessage") == MAILBOX_WRITES_PER_MESSAGE


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


@pytest.mark.parametrize(("budget", "instances"), [(418, 10), (126, 3), (126, 10), (1_000, 20), (2_000, 10)])
def test_an_instance_keeps_its_calls_busy_and_every_message_has_a_call_per_mailbox(budget: int, instances: int) -> None:
    fleet = deployed_fleet({"fleetCallsInFlight": budget, "maximumInstanceCount": instances})
    mailboxes = fleet.messages_per_instance * fleet.targets_per_message
    # Every mailbox of the messages an instance runs has a call, and fewer calls than messages stay idle.
    assert fleet.calls_per_instance - fleet.messages_per_instance < mailboxes <= fleet.calls_per_instance
    assert fleet.writes_per_message // fleet.targets_per_message == MAILBOX_WRITES_PER_MESSAGE


def test_every_message_ends_in_under_2_minutes_and_the_fill_is_near_the_bound() -> None:
    fleet = deployed_fleet()
    for latency in LATENCIES:
        run = fill(fleet, users=TENANT_USERS, mailboxes=TENANT_MAILBOXES, latency=latency)
        assert run.longest_message < 120, f"{latency * 1000:.0f} ms"
        assert run.seconds <= 1.1 * bound_seconds(users=TENANT_USERS, mailboxes=TENANT_MAILBOXES, latency=latency)
        # Each of the 500 messages ends once (3,000 of 5,000 keys) and hands on the rest once.
        assert run.messages == 2 * TENANT_MAILBOXES // fleet.targets_per_message
    # Messages of one mailbox (what the fan-out made of this tenant before) leave most calls idle.
    one_mailbox = dict(compared_fleets(fleet))["deployed, messages of 1 mailbox and 3,000 writes"]
    slow = fill(one_mailbox, users=TENANT_USERS, mailboxes=TENANT_MAILBOXES, latency=GRAPH_REQUEST_SECONDS)
    assert slow.calls == fleet.max_instances * fleet.messages_per_instance
    assert slow.seconds > 3 * bound_seconds(users=TENANT_USERS, mailboxes=TENANT_MAILBOXES,
                                            latency=GRAPH_REQUEST_SECONDS)


def test_an_instance_holds_a_slice_of_writes_per_mailbox_in_memory() -> None:
    fleet = deployed_fleet()
    held_mb = fleet.messages_per_instance * fleet.targets_per_message * WAVE_PER_MAILBOX * WRITE_KB / 1024
    assert held_mb <= fleet.instance_gb * 1024 / 2
    # Flex shrinks the fleet once fewer than instances x batchSize messages remain: the last tenth at most.
    messages = math.ceil(TENANT_MAILBOXES / fleet.targets_per_message)
    assert fleet.max_instances * fleet.batch_size <= messages / 10


def test_the_command_line_defaults_give_each_mailbox_of_a_message_the_same_writes() -> None:
    defaults = Settings.from_env({})
    assert defaults.writes_per_message == defaults.targets_per_message * MAILBOX_WRITES_PER_MESSAGE

"""How big the Functions fleet grows for an initial fill, how fast it fills, and what that costs.

Not a benchmark: arithmetic over the deployed settings (host.json, the Bicep defaults, sync_core/settings.py)
and one measured figure, the time of a `$batch` call. docs/performance.md ("The fleet on Flex Consumption")
explains each step; `python -m bench.fleet_sizing` prints the two tables that section quotes, and a test keeps
them in step.

- A push message carries k = GALSYNC_TARGETS_PER_MESSAGE mailboxes and advances them together, one `$batch`
  call in flight per mailbox, until it has done W = GALSYNC_WRITES_PER_MESSAGE writes (W / k per mailbox);
  it then ends, and the message that does the rest queues again behind the others.
- Flex Consumption runs ceil(queue length / batchSize) push instances (target-based scaling; the queue length
  counts messages being processed too), at most maximumInstanceCount; each runs up to batchSize +
  newBatchThreshold messages at once, and at most GALSYNC_MAX_CONCURRENCY `$batch` calls.
- A call carries 20 creates, which Graph runs 4 at a time: 6 latencies with its envelope, times the measured
  overhead. The fleet sends calls x 20 / call time requests a second; Graph serves at most its app-wide
  rate, and what is sent beyond it comes back 429 (the fleet then runs at the rate, paced by Retry-After).
- Billing: on-demand instances pay GB-seconds while they execute, plus executions (one per message,
  follow-ons included).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.bicep_values import FleetSettings
from bench.bound import BATCH_PARALLEL, BATCH_SIZE, PER_MAILBOX_CONCURRENCY
from sync_core.graph.concurrency import GRAPH_APP_REQUESTS_PER_SECOND

ROOT = Path(__file__).resolve().parents[1]
TENANT_USERS, TENANT_MAILBOXES = 5_000, 2_000  # the tenant of docs/performance.md
LATENCIES = (0.030, 0.100)

# Measured (docs/performance.md): one 50-target message at U=500, 16 calls in flight and 30 ms took 15.1 s
# where 6 latencies per call predict 14.1 s; every call time below carries that overhead.
CALL_OVERHEAD = 15.1 / 14.1
DIRECTORY_PAGE_USERS = 20  # users per delta page, as the bench's directory serves them

# Flex Consumption, on demand, pay-as-you-go, East US (docs/performance.md names the sources and their date).
PRICE_PER_GB_SECOND = 0.000026
PRICE_PER_MILLION_EXECUTIONS = 0.40


def call_seconds(latency: float) -> float:
    """Time of one full `$batch` of 20 creates: its envelope plus 5 waves of 4, with the measured overhead."""
    return (1 + math.ceil(BATCH_SIZE / BATCH_PARALLEL)) * latency * CALL_OVERHEAD


def calls_for_rate(latency: float) -> int:
    """`$batch` calls in flight at which a fleet sends Graph's app-wide rate (Little's law, per call)."""
    return math.ceil(GRAPH_APP_REQUESTS_PER_SECOND * call_seconds(latency) / BATCH_SIZE)


@dataclass(frozen=True)
class Fleet:
    """The deployed settings that decide a fill's pace."""

    batch_size: int  # host.json extensions.queues.batchSize
    new_batch_threshold: int  # host.json extensions.queues.newBatchThreshold
    max_instances: int  # Bicep maximumInstanceCount
    calls_per_instance: int  # GALSYNC_MAX_CONCURRENCY as deployed
    targets_per_message: int  # GALSYNC_TARGETS_PER_MESSAGE, derived in Bicep
    writes_per_message: int  # GALSYNC_WRITES_PER_MESSAGE, derived in Bicep
    instance_gb: float  # Bicep instanceMemoryMB / 1024

    @property
    def messages_per_instance(self) -> int:
        return self.batch_size + self.new_batch_threshold

    def keys_per_part(self, mailboxes: int) -> int:
        """Keys one message writes to each of its `mailboxes` before it hands on: W / k, at least one."""
        return max(1, self.writes_per_message // max(mailboxes, 1))


@dataclass(frozen=True)
class Fill:
    latency: float
    messages: int  # push messages run, the ones handed on included
    targets_per_message: int
    seconds: float
    instances: int  # the most push instances at once
    calls: int  # the most `$batch` calls in flight, fleet-wide
    asked_of_rate: float  # the most the fleet asked of Graph, as a share of its app-wide rate
    longest_message: float
    instance_seconds: float
    gb_seconds: float

    @property
    def executions(self) -> int:
        return self.messages + 1  # the pushes and the sync that fans them out

    @property
    def cost(self) -> float:
        """On-demand cost in US dollars without the monthly free grants."""
        return self.gb_seconds * PRICE_PER_GB_SECOND + self.executions / 1e6 * PRICE_PER_MILLION_EXECUTIONS


@dataclass
class _Part:
    """One push message on the queue: its mailboxes, the keys per mailbox it and its follow-ons still write,
    and the writes per mailbox left before it hands on."""

    mailboxes: int
    keys_left: int
    part_left: float
    started: float | None = None

    @classmethod
    def queued(cls, fleet: Fleet, mailboxes: int, keys: int) -> _Part:
        return cls(mailboxes, keys, float(min(keys, fleet.keys_per_part(mailboxes))))


def fill(fleet: Fleet, *, users: int, mailboxes: int, latency: float, step: float = 0.25) -> Fill:
    """Simulate a first fill of `mailboxes` mailboxes with `users` contacts each (see the module doc)."""
    k = fleet.targets_per_message
    queue = [_Part.queued(fleet, min(k, mailboxes - start), users) for start in range(0, mailboxes, k)]
    longest, messages = 0.0, 0
    per_call = call_seconds(latency)
    reading = math.ceil(users / DIRECTORY_PAGE_USERS) * latency + 2 * latency
    now, instance_seconds, most_instances, most_calls, most_asked = reading, 0.0, 0, 0, 0.0
    while queue:
        instances = min(fleet.max_instances, math.ceil(len(queue) / fleet.batch_size))
        running = queue[: instances * fleet.messages_per_instance]
        wanted = sum(p.mailboxes for p in running)  # one call per mailbox at a time
        calls = min(wanted, instances * fleet.calls_per_instance)
        asked = calls * BATCH_SIZE / per_call
        served = min(1.0, GRAPH_APP_REQUESTS_PER_SECOND / asked)
        per_mailbox = calls / wanted * BATCH_SIZE / per_call * served  # writes a second to each mailbox
        now += step
        for part in running:
            if part.started is None:
                part.started = now - step
            part.part_left -= per_mailbox * step
            if part.part_left <= 0:
                longest, messages = max(longest, now - part.started), messages + 1
                queue.remove(part)
                left = part.keys_left - fleet.keys_per_part(part.mailboxes)
                if left > 0:  # the follow-on queues behind every message waiting
                    queue.append(_Part.queued(fleet, part.mailboxes, left))
        instance_seconds += instances * step
        most_instances, most_calls = max(most_instances, instances), max(most_calls, calls)
        most_asked = max(most_asked, asked / GRAPH_APP_REQUESTS_PER_SECOND)
    return Fill(latency, messages, k, now, most_instances, most_calls, most_asked, longest, instance_seconds,
                instance_seconds * fleet.instance_gb)


def bound_seconds(*, users: int, mailboxes: int, latency: float) -> float:
    """The least time Graph allows: its app-wide rate, or one mailbox's 4 at a time, whichever is longer."""
    per_mailbox = math.ceil(users / PER_MAILBOX_CONCURRENCY) * latency + latency
    return max(users * mailboxes / GRAPH_APP_REQUESTS_PER_SECOND, per_mailbox)


def deployed_fleet(parameters: dict[str, int] | None = None) -> Fleet:
    """The fleet as deployed: host.json, and what infra/ derives from main.bicep's defaults (`parameters`
    overrides some, as `azd env set` would)."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    bicep = FleetSettings(parameters)
    return Fleet(
        batch_size=int(queues["batchSize"]),
        new_batch_threshold=int(queues["newBatchThreshold"]),
        max_instances=bicep.parameters["maximumInstanceCount"],
        calls_per_instance=bicep.setting("GALSYNC_MAX_CONCURRENCY"),
        targets_per_message=bicep.setting("GALSYNC_TARGETS_PER_MESSAGE"),
        writes_per_message=bicep.setting("GALSYNC_WRITES_PER_MESSAGE"),
        instance_gb=bicep.parameters["instanceMemoryMB"] / 1024,
    )


def inputs_table(fleet: Fleet) -> str:
    """The deployed values the arithmetic uses, each with where it is set (docs/performance.md quotes it)."""
    rows = [
        ("push messages an instance runs at once", "host.json batchSize + newBatchThreshold",
         f"{fleet.batch_size} + {fleet.new_batch_threshold} = {fleet.messages_per_instance}"),
        ("instances per waiting message", "host.json batchSize (target executions per instance)",
         f"1 per {fleet.batch_size}"),
        ("most push instances", "Bicep maximumInstanceCount", str(fleet.max_instances)),
        ("`$batch` calls in flight per instance", "GALSYNC_MAX_CONCURRENCY, derived in Bicep",
         str(fleet.calls_per_instance)),
        ("the fleet's calls in flight", "instances x calls", str(fleet.max_instances * fleet.calls_per_instance)),
        ("mailboxes per push message, each with a call in flight",
         "GALSYNC_TARGETS_PER_MESSAGE, derived in Bicep: calls / messages per instance",
         str(fleet.targets_per_message)),
        ("writes per push message, then it hands on",
         "GALSYNC_WRITES_PER_MESSAGE, derived in Bicep: mailboxes x 3,000", f"{fleet.writes_per_message:,}"),
        ("instance memory", "Bicep instanceMemoryMB", f"{fleet.instance_gb * 1024:,.0f} MB"),
    ]
    lines = ["| input | set by | value |", "|---|---|---:|"]
    return "\n".join(lines + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def table(fleets: Sequence[tuple[str, Fleet]], *, users: int, mailboxes: int, latencies: Sequence[float]) -> str:
    """The Markdown table of fills docs/performance.md quotes: one row per fleet and latency."""
    rows = ["| fleet | latency | fill | x bound | push messages | push instances | calls in flight "
            "| asked of Graph's rate | longest message | GB-s | cost, no free grant |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, fleet in fleets:
        for latency in latencies:
            run = fill(fleet, users=users, mailboxes=mailboxes, latency=latency)
            bound = bound_seconds(users=users, mailboxes=mailboxes, latency=latency)
            rows.append(
                f"| {label} | {latency * 1000:.0f} ms | {run.seconds / 60:.1f} min | {run.seconds / bound:.2f} "
                f"| {run.messages:,} | {run.instances} | {run.calls} | {run.asked_of_rate:.2f} "
                f"| {run.longest_message:.0f} s | {run.gb_seconds:,.0f} | ${run.cost:.2f} |")
    return "\n".join(rows)


def compared_fleets(deployed: Fleet) -> list[tuple[str, Fleet]]:
    """The deployed fleet; the budget for 30 ms on as few instances as keep 4 mailboxes a message (Bicep derives
    the rest again); the deployed fleet with messages of one mailbox and 3,000 writes (what the fan-out's W / U
    made of this tenant before messages kept their mailboxes); and the fleet deployed before this sizing."""
    budget = calls_for_rate(0.030)
    instances = max(1, budget // (deployed.targets_per_message * deployed.messages_per_instance))
    for_30_ms = deployed_fleet({"fleetCallsInFlight": budget, "maximumInstanceCount": instances})
    one_mailbox = replace(deployed, targets_per_message=1, writes_per_message=3_000)
    before = replace(deployed, batch_size=8, new_batch_threshold=4, max_instances=100, calls_per_instance=325)
    return [("deployed", deployed),
            (f"budget {budget} on {instances} instances ({for_30_ms.calls_per_instance} calls, "
             f"{for_30_ms.targets_per_message} mailboxes a message)", for_30_ms),
            ("deployed, messages of 1 mailbox and 3,000 writes", one_mailbox),
            ("before: batchSize 8 + 4, 100 instances, 325 calls each", before)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=TENANT_USERS)
    parser.add_argument("--mailboxes", type=int, default=TENANT_MAILBOXES)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[ms * 1000 for ms in LATENCIES])
    args = parser.parse_args(argv)
    deployed = deployed_fleet()
    print(inputs_table(deployed))
    print()
    print(table(compared_fleets(deployed), users=args.users, mailboxes=args.mailboxes,
                latencies=[ms / 1000 for ms in args.latency_ms]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

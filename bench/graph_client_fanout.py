"""Pushing one change to many mailboxes: round trips and time, against the bound Graph's limits set.

Runs the Graph emulator in this process with added latency per request (default 30 ms, like a real Graph
call), then pushes changes with `GraphClient.batch` and prints what it cost:

- fan-out: one new contact in each of N mailboxes (what a changed directory user costs);
- burst: many new contacts in a few mailboxes (where Graph's 4-per-mailbox limit is what binds).
The fan-out runs twice: "cold" includes opening the TLS connections, "fan-out" reuses them as a
long-running worker does. The emulator shares this process (and its CPU) with the client.

The bound is the least time Graph's documented limits allow for the work, given the client's in-flight
budget (GALSYNC_MAX_CONCURRENCY = C) and L of latency per inner request:
  - per mailbox: at most 4 requests at once  -> max over mailboxes of ceil(requests_m / 4) * L;
  - per $batch: Graph runs at most 4 inner requests at once, C batches in flight -> ceil(N / (4 C)) * L;
  the bound is the larger of the two, plus one L for the $batch envelope itself (the emulator adds its
  latency to the envelope too). A ratio near 1 means the client is limited by Graph, not by itself.
Also printed: the naive cost (one request after another, N * L) and the per-mailbox maximum in flight
seen by the emulator (must never exceed 4), and 429s (should be 0: the client stays under the limits).

    .venv/bin/python bench/graph_client_fanout.py [--mailboxes 400] [--burst-mailboxes 8] [--burst 60]
        [--latency-ms 30] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph_emulator import GraphEmulator  # noqa: E402
from graph_emulator.pipeline import BATCH_WORKERS as EMULATOR_BATCH_WORKERS  # noqa: E402
from sync_core.graph import BatchRequest, GraphClient, StaticToken  # noqa: E402


@dataclass(frozen=True)
class Run:
    name: str
    requests: int
    mailboxes: int
    seconds: float
    round_trips: int
    inner: int
    max_in_flight: int
    throttled: int
    failed: int
    bound: float
    naive: float


def _mailboxes(g: GraphEmulator, n: int, prefix: str) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        user = g.tenant.directory.add_user(displayName=f"{prefix} {i:04d}")
        folder = g.tenant.mailboxes.create_folder(user["id"], "Company contacts")
        out.append((user["id"], folder["id"]))
    return out


def _push(
    g: GraphEmulator,
    client: GraphClient,
    name: str,
    targets: list[tuple[str, str]],
    per_mailbox: int,
    latency: float,
    concurrency: int,
) -> Run:
    reqs = [
        BatchRequest(
            "POST",
            f"/users/{uid}/contactFolders/{fid}/contacts",
            body={"displayName": f"Dispatch {k}", "businessPhones": ["+33 1 23 45 67 89"]},
        )
        for uid, fid in targets
        for k in range(per_mailbox)
    ]
    g.log.clear()
    started = time.perf_counter()
    results = client.batch(reqs)
    seconds = time.perf_counter() - started
    per_box = Counter(uid for uid, _ in targets for _ in range(per_mailbox))
    n = len(reqs)
    bound = max(max(math.ceil(k / 4) for k in per_box.values()), math.ceil(n / (4 * concurrency))) * latency
    return Run(
        name=name,
        requests=n,
        mailboxes=len(targets),
        seconds=seconds,
        round_trips=g.log.round_trips(),
        inner=g.log.count(via_batch=True),
        max_in_flight=max((g.log.max_in_flight(uid) for uid, _ in targets), default=0),
        throttled=g.log.count(status=429),
        failed=sum(1 for r in results if not r.ok),
        bound=bound + latency,
        naive=n * latency,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=400)
    parser.add_argument("--burst-mailboxes", type=int, default=8)
    parser.add_argument("--burst", type=int, default=60, help="changes per mailbox in the burst run")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16, help="GALSYNC_MAX_CONCURRENCY")
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    with GraphEmulator.start(scenario=None) as g:
        fanout = _mailboxes(g, args.mailboxes, "Driver")
        burst = _mailboxes(g, args.burst_mailboxes, "Depot")
        g.faults.configure(latency_ms=args.latency_ms)
        with GraphClient(
            g.base_url, StaticToken(g.access_token()), ca_bundle=g.ca_file, max_concurrency=args.concurrency
        ) as client:
            # The first run also opens the TLS connections (a cold function instance pays this once).
            runs = [_push(g, client, "cold", fanout, 1, latency, args.concurrency)]
            runs += [
                _push(g, client, "fan-out", fanout, 1, latency, args.concurrency),
                _push(g, client, "burst", burst, args.burst, latency, args.concurrency),
            ]

    print(f"latency {args.latency_ms:.0f} ms per request, GALSYNC_MAX_CONCURRENCY={args.concurrency}")
    if 4 * args.concurrency > EMULATOR_BATCH_WORKERS:
        print(
            f"note: the emulator runs at most {EMULATOR_BATCH_WORKERS} $batch inner requests at once "
            f"across all batches, fewer than the {4 * args.concurrency} this concurrency allows: for "
            "fan-out the emulator, not the client, is the cap"
        )
    header = (
        f"{'run':<8} {'requests':>8} {'mailboxes':>9} {'round trips':>11} {'inner':>6} {'time s':>7} "
        f"{'bound s':>7} {'x bound':>7} {'naive s':>7} {'max/mbx':>7} {'429s':>5} {'failed':>6}"
    )
    print(header)
    for r in runs:
        print(
            f"{r.name:<8} {r.requests:>8} {r.mailboxes:>9} {r.round_trips:>11} {r.inner:>6} "
            f"{r.seconds:>7.2f} {r.bound:>7.2f} {r.seconds / r.bound:>7.2f} {r.naive:>7.2f} "
            f"{r.max_in_flight:>7} {r.throttled:>5} {r.failed:>6}"
        )


if __name__ == "__main__":
    main()

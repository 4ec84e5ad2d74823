"""Never more than 4 requests in flight per mailbox, proven from the emulator's own log under many threads.

The emulator records, for each request it works on, how many requests to the same mailbox it was working
on at that moment (itself included), and answers a 5th concurrent one with 429 MailboxConcurrency as
Graph does. Latency is switched on so that requests really overlap.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from graph_emulator import GraphEmulator
from sync_core.graph import BatchRequest, GraphClient

from .support import Mailbox, add_mailbox, make_client

CONTACTS = "/users/{user}/contactFolders/{folder}/contacts"


def _most_at_once(emu: GraphEmulator) -> int:
    """The most requests the emulator was working on at one instant (any mailbox)."""
    entries = emu.log.entries()
    return max(sum(1 for o in entries if o.start <= e.start < o.end) for e in entries)


def _work(client: GraphClient, mailbox: Mailbox, n: int) -> None:
    for i in range(n):
        if i % 2:
            client.get(mailbox.contacts, params={"$top": "1"})
        else:
            client.request("POST", mailbox.contacts, json={"displayName": f"C{i}"})


def test_many_threads_on_one_mailbox_never_exceed_4(emu: GraphEmulator, mailbox: Mailbox) -> None:
    emu.faults.configure(latency_ms=15)
    client = make_client(emu, max_concurrency=40)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda _: _work(client, mailbox, 6), range(32)))
    assert emu.log.count(mailbox=mailbox.user_id) == 32 * 6
    assert emu.log.max_in_flight(mailbox.user_id) == 4  # saturated, never over
    assert emu.log.count(status=429) == 0 and client.stats.retries == 0


def test_batches_and_single_requests_together_never_exceed_4(emu: GraphEmulator, mailbox: Mailbox) -> None:
    emu.faults.configure(latency_ms=10)
    client = make_client(emu, max_concurrency=40)

    def batch(k: int) -> None:
        reqs = [BatchRequest("POST", mailbox.contacts, body={"displayName": f"B{k}-{i}"}) for i in range(20)]
        assert all(r.ok for r in client.batch(reqs))

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(batch, k) for k in range(6)]
        futures += [pool.submit(_work, client, mailbox, 6) for _ in range(10)]
        for f in futures:
            f.result()
    assert emu.log.count(route=CONTACTS, method="POST") == 6 * 20 + 10 * 3
    assert emu.log.max_in_flight(mailbox.user_id) <= 4
    assert emu.log.count(status=429) == 0


def test_mailboxes_run_in_parallel_each_within_its_limit(emu: GraphEmulator) -> None:
    emu.faults.configure(latency_ms=15)
    boxes = [add_mailbox(emu, f"Driver {i}") for i in range(4)]
    client = make_client(emu, max_concurrency=16)
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(lambda k: _work(client, boxes[k % 4], 6), range(24)))
    peaks = [emu.log.max_in_flight(b.user_id) for b in boxes]
    assert max(peaks) == 4  # each mailbox within its limit, and the limit was reached
    assert emu.log.count(status=429) == 0
    # More than one mailbox was served at the same moment: the per-mailbox limit, not a global one, bounds it.
    overlapping = _most_at_once(emu)
    assert overlapping > 4


def test_the_global_cap_bounds_everything(emu: GraphEmulator) -> None:
    emu.faults.configure(latency_ms=15)
    boxes = [add_mailbox(emu, f"Driver {i}") for i in range(6)]
    client = make_client(emu, max_concurrency=3)
    with ThreadPoolExecutor(18) as pool:
        list(pool.map(lambda k: _work(client, boxes[k % 6], 2), range(18)))
    overlapping = _most_at_once(emu)
    assert overlapping <= 3

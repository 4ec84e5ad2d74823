"""Never more than 4 requests in flight per mailbox, proven from the emulator's own log under many threads.

The emulator records, for each request it works on, how many requests to the same mailbox it was working
on at that moment (itself included), and answers a 5th concurrent one with 429 MailboxConcurrency as
Graph does. Latency is switched on so that requests really overlap.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from graph_emulator import GraphEmulator
from sync_core.graph import BatchRequest, GraphClient
from sync_core.graph.concurrency import APP_WIDE_IN_FLIGHT, parallel_calls
from sync_core.settings import SPECS

from .support import Mailbox, add_mailbox, make_client, settings_for

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


def _most_mailbox_writes_at_once(emu: GraphEmulator) -> int:
    """The most inner requests to mailboxes the emulator was working on at one instant (a sweep over the log)."""
    events = sorted(
        (t, step)
        for e in emu.log.entries()
        if e.via_batch and e.mailbox is not None
        for t, step in ((e.start, 1), (e.end, -1))
    )  # at a tie the end (-1) sorts first: a request that ended as another started did not overlap it
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_the_defaults_fill_40_mailboxes_4_at_a_time_each(emu: GraphEmulator) -> None:
    """One $batch stream into 40 mailboxes, with the client the settings' defaults make: every mailbox gets
    Graph's 4 requests at once, and more mailboxes are busy together than the old cap of 16 calls allowed."""
    emu.faults.configure(latency_ms=40)
    boxes = [add_mailbox(emu, f"Driver {i}") for i in range(40)]
    writes = [BatchRequest("POST", b.contacts, body={"displayName": f"C{i}"}) for i in range(60) for b in boxes]
    with GraphClient.from_settings(settings_for(emu)) as client:
        assert client.limiter.max_in_flight == APP_WIDE_IN_FLIGHT
        assert all(r.ok for r in client.batch(writes))
    assert emu.log.count(method="POST", route=CONTACTS) == 40 * 60
    assert emu.log.count(route="/$batch") == 40 * 3  # 20 writes of one mailbox per call
    assert [emu.log.max_in_flight(b.user_id) for b in boxes] == [4] * 40
    assert emu.log.count(status=429) == 0
    assert _most_mailbox_writes_at_once(emu) > 16 * 4


def test_the_default_cap_is_graphs_app_wide_rate_in_calls_and_the_settings_say_so() -> None:
    # 130,000 requests per 10 s at 0.1 s each is 1,300 requests in flight, 4 at a time per call.
    assert APP_WIDE_IN_FLIGHT == 325
    assert {s.name: s.default for s in SPECS}["GALSYNC_MAX_CONCURRENCY"] == str(APP_WIDE_IN_FLIGHT)


def test_parallel_calls_follow_the_mailboxes_of_the_work() -> None:
    one_box_calls = [{f"m{k}": 20} for k in range(40) for _ in range(3)]
    assert parallel_calls(one_box_calls, cap=325) == 40  # one call of 20 fills a mailbox's 4 slots
    assert parallel_calls(one_box_calls, cap=16) == 16  # the cap bounds it
    assert parallel_calls([{"m": 2}] * 8, cap=325) == 2  # two calls of 2 each fill one mailbox
    assert parallel_calls([{"m": 1}] * 8, cap=325) == 4
    assert parallel_calls([{f"m{k}": 1 for k in range(20)}], cap=325) == 1  # one call
    assert parallel_calls([{}, {}, {"m": 5}], cap=325) == 3  # calls that touch no mailbox count alone...
    assert parallel_calls([{}] * 40, cap=325, directory=16) == 16  # ...up to the directory's cap
    assert parallel_calls([], cap=325) == 1

"""Graph writes sent in waves, so that a worker that lost its lease stops between two of them.

A push hands every write of its mailboxes to one `$batch` stream, so that each mailbox stays as busy as
Graph allows; a fill of 50 mailboxes is 100,000 writes and several minutes. Cut into waves of at most
WAVE_PER_MAILBOX writes per mailbox, every wave still keeps all the push's mailboxes busy and lasts
seconds, and between two waves the worker asks its lease heartbeat whether it may go on. A wave is never
cut short: what was sent is answered and recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sync_core.graph import BatchRequest, BatchResult, GraphClient

WAVE_PER_MAILBOX = 60  # 3 `$batch` calls per mailbox: a few seconds at Graph's 4 requests at once per mailbox

R = TypeVar("R", bound=BatchRequest)


def run_in_waves(client: GraphClient, requests: Sequence[R], held: Callable[[], bool],
                 mailbox: Callable[[R], str]) -> list[BatchResult | None]:
    """Results in input order; None for the requests not sent because `held()` was False before their wave.

    Each mailbox's requests keep their order; wave n holds the n-th slice of WAVE_PER_MAILBOX of each.
    """
    by_mailbox: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        by_mailbox.setdefault(mailbox(request), []).append(index)
    results: list[BatchResult | None] = [None] * len(requests)
    longest = max((len(indexes) for indexes in by_mailbox.values()), default=0)
    for start in range(0, longest, WAVE_PER_MAILBOX):
        if not held():
            break
        wave = [i for indexes in by_mailbox.values() for i in indexes[start:start + WAVE_PER_MAILBOX]]
        for index, result in zip(wave, client.batch([requests[i] for i in wave]), strict=True):
            results[index] = result
    return results

"""Graph writes sent in waves, so that a worker that lost its lease stops between two of them.

A push hands every write of its mailboxes to one `$batch` stream, so that each mailbox stays as busy as
Graph allows; a fill of 50 mailboxes is 100,000 writes and several minutes. Cut into waves of at most
WAVE_PER_MAILBOX writes per mailbox, every wave still keeps all the push's mailboxes busy and lasts
seconds, and between two waves the worker asks its lease heartbeat whether it may go on. A wave is never
cut short: what was sent is answered and recorded, wave by wave, so a killed worker's finished waves stay
done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sync_core.graph import BatchRequest, BatchResult, GraphClient

WAVE_PER_MAILBOX = 60  # 3 `$batch` calls per mailbox: a few seconds at Graph's 4 requests at once per mailbox

R = TypeVar("R", bound=BatchRequest)


def run_in_waves(client: GraphClient, requests: Sequence[R], held: Callable[[], bool],
                 mailbox: Callable[[R], str], sending: Callable[[list[R]], None],
                 answered: Callable[[list[tuple[R, BatchResult]]], None]) -> list[R]:
    """Send the requests wave by wave: `sending(wave)` just before a wave goes, `answered(pairs)` as soon as it
    is back; return the requests not sent because `held()` was False before their wave.

    Each mailbox's requests keep their order; wave n holds the n-th slice of WAVE_PER_MAILBOX of each.
    """
    by_mailbox: dict[str, list[R]] = {}
    for request in requests:
        by_mailbox.setdefault(mailbox(request), []).append(request)
    longest = max((len(queue) for queue in by_mailbox.values()), default=0)
    for start in range(0, longest, WAVE_PER_MAILBOX):
        if not held():
            return [r for queue in by_mailbox.values() for r in queue[start:]]
        wave = [r for queue in by_mailbox.values() for r in queue[start:start + WAVE_PER_MAILBOX]]
        sending(wave)
        answered(list(zip(wave, client.batch(wave), strict=True)))
    return []

"""The chaos suite in CI: a bounded, derandomized run of the state machine (tests/chaos/machine.py).

Fixed examples (derandomize=True, no example database), so CI sees the same histories every time; the long,
randomly seeded run is `python bench/chaos.py`, which prints its seed. A failure prints the shrunk sequence of
steps, each galsync run's outcome, and a @reproduce_failure line.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from .machine import ChaosMachine

CI_SETTINGS = settings(max_examples=80, stateful_step_count=30, derandomize=True, database=None, deadline=None,
                       suppress_health_check=list(HealthCheck), print_blob=True)


def test_random_histories_keep_the_invariants() -> None:
    ChaosMachine.stats.clear()
    run_state_machine_as_test(ChaosMachine, settings=CI_SETTINGS)
    stats = ChaosMachine.stats
    # The histories really went through what the invariants are about, not around it.
    assert stats["converged checks"] > stats["examples"]
    for what in ("crashed", "two workers", "step: faults", "step: expire delta tokens", "step: delta replays",
                 "step: phone saves a contact", "step: phone edits", "step: phone deletes", "step: leave phones",
                 "step: another profile's contacts", "lookups by tag beside another profile's contact",
                 "step: owner deletes the managed folder", "step: mailbox leaves the scope",
                 "creates in doubt beside another profile's contact", "run: sync after the state was wiped",
                 "calm syncs after a wipe, creates counted", "run: runs beside a dead worker's sync lease",
                 "run: runs beside a dead worker's target leases", "run: runs a lease's ttl after a worker died"):
        assert sum(n for key, n in stats.items() if what in key) > 0, f"no {what!r} in {dict(stats)}"

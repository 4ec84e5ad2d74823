"""The long chaos run: thousands of random histories of the chaos state machine, with the seed printed.

Each example is a fresh emulator tenant in this process (a few users, a "Phones" group) through which
hypothesis drives directory changes, phones saving/editing/deleting contacts, expired delta tokens, replayed
delta items, 429/503/504 and dropped connections, crashing workers and two workers at once, with galsync's
syncs and reconciles in between; the invariants are checked after every step (tests/chaos/machine.py).
CI runs a small, fixed version of the same machine (tests/chaos/test_chaos.py).

    .venv/bin/python bench/chaos.py [--examples 2000] [--steps 40] [--seed N]

Prints the seed first. On success: how many examples, steps and convergence checks ran and how galsync's
runs ended. On a failure: hypothesis prints the shrunk sequence of steps (with each run's outcome), then this
prints the seed and the command that replays the same examples; the exit status is 1.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, seed, settings  # noqa: E402
from hypothesis.stateful import get_state_machine_test  # noqa: E402

from tests.chaos.machine import ChaosMachine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="random histories to run (default 2000)")
    parser.add_argument("--steps", type=int, default=40, help="most steps per history (default 40)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a new random seed)")
    args = parser.parse_args(argv)
    run_seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    replay = f".venv/bin/python bench/chaos.py --seed {run_seed} --examples {args.examples} --steps {args.steps}"
    print(f"chaos: seed {run_seed}, {args.examples} examples of up to {args.steps} steps", flush=True)
    # galsync logs each failed write at WARNING; thousands of injected faults would drown the report.
    logging.getLogger("galsync").addHandler(logging.NullHandler())
    logging.getLogger("galsync").propagate = False

    test = get_state_machine_test(ChaosMachine, settings=settings(
        max_examples=args.examples, stateful_step_count=args.steps, database=None, deadline=None,
        derandomize=False, suppress_health_check=list(HealthCheck), print_blob=True, report_multiple_bugs=False))
    test = seed(run_seed)(test)
    started = time.monotonic()
    try:
        test()
    except KeyboardInterrupt:
        print(f"\nchaos: interrupted after {time.monotonic() - started:.0f} s (seed {run_seed})")
        print_stats()
        return 130
    except BaseException:
        print(f"\nchaos: FAILED (seed {run_seed}); the shrunk sequence of steps is printed above.")
        print(f"chaos: replay with: {replay}")
        print_stats()
        raise
    elapsed = time.monotonic() - started
    print(f"chaos: passed, seed {run_seed}, {ChaosMachine.stats['examples']} examples in {elapsed:.0f} s")
    print_stats()
    return 0


def print_stats() -> None:
    """What ran (steps by rule) and how galsync's runs ended, across every example."""
    stats = ChaosMachine.stats
    width = max((len(k) for k in stats), default=10)
    for key in sorted(stats):
        print(f"  {key:<{width}}  {stats[key]:>7}")


if __name__ == "__main__":
    sys.exit(main())

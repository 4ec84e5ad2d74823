"""`python -m graph_emulator --port N --scenario NAME`: serve until Ctrl-C (for the demo and by hand)."""

from __future__ import annotations

import argparse
import signal
import threading

from graph_emulator import GraphEmulator
from graph_emulator.pipeline import BATCH_WORKERS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graph_emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--scenario", default="logistics", help="scenario to load, or 'none' for an empty tenant"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the scenario, faults and batch order")
    parser.add_argument("--latency-ms", type=int, default=0, help="time each Graph request takes")
    parser.add_argument(
        "--batch-workers",
        type=_positive,
        default=BATCH_WORKERS,
        metavar="N",
        help=f"$batch inner requests run at once across all batches (default {BATCH_WORKERS})",
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=N", help="scenario parameter, e.g. users=100000"
    )
    args = parser.parse_args(argv)
    params: dict[str, int | str] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--param needs NAME=VALUE, got {item!r}")
        params[name] = int(value) if value.isdigit() else value

    scenario = None if args.scenario.lower() == "none" else args.scenario
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with GraphEmulator.start(
        scenario=scenario,
        seed=args.seed,
        port=args.port,
        latency_ms=args.latency_ms,
        batch_workers=args.batch_workers,
        **params,
    ) as g:
        print(f"base URL:      {g.base_url}")
        print(f"authority:     {g.authority}")
        print(f"tenant id:     {g.tenant_id}")
        print(f"client id:     {g.client_id}")
        print(f"client secret: {g.client_secret}")
        print(f"CA file:       {g.ca_file}")
        print(f"control:       {g.url}/_emulator/log")
        print("serving; Ctrl-C to stop", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A burst of Graph change notifications at /api/notifications: answer times, and what was enqueued.

Starts Azurite (unless AZURITE_CONNECTION_STRING names one) and the Graph emulator, serves the function app's
HTTP functions over HTTPS with the test host stand-in (tests/functions/functions_host.py: the Functions host
cannot run here), lets galsync subscribe for real (the emulator performs the validation handshake), then
POSTs N separate notifications, each one user changed, shaped and authenticated as Graph sends them for the
`users` subscription, from a few concurrent clients. Printed:

- answer time per POST as the client sees it (TLS, HTTP, the function, the queue output write): p50, p90,
  p99, max; the goal is p99 under 200 ms (Graph counts an answer over 2.9 s as slow; I6 in docs/architecture.md);
- how many 202s, and how many sync-source messages the burst enqueued: one per profile, not one per POST;
- Graph requests made by the webhook during the burst (must be 0).

    .venv/bin/python bench/webhook_burst.py [--notifications 1000] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

import function_app  # noqa: E402
from graph_emulator import GraphEmulator  # noqa: E402
from sync_core.state import docs  # noqa: E402
from tests import azurite as azurite_plugin  # noqa: E402
from tests.functions.functions_host import FunctionsHost, HttpsFront  # noqa: E402

CONFIG = """
[[profile]]
name = "Dispatch"
folder = "Dispatch"
[[profile.source]]
type = "users"
[profile.targets]
mailboxes = ["trucks.north@northwind.example"]

[[profile]]
name = "Office"
[[profile.source]]
type = "users"
[profile.targets]
mailboxes = ["reception@northwind.example"]
"""


@contextmanager
def azurite() -> Iterator[str]:
    existing = os.environ.get("AZURITE_CONNECTION_STRING", "").strip()
    if existing:
        yield existing
        return
    with tempfile.TemporaryDirectory(prefix="galsync-bench-azurite-") as workdir:
        proc, info = azurite_plugin._start(Path(workdir))
        try:
            yield info.connection_string
        finally:
            azurite_plugin._stop(proc)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent POSTers (Graph sends in parallel)")
    args = parser.parse_args()

    with azurite() as connection, GraphEmulator.start(scenario="logistics") as g, \
            tempfile.TemporaryDirectory(prefix="galsync-bench-") as tmp:
        host = FunctionsHost(connection)
        front = HttpsFront(host, *g.issue_server_cert("127.0.0.1"))
        config = Path(tmp) / "galsync.toml"
        config.write_text(CONFIG, encoding="utf-8")
        os.environ.update({
            "GALSYNC_CONFIG_PATH": str(config), "GALSYNC_STATE": "table:",
            "GALSYNC_STORAGE_CONNECTION_STRING": connection, "GALSYNC_TABLE_PREFIX": f"b{uuid.uuid4().hex[:10]}",
            **g.galsync_settings(), "GALSYNC_WEBHOOK_BASE_URL": front.base_url,
            "GALSYNC_WEBHOOK_KEY": host.function_key,
        })
        try:
            function_app.process.reset()
            host.timer("subscriptions_timer")
            rt = function_app.process.runtime()
            [(sid, sub)] = [(k, s) for k, s in docs.read_all(rt.store, docs.Subscription) if s.resource == "users"]
            users = [u["id"] for u in g.tenant.directory.users()]
            url = f"{front.base_url}/api/notifications?code={host.function_key}"
            bodies = [json.dumps({"value": [{
                "id": str(uuid.uuid4()), "subscriptionId": sid,
                "subscriptionExpirationDateTime": "2030-01-01T00:00:00.0000000Z",
                "clientState": sub.client_state, "changeType": "updated",
                "resource": f"Users/{users[i % len(users)]}", "tenantId": g.tenant_id,
                "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{users[i % len(users)]}",
                                 "id": users[i % len(users)], "organizationId": g.tenant_id}}]})
                for i in range(args.notifications)]

            local = threading.local()

            def session() -> requests.Session:
                if not hasattr(local, "session"):
                    s = requests.Session()
                    s.trust_env = False
                    s.verify = g.ca_file
                    local.session = s
                return local.session

            def post(body: str) -> tuple[int, float]:
                started = time.perf_counter()
                resp = session().post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
                return resp.status_code, time.perf_counter() - started

            with ThreadPoolExecutor(args.clients) as pool:  # warm the connections (not counted)
                list(pool.map(lambda _: session().post(url + "&validationToken=warm", timeout=10), range(args.clients)))
            host.sent.clear()
            front.answers.clear()
            graph_calls = g.log.round_trips()
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(post, bodies))
            wall = time.perf_counter() - started

            times = [t * 1000 for _, t in results]
            server = [t * 1000 for route, _, t in front.answers if route == "notifications"]
            statuses: dict[int, int] = {}
            for status, _ in results:
                statuses[status] = statuses.get(status, 0) + 1
            enqueued = [json.loads(b) for q, b in host.sent if q == "sync-source"]
            p99 = percentile(times, 99)
            print(f"{args.notifications} notification POSTs from {args.clients} clients in {wall:.2f} s "
                  f"({args.notifications / wall:.0f}/s); profiles {', '.join(rt.config.names)}")
            print(f"answer time ms (client): p50 {statistics.median(times):.1f}  p90 {percentile(times, 90):.1f}  "
                  f"p99 {p99:.1f}  max {max(times):.1f}   goal p99 < 200: {'yes' if p99 < 200 else 'NO'}")
            print(f"time in the function ms (host side): p50 {statistics.median(server):.1f}  "
                  f"p99 {percentile(server, 99):.1f}  max {max(server):.1f}")
            print(f"answers: {dict(sorted(statuses.items()))}")
            print(f"sync-source messages enqueued: {len(enqueued)} "
                  f"({', '.join(sorted(m['profile'] for m in enqueued))}); in the queue: {host.count('sync-source')}")
            print(f"Graph requests during the burst: {g.log.round_trips() - graph_calls}")
        finally:
            function_app.process.reset()
            front.close()
            host.close()
            g.tenant.subscriptions.close()


if __name__ == "__main__":
    main()

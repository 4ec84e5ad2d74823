"""How many Graph requests per second the emulator serves over keep-alive TLS on one core.

The emulator runs as `python -m graph_emulator` in its own process pinned to one CPU; this script is the
client (several keep-alive HTTPS connections, each in a thread) on the other CPUs. It prints:
- requests/s (wall clock) for GET /users/{id}, the target being >= 500/s;
- requests per CPU-second the emulator process used (its own cost, whatever the client's speed);
- the same with 30 ms of added latency per request and many connections, to show latency holds only the
  connection it is added to (ideal: connections / 0.030 s).

    .venv/bin/python bench/emulator_throughput.py [--seconds 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Emulator:
    process: subprocess.Popen[str]
    info: dict[str, str]

    @property
    def host_port(self) -> tuple[str, int]:
        url = urlsplit(self.info["base URL"])
        return str(url.hostname), int(url.port or 443)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_emulator(latency_ms: int, cpu: int) -> Emulator:
    command = [
        sys.executable,
        "-m",
        "graph_emulator",
        "--scenario",
        "logistics",
        "--latency-ms",
        str(latency_ms),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),  # one core for the emulator
    )
    info: dict[str, str] = {}
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("serving"):
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    # Measure the server, not Graph's directory budget (8,000 requests per 10 s by default).
    root = info["base URL"].removesuffix("/v1.0")
    lifted = requests.post(
        f"{root}/_emulator/throttle", json={"directory_requests": 10**9}, verify=info["CA file"], timeout=10
    )
    lifted.raise_for_status()
    return Emulator(process, info)


def token_for(emulator: Emulator) -> str:
    response = requests.post(
        f"{emulator.info['authority']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emulator.info["client id"],
            "client_secret": emulator.info["client secret"],
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=emulator.info["CA file"],
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def measure(emulator: Emulator, seconds: float, connections: int) -> tuple[int, float, float]:
    """(requests answered 200, wall seconds, emulator CPU seconds) for GET /users/{id} on keep-alive TLS."""
    token = token_for(emulator)
    host, port = emulator.host_port
    context = ssl.create_default_context(cafile=emulator.info["CA file"])
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    first = requests.get(
        emulator.info["base URL"] + "/users?$top=1&$select=id",
        headers=headers,
        verify=emulator.info["CA file"],
        timeout=10,
    )
    user_id = first.json()["value"][0]["id"]
    path = f"/v1.0/users/{user_id}"
    counts = [0] * connections
    failures: list[str] = []
    stop = threading.Event()
    ready = threading.Barrier(connections + 1)

    def client(slot: int) -> None:
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=30)
        connection.request("GET", path, headers=headers)  # handshake and warm-up outside the window
        connection.getresponse().read()
        ready.wait()
        while not stop.is_set():
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {body[:200]!r}")
                break
            counts[slot] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    ready.wait()
    cpu_before, started = emulator.cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    stop.set()
    wall = time.perf_counter() - started
    for t in threads:
        t.join(timeout=30)
    cpu = emulator.cpu_seconds() - cpu_before
    if failures:
        raise SystemExit(f"unexpected answers: {failures[:3]}")
    return sum(counts), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--latency-connections", type=int, default=32)
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0]
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))  # the client stays off the emulator's core
    results: dict[str, object] = {"emulator_cpu": server_cpu, "machine_cpus": len(cpus)}

    emulator = start_emulator(latency_ms=0, cpu=server_cpu)
    try:
        done, wall, cpu = measure(emulator, args.seconds, args.connections)
    finally:
        emulator.stop()
    results["requests_per_second"] = round(done / wall, 1)
    results["requests_per_emulator_cpu_second"] = round(done / cpu, 1) if cpu else None
    print(f"keep-alive TLS, {args.connections} connections, emulator pinned to CPU {server_cpu}:")
    print(f"  {done} requests in {wall:.2f} s = {done / wall:.0f} requests/s (target >= 500)")
    if cpu:
        print(f"  emulator CPU time {cpu:.2f} s = {done / cpu:.0f} requests per CPU-second")

    emulator = start_emulator(latency_ms=30, cpu=server_cpu)
    try:
        done, wall, _ = measure(emulator, args.seconds, args.latency_connections)
    finally:
        emulator.stop()
    ideal = args.latency_connections / 0.030
    results["latency_30ms_requests_per_second"] = round(done / wall, 1)
    print(f"30 ms added latency, {args.latency_connections} connections:")
    print(f"  {done / wall:.0f} requests/s (ideal if latency blocks nothing else: {ideal:.0f}/s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""pytest plugin: one real Azurite (local Azure Storage: blob, queue, table) for the whole test session.

Azurite comes from npm (`npm ci` puts it in node_modules/.bin). It listens on free ports the OS picks, keeps
everything in memory, and is killed when the session ends. Set AZURITE_CONNECTION_STRING to use an Azurite
that is already running instead (the fixture then starts nothing).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

BINARY = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "azurite"
START_TIMEOUT_SECONDS = 30.0
EXTENT_MEMORY_LIMIT_MB = 512  # in-memory blob/queue data; galsync's tests store little
# Azurite prints one such line per service once it is bound; port 0 makes the OS pick free ports.
LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at (http://\S+)")


@dataclass(frozen=True)
class Azurite:
    """How to reach the running Azurite."""

    connection_string: str
    blob_endpoint: str
    queue_endpoint: str
    table_endpoint: str


def from_connection_string(conn: str) -> Azurite:
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    return Azurite(
        connection_string=conn,
        blob_endpoint=parts.get("BlobEndpoint", ""),
        queue_endpoint=parts.get("QueueEndpoint", ""),
        table_endpoint=parts.get("TableEndpoint", ""),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _start(workdir: Path) -> tuple[subprocess.Popen[bytes], Azurite]:
    """Start Azurite on OS-chosen free ports and wait until it reports every service listening.

    `--location` is not passed: Azurite 3.35 refuses it together with `--inMemoryPersistence`; the process
    runs in `workdir` instead so that nothing it might write lands in the checkout.
    """
    if not BINARY.exists():
        raise RuntimeError(f"Azurite not found at {BINARY}; run `npm ci` in the checkout first")
    output = workdir / "azurite.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [str(BINARY), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
             "--extentMemoryLimit", str(EXTENT_MEMORY_LIMIT_MB),
             "--blobHost", "127.0.0.1", "--blobPort", "0",
             "--queueHost", "127.0.0.1", "--queuePort", "0",
             "--tableHost", "127.0.0.1", "--tablePort", "0"],
            cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        endpoints = dict(LISTENING.findall(output.read_text(errors="replace")))
        if len(endpoints) == 3:
            return proc, _info(endpoints["Blob"], endpoints["Queue"], endpoints["Table"])
        time.sleep(0.05)
    _stop(proc)
    raise RuntimeError(f"Azurite did not start: {output.read_text(errors='replace')[-2000:] or 'no output'}")


def _info(blob: str, queue: str, table: str) -> Azurite:
    return from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={blob}/{ACCOUNT};QueueEndpoint={queue}/{ACCOUNT};TableEndpoint={table}/{ACCOUNT};"
    )


@contextmanager
def running() -> Iterator[Azurite]:
    """The Azurite in AZURITE_CONNECTION_STRING, or one started here for the length of the block (the suite's
    fixture and the benchmarks that need queues or tables start it the same way)."""
    existing = os.environ.get("AZURITE_CONNECTION_STRING", "").strip()
    if existing:
        yield from_connection_string(existing)
        return
    with tempfile.TemporaryDirectory(prefix="galsync-azurite-") as workdir:
        proc, info = _start(Path(workdir))
        try:
            yield info
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """The session's Azurite: started here on free ports, or the one in AZURITE_CONNECTION_STRING."""
    with running() as info:
        yield info

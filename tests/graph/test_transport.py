"""The retry decision every Graph request goes through (single requests and each request inside a $batch)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from sync_core.graph.transport import NO_ANSWER, Verdict, classify, is_replay_safe

FINAL_STATUSES = (200, 201, 204, 400, 401, 403, 404, 409, 410, 412, 424, 500, 502)


@pytest.mark.parametrize("replay_safe", [True, False])
@pytest.mark.parametrize("status", [429, 503])
def test_throttled_and_unavailable_are_repeated_whatever_the_method(status: int, replay_safe: bool) -> None:
    assert classify(status, replay_safe) is Verdict.RETRY


@pytest.mark.parametrize("status", [504, NO_ANSWER])
def test_a_timeout_or_a_lost_answer_is_repeated_only_when_repeating_is_safe(status: int) -> None:
    assert classify(status, replay_safe=True) is Verdict.RETRY
    # A POST or PATCH may have been applied: repeating it could create a second contact.
    assert classify(status, replay_safe=False) is Verdict.IN_DOUBT


@pytest.mark.parametrize("replay_safe", [True, False])
@pytest.mark.parametrize("status", FINAL_STATUSES)
def test_every_other_answer_is_final(status: int, replay_safe: bool) -> None:
    assert classify(status, replay_safe) is Verdict.FINAL


def test_reads_puts_and_deletes_are_safe_to_repeat_creates_and_edits_are_not() -> None:
    assert [m for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST", "PATCH") if is_replay_safe(m)] == [
        "GET", "HEAD", "PUT", "DELETE", "OPTIONS",
    ]
    assert is_replay_safe("get") and not is_replay_safe("patch")


def test_a_forked_worker_draws_request_ids_of_its_own() -> None:
    """Ids come from a generator seeded once per process: a forked child must not repeat its parent's. The
    fork happens in a fresh interpreter, which has no other thread to copy."""
    script = """
import os
from sync_core.graph.transport import client_request_id
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, client_request_id().encode())
    os._exit(0)
os.close(write)
theirs = os.fdopen(read, "rb").read().decode()
os.waitpid(pid, 0)
print(client_request_id(), theirs)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    mine, theirs = run.stdout.split()
    assert uuid.UUID(theirs).version == 4 and theirs != mine

"""The small world every chaos test runs in: a tenant of a few users, galsync workers on one state file, and
galsync's runs reduced to one word each ("ok", "partial", "busy", "failed (Error)")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graph_emulator import GraphEmulator
from sync_core.core.profile import parse_config
from sync_core.graph import GraphError, RetryPolicy
from sync_core.service.push import TargetsBusy
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.settings import Settings
from sync_core.state.base import DEFAULT_CLOCK, Clock
from sync_core.state.sqlite_store import SqliteStore
from tests.service.conftest import emulator_env

from .oracle import CONFIG, PROFILE, TARGET_GROUP

# How a run may fail while Graph misbehaves: a clear, typed error (I5), or other workers holding the targets.
ACCEPTED_FAILURES: tuple[type[BaseException], ...] = (GraphError, TargetsBusy)

GROUP_ID = "00000000-0000-4000-9000-000000000001"
FIRST = ("Ana", "Bo", "Chloé", "Dev", "Émile", "Farah", "Gus", "Hana", "Ines")
LAST = ("Costa", "Li", "Martin", "Patel", "O'Brien", "Haddad", "Novak", "Sato")


def user_id(n: int) -> str:
    """Deterministic ids, so a replayed example sends the same requests in the same order."""
    return f"00000000-0000-4000-8000-{n:012d}"


def hire(g: GraphEmulator, n: int, kind: str = "member", mobile: str | None = None) -> str:
    """Add the n-th user: a licensed member, an unlicensed user (no mailbox) or a guest."""
    first, last = FIRST[n % len(FIRST)], LAST[(n * 5) % len(LAST)]
    props: dict[str, Any] = {"displayName": f"{first} {last}", "givenName": first, "surname": last,
                             "mailNickname": f"u{n}"}
    if mobile is not None:
        props["mobilePhone"] = mobile
    if kind == "unlicensed":
        props.update(assignedLicenses=[], mail=None)
    elif kind == "guest":
        props["userType"] = "Guest"
    return str(g.tenant.directory.add_user(id=user_id(n), **props)["id"])


def small_tenant(g: GraphEmulator, staff: int, phones: int) -> list[str]:
    """`staff` members with a mobile number; the first `phones` of them are the targets (group "Phones")."""
    g.tenant.directory.delta_page_size = 2  # a first fill's early writes interleave with the read (early_fill.py)
    people = [hire(g, n, mobile=f"+33 6 00 00 00 {n:02d}") for n in range(staff)]
    g.tenant.directory.add_group(TARGET_GROUP, members=people[:phones], id=GROUP_ID)
    return people


def runtime(g: GraphEmulator, state: Path, clock: Clock = DEFAULT_CLOCK) -> Runtime:
    """A worker: its own Graph client (msal against the emulator) and its own connection to the state file.

    One request at a time per worker: the emulator's seeded faults then land on the same requests when an
    example is replayed. Backoff is shortened (waiting is not what these tests are about); `clock` is the
    worker's and its state store's, for leases: a test moves it past a lease's ttl instead of sleeping.
    """
    env = emulator_env(g, f"sqlite:{state}")
    env["GALSYNC_MAX_CONCURRENCY"] = "1"
    rt = Runtime.from_settings(Settings.from_env(env), config=parse_config(CONFIG, "chaos.toml"),
                               store=SqliteStore(state, clock=clock))
    rt.clock = clock
    rt.client.retry = RetryPolicy(max_attempts=6, max_seconds=20, backoff_base=0.005, backoff_max=0.05)
    return rt


def sync(rt: Runtime) -> str:
    """One incremental sync with inline pushes: "ok", "partial" (a write failed), "busy" or "failed (Error)"."""
    try:
        return sync_profile(rt, PROFILE, InlineFanOut(rt)).outcome
    except ACCEPTED_FAILURES as exc:
        return f"failed ({type(exc).__name__})"


def reconcile(rt: Runtime) -> str:
    """One reconcile: "ok", "partial" (an error or a failed write), "busy" (a target was skipped) or "failed"."""
    try:
        report = reconcile_profile(rt, PROFILE)
    except ACCEPTED_FAILURES as exc:
        return f"failed ({type(exc).__name__})"
    if report.busy:
        return "busy"
    return "partial" if report.errors or report.exec.counts["failed"] else "ok"

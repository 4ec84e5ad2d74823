"""galsync's runs for the benchmark: initial fill, quiet run, one changed user, reconcile (first and nightly).

galsync runs as the command line runs it: one process, `sync_profile` with the inline fan-out (each push
message handled in this process as it is sent, one after another), `reconcile_profile`, a SQLite state
store, the real msal and Graph client. Only the settings given in `overrides` differ from the defaults
(the benchmark raises GALSYNC_MAX_CONCURRENCY so the client's own cap is not what it measures, and says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sync_core.core.profile import parse_config
from sync_core.service.reconcile import reconcile_profile
from sync_core.service.runtime import Runtime
from sync_core.service.sync import InlineFanOut, sync_profile
from sync_core.settings import Settings

from .emulator_process import EmulatorProcess
from .measure import CONFIG, NEW_MOBILE, PROFILE, StrategyRuns, changed_user, measure
from .verify import check_targets


def runtime(emulator: EmulatorProcess, workdir: Path, overrides: Mapping[str, str]) -> Runtime:
    """galsync wired to the emulator, with a fresh state store in `workdir`."""
    env = emulator.galsync_env(f"sqlite:{workdir / 'galsync-state.db'}")
    env.update(overrides)
    rt = Runtime.from_settings(Settings.from_env(env), config=parse_config(CONFIG, "bench.toml"))
    rt.client  # noqa: B018 - sign in before timing: start-up is not a sync run
    return rt


def sync_once(rt: Runtime) -> dict[str, int]:
    fanout = InlineFanOut(rt)
    report = sync_profile(rt, PROFILE, fanout)
    if report.outcome != "ok":
        raise RuntimeError(f"galsync sync ended {report.outcome}: {fanout.report.errors[:3]}")
    report.exec = fanout.report
    return report.counts()


def reconcile_once(rt: Runtime) -> dict[str, int]:
    report = reconcile_profile(rt, PROFILE)
    if report.errors or report.exec.counts["failed"]:
        raise RuntimeError(f"galsync reconcile failed: {(report.errors + report.exec.errors)[:3]}")
    return {"targets": report.targets, **dict(report.drift), **dict(report.exec.counts)}


def galsync_runs(emulator: EmulatorProcess, workdir: Path, overrides: Mapping[str, str]) -> StrategyRuns:
    """The five runs, in order, against one emulator and one state store; then check every target."""
    rt = runtime(emulator, workdir, overrides)
    try:
        results = [
            measure(emulator, "fill", "galsync", lambda: sync_once(rt)),
            measure(emulator, "quiet", "galsync", lambda: sync_once(rt)),
        ]
        emulator.update_user(changed_user(emulator), mobilePhone=NEW_MOBILE)
        results.append(measure(emulator, "one change", "galsync", lambda: sync_once(rt)))
        results.append(measure(emulator, "first reconcile", "galsync", lambda: reconcile_once(rt)))
        results.append(measure(emulator, "reconcile", "galsync", lambda: reconcile_once(rt)))
        problems = check_targets(rt.client, rt.config.profile(PROFILE), emulator.info["target_ids"],
                                 emulator.info["users"], changed_user(emulator), NEW_MOBILE)
        return StrategyRuns("galsync", results, problems)
    finally:
        rt.close()

"""The single-process fill goals as the table judges them: wall time against the naive script, CPU per write.

Pure: the goals are computed from runs made up here (what `measure` would return), so every branch is judged
without a benchmark run; tests/bench/test_bench_counts.py runs the real thing, small.
"""

from __future__ import annotations

from bench.bound import fill_bound
from bench.emulator_process import LogSummary
from bench.measure import RunResult, StrategyRuns
from bench.run_all import Goal, Options, goals


def options(users: int = 500, targets: int = 100, latency_ms: int = 30) -> Options:
    return Options(users, targets, latency_ms, 100, 512, 10_000, 600.0, {})


def fill(strategy: str, seconds: float, cpu: float, writes: int, roles: dict[str, float] | None = None) -> RunResult:
    log = LogSummary(total=writes, round_trips=writes // 20, by_route={}, by_status={}, max_in_flight=4,
                     contact_writes=writes)
    return RunResult("fill", strategy, seconds, cpu, 4.0, log, {"created": writes}, roles or {})


def judged(rows: list[Goal], measure: str) -> Goal:
    return next(g for g in rows if g.run == "fill" and g.measure == measure)


def table(galsync: RunResult, naive: RunResult | None, opts: Options) -> list[Goal]:
    bound = fill_bound(mailboxes=opts.targets, contacts=opts.users, latency=opts.latency, client_cap=100,
                       directory_pages=25)
    return goals(opts, StrategyRuns("galsync", [galsync], []),
                 StrategyRuns("naive", [naive], []) if naive is not None else None, bound)


def test_a_fill_no_slower_than_naive_using_at_most_0_04_ms_per_write_meets_both_goals() -> None:
    rows = table(fill("galsync", 8.0, 1.9, 50_000), fill("naive", 9.0, 3.0, 50_000), options())
    wall, cpu = judged(rows, "wall time"), judged(rows, "client CPU per contact write")
    assert (wall.met, wall.naive) == (True, 9.0) and wall.goal.startswith("<= naive 9.00 s; bound 3.84 s")
    assert (cpu.met, cpu.galsync, cpu.naive, cpu.goal) == (True, 0.038, 0.06, "<= 0.04 ms")


def test_a_fill_slower_than_naive_or_over_0_04_ms_per_write_misses() -> None:
    rows = table(fill("galsync", 9.5, 3.3, 50_000), fill("naive", 9.0, 3.0, 50_000), options())
    assert judged(rows, "wall time").met is False
    assert (judged(rows, "client CPU per contact write").met, judged(rows, "client CPU per contact write").galsync) \
        == (False, 0.066)


def test_without_the_naive_run_or_without_latency_the_wall_time_is_not_judged() -> None:
    alone = judged(table(fill("galsync", 8.0, 1.9, 50_000), None, options()), "wall time")
    assert alone.met is None and alone.goal.startswith("<= naive (not run)")
    no_latency = table(fill("galsync", 1.0, 1.9, 50_000), fill("naive", 9.0, 3.0, 50_000), options(latency_ms=0))
    assert judged(no_latency, "wall time").met is None


def test_cpu_per_write_is_judged_from_the_goals_size_up() -> None:
    small = judged(table(fill("galsync", 2.0, 1.0, 5_000), None, options(targets=10)), "client CPU per contact write")
    assert small.met is None and small.galsync == 0.2 and small.goal == "(<= 0.04 ms from 50,000 writes)"


def test_cpu_by_role_compares_only_send_with_the_naive_script() -> None:
    roles = {"read": 0.03, "plan": 0.2, "record": 0.7, "send": 2.2}
    rows = table(fill("galsync", 8.0, 3.25, 50_000, roles), fill("naive", 9.0, 3.8, 50_000, {"send": 3.5}), options())
    shown = {g.measure: (g.galsync, g.naive) for g in rows if g.measure.startswith("client CPU: ")}
    assert shown == {"client CPU: read": (0.03, None), "client CPU: plan": (0.2, None),
                     "client CPU: record": (0.7, None), "client CPU: send": (2.2, 3.5),
                     "client CPU: other": (0.12, None)}

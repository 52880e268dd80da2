#!/usr/bin/env python3
"""How fast could any scheduler run the benchmark's sweep? Bounds and clairvoyant schedules.

`sweep_bench.py` scores makespan against a lower bound: max(memory-time area / usable memory,
longest task, total work / cap). That bound treats memory as a fluid: it lets tasks share
memory in any proportion at every instant, which no real scheduler can do. This script
computes, for the same seeded tasks, what schedulers that *know every task in advance*
would achieve, so that ramguard's figure can be read against what is possible:

- the fluid bound itself, and the same bound when each task holds its peak for its whole
  life (what any scheduler that reserves peaks is up against);
- a greedy list scheduler (task order, backfilling, cap 8) that knows every peak exactly
  and reserves it for the task's whole life;
- the same greedy scheduler knowing every task's exact memory curve (linear ramp, hold,
  exact end) and admitting whenever the projected total stays within usable memory;
- the latter with the safety margins ramguard uses (peak +10%, duration +10%, time to
  peak -10%), still with perfect knowledge otherwise.

Pure arithmetic, runs in a second: `python3 bench/packing_bounds.py [--seed 2 --target 4G]`.

`--issue12` does the same for issue 12's mixes (`sweep_bench.py --issue12`'s generator, 16
tasks, the seeds of `bench/mixes.json`), one row per mix and the median, so that its
target of 1.35x the lower bound can be read against what knowing everything in advance
buys (`python3 bench/packing_bounds.py --issue12`, about ten seconds). One column tries 64
orders of the queue (the queue's own, four priority rules, random ones) and keeps the best
greedy makespan: what ordering alone is worth to a scheduler that knows every task.
The last column replays GNU parallel's `--memsuspend 2G` rule (it knows nothing in
advance) with pauses that cost their time, as real work's do: what the benchmark's real
runs gave it before `memhog` stopped catching up after a pause (BENCHMARKS.md).
`optimal_bound.py` goes further: what the best schedule of all reaches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sweep_bench as sb  # noqa: E402  (the task generator and lower bound, shared)

MIB = 1 << 20
STEP = 0.05  # seconds between admission decisions of the clairvoyant schedulers


def mem_at(curve: tuple[float, float, float, float], t: float) -> float:
    """Memory of a (start, ramp_end, end, peak) curve at time t."""
    s, r, e, p = curve
    if t < s or t >= e:
        return 0.0
    if r <= s:
        return p
    return min(p, p * (t - s) / (r - s))


def fits(curves: list[tuple[float, float, float, float]], usable: float, now: float) -> bool:
    """The projected total stays within usable memory at every corner from now on."""
    corners = {now}
    for _, r, e, _ in curves:
        corners.update((r, e - 1e-9))
    corners = [c for c in corners if c >= now] + [1e17]
    return all(sum(mem_at(c, t) for c in curves) <= usable for t in corners)


def greedy(tasks, usable: float, cap: int, curves: bool, peak_m=1.0, dur_m=1.0, ramp_m=1.0) -> float:
    """Makespan of a greedy list scheduler that knows every task (see module doc)."""
    queue = list(tasks)
    t = 0.0
    running: list[tuple[sb.Task, float]] = []
    while queue or running:
        for task in list(queue):
            if len(running) >= cap:
                break
            if curves:
                projected = []
                for other, s in running:
                    end = s + other.duration * dur_m
                    projected.append((s, s + other.ramp * ramp_m, end if end > t else 1e18, other.final_peak * peak_m))
                new = (t, t + task.ramp * ramp_m, 1e18, task.final_peak * peak_m)
                ok = fits(projected + [new], usable, t)
            else:
                ok = sum(o.final_peak for o, _ in running) + task.final_peak <= usable
            if ok:
                queue.remove(task)
                running.append((task, t))
        nxt = min(s + o.duration for o, s in running)
        t = min(nxt, t + STEP)
        running = [(o, s) for o, s in running if s + o.duration > t]
    return t


def mem_after(task, progress: float) -> float:
    """Memory of a task after `progress` seconds of its own running (pauses excluded)."""
    if progress <= 0:
        return 0.0
    held = task.peak * min(1.0, progress / task.ramp) if task.ramp > 0 else task.peak
    if task.leak and progress > task.ramp:
        held += task.leak * (progress - task.ramp)
    return held


def ladder_holds(running: list[list], usable: float) -> bool:
    """The banker's test in start order: each task can still reach its peak once the older
    ones have ended, every newer one keeping what it holds now."""
    newer = 0.0
    for task, progress in reversed(running):
        held = mem_after(task, progress)
        if max(task.final_peak, held) + newer > usable + 1:
            return False
        newer += held
    return True


def stepped(tasks, cap: int, admits, may_advance, step: float = 0.05, stuck=None) -> float:
    """Makespan of a clairvoyant scheduler that may pause: each step it starts the queued
    tasks `admits(running, task, t)` allows (in order, up to `cap`), then advances each
    running task by `step` (oldest first) unless `may_advance(running)` says no once it
    has, in which case that task waits paused this step, keeping what it holds. If no task
    advanced, `stuck(queue, running)` may undo the deadlock (a brake)."""
    queue = list(tasks)
    running: list[list] = []
    t = 0.0
    while queue or running:
        for task in list(queue):
            if len(running) >= cap:
                break
            if admits(running, task, t):
                queue.remove(task)
                running.append([task, 0.0])
        moved = False
        for r in running:
            before = r[1]
            r[1] = min(before + step, r[0].duration)
            if may_advance(running):
                moved = True
            else:
                r[1] = before
        if running and not moved and stuck:
            stuck(queue, running)
        running = [r for r in running if r[1] < r[0].duration - 1e-9]
        t += step
    return t


def held_now(running: list[list]) -> float:
    return sum(mem_after(o, p) for o, p in running)


def ladder(tasks, usable: float, cap: int, share: float = 0.1) -> float:
    """Overcommit with pausing instead of timing: a task starts while the banker's test
    holds with it able to reach `share` of its ramp; a task advances only while the test
    and the memory still hold, else it waits paused."""
    def admits(running, task, _t):
        ahead = running + [[task, task.ramp * share]]
        return (ladder_holds(running + [[task, 0.0]], usable) and ladder_holds(ahead, usable)
                and held_now(ahead) <= usable)
    return stepped(tasks, cap, admits,
                   lambda running: ladder_holds(running, usable) and held_now(running) <= usable + 1)


def overcommit(tasks, usable: float, cap: int, factor: float) -> float:
    """The exact-curves greedy admitting while the projection stays within `factor` ×
    usable memory, then pausing: a task advances only while the memory actually held stays
    within usable; if none can, the newest is killed and requeued (a brake)."""
    def admits(running, task, t):
        curves = [(t - p, t - p + o.ramp, t + o.duration - p, o.final_peak) for o, p in running]
        curves.append((t, t + task.ramp, 1e18, task.final_peak))
        return fits(curves, usable * factor, t) and held_now(running) + 0.1 * task.peak <= usable

    def brake(queue, running):
        queue.insert(0, running.pop()[0])
    return stepped(tasks, cap, admits, lambda running: held_now(running) <= usable, stuck=brake)


def memsuspend(tasks, target: float, floor: float, cap: int, size: float, step: float = 0.02) -> float:
    """GNU parallel's `--memsuspend size` rule, replayed on the exact curves with pausing
    that costs its time (a suspended job makes no progress): a job starts while free memory
    (`target` less what the jobs hold) is at least `size`; below twice `size` only the
    oldest ⌊1 / (2 − free / size)⌋ + 1 run and the rest are suspended, above it all run.
    Nothing is known in advance, nothing is killed: infinite once free memory falls below
    `floor` (the referee's crash)."""
    queue = list(tasks)
    running: list[list] = []  # task, progress, suspended
    t = 0.0
    while queue or running:
        free = target - held_now([r[:2] for r in running])
        while queue and len(running) < cap and free >= size:
            running.append([queue.pop(0), 0.0, False])
        if free < 2 * size:
            run = min(int(1 / (2 - free / size)), len(running) - 1)
            for i, r in enumerate(running):  # oldest first
                r[2] = i > run
        else:
            for r in running:
                r[2] = False
        for r in running:
            if not r[2]:
                r[1] = min(r[1] + step, r[0].duration)
        if target - held_now([r[:2] for r in running]) < floor:
            return float("inf")
        running = [r for r in running if r[1] < r[0].duration - 1e-9]
        t += step
    return t


def issue12(a) -> int:
    """One row per issue-12 mix: what clairvoyant greedy schedules reach (module doc)."""
    import statistics
    usable = a.target - a.floor
    limit = a.target - max(a.target // 10, 512 * MIB)  # ramguard's limit (policy::levels)
    big = limit / 2

    def big_first(tasks):
        return sorted(tasks, key=lambda t: (t.final_peak <= big, -t.duration))

    def best_order(tasks, tries: int = 64) -> float:
        # The queue order, four priority rules and random orders: the best greedy makespan.
        import random
        rng = random.Random(len(tasks) * 7919 + int(sum(t.peak for t in tasks)) % 104729)
        orders = [list(tasks), big_first(tasks),
                  sorted(tasks, key=lambda t: -t.final_peak),
                  sorted(tasks, key=lambda t: -t.duration),
                  sorted(tasks, key=lambda t: -t.final_peak * t.duration)]
        while len(orders) < tries:
            o = list(tasks)
            rng.shuffle(o)
            orders.append(o)
        return min(greedy(o, usable, a.cap, True) for o in orders)

    columns = [
        ("exact curves", lambda t: greedy(t, usable, a.cap, True)),
        ("exact curves, best of 64 orders", best_order),
        ("exact curves, big and long first", lambda t: greedy(big_first(t), usable, a.cap, True)),
        (f"exact curves in ramguard's limit ({sb.fmt_size(limit)})", lambda t: greedy(t, limit, a.cap, True)),
        ("the same, margins 3%", lambda t: greedy(t, limit, a.cap, True, 1.03, 1.03, 0.97)),
        ("the same, margins 10%", lambda t: greedy(t, limit, a.cap, True, 1.1, 1.1, 0.9)),
        ("exact peaks reserved all life", lambda t: greedy(t, usable, a.cap, False)),
        ("banker's ladder with pausing, no timing", lambda t: ladder(t, usable, a.cap)),
        ("exact curves, admitting up to 1.25× and pausing", lambda t: overcommit(t, usable, a.cap, 1.25)),
        ("`parallel --memsuspend 2G`'s rule, a pause costing its time (∞: crashed)",
         lambda t: memsuspend(t, a.target, a.floor, a.cap, 2 << 30)),
    ]
    print(f"Issue 12's mixes: {a.tasks12} tasks, usable {sb.fmt_size(usable)} (target less the "
          f"referee's floor), cap {a.cap}; each cell is makespan ÷ the mix's lower bound.\n")
    print("| mix | bound | " + " | ".join(name for name, _ in columns) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
    ratios: list[list[float]] = [[] for _ in columns]
    for mix, seeds in (("ramp", range(1, 7)), ("big", range(1, 5)), ("leak", range(1, 4))):
        for seed in seeds:
            tasks = sb.make_mix(mix, seed, a.tasks12, a.target)
            lb = sb.lower_bound(tasks, usable, a.cap)["bound"]
            cells = []
            for i, (_, schedule) in enumerate(columns):
                r = schedule(tasks) / lb
                ratios[i].append(r)
                cells.append(f"{r:.2f}×" if r != float("inf") else "∞")
            print(f"| {mix} seed {seed} | {lb:.1f} s | " + " | ".join(cells) + " |")
    print("| **median** | | " + " | ".join(f"**{statistics.median(r):.2f}×**" for r in ratios) + " |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=36)
    ap.add_argument("--target", default="4G", type=sb.parse_size)
    ap.add_argument("--floor", default="256M", type=sb.parse_size)
    ap.add_argument("--reserve", default="410M", type=sb.parse_size,
                    help="ramguard's default reserve at --mem 4G (10%%)")
    ap.add_argument("--cap", type=int, default=8)
    ap.add_argument("--issue12", action="store_true", help="issue 12's mixes, one row each")
    ap.add_argument("--tasks12", type=int, default=16, help="tasks per issue-12 mix")
    a = ap.parse_args()
    if a.issue12:
        return issue12(a)
    tasks = sb.make_tasks(a.seed, a.tasks, int(1.5 * (1 << 30)), (2.0, 15.0))
    usable = a.target - a.floor
    lb = sb.lower_bound(tasks, usable, a.cap)
    peak_time = sum(t.final_peak * t.duration for t in tasks) / usable
    ramguard_usable = a.target - a.reserve
    rows = [
        ("lower bound used by sweep_bench.py (fluid memory)", lb["bound"]),
        ("fluid bound if every task held its peak all its life", max(peak_time, lb["longest"], lb["work_over_cap"])),
        ("greedy, exact peaks reserved for the whole life", greedy(tasks, usable, a.cap, False)),
        ("greedy, exact memory curves and ends", greedy(tasks, usable, a.cap, True)),
        ("greedy, exact curves, ramguard's margins (+10% peak and duration, -10% ramp)",
         greedy(tasks, usable, a.cap, True, 1.1, 1.1, 0.9)),
        (f"  the same within ramguard's usable memory ({sb.fmt_size(ramguard_usable)})",
         greedy(tasks, ramguard_usable, a.cap, True, 1.1, 1.1, 0.9)),
    ]
    print(f"{len(tasks)} tasks, seed {a.seed}, usable {sb.fmt_size(usable)}, cap {a.cap}\n")
    print("| schedule | makespan | ÷ bound |\n| --- | --- | --- |")
    for name, x in rows:
        print(f"| {name} | {x:.1f} s | {x / lb['bound']:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

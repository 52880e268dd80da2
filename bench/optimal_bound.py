#!/usr/bin/env python3
"""How fast could the best possible schedule run issue 12's mixes? Proven bounds on it.

`sweep_bench.py` scores a makespan against the *fluid* bound: max(memory-time / usable,
longest task, work / cap), which lets tasks share memory in any proportion at every
instant. `packing_bounds.py` shows what clairvoyant greedy schedulers reach. Neither says
what the *best* schedule reaches. This script brackets it, per mix, with two time-indexed
integer programs solved by HiGHS (`pip install highspy`). Time is cut into slots of
`--slot` seconds (δ = 0.1 s); binary x[i,k] says task i starts in slot k; every task
starts once and ends by the horizon H probed; at most `cap` tasks run at once.

- **Relaxed (proves "no schedule ends by H").** A real start s lies anywhere in
  [k·δ, (k+1)·δ). At every instant t_j = j·δ the program counts for task i only what it
  holds *whatever* its start within the slot: m_i(t_j − (k+1)·δ) while it surely still
  runs (t_j < k·δ + d_i), else nothing; the sum must stay within usable memory (the
  emulated machine less the referee's floor). Every real schedule maps to a solution
  (k = floor(s/δ)), so when HiGHS proves the program infeasible, no schedule ends by H.
- **Exact (shows "a schedule ends by H").** Every task starts exactly at k·δ, and what it
  may hold at any instant of each slot (its curve's highest value there) is counted, as is
  every task alive at any instant of it. A solution is a real schedule.

Pausing does not help any scheduler here, so the bracket holds for `parallel --memsuspend`
and every overcommitting runner that survives. The mixes' memory curves only grow while a
task lives (a linear ramp to its peak, then a hold, with a leak growing it further); a task
paused from t1 to t2 holds what it held at t1, while the same task started t2 − t1 later
holds nothing until then and at every later instant no more than the paused one.

For each mix the script probes first whether a schedule ends by `--ratio` (1.35) times the
fluid bound, issue 12's target, then bisects `--steps` times between what is proven out of
reach and what a real schedule reaches (at first the clairvoyant greedy schedule of
`packing_bounds.py`). A probe that neither program settles within `--time-limit` stops the
bisection for that mix; its bracket stays as wide as it was.

`python3 bench/optimal_bound.py [--time-limit 30] [--steps 1] [--mix big:2]` prints one
row per mix and the medians; about 20 minutes for all 13 mixes with those limits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import packing_bounds as pb  # noqa: E402
import sweep_bench as sb  # noqa: E402

MIB = 1 << 20


def mem(task: sb.Task, elapsed: float) -> float:
    """What the task holds `elapsed` seconds after it started (bytes); 0 once it ended."""
    if elapsed <= 0 or elapsed >= task.duration:
        return 0.0
    if elapsed < task.ramp:
        return task.peak * elapsed / task.ramp
    return task.peak + task.leak * (elapsed - task.ramp)


def quiet(make):
    """make(), with the banner HiGHS prints on stdout when it is created kept off it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return make()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def schedulable(tasks: list[sb.Task], usable: float, cap: int, horizon: float, slot: float,
                time_limit: float, exact: bool) -> str:
    """Whether every task can end by `horizon`: "no" (proven), "yes" or "unknown".

    `exact=False` is the relaxed program of the module doc: "no" proves that no real
    schedule ends by the horizon, "yes" proves nothing (the slots' slack favours it).
    `exact=True` is its mirror: every task starts exactly at a slot's beginning and what
    it may hold at any instant of each slot (its curve's highest value there) is counted,
    as is every task alive at any instant of the slot; a solution is then a real schedule,
    so "yes" proves that one ends by the horizon, and "no" proves nothing.
    """
    import highspy
    import numpy as np

    h = quiet(highspy.Highs)
    h.silent()
    h.setOptionValue("time_limit", float(time_limit))
    inf = highspy.kHighsInf
    slots = int(horizon / slot) + 1
    starts: list[list[tuple[int, int]]] = []  # per task: (slot k, column)
    col = 0
    for t in tasks:
        ks = [k for k in range(slots) if k * slot + t.duration <= horizon + 1e-9]
        if not ks:
            return "no"  # the task alone is longer than the horizon
        starts.append([(k, col + n) for n, k in enumerate(ks)])
        col += len(ks)
    h.addVars(col, np.zeros(col), np.ones(col))
    h.changeColsIntegrality(col, np.arange(col, dtype=np.int32),
                            np.full(col, highspy.HighsVarType.kInteger, dtype=np.uint8))
    for sk in starts:  # one start per task
        idx = np.array([c for _, c in sk], dtype=np.int32)
        h.addRow(1.0, 1.0, len(idx), idx, np.ones(len(idx)))
    scale = float(MIB)
    for j in range(slots):  # memory and cap at every instant t_j, or over slot j
        tj = j * slot
        m_idx, m_val, c_idx = [], [], []
        for t, sk in zip(tasks, starts):
            for k, c in sk:
                begin, end = k * slot, k * slot + t.duration
                if exact:
                    if not (begin < tj + slot and end > tj):
                        continue
                    held = mem(t, min(tj + slot, end - 1e-9) - begin)
                    alive = True
                else:
                    if j == 0 or not (begin <= tj < end):
                        continue
                    held = mem(t, tj - (k + 1) * slot)
                    alive = begin + slot <= tj
                if held > 0:
                    m_idx.append(c)
                    m_val.append(held / scale)
                if alive:
                    c_idx.append(c)
        if m_idx:
            h.addRow(-inf, usable / scale, len(m_idx), np.array(m_idx, dtype=np.int32),
                     np.array(m_val))
        if len(c_idx) > cap:
            h.addRow(-inf, float(cap), len(c_idx), np.array(c_idx, dtype=np.int32),
                     np.ones(len(c_idx)))
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return "no"
    if status == highspy.HighsModelStatus.kOptimal:
        return "yes"
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="4G", type=sb.parse_size)
    ap.add_argument("--floor", default="256M", type=sb.parse_size)
    ap.add_argument("--cap", type=int, default=8)
    ap.add_argument("--tasks12", type=int, default=16, help="tasks per issue-12 mix")
    ap.add_argument("--slot", type=float, default=0.1, help="seconds per time slot")
    ap.add_argument("--time-limit", type=float, default=90.0, help="seconds per probe")
    ap.add_argument("--ratio", type=float, default=1.35,
                    help="the first horizon probed, as a multiple of the fluid bound")
    ap.add_argument("--steps", type=int, default=2, help="bisection probes after the first")
    ap.add_argument("--mix", action="append", default=[],
                    help="only these mixes, as name:seed (repeatable), e.g. big:2")
    a = ap.parse_args()
    try:
        import highspy  # noqa: F401
    except ImportError:
        print("optimal_bound.py needs HiGHS: pip install highspy", file=sys.stderr)
        return 2
    usable = a.target - a.floor
    plan = [(m, s) for m, seeds in (("ramp", range(1, 7)), ("big", range(1, 5)),
                                    ("leak", range(1, 4))) for s in seeds]
    if a.mix:
        want = {(m.split(":")[0], int(m.split(":")[1])) for m in a.mix}
        plan = [p for p in plan if p in want]
    print(f"Issue 12's mixes: {a.tasks12} tasks, usable {sb.fmt_size(usable)} (target less the "
          f"referee's floor), cap {a.cap}, slots of {a.slot} s, at most {a.time_limit:.0f} s "
          f"per probe. Ratios are to the fluid bound the benchmark scores against.\n")
    print(f"| mix | fluid bound | clairvoyant greedy | best possible ≥ | best possible ≤ | "
          f"{a.ratio}× reachable by a clairvoyant scheduler? |")
    print("| --- | --- | --- | --- | --- | --- |")
    proven, shown, verdicts = [], [], []
    for mix, seed in plan:
        tasks = sb.make_mix(mix, seed, a.tasks12, a.target)
        fluid = sb.lower_bound(tasks, usable, a.cap)["bound"]
        greedy = pb.greedy(tasks, usable, a.cap, True)
        # No schedule ends before lo (proven); a real one ends by hi (the greedy one, or
        # an exact program's solution). The target's horizon is probed first.
        lo, hi = fluid, greedy
        first = None
        for n in range(a.steps + 1):
            mid = a.ratio * fluid if n == 0 and lo < a.ratio * fluid < hi else (lo + hi) / 2
            if schedulable(tasks, usable, a.cap, mid, a.slot, a.time_limit, exact=False) == "no":
                lo, got = mid, "no"
            elif schedulable(tasks, usable, a.cap, mid, a.slot, a.time_limit, exact=True) == "yes":
                hi, got = mid, "yes"
            else:
                got = "unknown"
            if n == 0:
                first = got if mid == a.ratio * fluid else None
            if got == "unknown":
                break
        if first is None:
            first = "no" if lo >= a.ratio * fluid else "yes" if hi <= a.ratio * fluid else "unknown"
        verdict = {"no": "**no** (proven)", "yes": "yes (a schedule shown)",
                   "unknown": "unknown"}[first]
        proven.append(lo / fluid)
        shown.append(hi / fluid)
        verdicts.append(first)
        print(f"| {mix} seed {seed} | {fluid:.1f} s | {greedy:.1f} s ({greedy / fluid:.2f}×) | "
              f"{lo:.1f} s ({lo / fluid:.2f}×) | {hi:.1f} s ({hi / fluid:.2f}×) | {verdict} |",
              flush=True)
    print(f"| **median** | | | **{statistics.median(proven):.2f}×** | "
          f"**{statistics.median(shown):.2f}×** | {verdicts.count('no')} proven out of reach, "
          f"{verdicts.count('yes')} shown reachable, of {len(verdicts)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

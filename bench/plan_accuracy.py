#!/usr/bin/env python3
"""How well `ramguard plan --mem X` predicts a real rerun at `--mem X`.

    python3 bench/plan_accuracy.py            # all scenarios, 2 reruns each, ~4 minutes
    python3 bench/plan_accuracy.py --quick    # one rerun each
    python3 bench/plan_accuracy.py --debug    # use target/debug binaries (no release build)

Theory of operation
-------------------
Python 3.11 standard library only. Each scenario is a small sweep of the bundled `memhog`
workload (`--peak P --ramp R --hold H`, seeded, so the same command always makes the same
tasks). The sweep is first run ("recorded") at one budget in a fresh journal; then
`ramguard plan --mem X --json` replays the recorded timelines through the policy at another
budget X; then the very same sweep runs for real at `--mem X` under another sweep name in
the same journal ("rerun", which starts cold exactly as the plan assumes). The figure of
merit is |predicted makespan - real wall time of the rerun| / real, per rerun.

Nothing here asserts: it prints one markdown table (and writes it with the raw numbers to
bench/plan-accuracy-<date>.{md,json}). Memory stays small (at most ~2 GiB at once) and
every process is a child of `ramguard run`, which stops its tasks when it ends.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def binaries(debug: bool) -> tuple[Path, Path]:
    profile = "debug" if debug else "release"
    if not debug:
        subprocess.run(
            ["cargo", "build", "--release", "-p", "ramguard", "-p", "memhog"],
            cwd=ROOT,
            check=True,
        )
    rg, hog = ROOT / "target" / profile / "ramguard", ROOT / "target" / profile / "memhog"
    for b in (rg, hog):
        if not b.exists():
            sys.exit(f"missing {b}: build it first")
    return rg, hog


def tasks_file(path: Path, hog: Path, seed: int, n: int, peaks: tuple[int, int],
               holds: tuple[float, float]) -> None:
    rnd = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            peak = rnd.randrange(peaks[0], peaks[1] + 1, 16)
            hold = round(rnd.uniform(*holds), 2)
            ramp = round(rnd.uniform(0.2, 0.8), 2)
            f.write(f"{hog} --peak {peak}M --ramp {ramp}s --hold {hold}s --result {i}\n")


SCENARIOS = [
    # name, seed, tasks, peak range (MiB), hold range (s), -j, recorded --mem, planned --mem
    ("shrink to a third", 1, 12, (96, 400), (1.0, 3.0), 4, "2G", "700M"),
    ("shrink to a half", 1, 12, (96, 400), (1.0, 3.0), 4, "2G", "1200M"),
    ("many small, tight", 2, 24, (48, 200), (0.5, 1.5), 6, "1500M", "500M"),
    ("grow the budget", 3, 16, (128, 512), (0.8, 2.0), 4, "800M", "2G"),
]


def run_sweep(rg: Path, work: Path, tasks: Path, name: str, mem: str, jobs: int) -> float:
    t = time.monotonic()
    subprocess.run(
        [str(rg), "run", "--name", name, "--mem", mem, "-j", str(jobs), "--progress",
         "none", "--tasks", str(tasks)],
        cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "RAMGUARD_JOURNAL": str(work / "journal.db")},
    )
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one rerun per scenario")
    ap.add_argument("--debug", action="store_true", help="use target/debug binaries")
    args = ap.parse_args()
    rg, hog = binaries(args.debug)
    reruns = 1 if args.quick else 2
    rows = []
    for name, seed, n, peaks, holds, jobs, rec_mem, plan_mem in SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="plan-accuracy-") as d:
            work = Path(d)
            tasks = work / "tasks.txt"
            tasks_file(tasks, hog, seed, n, peaks, holds)
            recorded = run_sweep(rg, work, tasks, "recorded", rec_mem, jobs)
            out = subprocess.run(
                [str(rg), "plan", "recorded", "--mem", plan_mem, "--json"],
                cwd=work, check=True, capture_output=True, text=True,
                env={"PATH": "/usr/bin:/bin", "RAMGUARD_JOURNAL": str(work / "journal.db")},
            )
            plan = json.loads(out.stdout)
            predicted = plan["predicted"]["makespan_s"]
            for k in range(reruns):
                real = run_sweep(rg, work, tasks, f"rerun{k}", plan_mem, jobs)
                err = abs(predicted - real) / real
                rows.append({
                    "scenario": name, "tasks": n, "jobs": jobs, "recorded_mem": rec_mem,
                    "recorded_s": round(recorded, 2), "plan_mem": plan_mem,
                    "predicted_s": round(predicted, 2), "rerun_s": round(real, 2),
                    "error_pct": round(err * 100, 1),
                    "predicted_brakes": plan["predicted"]["brakes"],
                    "predicted_max_running": plan["predicted"]["max_running"],
                })
                print(f"{name}: predicted {predicted:.1f}s, rerun {real:.1f}s "
                      f"({err * 100:.1f}% off)", file=sys.stderr)
    head = ("| scenario | tasks | -j | recorded at | recorded | plan at | predicted | "
            "real rerun | error |\n|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['scenario']} | {r['tasks']} | {r['jobs']} | {r['recorded_mem']} | "
        f"{r['recorded_s']:.1f} s | {r['plan_mem']} | {r['predicted_s']:.1f} s | "
        f"{r['rerun_s']:.1f} s | {r['error_pct']:.1f}% |\n"
        for r in rows
    )
    worst = max(r["error_pct"] for r in rows)
    md = head + body + f"\nWorst error: {worst:.1f}% (target: within 25%).\n"
    print(md)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
    (ROOT / "bench" / f"plan-accuracy-{stamp}.md").write_text(md)
    (ROOT / "bench" / f"plan-accuracy-{stamp}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

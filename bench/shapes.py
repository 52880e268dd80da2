#!/usr/bin/env python3
"""Task mixes of shapes the benchmark's own mixes do not have, for the simulator's twin.

ramguard is tuned on `sweep_bench.py`'s mixes (ramp, big, leak, idle, late, heavy); these
shapes were never tuned on, and `crates/ramguard-core/tests/policy_mixes.rs`
(`unseen_shapes_never_cross_the_referees_floor`) replays them on the same emulated 4 GiB
machine with the same assertions: the referee's floor is never crossed, no simulated
kernel OOM kill, every task done, no task started reserving nothing.

    huge     12 tasks, every other one 70-85% of the machine (1-4 s ramp, 2-5 s hold)
    tiny     120 tasks of 30-120 MiB, 0.2-1 s each
    leaks    16 tasks, every fourth leaking 100-250 MiB/s for 3-9 s from 200 MiB
    uniform  18 tasks of 1.2-1.9 GiB: never three at once, rarely two
    tail     30 small tasks, then one of 2.5 GiB that runs 20 s, last in the queue
    bimodal  16 sleepers (1-6 s), 30% of them jumping to 2.5-3.2 GiB, the rest to 60-200 MiB
    largest  20 tasks from 3 GiB down to 150 MiB (±10%), largest first: the small ones must
             be predicted far below every peak seen so far
    kinds    24 tasks of three kinds in random order (half 200-400 MiB, 30% 0.9-1.3 GiB, 20%
             2.2-2.8 GiB) whose command lines name only the kind: the twin's features are one
             0/1 column per kind and the index, not the peak ("kinds" in the output)
    kindsize 24 tasks `--model small|large --rows 200..1000`: 100 MiB plus 0.5 or 2.5 MiB a
             row (±5%), so a kind sets how fast memory grows with the rows; the twin's
             features are the kind's columns, the rows and the index ("rows" in the output)
    kindmix  30 tasks `--arch a|b|c --rows 250..1250 --epochs 1..4`: 80, 150 or 300 MiB plus
             0.3, 1.0 or 2.0 MiB a row (±5%); the epochs set how long a task holds its peak,
             not how much it takes ("rows" and "epochs" in the output)

Usage: python3 bench/shapes.py > bench/mixes-shapes.json   (seeds 1-3 of each shape)
Python 3.11 standard library only; the output has `sweep_bench.py --write-mixes`' format.
"""

import json
import random
import sys

# The benchmark's task and lower bound (this script runs from bench/).
from sweep_bench import GIB, MIB, Task, lower_bound

TARGET = 4 * GIB
FLOOR = 256 * MIB
CAP = 8
SHAPES = ("huge", "tiny", "leaks", "uniform", "tail", "bimodal", "largest", "kinds", "kindsize",
          "kindmix")


def mix(shape: str, seed: int) -> dict:
    rng = random.Random(f"{shape}-{seed}")
    tasks: list[Task] = []
    kinds: list[int] = []
    rows_of: list[int] = []
    epochs_of: list[int] = []

    def add(peak, ramp, hold, leak=0.0, wait=0.0):
        tasks.append(Task(len(tasks), int(peak) // MIB * MIB, round(ramp, 2), round(hold, 2),
                          leak=int(leak), idle=round(wait, 2)))

    if shape == "huge":
        for k in range(12):
            if k % 2 == 0:
                add(rng.uniform(0.7, 0.85) * TARGET, rng.uniform(1, 4), rng.uniform(2, 5))
            else:
                add(rng.uniform(150, 400) * MIB, rng.uniform(0.5, 2), rng.uniform(1, 3))
        order = list(range(12))
        rng.shuffle(order)
        tasks = [tasks[o] for o in order]
    elif shape == "tiny":
        for _ in range(120):
            add(rng.uniform(30, 120) * MIB, rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5))
    elif shape == "leaks":
        for k in range(16):
            if k % 4 == 1:
                add(200 * MIB, 1.0, rng.uniform(3, 9), rng.uniform(100, 250) * MIB)
            else:
                add(rng.uniform(250, 900) * MIB, rng.uniform(1, 3), rng.uniform(1, 3))
    elif shape == "uniform":
        for _ in range(18):
            add(rng.uniform(1.2, 1.9) * GIB, rng.uniform(1, 3), rng.uniform(2, 6))
    elif shape == "tail":
        for _ in range(30):
            add(rng.uniform(100, 500) * MIB, rng.uniform(0.5, 1.5), rng.uniform(0.5, 2))
        add(2.5 * GIB, 4, 16)
    elif shape == "bimodal":
        for _ in range(16):
            big = rng.random() < 0.3
            peak = rng.uniform(2.5, 3.2) * GIB if big else rng.uniform(60, 200) * MIB
            add(peak, rng.uniform(0.1, 0.4), rng.uniform(1, 3), wait=rng.uniform(1, 6))
    elif shape == "largest":
        for k in range(20):
            peak = (3.0 - 2.85 * k / 19) * GIB * rng.uniform(0.9, 1.1)
            add(peak, rng.uniform(0.5, 1.5) * peak / GIB + 0.2, rng.uniform(1, 2) * peak / GIB + 0.3)
    elif shape == "kinds":
        sizes = [(200 * MIB, 400 * MIB), (0.9 * GIB, 1.3 * GIB), (2.2 * GIB, 2.8 * GIB)]
        for _ in range(24):
            r = rng.random()
            kind = 0 if r < 0.5 else 1 if r < 0.8 else 2
            kinds.append(kind)
            add(rng.uniform(*sizes[kind]), rng.uniform(0.5, 2), rng.uniform(1, 4))
    elif shape == "kindsize":
        per_row = [0.5 * MIB, 2.5 * MIB]
        for _ in range(24):
            kind = rng.randrange(2)
            rows = rng.choice((200, 400, 600, 800, 1000))
            kinds.append(kind)
            rows_of.append(rows)
            add(100 * MIB + rows * per_row[kind] * rng.uniform(0.95, 1.05), rng.uniform(0.5, 2),
                rng.uniform(1, 4))
    elif shape == "kindmix":
        base, per_row = [80 * MIB, 150 * MIB, 300 * MIB], [0.3 * MIB, 1.0 * MIB, 2.0 * MIB]
        for _ in range(30):
            kind = rng.randrange(3)
            rows = rng.choice((250, 500, 750, 1000, 1250))
            epochs = rng.randrange(1, 5)
            kinds.append(kind)
            rows_of.append(rows)
            epochs_of.append(epochs)
            add((base[kind] + rows * per_row[kind]) * rng.uniform(0.95, 1.05), rng.uniform(0.5, 1.5),
                0.6 * epochs + rng.uniform(0, 1))
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    bound = lower_bound(tasks, TARGET - FLOOR, CAP)["bound"]
    m = {"mix": shape, "seed": seed, "bound_s": round(bound, 3),
         "tasks (peak, ramp s, hold s, leak per s)": [[t.peak, t.ramp, t.hold, t.leak] for t in tasks]}
    if any(t.idle for t in tasks):
        m["idle s"] = [t.idle for t in tasks]
    if kinds:
        m["kinds"] = kinds
    if rows_of:
        m["rows"] = rows_of
    if epochs_of:
        m["epochs"] = epochs_of
    return m


def main() -> None:
    mixes = [mix(shape, seed) for shape in SHAPES for seed in (1, 2, 3)]
    json.dump({"target": TARGET, "floor": FLOOR, "cap": CAP,
               "written by": "python3 bench/shapes.py > bench/mixes-shapes.json",
               "mixes": mixes}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

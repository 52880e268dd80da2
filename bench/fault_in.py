#!/usr/bin/env python3
"""How fast this machine faults memory in, with and without the benchmark's ballast.

The twins of `policy_mixes.rs` promise about 1.4x less than the real runs of
`sweep_bench.py --issue12` give. On a virtual machine whose balloon device reports free
pages to the host (virtio-balloon `VIRTIO_BALLOON_F_REPORTING`, feature bit 5), a page
the guest frees goes back to the host within seconds, and the next first touch of it
faults on the host too: the guest sees it as system time. This script measures that:

* the balloon's reporting bit, read from sysfs (if the machine has a balloon);
* `memhog --peak SIZE --ramp 0 --hold 0`, timed, several times in a row: the first run
  touches pages the host took back, the next ones re-touch pages the previous run freed
  a moment ago;
* the same after a pause long enough for the freed pages to be reported (`--rest`);
* two at once;
* all of it again under the benchmark's ballast (`memhog` holding all but `--target` of
  MemAvailable, oom_score_adj 1000), as `sweep_bench.py` runs its mixes.

Python 3.11 stdlib only. Needs `target/release/memhog` (`cargo build --release -p
memhog`) and MemAvailable of at least `--target` + 1 GiB. It kills what it started (by
pid) on every exit path, and stops the ballast if MemAvailable falls below `--floor`.

    python3 bench/fault_in.py                  # about a minute
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# The benchmark's own /proc readers and ballast (this script runs from bench/).
from sweep_bench import GIB, MEMHOG, MIB, Ballast, mem_available


def balloon_reporting() -> str:
    """Whether a virtio balloon reports free pages to the host, from its feature bits."""
    base = Path("/sys/bus/virtio/devices")
    if not base.is_dir():
        return "no virtio devices"
    for dev in sorted(base.iterdir()):
        try:
            if (dev / "device").read_text().strip() != "0x0005":
                continue
            bits = (dev / "features").read_text().strip()
        except OSError:
            continue
        on = len(bits) > 5 and bits[5] == "1"
        return f"virtio balloon {dev.name}: free page reporting {'on' if on else 'off'}"
    return "no virtio balloon"


def timed(size: int, n: int = 1) -> list[tuple[float, float]]:
    """Runs n memhogs of `size` at once; each one's (wall s, system CPU s)."""
    procs = []
    for _ in range(n):
        t0 = time.monotonic()
        p = subprocess.Popen([str(MEMHOG), "--peak", str(size), "--ramp", "0", "--hold", "0"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        procs.append((p, t0))
    out = []
    for p, t0 in procs:
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise RuntimeError(f"memhog exited with {p.returncode}")
        out.append((time.monotonic() - t0, ru.ru_stime))
    return out


def rate(size: int, wall: float) -> str:
    return f"{size / MIB / wall:6.0f} MiB/s"


def series(label: str, size: int, rest: float) -> None:
    print(f"\n{label} (MemAvailable {mem_available() / GIB:.2f} GiB)")
    for i in range(3):
        (wall, sys_s), = timed(size)
        print(f"  one {size // MIB} MiB, run {i + 1}: {wall:5.2f} s ({sys_s:4.2f} s system), {rate(size, wall)}")
    time.sleep(rest)
    (wall, sys_s), = timed(size)
    print(f"  one {size // MIB} MiB after {rest:.0f} s idle: {wall:5.2f} s ({sys_s:4.2f} s system), {rate(size, wall)}")
    time.sleep(rest)
    pair = timed(size, 2)
    print("  two at once after the same idle: " + ", ".join(f"{w:5.2f} s ({s:4.2f} s system)" for w, s in pair))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default=1024, type=int, help="MiB each memhog touches (default 1024)")
    ap.add_argument("--target", default=4096, type=int, help="MiB of MemAvailable the ballast leaves (default 4096)")
    ap.add_argument("--floor", default=256, type=int, help="MiB of MemAvailable below which the ballast is killed")
    ap.add_argument("--rest", default=8.0, type=float, help="seconds to wait for freed pages to be reported")
    args = ap.parse_args()
    if not MEMHOG.exists():
        print(f"fault_in: {MEMHOG} is missing; run `cargo build --release -p memhog`", file=sys.stderr)
        return 2
    size = args.size * MIB
    target, floor = args.target * MIB, args.floor * MIB
    if mem_available() < target + GIB:
        print(f"fault_in: MemAvailable {mem_available() / GIB:.1f} GiB is below --target + 1 GiB", file=sys.stderr)
        return 2
    print(f"# fault-in on {os.uname().nodename}: {os.cpu_count()} CPUs, {balloon_reporting()}")
    print(f"command: python3 bench/fault_in.py --size {args.size} --target {args.target} --rest {args.rest:g}")
    series("without the ballast", size, args.rest)
    ballast = Ballast()
    try:
        size_b = mem_available() - target
        ballast.start(size_b, floor)
        series(f"under the ballast ({size_b / GIB:.1f} GiB held)", size, args.rest)
    finally:
        ballast.kill()
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())

#!/usr/bin/env python3
"""How much of a killed process's memory MemAvailable shows, and how much the kernel parks
on its per-CPU free lists instead (which MemAvailable does not count).

Starts `memhog --peak 512M`, SIGKILLs it, and prints MemAvailable and the sum of the
per-CPU page lists (`count:` lines of /proc/zoneinfo) before and for 3 s after. On the
development host (Linux 6.18, 2 CPUs) it varies from run to run: in 3 of 4 runs
MemAvailable rose by 0–63 MiB at once while the per-CPU lists grew by 450–513 MiB (to
971 MiB in all once) and held it for seconds; in the other, MemAvailable showed all
517 MiB at once. Needs `target/release/memhog`
(`cargo build --release -p memhog`); allocates 512 MiB. `python3 bench/percpu_freed.py`
"""

import os
import signal
import subprocess
import time
from pathlib import Path

MEMHOG = Path(__file__).resolve().parent.parent / "target" / "release" / "memhog"


def available_mib() -> int:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise SystemExit("error: no MemAvailable in /proc/meminfo")


def percpu_mib() -> int:
    pages = sum(int(l.split()[1]) for l in open("/proc/zoneinfo") if l.strip().startswith("count:"))
    return pages * os.sysconf("SC_PAGE_SIZE") // (1 << 20)


def main() -> int:
    if not MEMHOG.exists():
        raise SystemExit(f"error: {MEMHOG} is missing; hint: cargo build --release -p memhog")
    p = subprocess.Popen([str(MEMHOG), "--peak", "512M", "--hold", "60s"])
    try:
        time.sleep(1.5)
        print(f"before kill: MemAvailable {available_mib()} MiB, per-CPU lists {percpu_mib()} MiB")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        for i in range(7):
            print(f"{i * 0.5:.1f} s after: MemAvailable {available_mib()} MiB, per-CPU lists {percpu_mib()} MiB")
            time.sleep(0.5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

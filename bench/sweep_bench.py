#!/usr/bin/env python3
"""ramguard against what its users do today: xargs -P, GNU parallel, one job at a time.

    python3 bench/sweep_bench.py --target 4G            # issue 7's sections, ~12 minutes
    python3 bench/sweep_bench.py --issue12              # issue 12's table, ~20 minutes
    python3 bench/sweep_bench.py --issue12 --only mixes # its mixes with every peer, ~14 minutes
    python3 bench/sweep_bench.py --issue12 --only mixes --no-ballast   # ramguard alone, ~4 minutes
    python3 bench/sweep_bench.py --issue12 --plan       # what it would run; runs nothing
    python3 bench/sweep_bench.py --quick --only sweep   # a small sweep, for development

Theory of operation
-------------------
Python 3.11 standard library only. The harness builds `ramguard` and `memhog` in release
mode, installs GNU parallel with apt-get if it is missing (skipping the parallel
contenders if that fails), then runs the chosen sections and prints one markdown table
per section, also written to `bench/results-<date>.md` beside the raw `results-<date>.json`.

* sweep: a small machine, honestly. A *ballast* (`memhog --peak N --hold 2h`,
  oom_score_adj 1000) takes all but `--target` of MemAvailable, so every contender sees
  the same small machine through /proc/meminfo while MemTotal stays big. A *referee*
  thread reads MemAvailable every few milliseconds; below `--floor` the machine
  "crashes": every process the contender started is SIGKILLed and the run is scored as
  crashed (the Pi's watchdog rebooting it, seed 001). Below floor/2 it also kills the
  ballast at once, so the real machine never meets the kernel OOM killer. Tasks are
  seeded `memhog --peak --ramp --hold` runs with heterogeneous peaks; each writes a
  marker file when it finishes (memhog `--result` into `$RAMGUARD_RESULT`, set per task
  with `env`), so finished tasks are counted once each, whoever ran them.
* mixes (issue 12): the same emulated machine and referee, several task mixes (`ramp`:
  heterogeneous ramping peaks up to 80% of the machine; `big`: a few tasks of 50-80% of
  the machine among small ones; `leak`: the ramp mix with one task leaking; `idle`: the
  ramp mix's sizes, each task sleeping 2-8 s before it takes its peak at once; `late`: the
  same shape with those seconds spent working at 60-200 MiB instead of asleep; `heavy`:
  that work holding 30-60% of the task's peak; `kinds`: three kinds of task whose command
  lines name only the kind, `--model large`; `kindsize`: two kinds and `--rows N`, the
  kind setting the memory per row), several
  seeds, some run several times, against `xargs -P 2..4` and `parallel --memsuspend` at
  1G and 2G; one table per mix and a verdict against the issue's targets (no crash, every
  task, median <= 1.35x the bound, faster than every peer that survived the same run).
  `--write-mixes` exports the task lists for the simulator's twin
  (`crates/ramguard-core/tests/policy_mixes.rs`).
* --no-ballast (development, issue 12's mixes): ramguard alone, no ballast, no peers, so
  it is safe while others compile. ramguard gets `--mem` = the target less its reserve
  there (512 MiB of 4 GiB), so its limit is the one it has on the emulated machine; the
  referee judges an *emulated* MemAvailable: the target less the RSS of ramguard's process
  tree (read every few ms; other programs on the shared machine do not count).
  Ratios are against the same lower bound; no peer is compared.
* roomy (issue 12): memory never binds (small tasks, no ballast): ramguard against
  `xargs -P N` with the same N; target <= 1.05x.
* overhead: 1,000 trivial tasks (`true <i>`) under xargs -P, GNU parallel and ramguard
  with its durable journal; wall-time ratios against xargs.
* brake: a task ramping fast past ramguard's `--mem`; the harness polls the task's RSS
  every millisecond to time the crossing and /proc/<pid> to time its death.
* cost: ramguard's own CPU share and RSS while it supervises 8 long-holding tasks.

Safety: every contender runs in its own session; the harness kills by pid only (the
session's members plus the descendants of the contender's root, never by name), on every
exit path: try/finally, SIGINT/SIGTERM/SIGHUP handlers and atexit. The ballast is killed
on every exit path too. The benchmark is not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import random
import resource
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RELEASE = REPO / "target" / "release"
RAMGUARD = RELEASE / "ramguard"
MEMHOG = RELEASE / "memhog"
# Tasks' memhog schedules ramp and hold by the time it ran (a SIGSTOPped task makes no
# progress, as real work); --memhog-wall-clock restores the wall-time schedule, under which
# a paused task caught up at once and pausing cost nothing (every result before 2026-11-27).
MEMHOG_EXTRA: list[str] = []
# Percent of a CPU the `late` mix's work before its peak computes (memhog --hold-cpu).
WORK_CPU = 10
SECTIONS = ("sweep", "mixes", "roomy", "overhead", "brake", "cost")
# Issue 12's whole table in one command: the mixes on the emulated machine, the roomy mix
# and the trivial tasks (the sweep, brake and cost sections are issue 7's).
ISSUE12 = ("mixes", "roomy", "overhead")


# --------------------------------------------------------------------------- units


def parse_size(text: str) -> int:
    """Bytes in `text` such as 4G, 256M, 1.5GiB (powers of 1024) or a plain byte count."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(float(t))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}; hint: use e.g. 4G or 256M")


def fmt_size(n: float | None) -> str:
    """A byte count for people: 1.5 GiB, 300 MiB."""
    if n is None:
        return "-"
    if abs(n) >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / MIB:.0f} MiB"


def fmt_mib(n: float) -> str:
    """A size argument for memhog, in whole MiB."""
    return f"{int(n) // MIB}M"


def fmt_s(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f} s"


# --------------------------------------------------------------------------- /proc


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1]) * KIB
    raise RuntimeError("/proc/meminfo has no MemAvailable line")


class MemAvailableReader:
    """Reads MemAvailable through one open descriptor (pread), cheap enough for a 3 ms poll."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/meminfo", os.O_RDONLY)

    def read(self) -> int:
        data = os.pread(self.fd, 8192, 0)
        i = data.find(b"MemAvailable:")
        return int(data[i + 13 : data.find(b"kB", i)]) * KIB


@dataclass
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    session: int
    cpu_ticks: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """Parses /proc/<pid>/stat; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    rest = data[rpar + 2 :].split()
    # rest[0] = state (field 3); utime = field 14, stime = 15, starttime = 22.
    return ProcStat(
        pid=pid,
        comm=data[lpar + 1 : rpar],
        state=rest[0],
        ppid=int(rest[1]),
        session=int(rest[3]),
        cpu_ticks=int(rest[11]) + int(rest[12]),
        start_ticks=int(rest[19]),
    )


def rss_bytes(pid: int) -> int | None:
    """Resident set size from /proc/<pid>/statm; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def vm_rss(pid: int) -> int | None:
    """VmRSS from /proc/<pid>/status in bytes; None if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * KIB
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def tree_rss(root: int | None) -> int:
    """Summed RSS of `root` and its descendants (shared pages counted in each)."""
    if root is None:
        return 0
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss_bytes(p) or 0
        todo.extend(children_of(p))
    return total


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` from /proc/<pid>/task/<pid>/children (empty if gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def uptime_s() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def all_stats() -> list[ProcStat]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st is not None:
                out.append(st)
    return out


def contender_members(root: int, sid: int, stats: list[ProcStat] | None = None) -> list[ProcStat]:
    """Every live process a contender started: its session's members plus root's descendants."""
    stats = all_stats() if stats is None else stats
    kids: dict[int, list[ProcStat]] = {}
    for st in stats:
        kids.setdefault(st.ppid, []).append(st)
    found = {st.pid: st for st in stats if st.session == sid}
    todo = [root]
    while todo:
        p = todo.pop()
        for st in kids.get(p, []):
            if st.pid not in found:
                found[st.pid] = st
            todo.append(st.pid)
    me = os.getpid()
    found.pop(me, None)
    if BALLAST.pid is not None:
        found.pop(BALLAST.pid, None)
    root_st = next((s for s in stats if s.pid == root), None)
    if root_st is not None:
        found[root] = root_st
    return list(found.values())


def kill_contender(root: int, sid: int, deadline_s: float = 10.0) -> None:
    """SIGKILLs every process of the contender rooted at `root` (session `sid`), by pid."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        members = [m for m in contender_members(root, sid) if m.state not in ("Z", "X")]
        if not members:
            return
        for m in members:
            try:
                os.kill(m.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


# --------------------------------------------------------------------------- safety


class Ballast:
    """The memory hog that turns this big machine into a small one; killed on every exit path."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.size = 0
        self.lock = threading.Lock()

    def start(self, size: int, floor: int) -> None:
        """Starts memhog holding `size`, oom_score_adj 1000, and waits until its RSS is there."""
        self.kill()
        if size < 64 * MIB:
            log(f"ballast: not needed (MemAvailable is within {fmt_size(size)} of the target)")
            return
        cmd = [str(MEMHOG), "--peak", str(size), "--ramp", "0", "--hold", "2h"]
        with self.lock:
            self.proc = subprocess.Popen(
                cmd, start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.pid = self.proc.pid
            self.size = size
        try:
            with open(f"/proc/{self.pid}/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError as e:
            log(f"ballast: cannot set oom_score_adj: {e}")
        deadline = time.monotonic() + 60 + size / GIB * 10
        while True:
            rss = rss_bytes(self.pid)
            if rss is None or self.proc.poll() is not None:
                raise RuntimeError(f"ballast memhog (pid {self.pid}) died while growing to {fmt_size(size)}")
            if rss >= size * 0.99:
                break
            if mem_available() < floor:
                self.kill()
                raise RuntimeError("MemAvailable fell below the floor while the ballast grew; "
                                   "hint: something else is using memory, rerun when idle")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"ballast did not reach {fmt_size(size)} in time")
            time.sleep(0.05)

    def kill(self) -> None:
        """Kills the ballast by pid and waits for it (idempotent, safe from any thread)."""
        with self.lock:
            proc, self.proc, self.pid = self.proc, None, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


BALLAST = Ballast()
# Contenders currently running: root pid -> session id. Killed by cleanup on any exit.
LIVE: dict[int, int] = {}
LIVE_LOCK = threading.Lock()


def cleanup() -> None:
    """Kills every contender still running and the ballast. Idempotent."""
    with LIVE_LOCK:
        live = list(LIVE.items())
        LIVE.clear()
    for root, sid in live:
        kill_contender(root, sid, deadline_s=5)
    BALLAST.kill()


def on_signal(signum, _frame):
    cleanup()
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- referee


@dataclass
class Watch:
    """What the referee saw during one contender's run."""

    floor: int
    # --no-ballast: the emulated machine's size; the referee then judges target − the RSS of
    # the contender's process tree instead of MemAvailable (other programs do not count).
    target: int | None = None
    root: int | None = None
    sid: int | None = None
    min_available: int = 1 << 62
    crashed_at: float | None = None
    wasted_s: float = 0.0
    killed_tasks: int = 0


class Referee(threading.Thread):
    """Polls MemAvailable every few ms; crashes the contender below the floor, kills the ballast below floor/2."""

    def __init__(self, floor: int, period_s: float = 0.003) -> None:
        super().__init__(daemon=True, name="referee")
        self.floor = floor
        self.period = period_s
        self.watch: Watch | None = None
        self.stop_flag = threading.Event()
        self.reader = MemAvailableReader()
        self.global_min = 1 << 62
        self.emergencies = 0

    def run(self) -> None:
        while not self.stop_flag.is_set():
            avail = self.reader.read()
            self.global_min = min(self.global_min, avail)
            if avail < self.floor // 2 and BALLAST.pid is not None:
                self.emergencies += 1
                BALLAST.kill()
            w = self.watch
            if w is not None:
                seen = avail if w.target is None else w.target - tree_rss(w.root)
                w.min_available = min(w.min_available, seen)
                if seen < self.floor and w.crashed_at is None and w.root is not None:
                    w.crashed_at = time.monotonic()
                    self.crash(w)
            time.sleep(self.period)

    def crash(self, w: Watch) -> None:
        """Records the work about to be lost, then kills everything the contender started."""
        now = uptime_s()
        for m in contender_members(w.root, w.sid):
            if m.comm == "memhog" and m.state not in ("Z", "X"):
                w.killed_tasks += 1
                w.wasted_s += max(0.0, now - m.start_ticks / CLK_TCK)
        kill_contender(w.root, w.sid)


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_quiet(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def build(no_build: bool) -> list[str]:
    """Builds ramguard and memhog in release mode; returns notes for the report."""
    notes = []
    if not no_build:
        log("building: cargo build --release -p ramguard -p memhog")
        r = run_quiet(["cargo", "build", "--release", "-p", "ramguard", "-p", "memhog"], cwd=REPO)
        if r.returncode != 0:
            tail = "\n".join(r.stderr.strip().splitlines()[-5:])
            notes.append("cargo build failed; using the binaries already in target/release")
            log(f"warning: cargo build failed, using existing binaries:\n{tail}")
    for b in (RAMGUARD, MEMHOG):
        if not b.exists():
            raise SystemExit(f"error: {b} does not exist; hint: run cargo build --release -p ramguard -p memhog")
    return notes


def ramguard_features() -> dict[str, bool]:
    """Which `ramguard run` flags this build has (run may still be under construction)."""
    r = run_quiet([str(RAMGUARD), "run", "--help"])
    text = r.stdout + r.stderr
    flags = ["--mem", "--tasks", "--journal", "--progress", "--json", "--estimate", "--repeat", "-j"]
    feats = {f: (f in text) for f in flags}
    feats["usable"] = r.returncode == 0 and feats["--mem"] and feats["--tasks"] and feats["--journal"]
    return feats


def ensure_parallel() -> tuple[str | None, str]:
    """Path of GNU parallel, installing it with apt-get when missing; (None, why) if impossible."""
    def gnu(path: str | None) -> bool:
        if not path:
            return False
        r = run_quiet([path, "--version"])
        return "GNU parallel" in r.stdout
    path = shutil.which("parallel")
    if gnu(path):
        return path, "already installed"
    log("GNU parallel missing: apt-get install -y parallel")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = run_quiet(["apt-get", "install", "-y", "parallel"], env=env)
    if r.returncode != 0:
        run_quiet(["apt-get", "update"], env=env)
        r = run_quiet(["apt-get", "install", "-y", "parallel"], env=env)
    path = shutil.which("parallel")
    if gnu(path):
        return path, "installed with apt-get"
    why = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
    return None, f"apt-get install parallel failed ({why}); parallel contenders skipped"


def quiet_parallel_env() -> dict[str, str]:
    """An environment where GNU parallel does not ask for a citation."""
    home = Path(tempfile.gettempdir()) / "sweep-bench-home"
    (home / ".parallel").mkdir(parents=True, exist_ok=True)
    (home / ".parallel" / "will-cite").touch()
    return dict(os.environ, HOME=str(home))


def start_contender(cmd: list[str], cwd: Path, stdin=None, stdout=None, stderr=None,
                    env=None) -> subprocess.Popen:
    """Starts `cmd` in `cwd` (where ramguard puts its logs) in a new session, registered for cleanup."""
    p = subprocess.Popen(cmd, cwd=cwd, start_new_session=True, stdin=stdin or subprocess.DEVNULL,
                         stdout=stdout or subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL, env=env)
    with LIVE_LOCK:
        LIVE[p.pid] = p.pid
    return p


def finish_contender(p: subprocess.Popen, timeout_s: float) -> tuple[int | None, bool]:
    """Waits for `p` up to `timeout_s`; kills its whole session afterwards. (code, timed_out)."""
    timed_out = False
    try:
        code = p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out, code = True, None
    kill_contender(p.pid, p.pid)
    if code is None:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    with LIVE_LOCK:
        LIVE.pop(p.pid, None)
    return code, timed_out


def warm_up(target: int, floor: int, rounds: int = 3, quick: float = 1.0) -> float:
    """Takes and gives back most of the emulated machine's memory before a run, until doing
    so takes at most `quick` seconds a GiB (at most `rounds` times); returns the last
    round's seconds a GiB.

    On this VM, memory the guest has not touched for a while is slow to take: right after
    the ballast was sized, 1 GiB took 4.6-4.8 s to fault in for about 10 s, against
    0.5-0.6 s otherwise (bench/README.md). Whoever ran first after a resize ran on that slow
    memory: the first three tasks of a `ramp` run took 8.8-9.9 s where they take 1.6-6.9
    s. Each contender now starts on memory just taken and given back."""
    size = max(0, min(target, mem_available()) - floor - 512 * MIB)
    per_gib = 0.0
    if size < 256 * MIB:
        return per_gib
    for _ in range(rounds):
        t = time.monotonic()
        subprocess.run([str(MEMHOG), "--peak", str(size), "--ramp", "0", "--hold", "0"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=120)
        per_gib = (time.monotonic() - t) / (size / GIB)
        if per_gib <= quick:
            break
    return per_gib


def settle_memory(want: int, slack: int, timeout_s: float = 30) -> int:
    """Waits (with a deadline) until MemAvailable is back above want − slack; returns it."""
    end = time.monotonic() + timeout_s
    avail = mem_available()
    while avail < want - slack and time.monotonic() < end:
        time.sleep(0.1)
        avail = mem_available()
    return avail


# --------------------------------------------------------------------------- the sweep


@dataclass
class Task:
    """One memhog run of the sweep."""

    idx: int
    peak: int
    ramp: float
    hold: float
    leak: int = 0
    # Seconds it sleeps (a few MiB) before its ramp: a task that waits before it allocates
    # (`sh -c 'sleep IDLE; exec memhog ...'`).
    idle: float = 0.0
    # With idle_mem, those seconds are work instead, at idle_mem bytes: a memhog holding
    # them on its run clock (stopped, it makes no progress), then the task's own memhog.
    idle_mem: int = 0
    # With a kind, the command line names only the kind and the index (`--model large
    # --index 7`); memhog's own arguments are inside an `sh -c` script that no runner reads.
    kind: str = ""
    # With a kind, a size on the command line too (`--rows 400`) whose memory per row the
    # kind sets.
    rows: int = 0

    @property
    def duration(self) -> float:
        return self.idle + self.ramp + self.hold

    @property
    def final_peak(self) -> int:
        return self.peak + int(self.leak * self.hold)

    @property
    def area(self) -> float:
        """Memory-time in byte-seconds, the ramp counted as half (a leak as a triangle)."""
        return (self.peak * (self.ramp / 2 + self.hold) + self.leak * self.hold * self.hold / 2
                + self.idle_mem * self.idle)

    def argv(self, marker_dir: Path) -> list[str]:
        a = ["env", f"RAMGUARD_RESULT={marker_dir}/t{self.idx:03d}", str(MEMHOG),
             "--peak", f"{self.peak // MIB}M", "--ramp", f"{self.ramp:.2f}s",
             "--hold", f"{self.hold:.2f}s", "--result", str(self.idx)]
        if self.leak:
            a += ["--leak", f"{self.leak // MIB}M"]
        a += MEMHOG_EXTRA
        if self.idle and self.idle_mem:
            # Work uses CPU: a tenth of one here, enough for a supervisor reading CPU time
            # to tell it from a sleep, little enough to leave the two CPUs to the ramps.
            work = " ".join([f"--peak {self.idle_mem // MIB}M --hold {self.idle:.2f}s",
                             f"--hold-cpu {WORK_CPU}", *MEMHOG_EXTRA])
            a[2:2] = ["sh", "-c", f'"$0" {work} && exec "$0" "$@"']
        elif self.idle:
            a[2:2] = ["sh", "-c", f'sleep {self.idle:.2f}; exec "$0" "$@"']
        if self.kind:
            a[2:] = ["sh", "-c", f"exec {shlex.join(a[2:])}", "task", "--model", self.kind,
                     *(["--rows", str(self.rows)] if self.rows else []), "--index", str(self.idx)]
        return a


def make_tasks(seed: int, n: int, max_peak: int, dur: tuple[float, float]) -> list[Task]:
    """Heterogeneous ramping tasks: ~45% small, ~30% medium, ~25% large."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        r = rng.random()
        if r < 0.45:
            peak = rng.uniform(100, 350) * MIB
        elif r < 0.75:
            peak = rng.uniform(400, 900) * MIB
        else:
            peak = rng.uniform(0.65, 1.0) * max_peak
        d = rng.uniform(*dur)
        ramp_frac = rng.uniform(0.4, 0.8)
        tasks.append(Task(i, int(peak) // MIB * MIB, round(d * ramp_frac, 2), round(d * (1 - ramp_frac), 2)))
    return tasks


def lower_bound(tasks: list[Task], usable: int, cap: int) -> dict[str, float]:
    """The best any scheduler could do: max of memory-time / usable, longest task, work / cap."""
    area = sum(t.area for t in tasks) / usable
    longest = max(t.duration for t in tasks)
    work = sum(t.duration for t in tasks) / cap
    return {"memory_time": area, "longest": longest, "work_over_cap": work,
            "bound": max(area, longest, work)}


@dataclass
class Contender:
    name: str
    kind: str  # xargs | parallel | ramguard
    jobs: int
    extra: list[str] = field(default_factory=list)
    # Another ramguard build (--baseline): raced beside this one, never counted as a peer.
    binary: Path | None = None


@dataclass
class SweepScore:
    contender: str
    variant: str
    crashed: bool
    finished: int
    total: int
    makespan_s: float
    ratio: float | None
    wasted_s: float
    min_available: int
    exit_code: int | None
    timed_out: bool
    brakes: int = 0
    notes: str = ""
    # Seconds a GiB the last warm-up round took to fault in before the run (warm_up).
    warm_up_s_per_gib: float | None = None


def ramguard_attempts(journal: Path) -> dict[str, tuple[int, float]]:
    """Per exit class of every attempt in the journal: (count, seconds)."""
    out: dict[str, tuple[int, float]] = {}
    if not journal.exists():
        return out
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        for cls, n, ms in con.execute(
            "SELECT coalesce(class, 'unfinished'), count(*), coalesce(sum(duration_ms), 0) FROM attempts GROUP BY 1"
        ):
            out[cls] = (n, ms / 1000)
    finally:
        con.close()
    return out


def ramguard_concurrency(journal: Path) -> tuple[float, int] | None:
    """Mean and max number of attempts running at once, from the journal's start/end times."""
    if not journal.exists():
        return None
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT started_unix_ms, ended_unix_ms FROM attempts "
                           "WHERE ended_unix_ms IS NOT NULL").fetchall()
    finally:
        con.close()
    if not rows:
        return None
    events = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
    t0, last, n, most, area = events[0][0], events[0][0], 0, 0, 0
    for t, d in events:
        area += n * (t - last)
        last, n = t, n + d
        most = max(most, n)
    span = last - t0
    return (area / span if span > 0 else float(n)), most


def run_sweep_contender(c: Contender, tasks: list[Task], variant: str, args, referee: Referee,
                        parallel: str | None, bound: float, workdir: Path, raw: dict) -> SweepScore:
    """Runs one contender on the emulated small machine and scores it."""
    tag = f"{variant}-{c.name}".replace(" ", "_").replace("/", "_")
    run_dir = workdir / tag
    markers = run_dir / "markers"
    markers.mkdir(parents=True)
    lines = [shlex.join(t.argv(markers)) for t in tasks]
    task_file = run_dir / "tasks.txt"
    task_file.write_text("\n".join(lines) + "\n")
    out_path, err_path = run_dir / "stdout.txt", run_dir / "stderr.txt"
    env = None
    journal = run_dir / "journal.db"
    if c.kind == "xargs":
        # xargs appends each line to its command: the command is `env`, the lines lack it.
        stdin_path = run_dir / "xargs-input.txt"
        stdin_path.write_text("\n".join(shlex.join(t.argv(markers)[1:]) for t in tasks) + "\n")
        cmd = ["xargs", "-P", str(c.jobs), "-L", "1", "env"]
    elif c.kind == "parallel":
        cmd = [parallel, "-j", str(c.jobs), *c.extra]
        stdin_path = task_file
        env = quiet_parallel_env()
    else:
        mem = f"{no_ballast_mem(args.target) // MIB}M" if args.no_ballast else args.target_text
        cmd = [str(c.binary or RAMGUARD), "run", "--mem", mem, "-j", str(c.jobs), "--tasks", str(task_file),
               "--journal", str(journal), "--progress", "none", "--json", *c.extra]
        stdin_path = None

    # The machine must look the same to everyone: MemAvailable at the target before each run,
    # and its free memory as quick to take (warm_up).
    warm = None
    for sizing in range(0 if args.no_ballast else 3):
        if args.warm_up and BALLAST.pid:
            warm = warm_up(args.target, args.floor)
        avail = settle_memory(args.target, args.retarget) if BALLAST.pid else mem_available()
        if BALLAST.pid is not None and abs(avail - args.target) <= args.retarget:
            break
        if sizing == 2:
            log(f"ballast: MemAvailable is still {fmt_size(avail)} after two sizings; running as it is")
            break
        log(f"ballast: MemAvailable is {fmt_size(avail)}; sizing it to leave {fmt_size(args.target)}")
        BALLAST.kill()
        BALLAST.start(mem_available() - args.target, args.floor)
    start_avail = args.target if args.no_ballast else mem_available()

    w = Watch(floor=args.floor, target=args.target if args.no_ballast else None)
    warmed = "" if warm is None else f", warm-up {warm:.2f} s a GiB"
    log(f"sweep/{variant}: {c.name}: {shlex.join(cmd)}  (MemAvailable {fmt_size(start_avail)}{warmed})")
    with open(out_path, "wb") as so, open(err_path, "wb") as se, \
            open(stdin_path or os.devnull, "rb") as si:
        t0 = time.monotonic()
        p = start_contender(cmd, run_dir, stdin=si, stdout=so, stderr=se, env=env)
        w.root, w.sid = p.pid, p.pid
        referee.watch = w
        code, timed_out = finish_contender(p, timeout_s=args.timeout_factor * bound + 30)
        t1 = w.crashed_at or time.monotonic()
        referee.watch = None
    finished = len(list(markers.iterdir()))
    wasted, brakes, notes = w.wasted_s, 0, []
    if c.kind == "ramguard":
        att = ramguard_attempts(journal)
        raw.setdefault("ramguard_attempts", {})[tag] = att
        for cls in ("braked", "oom_killed", "over_cap", "timed_out", "interrupted"):
            n, secs = att.get(cls, (0, 0.0))
            wasted += secs
            if cls == "braked":
                brakes = n
        conc = ramguard_concurrency(journal)
        if conc is not None:
            notes.append(f"{conc[0]:.1f} tasks at once on average, {conc[1]} at most")
        if att.get("oom_killed"):
            notes.append(f"{att['oom_killed'][0]} kernel OOM kills")
        stderr_tail = err_path.read_text(errors="replace").strip().splitlines()[-1:]
        if code not in (0, None) and stderr_tail:
            notes.append(f"exit {code}: {stderr_tail[0][:160]}")
    elif code not in (0, None) and not w.crashed_at:
        notes.append(f"exit {code}")
    if timed_out:
        notes.append("timed out: killed")
    if w.crashed_at:
        notes.append(f"crashed at {w.crashed_at - t0:.1f} s, {w.killed_tasks} tasks killed")
    makespan = t1 - t0
    score = SweepScore(
        contender=c.name, variant=variant, crashed=w.crashed_at is not None, finished=finished,
        total=len(tasks), makespan_s=makespan, ratio=makespan / bound, wasted_s=wasted,
        min_available=w.min_available, exit_code=code, timed_out=timed_out, brakes=brakes,
        notes="; ".join(notes), warm_up_s_per_gib=warm,
    )
    log(f"  -> crashed={score.crashed} finished={finished}/{len(tasks)} makespan={makespan:.1f}s "
        f"ratio={score.ratio:.2f} wasted={wasted:.1f}s min avail={fmt_size(w.min_available)}")
    return score


def section_sweep(args, referee: Referee, parallel: str | None, rg_ok: bool, workdir: Path,
                  raw: dict) -> str:
    cap = args.cap
    if args.quick:
        tasks = make_tasks(args.seed, 12, min(args.max_peak, GIB), (2.0, 6.0))
    else:
        tasks = make_tasks(args.seed, args.tasks, args.max_peak, (2.0, 15.0))
    leaky = [Task(t.idx, t.peak, t.ramp, t.hold, t.leak) for t in tasks]
    # The leaky variant: one task leaks for 10 s at 100 MiB/s on top of a small peak.
    leaky[len(leaky) // 2] = Task(len(leaky) // 2, 200 * MIB, 1.0, 10.0, leak=100 * MIB)
    usable = args.target - args.floor
    contenders = [Contender(f"xargs -P {n}", "xargs", n) for n in args.xargs_jobs]
    if parallel:
        contenders += [
            Contender(f"parallel -j {cap}", "parallel", cap),
            Contender(f"parallel -j {cap} --memfree 1G --retries 3", "parallel", cap,
                      ["--memfree", "1G", "--retries", "3"]),
        ]
        if not args.quick:
            contenders.append(Contender(f"parallel -j {cap} --memsuspend 1G", "parallel", cap,
                                        ["--memsuspend", "1G"]))
    if rg_ok:
        contenders.append(Contender(f"ramguard --mem {args.target_text} -j {cap}", "ramguard", cap))
    if args.contender:
        contenders = [c for c in contenders if any(x in c.name for x in args.contender)]
    variants = [("ramp", tasks, contenders)]
    if not args.no_leak:
        leak_names = {f"xargs -P {args.xargs_jobs[len(args.xargs_jobs) // 2]}",
                      f"parallel -j {cap} --memfree 1G --retries 3",
                      f"ramguard --mem {args.target_text} -j {cap}"}
        variants.append(("leak", leaky, [c for c in contenders if c.name in leak_names]))

    md = [f"## Sweep on an emulated {args.target_text} machine\n"]
    md.append(f"Ballast leaves MemAvailable at {fmt_size(args.target)}; the referee crashes a run when "
              f"MemAvailable falls below {fmt_size(args.floor)}. Concurrency cap {cap} "
              f"({os.cpu_count()} CPUs: memhog holds and sleeps, so memory, not CPU, limits parallelism). "
              f"Seed {args.seed}.\n")
    raw["sweep"] = {"target": args.target, "floor": args.floor, "cap": cap, "seed": args.seed, "variants": {}}
    try:
        for variant, vtasks, vcontenders in variants:
            lb = lower_bound(vtasks, usable, cap)
            peaks = sorted(t.final_peak for t in vtasks)
            md.append(f"### Variant `{variant}`: {len(vtasks)} tasks, peaks {fmt_size(peaks[0])} … "
                      f"{fmt_size(peaks[-1])} (median {fmt_size(peaks[len(peaks) // 2])}), "
                      f"{min(t.duration for t in vtasks):.1f}–{max(t.duration for t in vtasks):.1f} s each\n")
            md.append(f"Lower bound {lb['bound']:.1f} s = max(memory-time / usable {lb['memory_time']:.1f} s, "
                      f"longest task {lb['longest']:.1f} s, work / {cap} {lb['work_over_cap']:.1f} s).\n")
            rows = []
            scores = []
            for c in vcontenders:
                s = run_sweep_contender(c, vtasks, variant, args, referee, parallel, lb["bound"], workdir, raw)
                scores.append(s)
                rows.append([f"`{s.contender}`", "**CRASHED**" if s.crashed else "no",
                             f"{s.finished}/{s.total}", fmt_s(s.makespan_s), f"{s.ratio:.2f}×",
                             fmt_s(s.wasted_s), str(s.brakes) if c.kind == "ramguard" else "-",
                             fmt_size(s.min_available), s.notes or ""])
            md.append(table(["contender", "crashed", "finished", "makespan", "÷ bound", "wasted work",
                             "brakes", "lowest MemAvailable", "notes"], rows))
            raw["sweep"]["variants"][variant] = {
                "tasks": [asdict(t) for t in vtasks], "lower_bound": lb,
                "scores": [asdict(s) for s in scores],
            }
    finally:
        BALLAST.kill()
    return "\n".join(md)


# --------------------------------------------------------------------------- mixes (issue 12)


MIXES = ("ramp", "big", "leak", "idle", "late", "heavy", "kinds", "kindsize")
# Default plan: mix:seeds[xreps], ';'-separated. Five runs of six contenders, about 14
# minutes (each run of all six takes about 2.5 min, ballast settling included).
MIX_PLAN = "ramp:1x2;ramp:2;big:1;leak:1"


def make_mix(mix: str, seed: int, n: int, target: int) -> list[Task]:
    """One of issue 12's mixes for an emulated machine of `target` bytes.

    ramp: heterogeneous ramping tasks, ~45% of 250-600 MiB, ~35% of 0.6-1.5 GiB, ~20% of
    1.5 GiB up to 80% of the machine; 1.5-7 s each, ramping for 40-80% of it.
    big: five tasks of 50-80% of the machine (4-8 s) among small ones (150-500 MiB, 1.5-6 s).
    leak: the ramp mix of the same seed with its middle task replaced by one that reaches
    200 MiB in 1 s and then leaks 150 MiB/s for 8 s (1.37 GiB at the end).
    idle: tasks that sleep 2-8 s at a few MiB, then take their peak (the ramp mix's sizes)
    in 0.1-0.4 s and hold it 1-3 s: work that waits or computes before it allocates. The
    twin's rows carry the sleeps in a separate "idle s" list (bench/mixes-idle.json).
    late: the idle mix's shape, but the 2-8 s before the peak are work at 60-200 MiB (a
    memhog that makes no progress while stopped and computes a tenth of each tick, as a
    Python task importing and computing before it builds its arrays): a pause there costs
    its time, as it does real work. The twin's rows carry that size in an "idle MiB" list
    (bench/mixes-late.json).
    heavy: the late mix's shape, but the work before the peak holds 30-60% of it (a task
    that loads its data, then builds a larger array from it): what a task holds in its first
    moments is then much of its peak (bench/mixes-heavy.json).
    kinds: tasks of three kinds in random order, half `small` (200-400 MiB), 30% `medium`
    (0.9-1.3 GiB), 20% `large` (2.2-2.8 GiB), scaled to the machine; 0.5-2 s ramp, 1-4 s
    hold. The command line names only the kind and the index (`--model large --index 7`),
    as a training sweep over models does: a runner learns nothing from the peak. The twin's
    rows carry the kinds in a "kinds" list (0 small, 1 medium, 2 large; bench/shapes.py
    has the same shape).
    kindsize: `--model small|large --rows N` (N of 200-1000): 100 MiB plus 0.5 MiB a row for
    a small task, 2.5 MiB for a large one (±5%), scaled to the machine; 0.5-2 s ramp, 1-4 s
    hold. The kind sets how fast memory grows with the rows (bench/shapes.py has the same
    shape; the twin's rows carry the kinds and a "rows" list).
    """
    rng = random.Random(f"{'ramp' if mix == 'leak' else mix}-{seed}")
    top = 0.8 * target
    tasks: list[Task] = []
    def ramp_peak() -> float:
        # ~45% of 250-600 MiB, ~35% of 0.6-1.5 GiB, ~20% of 1.5 GiB up to `top`.
        r = rng.random()
        if r < 0.45:
            return rng.uniform(250, 600) * MIB
        if r < 0.80:
            return rng.uniform(0.6, 1.5) * GIB
        return rng.uniform(1.5 * GIB, top)

    if mix in ("ramp", "leak"):
        for i in range(n):
            peak = ramp_peak()
            d = rng.uniform(1.5, 7.0)
            f = rng.uniform(0.4, 0.8)
            tasks.append(Task(i, int(peak) // MIB * MIB, round(d * f, 2), round(d * (1 - f), 2)))
        if mix == "leak":
            mid = n // 2
            tasks[mid] = Task(mid, 200 * MIB, 1.0, 8.0, leak=150 * MIB)
    elif mix in ("idle", "late", "heavy"):
        for i in range(n):
            peak = ramp_peak()
            idle, ramp, hold = rng.uniform(2.0, 8.0), rng.uniform(0.1, 0.4), rng.uniform(1.0, 3.0)
            work = {"late": int(rng.uniform(60, 200)) * MIB,
                    "heavy": int(peak * rng.uniform(0.3, 0.6)) // MIB * MIB}.get(mix, 0)
            tasks.append(Task(i, int(peak) // MIB * MIB, round(ramp, 2), round(hold, 2), idle=round(idle, 2),
                              idle_mem=work))
    elif mix == "big":
        kinds = ["big"] * 5 + ["small"] * max(0, n - 5)
        rng.shuffle(kinds)
        for i, kind in enumerate(kinds):
            if kind == "big":
                peak, d = rng.uniform(0.5 * target, top), rng.uniform(4.0, 8.0)
            else:
                peak, d = rng.uniform(150, 500) * MIB, rng.uniform(1.5, 6.0)
            f = rng.uniform(0.4, 0.8)
            tasks.append(Task(i, int(peak) // MIB * MIB, round(d * f, 2), round(d * (1 - f), 2)))
    elif mix == "kinds":
        scale = target / (4 * GIB)
        sizes = {"small": (200 * MIB, 400 * MIB), "medium": (0.9 * GIB, 1.3 * GIB),
                 "large": (2.2 * GIB, 2.8 * GIB)}
        for i in range(n):
            r = rng.random()
            kind = "small" if r < 0.5 else "medium" if r < 0.8 else "large"
            lo, hi = sizes[kind]
            peak = rng.uniform(lo, hi) * scale
            tasks.append(Task(i, int(peak) // MIB * MIB, round(rng.uniform(0.5, 2), 2),
                              round(rng.uniform(1, 4), 2), kind=kind))
    elif mix == "kindsize":
        scale = target / (4 * GIB)
        per_row = {"small": 0.5 * MIB, "large": 2.5 * MIB}
        for i in range(n):
            kind = rng.choice(("small", "large"))
            rows = rng.choice((200, 400, 600, 800, 1000))
            peak = (100 * MIB + rows * per_row[kind]) * rng.uniform(0.95, 1.05) * scale
            tasks.append(Task(i, int(peak) // MIB * MIB, round(rng.uniform(0.5, 2), 2),
                              round(rng.uniform(1, 4), 2), kind=kind, rows=rows))
    else:
        raise ValueError(f"unknown mix {mix!r}; expected one of {', '.join(MIXES)}")
    return tasks


def parse_mix_plan(text: str) -> list[tuple[str, int, int]]:
    """'ramp:1,2x2;big:1' → [(mix, seed, reps)]."""
    plan = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        mix, _, rest = part.partition(":")
        seeds, _, reps = rest.partition("x")
        if mix not in MIXES or not seeds:
            raise argparse.ArgumentTypeError(
                f"--mix-plan part {part!r}: expected MIX:SEEDS[xREPS] with MIX one of {', '.join(MIXES)}, "
                f"e.g. ramp:1,2x2")
        try:
            for seed in seeds.split(","):
                plan.append((mix, int(seed), int(reps or 1)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--mix-plan part {part!r}: seeds and reps are integers")
    return plan


def no_ballast_mem(target: int) -> int:
    """ramguard's --mem without a ballast: the target less the reserve it keeps on the
    emulated machine (policy::levels: 10% of it, at least 512 MiB on a 4 GiB machine)."""
    return target - max(target // 10, 512 * MIB)


def mix_contenders(args, parallel: str | None, rg_ok: bool) -> list[Contender]:
    """The issue's peers: xargs -P 2..4, parallel --memsuspend 1G and 2G, and ramguard."""
    cap = args.cap
    if getattr(args, "no_ballast", False):
        # Peers need the ballast to see a small machine: ramguard alone.
        return [Contender(f"ramguard --mem {fmt_size(no_ballast_mem(args.target))} -j {cap} (no ballast)",
                          "ramguard", cap)] if rg_ok else []
    out = [Contender(f"xargs -P {n}", "xargs", n) for n in (2, 3, 4)]
    if parallel:
        out += [Contender(f"parallel -j {cap} --memsuspend {m}", "parallel", cap, ["--memsuspend", m])
                for m in ("1G", "2G")]
    if rg_ok:
        out.append(Contender(f"ramguard --mem {args.target_text} -j {cap}", "ramguard", cap))
        if args.baseline:
            out.append(Contender(f"baseline ramguard --mem {args.target_text} -j {cap}", "ramguard", cap,
                                 binary=args.baseline))
    if args.contender:
        out = [c for c in out if any(x in c.name for x in args.contender)]
    return out


def write_mixes(args, path: Path) -> None:
    """Exports every mix of the plan for the simulator's twin."""
    mixes = []
    for mix, seed in dict.fromkeys((m, s) for m, s, _ in args.mix_plan):
        tasks = make_mix(mix, seed, args.mix_tasks, args.target)
        lb = lower_bound(tasks, args.target - args.floor, args.cap)
        rows = ",\n".join(f"    [{t.peak}, {t.ramp}, {t.hold}, {t.leak}]" for t in tasks)
        # The idle mix's sleeps ride beside the rows, so readers of the four columns still work.
        idle = (f',\n   "idle s": [{", ".join(str(t.idle) for t in tasks)}]'
                if any(t.idle for t in tasks) else "")
        if any(t.idle_mem for t in tasks):
            idle += f',\n   "idle MiB": [{", ".join(str(t.idle_mem // MIB) for t in tasks)}]'
        if any(t.kind for t in tasks):
            order = [k for k in ("small", "medium", "large") if any(t.kind == k for t in tasks)]
            idle += f',\n   "kinds": [{", ".join(str(order.index(t.kind)) for t in tasks)}]'
        if any(t.rows for t in tasks):
            idle += f',\n   "rows": [{", ".join(str(t.rows) for t in tasks)}]'

        mixes.append(f'  {{"mix": "{mix}", "seed": {seed}, "bound_s": {lb["bound"]:.3f},\n'
                     f'   "tasks (peak, ramp s, hold s, leak per s)": [\n{rows}\n   ]{idle}}}')
    head = (f'{{"target": {args.target}, "floor": {args.floor}, "cap": {args.cap}, '
            f'"written by": "python3 bench/sweep_bench.py --write-mixes {path}",\n "mixes": [\n')
    text = head + ",\n".join(mixes) + "\n ]}\n"
    json.loads(text)  # what the twin reads must be JSON
    path.write_text(text)
    log(f"wrote {path}")


def section_mixes(args, referee: Referee, parallel: str | None, rg_ok: bool, workdir: Path,
                  raw: dict) -> str:
    cap = args.cap
    usable = args.target - args.floor
    contenders = mix_contenders(args, parallel, rg_ok)
    how = (f"No ballast (development mode): ramguard alone under `--mem {fmt_size(no_ballast_mem(args.target))}`, "
           f"judged on an emulated MemAvailable ({fmt_size(args.target)} less the RSS of ramguard's process "
           f"tree); the referee crashes a run below" if args.no_ballast else
           f"Ballast leaves MemAvailable at {fmt_size(args.target)}; the referee crashes a run below")
    md = [f"## Issue 12: mixes on an emulated {args.target_text} machine\n",
          f"{how} {fmt_size(args.floor)}. {args.mix_tasks} tasks per mix, cap {cap}; plan `{args.mix_plan_text}`. "
          f"Every contender runs each (mix, seed, repetition) back to back.\n"]
    raw["mixes"] = {"target": args.target, "floor": args.floor, "cap": cap, "plan": args.mix_plan_text,
                    "runs": []}
    runs = raw["mixes"]["runs"]
    try:
        for mix, seed, reps in args.mix_plan:
            tasks = make_mix(mix, seed, args.mix_tasks, args.target)
            lb = lower_bound(tasks, usable, cap)
            for rep in range(reps):
                variant = f"{mix}-s{seed}-r{rep}"
                for c in contenders:
                    s = run_sweep_contender(c, tasks, variant, args, referee, parallel, lb["bound"], workdir, raw)
                    runs.append({"mix": mix, "seed": seed, "rep": rep, "bound": lb["bound"], **asdict(s)})
    finally:
        BALLAST.kill()
    md.append(mix_tables(runs, contenders, args))
    return "\n".join(md)


def mix_tables(runs: list[dict], contenders: list[Contender], args) -> str:
    """One table per mix over its seeds and repetitions, then the verdict on the targets."""
    md = []
    rg = next((c.name for c in contenders if c.kind == "ramguard" and not c.binary), None)
    baseline = {c.name for c in contenders if c.binary}
    for mix in dict.fromkeys(r["mix"] for r in runs):
        mr = [r for r in runs if r["mix"] == mix]
        bounds = sorted({(r["seed"], round(r["bound"], 1)) for r in mr})
        md.append(f"### `{mix}`: lower bound " + ", ".join(f"{b} s (seed {s})" for s, b in bounds) + "\n")
        rows = []
        for c in contenders:
            cr = [r for r in mr if r["contender"] == c.name]
            ok = [r for r in cr if not r["crashed"] and r["finished"] == r["total"]]
            ratios = sorted(r["ratio"] for r in ok)
            crashed = sum(r["crashed"] for r in cr)
            rows.append([f"`{c.name}`", f"{len(cr)}", f"**{crashed}**" if crashed else "0",
                         f"{statistics.median(ratios):.2f}×" if ratios else "-",
                         f"{ratios[0]:.2f}–{ratios[-1]:.2f}×" if ratios else "-",
                         fmt_size(min(r["min_available"] for r in cr)) if cr else "-",
                         str(sum(r["brakes"] for r in cr)) if c.kind == "ramguard" else "-"])
        md.append(table(["contender", "runs", "crashed", "median ÷ bound", "range (survived)",
                         "lowest MemAvailable", "brakes"], rows))
    if rg:
        md.append("### Targets\n")
        mine = [r for r in runs if r["contender"] == rg]
        crashes = sum(r["crashed"] for r in mine)
        incomplete = sum(not r["crashed"] and r["finished"] != r["total"] for r in mine)
        ratios = [r["ratio"] for r in mine if not r["crashed"]]
        med = statistics.median(ratios) if ratios else None
        beaten, lost = 0, []
        for key in dict.fromkeys((r["mix"], r["seed"], r["rep"]) for r in runs):
            same = [r for r in runs if (r["mix"], r["seed"], r["rep"]) == key]
            me = next((r for r in same if r["contender"] == rg), None)
            peers = [r for r in same if r["contender"] != rg and r["contender"] not in baseline
                     and not r["crashed"] and r["finished"] == r["total"]]
            if me is None or me["crashed"]:
                continue
            best = min(peers, key=lambda r: r["makespan_s"], default=None)
            if best is None or me["makespan_s"] < best["makespan_s"]:
                beaten += 1
            else:
                lost.append(f"{key[0]} seed {key[1]} rep {key[2]}: {me['makespan_s']:.1f} s vs "
                            f"`{best['contender']}` {best['makespan_s']:.1f} s")
        verdict = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
        rows = [
            ["0 crashes in every run", f"{crashes} crash(es) in {len(mine)} runs", verdict(crashes == 0)],
            ["every task, once", f"{incomplete} run(s) with tasks missing", verdict(incomplete == 0)],
            ["median ≤ 1.35× the lower bound", f"{med:.2f}×" if med else "-", verdict(med is not None and med <= 1.35)],
            ["faster than every peer that survived the same run",
             f"{beaten} of {len(mine) - crashes} runs" + (f"; lost: {'; '.join(lost)}" if lost else ""),
             verdict(not lost and beaten > 0)] if len(contenders) > 1 else
            ["faster than every peer that survived the same run", "no peer ran (--no-ballast)", "-"],
        ]
        md.append(table(["target", "measured", ""], rows))
    return "\n".join(md)


def section_roomy(args, rg_ok: bool, workdir: Path, raw: dict) -> str:
    """Memory never binds: ramguard against xargs -P N with the same N and the same tasks."""
    n, jobs = args.roomy_tasks, args.roomy_jobs
    reps = 1 if args.quick else 3
    rng = random.Random(f"roomy-{args.seed}")
    tasks = []
    for i in range(n):
        d = rng.uniform(1.0, 4.0)
        f = rng.uniform(0.2, 0.6)
        tasks.append(Task(i, int(rng.uniform(50, 200)) * MIB, round(d * f, 2), round(d * (1 - f), 2)))
    d = workdir / "roomy"
    d.mkdir()
    times: dict[str, list[float | None]] = {}
    notes: dict[str, str] = {}
    for rep in range(reps):
        for kind in ("xargs", "ramguard") if rg_ok else ("xargs",):
            run_dir = d / f"{kind}-{rep}"
            markers = run_dir / "markers"
            markers.mkdir(parents=True)
            if kind == "xargs":
                name = f"xargs -P {jobs}"
                stdin = run_dir / "input.txt"
                stdin.write_text("\n".join(shlex.join(t.argv(markers)[1:]) for t in tasks) + "\n")
                cmd = ["xargs", "-P", str(jobs), "-L", "1", "env"]
            else:
                name = f"ramguard -j {jobs}"
                tf = run_dir / "tasks.txt"
                tf.write_text("\n".join(shlex.join(t.argv(markers)) for t in tasks) + "\n")
                stdin = None
                cmd = [str(RAMGUARD), "run", "-j", str(jobs), "--tasks", str(tf), "--journal",
                       str(run_dir / "journal.db"), "--progress", "none"]
            with open(stdin or os.devnull, "rb") as si, open(run_dir / "stderr.txt", "wb") as se:
                t0 = time.monotonic()
                p = start_contender(cmd, run_dir, stdin=si, stderr=se)
                code, timed_out = finish_contender(p, timeout_s=120)
                el = time.monotonic() - t0
            done = len(list(markers.iterdir()))
            ok = code == 0 and done == n
            if not ok:
                notes[name] = f"exit {code}, {done}/{n} done" + (" (timed out)" if timed_out else "")
            times.setdefault(name, []).append(el if ok else None)
        log(f"roomy rep {rep + 1}/{reps}: " + ", ".join(
            f"{k} {v[-1]:.2f}s" if v[-1] is not None else f"{k} failed" for k, v in times.items()))
    base_runs = [x for x in times[f"xargs -P {jobs}"] if x is not None]
    base = statistics.median(base_runs) if base_runs else None
    rows, rawrows = [], []
    for name, ts in times.items():
        ok = [x for x in ts if x is not None]
        med = statistics.median(ok) if ok else None
        ratio = med / base if med and base else None
        rows.append([f"`{name}`", fmt_s(med, 2), f"{ratio:.3f}×" if ratio else "-",
                     ", ".join(fmt_s(x, 2) for x in ts), notes.get(name, "")])
        rawrows.append({"contender": name, "runs_s": ts, "median_s": med, "ratio": ratio})
    raw["roomy"] = {"tasks": [asdict(t) for t in tasks], "jobs": jobs, "reps": reps, "rows": rawrows}
    work = sum(t.duration for t in tasks)
    return "\n".join([
        f"## Issue 12: a roomy mix, N = {jobs}\n",
        f"{n} tasks of 50–200 MiB, {min(t.duration for t in tasks):.1f}–{max(t.duration for t in tasks):.1f} s "
        f"each ({work:.0f} task-s; ideal {work / jobs:.1f} s at N = {jobs}), no ballast: memory never binds. "
        f"Median of {reps} run(s), interleaved; ratio against `xargs -P {jobs}`; target ≤ 1.05×.\n",
        table(["runner", "median", "÷ xargs", "runs", "notes"], rows),
    ])


def print_plan(args, parallel_name: str) -> str:
    """What --issue12/--only would run, with the lower bounds; runs nothing."""
    out = [f"plan: sections {', '.join(args.sections)}; emulated machine {args.target_text}, floor "
           f"{fmt_size(args.floor)}, cap {args.cap}"]
    if "mixes" in args.sections:
        fake = argparse.Namespace(**vars(args))
        names = [c.name for c in mix_contenders(fake, parallel_name, True)]
        total = 0.0
        for mix, seed, reps in args.mix_plan:
            tasks = make_mix(mix, seed, args.mix_tasks, args.target)
            lb = lower_bound(tasks, args.target - args.floor, args.cap)
            peaks = sorted(t.final_peak for t in tasks)
            total += reps * len(names) * lb["bound"] * 1.6
            out.append(f"  mix {mix} seed {seed} x{reps}: {len(tasks)} tasks, peaks {fmt_size(peaks[0])}"
                       f"–{fmt_size(peaks[-1])}, bound {lb['bound']:.1f} s")
        out.append(f"  contenders: {'; '.join(names)}")
        out.append(f"  about {total / 60:.0f} min of runs (1.6× the bound each) plus ballast settling")
    if "roomy" in args.sections:
        out.append(f"  roomy: {args.roomy_tasks} tasks, xargs -P {args.roomy_jobs} vs ramguard -j {args.roomy_jobs}")
    if "overhead" in args.sections:
        out.append(f"  overhead: {args.trivial} x true, N = {args.overhead_jobs}")
    return "\n".join(out)


# --------------------------------------------------------------------------- overhead


def section_overhead(args, parallel: str | None, rg_ok: bool, workdir: Path, raw: dict) -> str:
    n_tasks, jobs = args.trivial, args.overhead_jobs
    reps = 1 if args.quick else 3
    d = workdir / "overhead"
    d.mkdir()
    task_file = d / "tasks.txt"
    task_file.write_text("".join(f"true {i}\n" for i in range(n_tasks)))
    # xargs and parallel get the arguments and the command `true`, as their users write it.
    args_file = d / "args.txt"
    args_file.write_text("".join(f"{i}\n" for i in range(n_tasks)))
    runs: dict[str, list[float]] = {}
    # CPU seconds (user + system) of the contender and everything it reaped (its tasks):
    # on a machine with fewer CPUs than N, the wall time follows it.
    cpu: dict[str, list[float]] = {}
    notes: dict[str, str] = {}

    def children_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def timed(name: str, cmd: list[str], stdin: Path | None, env=None) -> float | None:
        with open(stdin or os.devnull, "rb") as si, open(d / "stderr.txt", "ab") as se:
            c0 = children_cpu()
            t0 = time.monotonic()
            p = start_contender(cmd, d, stdin=si, stderr=se, env=env)
            code, timed_out = finish_contender(p, timeout_s=args.overhead_timeout)
            el = time.monotonic() - t0
            cpu.setdefault(name, []).append(children_cpu() - c0)
        if code != 0:
            notes[name] = f"exit {code}" + (" (timed out)" if timed_out else "")
            return None
        return el

    for rep in range(reps):
        name = f"xargs -P {jobs}"
        t = timed(name, ["xargs", "-P", str(jobs), "-n", "1", "true"], args_file)
        runs.setdefault(name, []).append(t)
        if parallel:
            name = f"parallel -j {jobs}"
            runs.setdefault(name, []).append(timed(name, [parallel, "-j", str(jobs), "true"], args_file,
                                                   quiet_parallel_env()))
        if rg_ok:
            name = f"ramguard -j {jobs} (journal on)"
            journal = d / f"journal-{rep}.db"
            # A log directory per rep: every rep creates its 2,000 log files as a first run
            # does (a shared one made reps 2 and up only truncate rep 1's files).
            t = timed(name, [str(RAMGUARD), "run", "-j", str(jobs), "--tasks", str(task_file),
                             "--journal", str(journal), "--log-dir", str(d / f"logs-{rep}"),
                             "--progress", "none"], None)
            runs.setdefault(name, []).append(t)
            done = None
            if journal.exists():
                con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
                try:
                    done = con.execute("SELECT count(*) FROM tasks WHERE state = 'done'").fetchone()[0]
                finally:
                    con.close()
            notes[name] = f"journal: {done} of {n_tasks} tasks done"
        log(f"overhead rep {rep + 1}/{reps}: " + ", ".join(
            f"{k} {v[-1]:.2f}s" if v[-1] is not None else f"{k} failed" for k, v in runs.items()))
    base = statistics.median(x for x in runs[f"xargs -P {jobs}"] if x is not None)
    base_cpu = statistics.median(cpu[f"xargs -P {jobs}"])
    rows, rawrows = [], []
    for name, ts in runs.items():
        ok = [x for x in ts if x is not None]
        med = statistics.median(ok) if ok else None
        med_cpu = statistics.median(cpu[name]) if cpu.get(name) else None
        rows.append([f"`{name}`", fmt_s(med, 2), f"{med / base:.2f}×" if med else "-",
                     f"{med / n_tasks * 1000:.2f} ms" if med else "-",
                     f"{fmt_s(med_cpu, 2)} ({med_cpu / base_cpu:.2f}×)" if med_cpu and base_cpu else "-",
                     notes.get(name, "")])
        rawrows.append({"contender": name, "runs_s": ts, "median_s": med, "ratio": med / base if med else None,
                        "cpu_s": cpu.get(name), "median_cpu_s": med_cpu, "notes": notes.get(name, "")})
    raw["overhead"] = {"tasks": n_tasks, "jobs": jobs, "reps": reps, "rows": rawrows}
    return "\n".join([
        f"## Overhead: {n_tasks} trivial tasks (`true <i>`), N = {jobs}\n",
        f"Median of {reps} run(s); ratio against `xargs -P {jobs}`. No ballast. CPU: user + system "
        f"seconds of the runner and the tasks it reaped (ratio against xargs's).\n",
        table(["runner", "wall time", "÷ xargs", "per task", "CPU", "notes"], rows),
    ])


# --------------------------------------------------------------------------- brake reaction


# How long after the crossing the brake section reads MemAvailable again.
AVAIL_AFTER = 0.1


def brake_trial(args, d: Path, i: int) -> tuple[list[dict], dict]:
    """One `ramguard run --mem` of a fast-ramping task: one sample per attempt it started, and the run."""
    budget = args.brake_mem
    journal = d / f"journal-{i}.db"
    cmd = [str(RAMGUARD), "run", "--mem", args.brake_mem_text, "--journal", str(journal), "--progress", "none",
           "--repeat", "1", "--", str(MEMHOG), "--peak", args.brake_peak, "--ramp", args.brake_ramp, "--result", str(i)]
    err_path = d / f"stderr-{i}.txt"
    avail = MemAvailableReader()
    with open(err_path, "wb") as se:
        p = start_contender(cmd, d, stderr=se)
        # pid -> {crossed, died, max_rss, MemAvailable at the crossing and after}
        seen: dict[int, dict] = {}
        deadline = time.monotonic() + 60
        # After ramguard exits, keep watching MemAvailable until AVAIL_AFTER past the last crossing.
        watch_until = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            mem = avail.read()
            for c in children_of(p.pid):
                if c not in seen and getattr(proc_stat(c), "comm", "") == "memhog":
                    seen[c] = {"pid": c, "crossed": None, "died": None, "max_rss": 0,
                               "first": now, "crossed_unix": None, "died_unix": None,
                               "avail_cross": None, "avail_after": None}
            for c, s in seen.items():
                if s["crossed"] is not None and s["avail_after"] is None and now - s["crossed"] >= AVAIL_AFTER:
                    s["avail_after"] = mem
                if s["died"] is not None:
                    continue
                st = proc_stat(c)
                if st is None or st.state in ("Z", "X"):
                    s["died"], s["died_unix"] = now, time.time()
                    continue
                rss = rss_bytes(c)
                if rss is not None:
                    s["max_rss"] = max(s["max_rss"], rss)
                    if rss > budget and s["crossed"] is None:
                        s["crossed"], s["crossed_unix"], s["avail_cross"] = now, time.time(), mem
                # (statm reads 0 as soon as a dying process detaches its address space, long before
                # its pages are free, so RSS cannot tell when memory came back: death can.)
            if p.poll() is not None:
                crossings = [s["crossed"] for s in seen.values() if s["crossed"] is not None]
                watch_until = watch_until or (max(crossings) + AVAIL_AFTER if crossings else now)
                if now >= watch_until:
                    break
            time.sleep(0.001)
        code, _ = finish_contender(p, timeout_s=5)
    out = []
    for s in seen.values():
        react = (s["died"] - s["crossed"]) * 1000 if s["crossed"] and s["died"] else None
        regained = (s["avail_after"] - s["avail_cross"]
                    if s["avail_after"] is not None and s["avail_cross"] is not None else None)
        out.append({"trial": i, "pid": s["pid"], "reaction_ms": react,
                    "avail_regained": regained, "max_rss": s["max_rss"],
                    "crossed": s["crossed"] is not None, "exit_code": code})
    # ramguard's own brake event time splits the reaction into detection and killing.
    brakes = []
    if journal.exists():
        con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            brakes = [r[0] / 1000 for r in con.execute(
                "SELECT unix_ms FROM events WHERE kind = 'brake' ORDER BY unix_ms")]
        finally:
            con.close()
    for o, s in zip(out, seen.values()):
        ev = next((b for b in brakes if s["crossed_unix"] and b >= s["crossed_unix"] - 0.05), None)
        if ev is not None and s["died_unix"]:
            o["detect_ms"] = (ev - s["crossed_unix"]) * 1000
            o["kill_ms"] = (s["died_unix"] - ev) * 1000
    att = ramguard_attempts(journal)
    lines = err_path.read_text(errors="replace").strip().splitlines()
    run = {"trial": i, "exit_code": code, "classes": {k: v[0] for k, v in att.items()},
           "stderr_last": lines[-1] if lines else ""}
    return out, run


_LIBC = None


def process_mrelease(pidfd: int) -> bool:
    """process_mrelease(2) (Linux 5.15; syscall 448 on x86_64 and aarch64); False if it failed."""
    global _LIBC
    if _LIBC is None:
        import ctypes  # only the brake section needs it

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC.syscall(448, pidfd, 0) == 0


def teardown_baseline(size: str, trials: int, mrelease: bool = False) -> list[float]:
    """Milliseconds from SIGKILL to death of a bare memhog holding `size`: the kernel's share.

    With `mrelease`, the harness also calls process_mrelease on it right after the SIGKILL, as
    Android's lmkd and systemd-oomd do; the victim's death is still what counts. ramguard
    does not: in interleaved A/B runs of its brake (victim ramping or asleep, TERM or KILL) it
    saved 0-5 ms of ~55, inside this host's noise, while this bare baseline often shows more."""
    out = []
    d = Path(tempfile.gettempdir())
    want = parse_size(size) * 0.98
    for _ in range(trials):
        p = start_contender([str(MEMHOG), "--peak", size, "--hold", "60s"], d)
        end = time.monotonic() + 30
        while (rss_bytes(p.pid) or 0) < want and time.monotonic() < end and p.poll() is None:
            time.sleep(0.005)
        fd = os.pidfd_open(p.pid) if mrelease else None
        died: list[float] = []

        def watch(pid: int = p.pid) -> None:
            while True:
                st = proc_stat(pid)
                if st is None or st.state in ("Z", "X"):
                    died.append(time.monotonic())
                    return
                time.sleep(0.0005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGKILL)
        if fd is not None:
            # In this thread, at once: a few microseconds later the victim has detached its
            # memory and there is nothing left to release.
            process_mrelease(fd)
        watcher.join()
        out.append((died[0] - t0) * 1000)
        finish_contender(p, timeout_s=5)
        if fd is not None:
            os.close(fd)
    return out


def section_brake(args, rg_ok: bool, workdir: Path, raw: dict) -> str:
    if not rg_ok:
        return "## Brake reaction\n\nskipped: this ramguard has no usable `run --mem`.\n"
    d = workdir / "brake"
    d.mkdir()
    trials = 5 if args.quick else args.brake_trials
    samples, runs = [], []
    for i in range(trials):
        got, run = brake_trial(args, d, i)
        samples += got
        runs.append(run)
    exits: dict[str, int] = {}
    classes: dict[str, int] = {}
    for r in runs:
        exits[str(r["exit_code"])] = exits.get(str(r["exit_code"]), 0) + 1
        for k, v in r["classes"].items():
            classes[k] = classes.get(k, 0) + v
    errors = sorted({r["stderr_last"] for r in runs if r["exit_code"] not in (0, 1) and r["stderr_last"]})
    reacts = sorted(s["reaction_ms"] for s in samples if s["reaction_ms"] is not None)
    never = [s for s in samples if s["crossed"] and s["reaction_ms"] is None]
    # Braked and gone between two of the harness's polls: no crossing time, so no sample.
    unseen = [s for s in samples if not s["crossed"]]
    detect = sorted(s["detect_ms"] for s in samples if "detect_ms" in s)
    kill = sorted(s["kill_ms"] for s in samples if "kill_ms" in s)
    regained = sorted(s["avail_regained"] for s in samples if s.get("avail_regained") is not None)
    max_rss = max((s["max_rss"] for s in samples), default=0)
    n_base = 3 if args.quick else 10
    base, base_mr = [], []
    for _ in range(n_base):  # interleaved, so that drift in the host's load hits both alike
        base += teardown_baseline(fmt_mib(max_rss or args.brake_mem), 1)
        base_mr += teardown_baseline(fmt_mib(max_rss or args.brake_mem), 1, mrelease=True)
    raw["brake"] = {"teardown_baseline_ms": base, "teardown_mrelease_ms": base_mr, "budget": args.brake_mem,
                    "peak": args.brake_peak, "ramp": args.brake_ramp, "samples": samples, "runs": runs}
    rows = [[str(trials), str(len(samples)), str(len(reacts)),
             f"{statistics.median(reacts):.1f} ms" if reacts else "-",
             f"{reacts[int(0.9 * (len(reacts) - 1))]:.1f} ms" if reacts else "-",
             f"{reacts[-1]:.1f} ms" if reacts else "-",
             f"{statistics.median(detect):.1f} / {detect[-1]:.1f} ms" if detect else "-",
             f"{statistics.median(kill):.1f} / {kill[-1]:.1f} ms" if kill else "-",
             fmt_size(statistics.median(regained)) if regained else "-",
             fmt_size(max_rss), str(len(never)), str(len(unseen)),
             ", ".join(f"{k}×{v}" for k, v in sorted(exits.items())),
             ", ".join(f"{k}×{v}" for k, v in sorted(classes.items()))]]
    return "\n".join([
        "## Brake reaction\n",
        f"`ramguard run --mem {args.brake_mem_text} -- memhog --peak {args.brake_peak} --ramp {args.brake_ramp}`: "
        "the harness polls the task's RSS every 1 ms (crossing = first sample above the budget) and "
        "/proc/<pid> (death = gone or zombie). Each attempt ramguard starts is one sample.\n",
        "Detection = ramguard's `brake` journal event (unix ms) minus the crossing; kill = death minus "
        f"that event (median / worst; wall clocks of one host). Regained = MemAvailable {AVAIL_AFTER * 1000:.0f} ms after the crossing minus "
        "at the crossing (median; noisy on a shared host, and pages parked on the kernel's per-CPU free "
        "lists do not count in MemAvailable).\n",
        f"Baseline: the kernel alone takes {statistics.median(base):.1f} ms (median of {len(base)}, worst "
        f"{max(base):.1f} ms) from SIGKILL to the death of a bare memhog of the same size "
        "(freeing its pages), so that much of 'kill' is not ramguard's; with process_mrelease called "
        f"right after the SIGKILL: {statistics.median(base_mr):.1f} ms (worst {max(base_mr):.1f} ms).\n",
        table(["runs", "attempts seen", "crossed and died", "median", "p90", "worst", "detection",
               "kill", "regained", "highest RSS seen",
               "crossed, never died", "crossing unseen", "ramguard exit codes", "attempt classes (journal)"], rows),
    ] + [f"- ramguard said: `{e[:200]}`" for e in errors[:3]])


# --------------------------------------------------------------------------- supervisor cost


def section_cost(args, rg_ok: bool, feats: dict, workdir: Path, raw: dict) -> str:
    if not rg_ok:
        return "## Supervisor cost\n\nskipped: this ramguard has no usable `run`.\n"
    d = workdir / "cost"
    d.mkdir()
    hold_s = 5 if args.quick else 20
    hold = f"{hold_s}s"
    n = 8
    task_file = d / "tasks.txt"
    task_file.write_text("".join(f"{MEMHOG} --peak 50M --hold {hold} --result {i}\n" for i in range(n)))
    cmd = [str(RAMGUARD), "run", "-j", str(n), "--tasks", str(task_file), "--journal", str(d / "journal.db"),
           "--progress", "none"]
    if feats.get("--estimate"):
        cmd += ["--estimate", "64M"]  # so that all 8 run at once from the start
    with open(d / "stderr.txt", "wb") as se:
        t0 = time.monotonic()
        p = start_contender(cmd, d, stderr=se)
        first = proc_stat(p.pid)
        samples = []  # (t, cpu_ticks, rss, running children)
        while p.poll() is None and time.monotonic() < t0 + hold_s + 60:
            st = proc_stat(p.pid)
            rss = vm_rss(p.pid)
            kids = [st for st in map(proc_stat, children_of(p.pid))
                    if st is not None and st.comm == "memhog" and st.state not in ("Z", "X")]
            if st is not None and rss is not None:
                samples.append((time.monotonic(), st.cpu_ticks, rss, len(kids)))
            time.sleep(0.1)
        code, _ = finish_contender(p, timeout_s=5)
        wall = time.monotonic() - t0
    full = [s for s in samples if s[3] == n]
    most = max((s[3] for s in samples), default=0)
    window = full or [s for s in samples if s[3] == most]
    row = {"exit_code": code, "wall_s": wall, "max_concurrent": most}
    if len(window) >= 2:
        dt_ = window[-1][0] - window[0][0]
        row["steady_cpu_pct"] = (window[-1][1] - window[0][1]) / CLK_TCK / dt_ * 100 if dt_ > 0 else None
        row["steady_window_s"] = dt_
    if samples:
        row["whole_run_cpu_pct"] = (samples[-1][1] - (first.cpu_ticks if first else 0)) / CLK_TCK / \
            (samples[-1][0] - t0) * 100
        row["max_rss"] = max(s[2] for s in samples)
        row["steady_max_rss"] = max(s[2] for s in window) if window else None
    raw["cost"] = {"cmd": cmd, **row}
    rows = [[f"{most}", fmt_s(row.get("steady_window_s")),
             f"{row['steady_cpu_pct']:.2f} %" if row.get("steady_cpu_pct") is not None else "-",
             f"{row['whole_run_cpu_pct']:.2f} %" if row.get("whole_run_cpu_pct") is not None else "-",
             fmt_size(row.get("steady_max_rss")), fmt_size(row.get("max_rss")), str(code)]]
    return "\n".join([
        f"## Supervisor cost: {n} × `memhog --peak 50M --hold {hold}`\n",
        f"`{shlex.join(cmd[:1] + ['run'] + cmd[2:])}`; ramguard's utime+stime over wall time from "
        "/proc/<pid>/stat (% of one core), VmRSS sampled every 100 ms. 'steady' = while all tasks ran.\n",
        table(["tasks at once", "steady window", "CPU steady", "CPU whole run", "RSS steady (max)",
               "RSS max", "exit"], rows),
    ])


# --------------------------------------------------------------------------- output


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine_line() -> str:
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * KIB
    return f"{os.cpu_count()} CPUs, MemTotal {fmt_size(total)}, Linux {os.uname().release}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="4G", help="MemAvailable the ballast leaves (the emulated machine)")
    ap.add_argument("--floor", default="256M", type=parse_size, help="referee crash level for MemAvailable")
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    ap.add_argument("--quick", action="store_true", help="a smaller sweep and fewer trials, for development")
    ap.add_argument("--seed", type=int, default=2, help="seed of task sizes and durations")
    ap.add_argument("--tasks", type=int, default=36, help="tasks in the sweep")
    ap.add_argument("--max-peak", default="1.5G", type=parse_size, help="largest task peak")
    ap.add_argument("--cap", type=int, default=8, help="concurrency cap of parallel and ramguard")
    ap.add_argument("--xargs-jobs", default="2,4,8", help="xargs -P values, comma-separated")
    ap.add_argument("--no-leak", action="store_true", help="skip the leaky-task variant")
    ap.add_argument("--contender", action="append",
                    help="sweep only contenders whose name contains this text (repeatable), e.g. ramguard")
    ap.add_argument("--baseline", type=Path, metavar="BINARY",
                    help="mixes section: also race this ramguard binary (a build of main, say) beside "
                         "this one, to measure a change side by side; never counted as a peer")
    ap.add_argument("--retarget", default="192M", type=parse_size,
                    help="resize the ballast when MemAvailable drifts this far from the target")
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                    help="start each run without first taking and giving back the emulated machine's "
                         "memory (warm_up; as every run before the one of 2026-11-28 08:39)")
    ap.add_argument("--timeout-factor", type=float, default=6.0, help="kill a sweep run after this × the bound")
    ap.add_argument("--trivial", type=int, default=1000, help="trivial tasks in the overhead section")
    ap.add_argument("--overhead-jobs", type=int, default=8, help="N for the overhead section")
    ap.add_argument("--overhead-timeout", type=float, default=120, help="kill an overhead run after this many s")
    ap.add_argument("--brake-trials", type=int, default=20)
    ap.add_argument("--brake-mem", default="512M", help="ramguard --mem in the brake section")
    ap.add_argument("--brake-peak", default="2G")
    ap.add_argument("--brake-ramp", default="1s")
    ap.add_argument("--no-build", action="store_true", help="use the binaries in target/release as they are")
    ap.add_argument("--out-dir", default=str(BENCH_DIR), type=Path, help="where results-<date>.{md,json} go")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (task files, journals)")
    ap.add_argument("--issue12", action="store_true",
                    help=f"issue 12's whole table: sections {', '.join(ISSUE12)} (about 20 minutes)")
    ap.add_argument("--plan", action="store_true", help="print what would run, with lower bounds; run nothing")
    ap.add_argument("--mix-plan", default=MIX_PLAN, type=parse_mix_plan,
                    help=f"mixes section: MIX:SEEDS[xREPS];... with MIX in {', '.join(MIXES)} (default {MIX_PLAN})")
    ap.add_argument("--mix-tasks", type=int, default=16, help="tasks per mix")
    ap.add_argument("--no-ballast", action="store_true",
                    help="mixes section for development: ramguard only, no ballast, under --mem = target less "
                         "its reserve, judged on target less the RSS of ramguard's process tree (safe while "
                         "others compile)")
    ap.add_argument("--memhog-wall-clock", action="store_true",
                    help="tasks' memhog on the wall-clock schedule (--wall-clock), as before 2026-11-27: a "
                         "paused task catches up at once, so pausing costs nothing")
    ap.add_argument("--roomy-tasks", type=int, default=32, help="tasks in the roomy section")
    ap.add_argument("--roomy-jobs", type=int, default=8, help="N in the roomy section")
    ap.add_argument("--write-mixes", type=Path, metavar="PATH",
                    help="write the mixes of --mix-plan as JSON for the simulator twin, then exit")
    args = ap.parse_args()
    if args.memhog_wall_clock:
        MEMHOG_EXTRA.append("--wall-clock")
    args.mix_plan_text = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--mix-plan=")), None) \
        or (sys.argv[sys.argv.index("--mix-plan") + 1] if "--mix-plan" in sys.argv else MIX_PLAN)
    args.target_text = args.target
    args.target = parse_size(args.target)
    args.brake_mem_text = args.brake_mem
    args.brake_mem = parse_size(args.brake_mem)
    try:
        args.xargs_jobs = [int(x) for x in args.xargs_jobs.split(",") if x]
    except ValueError:
        ap.error(f"--xargs-jobs {args.xargs_jobs!r}: expected comma-separated integers such as 2,4,8")
    if args.quick:
        args.xargs_jobs = [2, args.cap]
    sections = args.only or (list(ISSUE12) if args.issue12 else [s for s in SECTIONS if s not in ("mixes", "roomy")])
    args.sections = sections
    if args.write_mixes:
        write_mixes(args, args.write_mixes)
        return 0
    if args.plan:
        print(print_plan(args, shutil.which("parallel") or "parallel"))
        return 0

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(cleanup)

    started = dt.datetime.now()
    notes = build(args.no_build)
    feats = ramguard_features()
    rg_ok = feats["usable"]
    if not rg_ok:
        notes.append("`ramguard run` is not usable in this build (no --mem/--tasks/--journal): ramguard rows skipped")
        log("warning: " + notes[-1])
    parallel, why = (None, "not needed")
    if {"sweep", "mixes", "overhead"} & set(sections):
        parallel, why = ensure_parallel()
        if parallel is None:
            notes.append(why)
            log("warning: " + why)
    pver = run_quiet([parallel, "--version"]).stdout.splitlines()[0] if parallel else "none"
    rgver = run_quiet([str(RAMGUARD), "--version"]).stdout.strip()

    workdir = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    raw: dict = {"started": started.isoformat(timespec="seconds"), "argv": sys.argv, "machine": machine_line(),
                 "ramguard": rgver, "parallel": pver, "ramguard_features": feats, "notes": notes}
    referee = Referee(args.floor)
    referee.start()
    parts = []
    try:
        if "sweep" in sections:
            free = mem_available()
            if free < args.target + GIB:
                notes.append(f"MemAvailable {fmt_size(free)} is too close to the target; sweep skipped")
            else:
                parts.append(section_sweep(args, referee, parallel, rg_ok, workdir, raw))
        if "mixes" in sections:
            free = mem_available()
            if free < args.target + GIB:
                notes.append(f"MemAvailable {fmt_size(free)} is too close to the target; mixes skipped")
            else:
                parts.append(section_mixes(args, referee, parallel, rg_ok, workdir, raw))
        if "roomy" in sections:
            parts.append(section_roomy(args, rg_ok, workdir, raw))
        if "overhead" in sections:
            parts.append(section_overhead(args, parallel, rg_ok, workdir, raw))
        if "brake" in sections:
            parts.append(section_brake(args, rg_ok, workdir, raw))
        if "cost" in sections:
            parts.append(section_cost(args, rg_ok, feats, workdir, raw))
    finally:
        referee.stop_flag.set()
        cleanup()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"scratch kept in {workdir}")
    raw["referee_emergencies"] = referee.emergencies
    raw["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    head = [
        f"# ramguard benchmark, {started:%Y-%m-%d %H:%M}\n",
        f"Command: `python3 bench/{Path(__file__).name} {shlex.join(sys.argv[1:])}`  ",
        f"Machine: {machine_line()}  ",
        f"ramguard: {rgver or '?'}; GNU parallel: {pver}; elapsed "
        f"{(dt.datetime.now() - started).total_seconds() / 60:.1f} min\n",
    ]
    if referee.emergencies:
        head.append(f"**Safety:** the ballast was killed {referee.emergencies} time(s) because MemAvailable fell "
                    f"below floor/2.\n")
    for n in notes:
        head.append(f"- note: {n}")
    text = "\n".join(head) + "\n\n" + "\n".join(parts)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M")
    # Two runs started in the same minute must not overwrite each other's results.
    base, n = stamp, 2
    while (args.out_dir / f"results-{stamp}.md").exists():
        stamp, n = f"{base}-{n}", n + 1
    (args.out_dir / f"results-{stamp}.md").write_text(text)
    (args.out_dir / f"results-{stamp}.json").write_text(json.dumps(raw, indent=2, default=str))
    log(f"wrote {args.out_dir}/results-{stamp}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

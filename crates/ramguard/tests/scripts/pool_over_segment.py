"""A multiprocessing fork Pool(4) whose workers read one SharedMemory segment.

argv: SEGMENT_MIB SEGMENT_NAME. Writes {"tree_pss", "tree_rss"} (bytes, summed over this
process and all its descendants while every worker holds the segment) to $RAMGUARD_RESULT.
"""
import json
import os
import sys
import time
from multiprocessing import get_context, shared_memory

MIB = 1 << 20
SIZE = int(sys.argv[1]) * MIB


def tree():
    pids, i = [os.getpid()], 0
    while i < len(pids):
        try:
            for t in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{t}/children") as f:
                    pids += [int(c) for c in f.read().split()]
        except OSError:
            pass
        i += 1
    return pids


def tree_memory():
    pss = rss = 0
    for pid in tree():
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key == "Pss":
                        pss += int(value.split()[0]) * 1024
                    elif key == "Rss":
                        rss += int(value.split()[0]) * 1024
        except OSError:
            pass
    return pss, rss


def work(name):
    shm = shared_memory.SharedMemory(name=name)
    buf, total = shm.buf, 0
    for off in range(0, SIZE, 4096):
        total += buf[off]
    del buf
    time.sleep(3.0)
    shm.close()
    return total


if __name__ == "__main__":
    shm = shared_memory.SharedMemory(name=sys.argv[2], create=True, size=SIZE)
    try:
        buf = shm.buf
        for off in range(0, SIZE, 4096):
            buf[off] = 1
        del buf
        steady = (0, 0)
        with get_context("fork").Pool(4) as pool:
            pending = pool.map_async(work, [shm.name] * 4, chunksize=1)
            # Wait until all four workers hold the segment (on a loaded machine they start
            # late). PSS read process by process while workers are still mapping pages
            # overcounts (each process's share is read at a different moment), so the
            # reference is read once they all hold it: the largest of a few readings then.
            deadline = time.time() + 20
            while time.time() < deadline and not pending.ready():
                if tree_memory()[1] >= 4.5 * SIZE:
                    time.sleep(0.2)
                    for _ in range(3):
                        steady = max(steady, tree_memory())
                        time.sleep(0.1)
                    break
                time.sleep(0.05)
            assert sum(pending.get()) == 4 * (SIZE // 4096)
        with open(os.environ["RAMGUARD_RESULT"], "w") as f:
            json.dump({"tree_pss": steady[0], "tree_rss": steady[1]}, f)
    finally:
        shm.close()
        shm.unlink()

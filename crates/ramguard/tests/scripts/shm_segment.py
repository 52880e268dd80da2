"""A SharedMemory segment NAME of MIB mebibytes, filled 8 MiB at a time beside two idle fork
Pool workers (so the resource tracker and workers are in the tree), then held for HOLD
seconds (default 30), closed and unlinked.

argv: NAME MIB [HOLD].
"""
import sys
import time
from multiprocessing import get_context, shared_memory

MIB = 1 << 20


def idle(_):
    time.sleep(30)


if __name__ == "__main__":
    size = int(sys.argv[2]) * MIB
    shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=size)
    with get_context("fork").Pool(2) as pool:
        pool.map_async(idle, [0, 1], chunksize=1)
        buf = shm.buf
        for off in range(0, size, 8 * MIB):
            n = min(8 * MIB, size - off)
            buf[off : off + n] = b"y" * n
            time.sleep(0.01)
        del buf
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 30)
    shm.close()
    shm.unlink()

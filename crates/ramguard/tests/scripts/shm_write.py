"""Writes MIB mebibytes into the file PATH (in /dev/shm) 8 MiB at a time, holding it open.

argv: PATH MIB HOLD_SECONDS. The file is left in place when the script ends by itself.
"""
import sys
import time

path, mib, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
chunk = b"x" * (8 << 20)
with open(path, "wb") as f:
    for _ in range(mib // 8):
        f.write(chunk)
        f.flush()
        time.sleep(0.01)
    time.sleep(hold)

"""Writes MIB mebibytes into a memfd (shared memory with no name in /dev/shm) 8 MiB at a
time, without mapping it, and holds it for HOLD seconds.

argv: MIB HOLD.
"""
import os
import sys
import time

fd = os.memfd_create("ramguard-test")
chunk = b"m" * (8 << 20)
for _ in range(int(sys.argv[1]) // 8):
    os.write(fd, chunk)
    time.sleep(0.01)
time.sleep(float(sys.argv[2]))

"""Creates a SharedMemory segment of MIB mebibytes and writes every page of it: on a /dev/shm
smaller than that, the write past its end is a SIGBUS.

argv: NAME MIB.
"""
import sys
from multiprocessing import shared_memory

size = int(sys.argv[2]) << 20
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=size)
buf = shm.buf
for off in range(0, size, 4096):
    buf[off] = 1

"""Small for a while, then holds MIB mebibytes for a moment and exits.

argv: MIB.
"""
import sys
import time

time.sleep(0.4)
ballast = b"x" * (int(sys.argv[1]) << 20)
time.sleep(0.05)

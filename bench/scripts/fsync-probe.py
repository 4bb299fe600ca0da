#!/usr/bin/env python3
"""How fast this machine's disk makes appends durable: append blocks of
4 KiB to 1 MiB to a file in $TMPDIR (where the bench keeps its data) and
fdatasync after each, 8 s per size. Tells whether a send figure is held back
by the disk or by something else."""
import os
import tempfile
import time

SECONDS = 8
with tempfile.TemporaryDirectory() as d:
    for size in (4096, 65536, 262144, 1048576):
        path = os.path.join(d, f"log{size}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        block = b"x" * size
        lat = []
        end = time.time() + SECONDS
        while time.time() < end:
            t = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1000)
        os.close(fd)
        lat.sort()
        n = len(lat)
        print(
            f"{size // 1024:5d} KiB appends: {n / SECONDS:6.0f} syncs/s "
            f"{n * size / SECONDS / 1e6:6.1f} MB/s "
            f"p50 {lat[n // 2]:.2f} p99 {lat[int(n * 0.99)]:.2f} max {lat[-1]:.2f} ms"
        )

#!/usr/bin/env python3
"""Writes a benchmark dataset, the same bytes on every machine (fixed seed).

usage: datasets.py KIND DIR
  large   4 files of 256 MiB
  small   100,000 files of 4 KiB in 100 directories
  mixed   2,000 files in 20 directories, sizes log-uniform from 100 B to 10 MiB
  million 1,000,000 files of 256 B in 1,000 directories (scale: memory and linear time)
Contents are pseudo-random bytes (random.Random(seed).randbytes): incompressible, binary.
"""
import math
import os
import random
import sys

CHUNK = 1 << 20


def write(path, size, rng):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, CHUNK)
            f.write(rng.randbytes(n))
            left -= n


def many(root, rng, dirs, size):
    """`dirs` directories of 1,000 files of `size` bytes each."""
    for d in range(dirs):
        sub = os.path.join(root, f"d{d:03}")
        os.makedirs(sub, exist_ok=True)
        for i in range(1000):
            with open(os.path.join(sub, f"f{i:04}.bin"), "wb") as f:
                f.write(rng.randbytes(size))


def main():
    kind, root = sys.argv[1], sys.argv[2]
    rng = random.Random(f"packet-bench-{kind}")
    os.makedirs(root, exist_ok=True)
    if kind == "large":
        for i in range(4):
            write(os.path.join(root, f"dump-{i}.bin"), 256 << 20, rng)
    elif kind == "small":
        many(root, rng, 100, 4096)
    elif kind == "million":
        many(root, rng, 1000, 256)
    elif kind == "mixed":
        lo, hi = math.log(100), math.log(10 << 20)
        for i in range(2000):
            sub = os.path.join(root, f"d{i % 20:02}")
            os.makedirs(sub, exist_ok=True)
            write(os.path.join(sub, f"f{i:04}.bin"), int(math.exp(rng.uniform(lo, hi))), rng)
    else:
        sys.exit(f"unknown dataset {kind!r}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmarks `packet build` and `packet verify` against the tools people use today.

usage: bench/run.py [--rounds N] [--only large,small,mixed,sysroot,million] [--packet BIN] [--floor BIN]

Generates each dataset with bench/datasets.py (fixed seed) in a temporary directory, removed
afterwards; the Rust toolchain's sysroot (about 50,000 real files) is hard-linked into one.
Every tool runs on every dataset N times, interleaved (round 1: every tool, round 2: every
tool, ...), with a warm page cache (one untimed read first). Prints, per dataset, a table of
median seconds, throughput (GB/s for bytes, files/s), peak RSS, and each tool's time as a
multiple of `packet build`'s; and the SHA-256 hardware limit that `openssl speed -evp sha256
-bytes 16384 -multi <cores>` reports in the same run, read once in every round of every
dataset (median and range per dataset), since a shared VM's speed drifts while a run goes on.
On the small-file datasets it also runs the machine's small-file floor (examples/read_floor.rs:
the same batched io_uring reads and SHA-256 as packet, with none of a seal's work), the
measure an absolute files/s target is judged against, as large files are against openssl.
Peers that are not installed are skipped and named. Needs GNU time (/usr/bin/time) for peak RSS.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def sh(cmd, cwd=None):
    """Runs a shell command under GNU time; returns (wall seconds, peak RSS in KiB). The wall
    time is this process's monotonic clock around the run: GNU time's %e has 10 ms steps, 2 %
    of a 0.5 s build, as much as the margins the ratios are judged by. Starting GNU time and
    bash adds about 3 ms to every tool's time alike."""
    with tempfile.NamedTemporaryFile("r") as t:
        full = ["/usr/bin/time", "-f", "%M", "-o", t.name, "bash", "-c", cmd]
        start = time.perf_counter()
        r = subprocess.run(full, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        secs = time.perf_counter() - start
        if r.returncode != 0:
            raise RuntimeError(f"{cmd!r} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
        return secs, int(t.read().split()[-1])


def hardware_limit(cores, seconds=3):
    """SHA-256 bytes/s over `cores` processes by `openssl speed`, or None when openssl is
    missing or prints no sha256 figure (the callers then report the limit as unavailable)."""
    try:
        out = subprocess.run(
            ["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-multi", str(cores), "-seconds", str(seconds)],
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return None
    m = re.search(r"^sha256\s+([\d.]+)k", out, re.M)
    return float(m.group(1)) * 1000 if m else None


def dataset_size(d):
    files = total = 0
    for base, _, names in os.walk(d):
        for n in names:
            if n in ("HASH_MANIFEST.txt", "packet_tree.sha256", "SEAL.json"):
                continue
            files += 1
            total += os.path.getsize(os.path.join(base, n))
    return files, total


FLOOR = "read floor (I/O + SHA-256 only, no seal)"
SMALL_FILE_SETS = ("small", "million")


def tools(packet, d, cores, scale=False, floor=None):
    """(name, command, setup) for every tool available; setup runs untimed before each run."""
    q = f"'{d}'"
    listing = f"find {q} -type f ! -name SEAL.json ! -name HASH_MANIFEST.txt ! -name packet_tree.sha256 -print0 | LC_ALL=C sort -z"
    out = []
    seal_files = f"{q}/SEAL.json {q}/HASH_MANIFEST.txt {q}/packet_tree.sha256"
    # The row the ratios are taken against: hash every file, render the seal, compare it with
    # the one there (unchanged here, so nothing is written): the work every peer below does.
    out.append(("packet build", f"'{packet}' build {q} --reseal --quiet", None))
    out.append(("packet verify", f"'{packet}' verify {q} --quiet", None))
    if floor:
        out.append((FLOOR, f"'{floor}' {q} {cores} > /dev/null", None))
    # A first seal in place is atomic: the tree is hard-linked into a staging directory that
    # is exchanged with it in one rename, and the old tree's links removed.
    out.append(("packet build (first seal, in place)", f"'{packet}' build {q} --quiet", f"rm -f {seal_files}"))
    if shutil.which("rhash"):
        out.append(("rhash -r --sha256", f"rhash -r --sha256 {q}", None))
    out.append(("sha256sum (xargs)", f"{listing} | xargs -0 sha256sum", None))
    out.append((f"sha256sum (xargs -P{cores})", f"{listing} | xargs -0 -P{cores} -n 256 sha256sum", None))
    if shutil.which("hashdeep"):
        out.append(("hashdeep -r -c sha256", f"hashdeep -r -c sha256 {q}", None))
    if shutil.which("bagit.py") and not scale:
        bag = f"'{d}.bag'"
        out.append(
            (
                f"bagit.py --processes {cores} (sha256)",
                f"bagit.py --quiet --processes {cores} --sha256 {bag}",
                f"rm -rf {bag} && cp -al {q} {bag} && rm -f {bag}/SEAL.json {bag}/HASH_MANIFEST.txt {bag}/packet_tree.sha256",
            )
        )
    if shutil.which("b3sum"):
        out.append(("b3sum (BLAKE3, fast-hash reference)", f"{listing} | xargs -0 b3sum --num-threads {cores}", None))
    return out


def floor_counts(floor, d, cores):
    """Runs the floor once and checks it read every payload file and byte: a floor that
    skipped work would flatter nothing but make packet look slow."""
    out = subprocess.run([floor, d, str(cores)], capture_output=True, text=True, check=True).stdout.split()
    return int(out[1]), int(out[3])


def run_dataset(name, d, packet, rounds, cores, floor=None):
    files, total = dataset_size(d)
    # Written just now: flush it, so no writeback competes with the timed runs for the cores.
    subprocess.run(["sync"], check=True)
    sh(f"find '{d}' -type f -print0 | xargs -0 cat > /dev/null")  # warm cache
    sh(f"'{packet}' build '{d}' --quiet")  # the seal verify checks
    if floor and floor_counts(floor, d, cores) != (files, total):
        raise RuntimeError(f"read_floor saw {floor_counts(floor, d, cores)}, the dataset has {(files, total)}")
    ts = tools(packet, d, cores, scale=os.path.basename(d) == "million", floor=floor)
    times = {t[0]: [] for t in ts}
    rss = {t[0]: 0 for t in ts}
    # The limit is measured in every round beside the tools: a shared VM's speed drifts by
    # a fifth over the minutes a run takes, and one reading at the start would misstate it.
    limits = []
    for _ in range(rounds):
        limit = hardware_limit(cores, seconds=2)
        if limit:
            limits.append(limit)
        for tname, cmd, setup in ts:
            if setup:
                subprocess.run(["bash", "-c", setup], check=True)
            # A first seal in place relinks the whole tree: its metadata writeback must not
            # land in the next tool's timing.
            subprocess.run(["sync"], check=True)
            secs, kib = sh(cmd)
            times[tname].append(secs)
            rss[tname] = max(rss[tname], kib)
    shutil.rmtree(d + ".bag", ignore_errors=True)
    base = statistics.median(times["packet build"])
    print(f"\n### {name}: {files:,} files, {total / 1e9:.2f} GB ({rounds} rounds, medians)\n")
    print("| tool | median s | GB/s | files/s | peak RSS MiB | time vs packet build |")
    print("|---|---:|---:|---:|---:|---:|")
    for tname, _, _ in ts:
        m = statistics.median(times[tname])
        print(
            f"| {tname} | {m:.3f} | {total / m / 1e9:.2f} | {files / m:,.0f} | {rss[tname] / 1024:.0f} | {m / base:.2f}x |"
        )
    b = statistics.median(times["packet build"])
    ratios = [f"packet verify / packet build = {statistics.median(times['packet verify']) / b:.2f}"]
    for peer in ("rhash -r --sha256", f"sha256sum (xargs -P{cores})"):
        if peer in times:
            ratios.append(f"{peer} / packet build = {statistics.median(times[peer]) / b:.2f}")
    print("\n" + "; ".join(ratios) + ".")
    if FLOOR in times:
        f = statistics.median(times[FLOOR])
        print(f"\nThis machine's small-file floor: {files / f:,.0f} files/s ({f:.3f} s); "
              f"packet build takes {b / f:.2f}x the floor's time.")
    if limits:
        limit = statistics.median(limits)
        print(f"\nSHA-256 hardware limit in this dataset's rounds: {limit / 1e9:.2f} GB/s median "
              f"({min(limits) / 1e9:.2f}-{max(limits) / 1e9:.2f}).")
        print(f"\npacket build reaches {total / base / limit:.2f} of the SHA-256 hardware limit ({limit / 1e9:.2f} GB/s); "
              f"packet verify {total / statistics.median(times['packet verify']) / limit:.2f}.")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="large,small,mixed,sysroot,million")
    ap.add_argument("--packet", default=os.path.join(ROOT, "target", "release", "packet"))
    ap.add_argument("--floor", default=os.path.join(ROOT, "target", "release", "examples", "read_floor"))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    missing = [t for t in ("rhash", "hashdeep", "b3sum", "bagit.py") if not shutil.which(t)]
    print(f"machine: {cores} cores, {os.uname().machine}, {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")
    print(f"packet: {subprocess.run([args.packet, '--version'], capture_output=True, text=True).stdout.strip()}")
    if missing:
        print(f"skipped (not installed): {', '.join(missing)}")
    limit = hardware_limit(cores)
    print(f"SHA-256 hardware limit at the start: {limit / 1e9:.2f} GB/s (openssl speed -evp sha256 -bytes 16384 -multi {cores})" if limit else "SHA-256 hardware limit: openssl speed unavailable")
    with tempfile.TemporaryDirectory(prefix="packet-bench-") as tmp:
        for kind in args.only.split(","):
            d = os.path.join(tmp, kind)
            if kind == "sysroot":
                src = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True).stdout.strip()
                if subprocess.run(["cp", "-al", src, d]).returncode != 0:
                    subprocess.run(["cp", "-a", src, d], check=True)
                name = f"real tree: the Rust sysroot ({src})"
            else:
                subprocess.run([sys.executable, os.path.join(HERE, "datasets.py"), kind, d], check=True)
                name = {
                    "large": "large files",
                    "small": "many small files",
                    "mixed": "mixed tree",
                    "million": "1,000,000 files (scale: memory and linear time)",
                }[kind]
            # The scale dataset takes minutes per round: one round is its measure.
            rounds = 1 if kind == "million" else args.rounds
            floor = args.floor if kind in SMALL_FILE_SETS and os.access(args.floor, os.X_OK) else None
            run_dataset(name, d, args.packet, rounds, cores, floor)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

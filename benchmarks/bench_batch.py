"""Benchmark ``texgen batch``: the throughput of one manifest run as a serial loop, on the local
process pool and as Ray tasks on a local cluster, side by side in one run.

The manifest holds ``--jobs`` synthetic jobs (``mode: demo``): a 20480-face body
(``subdivisions 5``, no ring) coloured per vertex, unwrapped by xatlas and textured from six
``--size``^2 views into a ``--size``^2 atlas, written as GLB. Rows:

  serial     the jobs one after the other in one process, each with all cores' threads
             (``workers=0``: the loop a script would write)
  pool       the local process pool, one worker per core, one thread each
  ray local  Ray tasks on a local cluster of ``cores`` CPUs, one CPU per task

Every row runs in a fresh Python process, as ``texgen batch`` does, and its wall time runs from
that process's launch to ``run_batch``'s return: every row pays its own imports (the serial
loop torch & co once, in line; the pool its parent's light imports, then its workers' in
parallel; Ray its tasks' on its workers). Rows used to run inside this script's process, where
torch was already imported: the serial loop then paid no start-up at all while the pool's
workers paid theirs, so the serial row was not a run a user could have. Ray's ``import ray`` and
cluster start are left out of its time (printed apart): a cluster is normally already running.

``busy cores`` is the machine's average number of busy cores over the row (``/proc/stat``), with
the row's own share (CPU time of the row's process tree / wall) in brackets; the difference is
other programs' load, which the rows do not share equally (a one-core serial loop loses little
to one busy neighbour, a two-core pool loses half a core). Ray's own share misses its cluster's
processes (not children of the row's process). Read ratios from rows whose busy cores are about
their own share.

Goal on 2 cores (16 jobs, 20k faces, 1024^2): pool >= 1.7x the serial loop's jobs/min, Ray
within 15% of the pool. Every row's outputs are checked byte-identical to the first row's.

    python benchmarks/bench_batch.py                 # 16 jobs, 1024^2
    python benchmarks/bench_batch.py --jobs 4 --size 512 --modes serial,pool
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NAMES = {"serial": "serial loop ({c} threads)", "pool": "pool ({c} workers x 1 thread)",
         "ray": "ray local ({c} CPUs, 1 per task)"}


def write_manifest(folder: str, jobs: int, subdivisions: int, size: int) -> str:
    path = os.path.join(folder, "manifest.jsonl")
    with open(path, "w") as f:
        for i in range(jobs):
            f.write(json.dumps({"mode": "demo", "subdivisions": subdivisions, "ring": False, "out": f"job{i:03d}.glb",
                                "options": {"render_size": size, "texture_size": size}}) + "\n")
    return path


def outputs(folder: str):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder)) if n.endswith(".glb")}


def cpu_jiffies():
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


def row(mode: str, manifest: str, out: str) -> None:
    """One row, in this (fresh) process: run the manifest, print a JSON summary on stdout."""
    from texgen.batch import cpu_cores, run_batch  # imports only what a `texgen batch` parent does

    cores, cluster = cpu_cores(), 0.0
    if mode == "serial":
        kw = dict(workers=0)
    elif mode == "pool":
        kw = dict(workers=cores)
    elif mode == "ray":
        t0 = time.monotonic()
        import ray

        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        cluster = time.monotonic() - t0
        kw = dict(ray="local", workers=cores)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    s = run_batch(manifest, out, progress=False, log=None, **kw)
    end = time.monotonic()
    keep = ("status", "error", "seconds", "cpu_seconds", "peak_rss_mb")
    print(json.dumps({"end": end, "cluster": cluster, "line": s.line(), "done": s.done, "failed": s.failed,
                      "records": [{k: r.get(k) for k in keep} for r in s.records]}), flush=True)
    if mode == "ray":
        ray.shutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024, help="render and atlas resolution")
    ap.add_argument("--subdivisions", type=int, default=5, help="20 * 4**k faces (5: 20480)")
    ap.add_argument("--modes", default="serial,pool,ray", help="comma-separated: serial, pool, ray")
    ap.add_argument("--row", nargs=3, metavar=("MODE", "MANIFEST", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.row:
        row(*args.row)
        return 0
    from bench_rasterize import cpu_name  # one CPU-name probe for all benchmarks (it imports torch: not in rows)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = sorted(set(modes) - set(NAMES))
    if bad:
        raise SystemExit(f"unknown mode(s) {bad}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cpu_name()}, {cores} cores; load average %.1f %.1f %.1f" % os.getloadavg())
    print(f"manifest: {args.jobs} jobs, {20 * 4 ** args.subdivisions} faces, {args.size}^2 renders and atlas")
    work = tempfile.mkdtemp(prefix="bench_batch_")
    manifest = write_manifest(work, args.jobs, args.subdivisions, args.size)
    rows, reference = [], None
    try:
        for mode in modes:
            out = os.path.join(work, mode)
            j0, r0 = cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
            launch = time.monotonic()
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--row", mode, manifest, out],
                                  stdout=subprocess.PIPE, text=True)
            j1, r1 = cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                raise SystemExit(f"{mode}: the row's process failed (exit status {proc.returncode})")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            if res["failed"]:
                bad = [r for r in res["records"] if r["status"] != "ok"]
                raise SystemExit(f"{mode}: {res['failed']} jobs failed, first: {bad[0]['error']}")
            wall = res["end"] - launch - res["cluster"]
            span = time.monotonic() - launch
            busy = cores * (j1[0] - j0[0]) / max(j1[1] - j0[1], 1)
            own = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / span
            files = outputs(out)
            same = "-" if reference is None else ("yes" if files == reference else "NO")
            reference = reference or files
            recs = res["records"]
            per_job = statistics.median(r["seconds"] for r in recs)
            cpu = statistics.median(r["cpu_seconds"] for r in recs)
            peak = max(r["peak_rss_mb"] or 0 for r in recs)
            extra = f"import ray + cluster start {res['cluster']:.1f} s (not in the time)" if mode == "ray" else ""
            rows.append((mode, wall, 60.0 * res["done"] / wall, per_job, cpu, peak, busy, own, same, extra))
            print(f"  {mode}: {wall:.1f} s from launch; run_batch: {res['line']}", flush=True)
        base = {m: jpm for m, _, jpm, *_ in rows}
        print()
        print("| run | wall s | jobs/min | x serial | / pool | median job s (CPU s) | peak RSS MB/job | busy cores (own) "
              "| same bytes |")
        print("|---|---|---|---|---|---|---|---|---|")
        for mode, wall, jpm, per_job, cpu, peak, busy, own, same, extra in rows:
            xs = f"{jpm / base['serial']:.2f}" if "serial" in base else "-"
            xp = f"{jpm / base['pool']:.2f}" if "pool" in base else "-"
            print(f"| {NAMES[mode].format(c=cores)} | {wall:.1f} | {jpm:.2f} | {xs} | {xp} | {per_job:.1f} ({cpu:.1f}) "
                  f"| {peak:.0f} | {busy:.2f} ({own:.2f}) | {same} |")
        for mode, *_, extra in rows:
            if extra:
                print(f"{mode}: {extra}")
        print("load average at the end %.1f %.1f %.1f" % os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

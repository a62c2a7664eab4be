"""Benchmark ``texgen batch``: the throughput of one manifest run as a serial loop, on the local
process pool and as Ray tasks on a local cluster, side by side in one run.

The manifest holds ``--jobs`` synthetic jobs (``mode: demo``): a 20480-face body
(``subdivisions 5``, no ring) coloured per vertex, unwrapped by xatlas and textured from six
``--size``^2 views into a ``--size``^2 atlas, written as GLB. Rows:

  serial     the jobs one after the other in this process, each with all cores' threads
             (``workers=0``: the loop a script would write; no process start-up to pay)
  pool       the local process pool, one worker per core, one thread each (start-up included)
  ray local  Ray tasks on a local cluster of ``cores`` CPUs; the cluster is started before the
             clock starts (its start-up is printed apart), its workers' imports are timed

Goal on 2 cores (16 jobs, 20k faces, 1024^2): pool >= 1.7x the serial loop's jobs/min, Ray
within 15% of the pool. Every row's outputs are checked byte-identical to the serial row's.

    python benchmarks/bench_batch.py                 # 16 jobs, 1024^2
    python benchmarks/bench_batch.py --jobs 4 --size 512 --modes serial,pool
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from bench_rasterize import cpu_name  # noqa: E402  (one CPU-name probe for all benchmarks)
from texgen.batch import cpu_cores, run_batch  # noqa: E402


def write_manifest(folder: str, jobs: int, subdivisions: int, size: int) -> str:
    path = os.path.join(folder, "manifest.jsonl")
    with open(path, "w") as f:
        for i in range(jobs):
            f.write(json.dumps({"mode": "demo", "subdivisions": subdivisions, "ring": False, "out": f"job{i:03d}.glb",
                                "options": {"render_size": size, "texture_size": size}}) + "\n")
    return path


def outputs(folder: str):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder)) if n.endswith(".glb")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024, help="render and atlas resolution")
    ap.add_argument("--subdivisions", type=int, default=5, help="20 * 4**k faces (5: 20480)")
    ap.add_argument("--modes", default="serial,pool,ray", help="comma-separated: serial, pool, ray")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    cores = cpu_cores()
    try:
        load = "load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    print(f"machine: {cpu_name()}, {cores} cores, torch {torch.__version__}; {load}")
    print(f"manifest: {args.jobs} jobs, {20 * 4 ** args.subdivisions} faces, {args.size}^2 renders and atlas")
    work = tempfile.mkdtemp(prefix="bench_batch_")
    manifest = write_manifest(work, args.jobs, args.subdivisions, args.size)
    rows, reference = [], None
    try:
        for mode in modes:
            out = os.path.join(work, mode)
            extra = ""
            if mode == "serial":
                kw = dict(workers=0)
            elif mode == "pool":
                kw = dict(workers=cores)
            elif mode == "ray":
                import ray

                t0 = time.perf_counter()
                ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
                extra = f"cluster start {time.perf_counter() - t0:.1f} s (not in the time)"
                kw = dict(ray="local", workers=cores)
            else:
                raise SystemExit(f"unknown mode {mode!r}")
            try:
                s = run_batch(manifest, out, progress=False, log=None, **kw)
            finally:
                if mode == "ray":
                    ray.shutdown()
            if s.failed:
                bad = [r for r in s.records if r["status"] != "ok"]
                raise SystemExit(f"{mode}: {s.failed} jobs failed, first: {bad[0]['error']}")
            files = outputs(out)
            same = "-" if reference is None else ("yes" if files == reference else "NO")
            reference = reference or files
            per_job = statistics.median(r["seconds"] for r in s.records)
            cpu = statistics.median(r["cpu_seconds"] for r in s.records)
            peak = max(r["peak_rss_mb"] or 0 for r in s.records)
            rows.append((mode, s.seconds, s.jobs_per_minute, per_job, cpu, peak, same, extra))
            print(f"  {mode}: {s.line()}", flush=True)
        base = {m: jpm for m, _, jpm, *_ in rows}
        print()
        print("| run | wall s | jobs/min | x serial | / pool | median job s (CPU s) | peak RSS MB/job | same bytes |")
        print("|---|---|---|---|---|---|---|---|")
        for mode, wall, jpm, per_job, cpu, peak, same, extra in rows:
            xs = f"{jpm / base['serial']:.2f}" if "serial" in base else "-"
            xp = f"{jpm / base['pool']:.2f}" if "pool" in base else "-"
            name = {"serial": f"serial loop ({cores} threads)", "pool": f"pool ({cores} workers x 1 thread)",
                    "ray": f"ray local ({cores} CPUs, 1 per task)"}[mode]
            print(f"| {name} | {wall:.1f} | {jpm:.2f} | {xs} | {xp} | {per_job:.1f} ({cpu:.1f}) | {peak:.0f} | {same} |")
        for mode, *_, extra in rows:
            if extra:
                print(f"{mode}: {extra}")
        try:
            print("load average at the end %.1f %.1f %.1f" % os.getloadavg())
        except OSError:
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of the parent-triangle resolve (docs/rasterization.md section 3): forward time of this tree
next to another installed render_npu (before/after, one run), and backward/forward ratio.

    PYTHONPATH=. RENDER_NPU_EXT_DIR=build/dev python benchmarks/bench_resolve.py \
        [--faces 20000 200000] [--res 1024 2048] [--backends cpu torch] [--repeat 5] \
        [--baseline-python /work/venv/bin/python] [--cpu-time] [--threads N]

Scenes are bench_rasterize.py's (UV sphere, orthographic, viewport "opengl"). "before": the same
timing run in a subprocess by ``--baseline-python`` with PYTHONPATH and RENDER_NPU_EXT_DIR removed,
so it imports that interpreter's installed render_npu (e.g. main's). The two sides alternate per
row, so machine load affects both alike. "forward (grad)": the rasterize call with pos requiring
grad; "backward": ``torch.autograd.grad((rast, depth), pos, (g, h))`` with random output gradients,
i.e. rasterize's backward alone. Output: a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_rasterize import cpu_name, scene  # noqa: E402

_CHILD = r"""
import json, statistics, sys, time, torch
sys.path.insert(0, {bench_dir!r})
import render_npu
from bench_rasterize import scene
faces_n, res, backend, repeat, clock = {args!r}
torch.set_num_threads({threads})
clock = getattr(time, clock)
pos, faces = scene(faces_n, torch.device("cpu"))
pos, faces = torch.from_numpy(pos), torch.from_numpy(faces)
fn = lambda: render_npu.rasterize(res, faces, pos, viewport="opengl", backend=backend)
fn()
ts = []
for _ in range(repeat):
    t0 = clock(); fn(); ts.append(clock() - t0)
print(json.dumps(statistics.median(ts)))
"""


CLOCK = time.perf_counter


def median_time(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return statistics.median(ts)


def baseline_time(python: str, n_faces: int, res: int, backend: str, repeat: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RENDER_NPU_EXT_DIR")}
    code = _CHILD.format(bench_dir=os.path.dirname(os.path.abspath(__file__)),
                         args=(n_faces, res, backend, repeat, CLOCK.__name__), threads=torch.get_num_threads())
    out = subprocess.run([python, "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--res", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--backends", nargs="+", default=["cpu", "torch"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-python", default=None, help="interpreter whose installed render_npu is 'before'")
    ap.add_argument("--cpu-time", action="store_true",
                    help="process CPU time (all threads) instead of wall time: steadier on a loaded machine")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (both sides)")
    args = ap.parse_args(argv)
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)

    import render_npu

    print(f"render_npu {render_npu.__file__}; {cpu_name()}, {torch.get_num_threads()} threads, "
          f"{'CPU' if args.cpu_time else 'wall'} time\n")
    print("| backend | faces | resolution | before ms | after ms | after/before | forward (grad) ms "
          "| backward ms | backward/forward |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n_faces in args.faces:
        pos_np, faces_np = scene(n_faces, torch.device("cpu"))
        pos, faces = torch.from_numpy(pos_np), torch.from_numpy(faces_np)
        for res in args.res:
            for name in args.backends:
                before = (baseline_time(args.baseline_python, n_faces, res, name, args.repeat) * 1e3
                          if args.baseline_python else None)
                after = median_time(lambda: render_npu.rasterize(res, faces, pos, viewport="opengl", backend=name),
                                    args.repeat) * 1e3
                p = pos.clone().requires_grad_(True)
                g = torch.randn(1, res, res, 4)
                h = torch.randn(1, res, res)
                fwd, bwd = [], []
                for _ in range(max(2, args.repeat // 2)):
                    t0 = CLOCK()
                    out = render_npu.rasterize(res, faces, p, viewport="opengl", backend=name)
                    t1 = CLOCK()
                    torch.autograd.grad((out.rast, out.depth), p, (g, h))
                    t2 = CLOCK()
                    fwd.append(t1 - t0)
                    bwd.append(t2 - t1)
                f_ms, b_ms = statistics.median(fwd) * 1e3, statistics.median(bwd) * 1e3
                b_s = f"{before:.1f}" if before is not None else "-"
                ratio = f"{after / before:.2f}" if before else "-"
                print(f"| {name} | {n_faces:,} | {res}x{res} | {b_s} | {after:.1f} | {ratio} | {f_ms:.1f} | "
                      f"{b_ms:.1f} | {b_ms / f_ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""Cost of the parent-triangle resolve (docs/rasterization.md section 3): forward time of this tree
next to another installed render_npu (before/after, one run), and backward/forward ratio.

    PYTHONPATH=. RENDER_NPU_EXT_DIR=build/dev python benchmarks/bench_resolve.py \
        [--faces 20000 200000] [--res 1024 2048] [--backends cpu torch] [--scenes orthographic perspective] \
        [--repeat 5] [--baseline-python /work/venv/bin/python] [--cpu-time] [--threads N]

Scenes: bench_rasterize.py's UV sphere (orthographic, viewport "opengl"; its coverage is 57% of
the image) and the same sphere through a 40-degree perspective camera (75%). "before": the same
timing run in a subprocess by ``--baseline-python`` with PYTHONPATH and RENDER_NPU_EXT_DIR
removed, so it imports that interpreter's installed render_npu (e.g. main's). The two sides
alternate per row, so machine load affects both alike. "forward (grad)": the rasterize call with
pos requiring grad; "backward": ``torch.autograd.grad((rast, depth), pos, (g, h))`` with random
output gradients (nonzero everywhere), i.e. rasterize's backward alone. Both are timed in the
same loop, alternating, after one untimed forward and backward (first-call costs); medians of
``--repeat``; "backward/forward before": the baseline's backward / forward (grad) ms, timed the same
way. Without ``--threads``, torch's default thread count (what users run). Output: a markdown
table.
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
import render_npu  # noqa: E402
from render_npu.meshes import look_at, perspective, sphere_with_faces, to_clip  # noqa: E402

_CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, {bench_dir!r})
import bench_resolve as b
faces_n, res, backend, repeat, clock, kind = {args!r}
torch.set_num_threads({threads})
b.CLOCK = getattr(time, clock)
pos, faces = (torch.from_numpy(a) for a in b.make_scene(kind, faces_n))
plain = b.median_time(lambda: b.render_npu.rasterize(res, faces, pos, viewport="opengl", backend=backend), repeat)
print(json.dumps([plain * 1e3, *b.forward_backward_times(pos, faces, res, backend, repeat)]))
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


def make_scene(kind: str, n_faces: int):
    """(pos float32 [V, 4], faces int32 [F, 3]) numpy arrays of the UV sphere: bench_rasterize's
    orthographic view, or a perspective one."""
    if kind == "orthographic":
        return scene(n_faces, torch.device("cpu"))
    verts, faces = sphere_with_faces(n_faces)
    return to_clip(verts, perspective(40.0, 0.1, 10.0) @ look_at((0.3, 0.4, 3.0))), faces


def baseline_times(python: str, n_faces: int, res: int, backend: str, repeat: int, kind: str):
    """(forward, forward (grad), backward) ms of the render_npu that ``python`` imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RENDER_NPU_EXT_DIR")}
    code = _CHILD.format(bench_dir=os.path.dirname(os.path.abspath(__file__)),
                         args=(n_faces, res, backend, repeat, CLOCK.__name__, kind), threads=torch.get_num_threads())
    out = subprocess.run([python, "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--res", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--backends", nargs="+", default=["cpu", "torch"])
    ap.add_argument("--scenes", nargs="+", default=["orthographic", "perspective"],
                    choices=["orthographic", "perspective"])
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

    print(f"render_npu {render_npu.__file__}; {cpu_name()}, {torch.get_num_threads()} threads, "
          f"{'CPU' if args.cpu_time else 'wall'} time\n")
    print("| backend | scene | faces | resolution | before ms | after ms | after/before | forward (grad) ms "
          "| backward ms | backward/forward | backward/forward before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in args.scenes:
        for n_faces in args.faces:
            pos_np, faces_np = make_scene(kind, n_faces)
            pos, faces = torch.from_numpy(pos_np), torch.from_numpy(faces_np)
            for res in args.res:
                for name in args.backends:
                    base = (baseline_times(args.baseline_python, n_faces, res, name, args.repeat, kind)
                            if args.baseline_python else None)
                    before = base[0] if base else None
                    after = median_time(lambda: render_npu.rasterize(res, faces, pos, viewport="opengl", backend=name),
                                        args.repeat) * 1e3
                    f_ms, b_ms = forward_backward_times(pos, faces, res, name, args.repeat)
                    b_s = f"{before:.1f}" if before is not None else "-"
                    ratio = f"{after / before:.2f}" if before else "-"
                    base_ratio = f"{base[2]:.1f} / {base[1]:.1f} = {base[2] / base[1]:.2f}" if base else "-"
                    print(f"| {name} | {kind} | {n_faces:,} | {res}x{res} | {b_s} | {after:.1f} | {ratio} | "
                          f"{f_ms:.1f} | {b_ms:.1f} | {b_ms / f_ms:.2f} | {base_ratio} |", flush=True)


def forward_backward_times(pos, faces, res: int, backend: str, repeat: int):
    """Median ms of rasterize with pos requiring grad, and of its backward alone, timed in turn."""
    p = pos.clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(1, res, res, 4, generator=gen)
    h = torch.randn(1, res, res, generator=gen)
    fwd, bwd = [], []
    for i in range(repeat + 1):  # the first round is untimed
        out = None  # (the previous outputs are freed outside the timed span)
        t0 = CLOCK()
        out = render_npu.rasterize(res, faces, p, viewport="opengl", backend=backend)
        t1 = CLOCK()
        torch.autograd.grad((out.rast, out.depth), p, (g, h))
        t2 = CLOCK()
        if i:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    return statistics.median(fwd) * 1e3, statistics.median(bwd) * 1e3

if __name__ == "__main__":
    main()

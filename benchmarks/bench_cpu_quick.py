"""Quick timing of the compiled CPU backend on UV spheres (orthographic camera).

    PYTHONPATH=. RENDER_NPU_EXT_DIR=build/cpu python benchmarks/bench_cpu_quick.py [--threads 1 2] [--runs 7] [--reuse]

Prints the minimum and median wall time of `runs` calls per (faces, resolution, threads):
end to end through ``cpu_backend.rasterize`` (fresh output tensors each call, whose first-touch
page faults are part of the cost), or with ``--reuse`` the compiled call alone writing into
preallocated outputs.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import render_npu


def uv_sphere(target_faces: int, radius: float = 0.9):
    """(pos [V, 4] float32 clip space, orthographic, w = 1; faces [F, 3] int32) with about target_faces faces."""
    n_lat = max(2, int(round(math.sqrt(target_faces / 4))))
    n_lon = max(3, int(round(target_faces / (2 * n_lat))))
    th = np.linspace(0, np.pi, n_lat + 1)
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(th, ph, indexing="ij")
    xyz = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3) * radius
    pos = np.concatenate([xyz, np.ones((xyz.shape[0], 1))], 1).astype(np.float32)
    i = np.arange(n_lat)[:, None]
    j = np.arange(n_lon)[None, :]
    a = i * n_lon + j
    b = i * n_lon + (j + 1) % n_lon
    c = (i + 1) * n_lon + j
    d = (i + 1) * n_lon + (j + 1) % n_lon
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return torch.from_numpy(pos), torch.from_numpy(faces.astype(np.int32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, nargs="+", default=[20_000, 1_000_000])
    ap.add_argument("--res", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--kernel", default="auto", help="auto, scalar or avx2 (--reuse only)")
    ap.add_argument("--reuse", action="store_true", help="time the compiled call with preallocated outputs")
    args = ap.parse_args()
    from render_npu import _ext, cpu_backend
    from render_npu._validate import rasterize_inputs

    print(f"kernel auto = {_ext.get().rasterize_auto_kernel()}")
    for nf in args.faces:
        pos, faces = uv_sphere(nf)
        for res in args.res:
            inp = rasterize_inputs(res, faces, pos, "align_corners", False)
            ext = _ext.get()
            rast = np.empty((1, res, res, 4), np.float32)
            depth = np.empty((1, res, res), np.float32)
            p, f = inp.pos.numpy(), inp.faces.numpy()

            def call(th):
                if args.reuse:
                    ext.rasterize(p, f, res, res, False, False, th, rast, depth, args.kernel)
                else:
                    cpu_backend.rasterize(inp, num_threads=th)

            for th in args.threads:
                call(th)  # warm-up
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    call(th)
                    times.append((time.perf_counter() - t0) * 1e3)
                print(f"faces {faces.shape[0]:>8d}  {res:>5d}^2  threads {th}:  min {min(times):7.2f} ms"
                      f"  median {float(np.median(times)):7.2f} ms")


if __name__ == "__main__":
    main()

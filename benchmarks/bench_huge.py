"""Huge scenes on the compiled CPU backend: time and peak memory (docs/robustness.md).

    python benchmarks/bench_huge.py [--cases 10M@4096 1M@16384] [--threads N] [--repeat 1]

The scenes nvdiffrast users report crashes with (its issues #232 and #197: millions of faces,
resolutions of 8k and more): a UV sphere with 10M faces at 4096x4096 and with 1M faces at
16384x16384, seen through an orthographic camera so it fills most of the image. Each row gives the
wall time of one ``render_npu.rasterize`` call (median over ``--repeat``), the growth of the
process' peak resident set during the call (VmHWM after a reset through /proc/self/clear_refs:
outputs + working memory, the scene itself excluded), the guard's estimate
(``render_npu.backends.cpu.estimate_memory``, which a call must fit in or it raises MemoryError
before allocating) and the outputs alone (B*H*W*20 bytes). A last row shows the guard refusing a
call that cannot fit in this machine's memory. The output is a markdown table.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time

import numpy as np
import torch


import render_npu  # noqa: E402
from render_npu.backends import cpu as cpu_backend  # noqa: E402
from render_npu.meshes import look_at, orthographic  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rasterize import cpu_name  # noqa: E402
from render_npu.testing import reset_peak_rss, status_kb  # noqa: E402

MB = 2 ** 20


def big_sphere(n_faces: int):
    """UV sphere with about ``n_faces`` triangles: render_npu.meshes.uv_sphere's mesh (faces in
    another order), built with numpy instead of a Python loop. Vertices float32 [V, 3], faces int32 [F, 3]."""
    n_lat = max(2, int(round(math.sqrt(n_faces / 4.0))))
    n_lon = 2 * n_lat
    theta = np.linspace(0.0, math.pi, n_lat + 1)[1:-1].astype(np.float32)
    phi = np.linspace(0.0, 2.0 * math.pi, n_lon, endpoint=False).astype(np.float32)
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack([st * np.cos(phi), np.broadcast_to(ct, (n_lat - 1, n_lon)), -st * np.sin(phi)], -1)
    verts = np.concatenate([[[0.0, 1.0, 0.0]], ring.reshape(-1, 3), [[0.0, -1.0, 0.0]]]).astype(np.float32)
    bottom = verts.shape[0] - 1
    j = np.arange(n_lon, dtype=np.int64)
    jn = (j + 1) % n_lon
    caps_top = np.stack([np.zeros(n_lon, np.int64), 1 + j, 1 + jn], 1)
    last = 1 + (n_lat - 2) * n_lon
    caps_bot = np.stack([np.full(n_lon, bottom), last + jn, last + j], 1)
    i = np.arange(n_lat - 2, dtype=np.int64)[:, None]
    a, b = 1 + i * n_lon + j, 1 + i * n_lon + jn
    c, d = a + n_lon, b + n_lon
    quads = np.stack([np.stack([a, c, d], -1), np.stack([a, d, b], -1)], 2).reshape(-1, 3)
    faces = np.concatenate([caps_top, caps_bot, quads]).astype(np.int32)
    return verts, faces


def clip_positions(verts: np.ndarray) -> np.ndarray:
    mvp = (orthographic(1.1, 0.1, 10.0) @ look_at((0.3, 0.4, 3.0))).astype(np.float32)
    out = np.empty((verts.shape[0], 4), np.float32)
    np.matmul(verts, mvp[:, :3].T, out=out)
    out += mvp[:, 3]
    return out


def run_case(n_faces: int, res: int, threads: int, repeat: int):
    t0 = time.perf_counter()
    verts, faces_np = big_sphere(n_faces)
    pos = torch.from_numpy(clip_positions(verts))
    faces = torch.from_numpy(faces_np)
    del verts
    scene_s = time.perf_counter() - t0
    F = faces.shape[0]
    times, peak, covered = [], None, None
    for _ in range(repeat):
        gc.collect()
        ok = reset_peak_rss()
        base = status_kb("VmRSS")
        t0 = time.perf_counter()
        out = render_npu.rasterize(res, faces, pos, viewport="opengl", backend="cpu", num_threads=threads)
        times.append(time.perf_counter() - t0)
        if ok:
            p = max(0, status_kb("VmHWM") - base) * 1024
            peak = p if peak is None else max(peak, p)
        if covered is None:
            covered = float((out.rast[0, ::16, ::16, 3] > 0).float().mean())
        del out  # (no view of it may survive: the next call's peak would include it)
    est = cpu_backend.estimate_memory(1, F, res, res, threads)
    return dict(faces=F, res=res, threads=threads, scene_s=scene_s, time_s=statistics.median(times), peak=peak,
                estimate=est, outputs=res * res * cpu_backend.OUTPUT_BYTES_PER_PIXEL, covered=covered,
                scene_mb=(pos.numel() * 4 + faces.numel() * 4) / MB)


def parse_case(text: str):
    faces, res = text.lower().split("@")
    mult = {"k": 1_000, "m": 1_000_000}.get(faces[-1], 1)
    return int(float(faces.rstrip("km")) * mult), int(res)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["10M@4096", "1M@16384"], help="FACES@RESOLUTION")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    ok, why = render_npu.backends()["cpu"]
    if not ok:
        sys.exit(f"the compiled cpu backend is unavailable: {why}")
    have = cpu_backend.available_memory()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, threads {args.threads}, "
          f"available memory {have / 2**30:.1f} GiB" if have else "available memory unknown")
    print()
    print("| faces | resolution | threads | time s | Mfaces/s | Mpix/s | peak extra MB | guard estimate MB "
          "| outputs MB | scene MB | covered |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in args.cases:
        n_faces, res = parse_case(case)
        r = run_case(n_faces, res, args.threads, args.repeat)
        peak = f"{r['peak'] / MB:.0f}" if r["peak"] is not None else "-"
        print(f"| {r['faces']:,} | {res}x{res} | {r['threads']} | {r['time_s']:.2f} | {r['faces'] / r['time_s'] / 1e6:.1f} "
              f"| {res * res / r['time_s'] / 1e6:.0f} | {peak} | {r['estimate'] / MB:.0f} | {r['outputs'] / MB:.0f} | {r['scene_mb']:.0f} "
              f"| {r['covered']:.0%} |", flush=True)
        gc.collect()
    # the guard: a call that cannot fit is refused before anything is allocated
    if have:
        B = int(have // (16384 * 16384 * cpu_backend.OUTPUT_BYTES_PER_PIXEL)) + 1
        pos = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]]).expand(B, 3, 4)
        faces = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        t0 = time.perf_counter()
        try:
            render_npu.rasterize(16384, faces, pos, backend="cpu", num_threads=args.threads)
            msg = "NOT REFUSED"
        except MemoryError as exc:
            msg = f"MemoryError after {1e3 * (time.perf_counter() - t0):.1f} ms: {exc}"
        print()
        print(f"B={B} at 16384x16384: {msg}")


if __name__ == "__main__":
    main()

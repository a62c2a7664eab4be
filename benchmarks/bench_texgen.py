"""Benchmark texgen's geometry stage: a 20k-face mesh, 2048^2 renders and atlas, six views.

Stages (seconds), each run with a fresh raster cache:
  render      rasterize the six views and the UV layout (one render_npu call each), texel
              positions/normals, and the normal + position maps a multi-view model conditions on
  bake        back-projection of the six images and the weighted merge
  inpaint     mesh-graph vertex inpaint (render_npu.mesh_processor) + image-space fill
  total       the sum
in three configurations: "threaded" (per-view thread pool of --workers threads, torch and the
backend on all cores), "views||" (the per-view thread pool, torch and the backend on one thread
each: no nested oversubscription) and "1 thread" (torch.set_num_threads(1), workers=1). The goal
on a 2-core machine is a total of at most 1.5 s with the compiled CPU backend.

    python benchmarks/bench_texgen.py                # defaults: 20480 faces, 2048^2
    python benchmarks/bench_texgen.py --size 1024 --backend torch --repeat 3
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch


import render_npu  # noqa: E402
from texgen import BakeSettings, Mesh, RasterCache, Renderer, ViewBatch, hunyuan_cameras, unwrap  # noqa: E402
from texgen.bake import bake  # noqa: E402
from texgen.camera import HUNYUAN_WEIGHTS  # noqa: E402
from texgen.demo import solid_color  # noqa: E402
from texgen.inpaint import inpaint_texture  # noqa: E402
from texgen.mesh import normalize  # noqa: E402


def bench_mesh(faces: int) -> Mesh:
    """A bumpy icosphere with 20 * 4**k >= faces/1.3 faces (20480 for the default)."""
    import trimesh

    k = 0
    while 20 * 4 ** (k + 1) <= faces * 1.3:
        k += 1
    ico = trimesh.creation.icosphere(subdivisions=k)
    v = np.asarray(ico.vertices)
    bump = 1 + 0.12 * np.sin(3 * v[:, 0] + 1) * np.cos(2 * v[:, 1]) + 0.08 * np.sin(4 * v[:, 2])
    return normalize(Mesh(v * bump[:, None] * [0.75, 1.0, 0.75], ico.faces, name="bench"))


def run(mesh: Mesh, images, size: int, tex_size: int, backend: str, device: str, workers: int, threads: int):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cams = hunyuan_cameras()
        r = Renderer(mesh, device, backend, cache=RasterCache())
        t = {}
        t0 = time.perf_counter()
        for cam in cams:
            r.rasterize(cam, size)
        t["rasterize views"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        r.texels(tex_size)
        t["uv raster + texels"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = ViewBatch(r, cams, size, workers=workers)  # what a multi-view model is given
        batch.normal_maps, batch.position_maps
        t["normal+position maps"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = bake(r, cams, images, tex_size, size, HUNYUAN_WEIGHTS, BakeSettings(workers=workers))
        t["bake"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        inpaint_texture(res.texture, res.baked, res.used, mesh)
        t["inpaint"] = time.perf_counter() - t0
        return t, res.coverage
    finally:
        torch.set_num_threads(old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=20000)
    ap.add_argument("--size", type=int, default=2048, help="render resolution")
    ap.add_argument("--texture-size", type=int, default=None, help="atlas resolution (default: --size)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration; the fastest is reported")
    args = ap.parse_args(argv)
    tex_size = args.texture_size or args.size
    warnings.simplefilter("ignore")

    t0 = time.perf_counter()
    mesh = unwrap(bench_mesh(args.faces), tex_size)
    prep = time.perf_counter() - t0
    from texgen.render import resolve_backend

    backend = resolve_backend(args.backend, args.device)
    # view images: the smooth colour field on each view's position map (not timed)
    r = Renderer(mesh, args.device, backend)
    images = []
    for cam in hunyuan_cameras():
        pm = r.position_map(cam, args.size)
        images.append(torch.where(r.mask(cam, args.size)[..., None], solid_color(pm), torch.ones(3)).cpu().numpy())
    del r
    print(f"mesh: {mesh.num_faces} faces, {mesh.num_vertices} vertices, {mesh.uv.shape[0]} UVs "
          f"(xatlas {prep:.1f} s, not counted); renders {args.size}^2, atlas {tex_size}^2, 6 views")
    print(f"backend {backend!r} on {args.device}; {os.cpu_count()} cores; render_npu backends: "
          + ", ".join(k for k, (ok, _) in render_npu.backends().items() if ok))

    cores = os.cpu_count() or 1
    configs = [("threaded", args.workers, cores), ("views||", args.workers, 1), ("1 thread", 1, 1)]
    rows = {}
    for name, workers, threads in configs:
        best = None
        for _ in range(args.repeat):
            t, cov = run(mesh, images, args.size, tex_size, backend, args.device, workers, threads)
            if best is None or sum(t.values()) < sum(best.values()):
                best = t
        rows[name] = best
    keys = list(next(iter(rows.values())).keys())
    groups = [("render", keys[:3]), ("bake (back-project + merge)", ["bake"]), ("inpaint", ["inpaint"])]
    print(f"\n{'stage (seconds)':<34}" + "".join(f"{n:>12}" for n in rows))
    for gname, members in groups:
        print(f"{gname:<34}" + "".join(f"{sum(rows[n][k] for k in members):>11.3f}s" for n in rows))
        if len(members) > 1:
            for k in members:
                print(f"  {k:<32}" + "".join(f"{rows[n][k]:>11.3f}s" for n in rows))
    print(f"{'total':<34}" + "".join(f"{sum(rows[n].values()):>11.3f}s" for n in rows))
    print(f"baked coverage {100 * cov:.1f}% of the used UV area; goal: total <= 1.5 s on 2 cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hunyuan3D-2 (hy3dgen 2.0.2) texture geometry path: plain on render_npu's fronts against
``render_npu.hunyuan3d.enable(accelerate=True)``, per stage, side by side in one run.

    pip install --no-deps hy3dgen==2.0.2
    python benchmarks/bench_hunyuan.py                 # 2048^2 renders and texture, ~20k and ~156k faces
    python benchmarks/bench_hunyuan.py --res 1024 --meshes 20k

The path is MeshRender's part of ``Hunyuan3DPaintPipeline.__call__`` (the diffusion models are
left out; position renders stand in for the generated views): 6 normal renders, 6 position
renders, ``back_project`` x6, ``fast_bake_texture``, ``uv_inpaint``; plus ``bake_texture`` (the
same six back-projections and merge in one call: accelerated, the views run in threads). Each
stage runs once, plain first, each mode on a fresh MeshRender (so the accelerated renders pay for
their rasters, and back_project reuses them, as in the pipeline). Meshes: texgen's demo shape
(bumpy icosphere, optionally with a ring), unwrapped by xatlas. A second table times
``render_npu.interpolate`` (compiled, and the torch path it replaced on CPU) against the
``rasterize`` call that made its input.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import render_npu
import render_npu.hunyuan3d as h3d
from render_npu import _api

ELEVS = [0, 0, 0, 0, 90, -90]
AZIMS = [0, 90, 180, 270, 0, 180]
WEIGHTS = [1, 0.1, 0.5, 0.1, 0.05, 0.05]
BAKE_EXP = 4  # Hunyuan3DTexGenConfig.bake_exp
MESHES = {"20k": (5, False), "156k": (6, True)}  # demo_mesh(subdivisions, ring): 20,480 and 155,648 faces


def build_mesh(name: str, texture_size: int):
    from texgen.demo import demo_mesh
    from texgen.mesh import unwrap

    sub, ring = MESHES[name]
    m = unwrap(demo_mesh(sub, ring=ring), texture_size)
    return tuple(np.array(a) for a in (m.pos, m.pos_idx, m.uv, m.uv_idx))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def geometry_path(mod, mesh, res: int):
    mr = mod.MeshRender(default_resolution=res, texture_size=res, device="cpu")
    pos, pos_idx, uv, uv_idx = (a.copy() for a in mesh)  # set_mesh edits the arrays it is given
    mr.set_mesh(pos, pos_idx, vtx_uv=uv, uv_idx=uv_idx)
    t = {}
    _, t["render_normal x6"] = timed(lambda: [mr.render_normal(e, a, use_abs_coor=True, return_type="pl")
                                              for e, a in zip(ELEVS, AZIMS)])
    views, t["render_position x6"] = timed(lambda: [mr.render_position(e, a, return_type="pl")
                                                    for e, a in zip(ELEVS, AZIMS)])
    bp, t["back_project x6"] = timed(lambda: [mr.back_project(v, e, a) for v, e, a in zip(views, ELEVS, AZIMS)])
    (tex, trust), t["fast_bake_texture"] = timed(lambda: mr.fast_bake_texture(
        [b[0] for b in bp], [w * b[1] ** BAKE_EXP for w, b in zip(WEIGHTS, bp)]))
    mask = (trust.squeeze(-1).cpu().numpy() * 255).astype(np.uint8)
    _, t["uv_inpaint"] = timed(lambda: mr.uv_inpaint(tex, mask))
    _, t["bake_texture (6 views + merge)"] = timed(lambda: mr.bake_texture(list(views), ELEVS, AZIMS, exp=BAKE_EXP,
                                                                           weights=WEIGHTS))
    return t


def interpolate_table(mesh, resolutions):
    pos = torch.from_numpy(mesh[0]).float()
    faces = torch.from_numpy(mesh[1])
    clip = torch.cat([pos / pos.abs().max() * 0.9, torch.ones(len(pos), 1)], 1)
    attr = torch.rand(len(pos), 3)
    rows = []
    for res in resolutions:
        def best(fn, n=5):
            return min(timed(fn)[1] for _ in range(n)) * 1e3

        rast = render_npu.rasterize(res, faces, clip).rast
        r = best(lambda: render_npu.rasterize(res, faces, clip))
        c = best(lambda: render_npu.interpolate(attr, rast, faces))
        tp = best(lambda: _api._interpolate_torch(attr, rast, rast[..., 3], faces.int(), "rast[..., 3]"), 2)
        rows.append((res, r, c, tp))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=2048, help="render and texture size (default 2048)")
    ap.add_argument("--meshes", nargs="+", default=list(MESHES), choices=list(MESHES))
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, {args.res}^2 renders and texture, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (a shared machine: read the ratios)")
    h3d.enable(accelerate=False)
    mod = h3d.import_mesh_render("2.0")
    results = {}
    meshes = {}
    for name in args.meshes:
        meshes[name] = mesh = build_mesh(name, args.res)
        h3d.enable(accelerate=False)
        plain = geometry_path(mod, mesh, args.res)
        h3d.enable(accelerate=True)
        fast = geometry_path(mod, mesh, args.res)
        results[name] = (len(mesh[1]), plain, fast)
        h3d.disable()
    print()
    print("| faces | stage | plain (fronts) s | accelerated s | speed-up |")
    print("|---:|---|---:|---:|---:|")
    for name, (nf, plain, fast) in results.items():
        for stage in plain:
            print(f"| {nf:,} | {stage} | {plain[stage]:.2f} | {fast[stage]:.2f} | {plain[stage] / fast[stage]:.1f}x |")
        keys = [k for k in plain if not k.startswith("bake_texture")]
        p, f = sum(plain[k] for k in keys), sum(fast[k] for k in keys)
        print(f"| {nf:,} | **geometry path** (the five stages above) | **{p:.2f}** | **{f:.2f}** | **{p / f:.1f}x** |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    big = max(meshes, key=lambda k: len(meshes[k][1]))
    print()
    print(f"interpolate, {len(meshes[big][1]):,} faces, C = 3 (best of 5; torch path best of 2):")
    print()
    print("| resolution | rasterize ms | interpolate (compiled) ms | interpolate (torch ops) ms |")
    print("|---:|---:|---:|---:|")
    for res, r, c, tp in interpolate_table(meshes[big], (1024, 2048)):
        print(f"| {res}² | {r:.1f} | {c:.1f} | {tp:.1f} |")


if __name__ == "__main__":
    main()

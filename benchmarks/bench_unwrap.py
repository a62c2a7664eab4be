"""Benchmark texgen.uv.unwrap: xatlas vs texgen's chart atlas, side by side, on four kinds of mesh.

Meshes (all normalised to radius 0.575):
  sphere   a smooth icosphere
  shell    a thin shell: a wavy plate 0.02 thick (top, bottom and rim)
  parts    many small disconnected parts (boxes and small spheres, random poses)
  noisy    a generated-looking mesh: a bumpy blob with per-vertex noise of ~0.3 edge lengths

Quality table (``--faces``, default ~20k faces, where xatlas finishes): per method the unwrap
time, atlas use (fraction of texel centres covered, UV triangles rasterized with render_npu at
``--size``), overlap texels (must be 0), Sander et al.'s area-weighted L2 / Linf stretch, seam
length (fraction of the total edge length cut), charts, and the round-trip PSNR of texgen's bake:
a ground truth (the same geometry with a 2x-resolution chart atlas and a smooth 3D colour field)
rendered from Hunyuan3D-2's six views, baked into the method's atlas by TexturePipeline, and
compared on eight held-out views (texgen.demo.held_out_psnr).

Timing table (``--large``, default 200k and 1M faces): unwrap time of each method; xatlas is
stopped after ``--xatlas-timeout`` seconds (it runs in a child process; "crashed": the child died).

    python benchmarks/bench_unwrap.py
    python benchmarks/bench_unwrap.py --faces 5000 --large 200000 --xatlas-timeout 20
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np


from texgen import Mesh, MeshError, TexturePipeline, TransferSource, normalize  # noqa: E402
from texgen.demo import ground_truth, held_out_cameras, held_out_psnr  # noqa: E402
from texgen.uv import atlas_stats, choose_method, unwrap  # noqa: E402


def _normalized(pos, faces, name):
    m = normalize(Mesh(np.asarray(pos, np.float32), np.asarray(faces, np.int32), name=name))
    return Mesh(m.pos, m.pos_idx, name=name)  # its file frame is the normalised one


def _ico(faces):
    import trimesh

    k = max(0, round(math.log(max(faces, 20) / 20, 4)))
    return trimesh.creation.icosphere(subdivisions=k)


def sphere(faces):
    ico = _ico(faces)
    return _normalized(ico.vertices, ico.faces, "sphere")


def noisy(faces, seed=0):
    ico = _ico(faces)
    v = np.asarray(ico.vertices)
    bump = 1 + 0.15 * np.sin(4 * v[:, 0] + 1) * np.cos(3 * v[:, 1]) + 0.1 * np.sin(6 * v[:, 2] + 2 * v[:, 0])
    edge = float(np.linalg.norm(v[ico.edges_unique[:, 0]] - v[ico.edges_unique[:, 1]], axis=1).mean())
    noise = 0.3 * edge * np.random.default_rng(seed).standard_normal(len(v))
    return _normalized(v * (bump + noise)[:, None], ico.faces, "noisy")


def shell(faces, thickness=0.02):
    """A wavy square plate with thickness: top and bottom grids and the rim."""
    n = max(2, int(math.sqrt(faces / 4)))
    g = np.linspace(-1, 1, n + 1)
    x, z = np.meshgrid(g, g, indexing="ij")
    y = 0.25 * np.sin(2.5 * x) * np.cos(2 * z) + 0.1 * x * z
    top = np.stack([x, y, z], -1).reshape(-1, 3)
    bottom = top - [0, thickness, 0]
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    tf = np.concatenate([np.stack([a, d, c], 1), np.stack([a, c, b], 1)])  # +y facing
    off = len(top)
    bf = tf[:, ::-1] + off
    ring = np.concatenate([idx[:, 0], idx[-1, 1:], idx[::-1, -1][1:], idx[0, ::-1][1:-1]])
    r2 = np.roll(ring, -1)
    rim = np.concatenate([np.stack([ring, r2, r2 + off], 1), np.stack([ring, r2 + off, ring + off], 1)])
    return _normalized(np.concatenate([top, bottom]), np.concatenate([tf, bf, rim]), "shell")


def parts(faces, seed=1):
    import trimesh

    rng = np.random.default_rng(seed)
    out, total = [], 0
    i = 0
    while total < faces:
        p = trimesh.creation.box(extents=rng.uniform(0.05, 0.2, 3)) if i % 3 == 0 else \
            trimesh.creation.icosphere(subdivisions=2, radius=rng.uniform(0.03, 0.1))
        p.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        p.apply_translation(rng.uniform(-1, 1, 3))
        out.append(p)
        total += len(p.faces)
        i += 1
    tm = trimesh.util.concatenate(out)
    return _normalized(tm.vertices, tm.faces, "parts")


KINDS = {"sphere": sphere, "shell": shell, "parts": parts, "noisy": noisy}


def timed_unwrap(mesh, method, size, timeout=None):
    """(mesh or None, seconds, why None: "stopped" after ``timeout`` or "crashed")."""
    t0 = time.perf_counter()
    try:
        r = unwrap(mesh, size, method=method, timeout=timeout)
    except TimeoutError:
        return None, time.perf_counter() - t0, "stopped"
    except MeshError as exc:  # xatlas's child process died (it segfaults on some large meshes)
        print(f"  {mesh.name} {method}: {exc}", file=sys.stderr)
        return None, time.perf_counter() - t0, "crashed"
    return r, time.perf_counter() - t0, ""


def round_trip_psnr(mesh: Mesh, truth: Mesh, size: int, render: int) -> float:
    pipe = TexturePipeline(render_size=render, texture_size=size, unwrap="never", progress=False)
    result = pipe(mesh, TransferSource(truth))
    m = held_out_psnr(result.mesh, normalize(truth, like=result.mesh), held_out_cameras(), render,
                      cache=pipe.cache)
    return m["mean"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=20000, help="quality table mesh size (default 20000)")
    ap.add_argument("--size", type=int, default=1024, help="atlas size (default 1024)")
    ap.add_argument("--render", type=int, default=512, help="view render size for the PSNR (default 512)")
    ap.add_argument("--large", type=int, nargs="*", default=[200000, 1000000], help="timing table sizes")
    ap.add_argument("--xatlas-timeout", type=float, default=60.0, help="seconds before xatlas is stopped")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--no-psnr", action="store_true")
    args = ap.parse_args(argv)

    print(f"## quality: ~{args.faces} faces, {args.size}^2 atlas, PSNR at {args.render}^2 on 8 held-out views\n")
    print("| mesh | faces | method | time s | atlas use | overlap texels | L2 stretch | Linf stretch | seam | charts "
          "| PSNR dB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in args.kinds:
        mesh = KINDS[kind](args.faces)
        truth = None
        if not args.no_psnr:  # one ground truth per mesh, its own (finer) atlas
            truth = ground_truth(unwrap(mesh, 2 * args.size, method="charts"), 2 * args.size)
        auto = choose_method(mesh)
        for method in ("xatlas", "charts"):
            r, dt, why = timed_unwrap(mesh, method, args.size, args.xatlas_timeout)
            label = f"{method} (auto)" if method == auto else method  # what unwrap's default gives
            if r is None:
                print(f"| {kind} | {mesh.num_faces} | {label} | {why} after {dt:.0f} | | | | | | | |", flush=True)
                continue
            s = atlas_stats(r, args.size)
            ps = "" if truth is None else f"{round_trip_psnr(r, truth, args.size, args.render):.2f}"
            print(f"| {kind} | {mesh.num_faces} | {label} | {dt:.2f} | {s['use']:.3f} | {s['overlap']} | "
                  f"{s['l2']:.3f} | {s['linf']:.2f} | {s['seam']:.3f} | {s['charts']} | {ps} |", flush=True)

    if args.large:
        print(f"\n## time (s) on large meshes, {args.size * 2}^2 atlas; xatlas stopped after "
              f"{args.xatlas_timeout:g} s\n")
        print("| mesh | faces | auto picks | xatlas | charts | charts: atlas use | overlap texels | L2 stretch | charts |")
        print("|---|---|---|---|---|---|---|---|---|")
        for faces in args.large:
            for kind in args.kinds:
                mesh = KINDS[kind](faces)
                rx, tx, why = timed_unwrap(mesh, "xatlas", args.size * 2, args.xatlas_timeout)
                rc, tc, _ = timed_unwrap(mesh, "charts", args.size * 2)
                s = atlas_stats(rc, args.size * 2)
                xs = f"{why} after {tx:.0f}" if rx is None else f"{tx:.1f}"
                print(f"| {kind} | {mesh.num_faces} | {choose_method(mesh)} | {xs} | {tc:.1f} | {s['use']:.3f} | {s['overlap']} | "
                      f"{s['l2']:.3f} | {s['charts']} |", flush=True)


if __name__ == "__main__":
    main()

"""Precision of the output barycentrics and depth: every backend against an exact float64 solve
from the unsnapped clip coordinates (tests/agreement.py ``exact_resolve``), at covered pixels whose
centre is inside the exact triangle. Prints the 99.9th percentile and the maximum per scene.

    PYTHONPATH=. RENDER_NPU_EXT_DIR=build/dev python benchmarks/bench_precision.py [--backends ...]

Scenes: a perspective UV sphere (20k faces, 1024^2), small random triangles anywhere on screen
(0.5 px at 2048^2, 3 px at 512^2; w in [0.3, 4]) and random triangles with vertices behind the eye
(clipped, 512^2). The reference is run on the smaller scenes only (it is slow).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import agreement  # noqa: E402
import render_npu  # noqa: E402
from render_npu.meshes import look_at, perspective, sphere_with_faces, to_clip  # noqa: E402
from scenes import random_scene  # noqa: E402


def scenes():
    verts, faces = sphere_with_faces(20000)
    mvp = perspective(45.0, 0.1, 10.0) @ look_at((0.3, 0.4, 2.6))
    yield "sphere 20k, perspective", to_clip(verts, mvp)[None].astype(np.float32), faces.astype(np.int32), 1024
    for name, seed, res, n, size, clipped in (("0.5 px triangles", 1, 2048, 3000, 0.5, False),
                                              ("3 px triangles", 2, 512, 2000, 3.0, False),
                                              ("clipped (w <= 0 vertices)", 3, 512, 60, 80.0, True)):
        pos, f = random_scene(seed, res, res, n, size, clipped)
        yield name, pos, f, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["reference", "cpu", "torch", "ascendc_host"])
    args = ap.parse_args(argv)
    avail = render_npu.backends()
    print("| scene | backend | pixels | bary 99.9% | bary max | depth 99.9% | depth max |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, pos, faces, res in scenes():
        for be in args.backends:
            if not avail[be][0] or (be == "reference" and res > 512):
                continue
            out = render_npu.rasterize(res, torch.from_numpy(faces), torch.from_numpy(pos), viewport="opengl",
                                       backend=be)
            eb, ed = agreement.precision_errors(out, pos, faces, res, res, "opengl")
            print(f"| {name}, {res}² | {be} | {eb.size:,} | {np.quantile(eb, 0.999):.1e} | {eb.max():.1e} | "
                  f"{np.quantile(ed, 0.999):.1e} | {ed.max():.1e} |", flush=True)


if __name__ == "__main__":
    main()

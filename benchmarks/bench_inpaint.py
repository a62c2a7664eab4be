"""Benchmark: meshVerticeInpaint, compiled C++ vs the numpy fallback (render_npu.mesh_processor).

Meshes: a bumpy, open-at-the-poles UV sphere of ~20k / 200k / 1M faces, cut into charts of
16 x 16 quads, each chart packed into its own atlas cell with a gutter (vertices are split at
chart seams, so pos_idx != uv_idx), baked into a 2048^2 RGB texture. The mask covers the chart
texels minus a few "occluded" caps and a light speckle, ~80% of the used texels, as after a
6-view bake. Prints a markdown table (seconds, best of --repeat runs).

    python benchmarks/bench_inpaint.py [--sizes 20000 200000 1000000] [--res 2048] [--fill-res 2048]

A second table times texgen's image-space fill, ``texgen.inpaint.harmonic_fill``: the torch
fallback against the compiled kernel, on the 20k-face atlas's texture and mask (what
``MeshRender.uv_inpaint`` fills after the vertex inpaint: the used area grown by max(2, W / 256)
texels, and the whole atlas), each with one and with all intra-op / kernel threads, in one run.
``--sizes`` with no value prints only that table.

The Python fallback at large sizes is timed on a run capped at --py-max-passes passes and
extrapolated linearly in the number of passes (the table says so); the per-pass cost is
measured, the one-time setup is measured, only the number of passes is taken from the C++ run.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

import torch

from render_npu import inpaint
from texgen.inpaint import _grow, harmonic_fill


def sphere_atlas_mesh(faces_target: int, res: int = 2048, chart: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = max(4, int(round(math.sqrt(faces_target / 2))))
    n_lat, n_lon = n, n  # quads; rows of vertices 0..n_lat, columns wrap around
    th = np.pi * (np.arange(n_lat + 1) + 1) / (n_lat + 2)
    ph = 2 * np.pi * np.arange(n_lon) / n_lon
    T, P = np.meshgrid(th, ph, indexing="ij")
    d = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1)
    r = 1 + 0.05 * np.sin(7 * T) * np.cos(5 * P) + 0.01 * rng.standard_normal(T.shape)
    vtx_pos = (d * r[..., None]).reshape(-1, 3).astype(np.float32)

    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)
    vid = lambda a, b: a * n_lon + (b % n_lon)  # noqa: E731
    v00, v01, v10, v11 = vid(i, j), vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)
    pos_idx = np.stack([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)], 1).reshape(-1, 3)

    # charts of chart x chart quads, each with its own (chart+1)^2 UV vertices, one atlas cell each
    nci, ncj = -(-n_lat // chart), -(-n_lon // chart)
    m = int(math.ceil(math.sqrt(nci * ncj)))
    cell = 1.0 / m
    gutter = 2.0 / res
    k1 = chart + 1
    cid = (np.arange(nci)[:, None] * ncj + np.arange(ncj)[None, :]).reshape(-1)
    cu, cv = (cid % m) * cell, (cid // m) * cell
    li, lj = np.meshgrid(np.arange(k1), np.arange(k1), indexing="ij")
    span = cell - 2 * gutter
    u = cu[:, None] + gutter + span * lj.reshape(-1)[None, :] / chart
    v = cv[:, None] + gutter + span * li.reshape(-1)[None, :] / chart
    vtx_uv = np.stack([u, v], -1).reshape(-1, 2).astype(np.float32)

    ch = (i // chart) * ncj + (j // chart)
    uid = lambda a, b: ch * k1 * k1 + (a - (i // chart) * chart) * k1 + (b - (j // chart) * chart)  # noqa: E731
    u00, u01, u10, u11 = uid(i, j), uid(i, j + 1), uid(i + 1, j), uid(i + 1, j + 1)
    uv_idx = np.stack([np.stack([u00, u10, u11], 1), np.stack([u00, u11, u01], 1)], 1).reshape(-1, 3)

    # texture + mask: texel -> (chart, local) -> sphere direction; unseen in a few caps + speckle
    yy, xx = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    tu, tv = xx / (res - 1), 1 - yy / (res - 1)
    cx, cy = np.minimum((tu / cell).astype(np.int64), m - 1), np.minimum((tv / cell).astype(np.int64), m - 1)
    c = cy * m + cx
    fu = (tu - cx * cell - gutter) / span * chart
    fv = (tv - cy * cell - gutter) / span * chart
    ti = (c // ncj) * chart + fv
    tj = (c % ncj) * chart + fu
    used = (c < nci * ncj) & (fu >= 0) & (fu <= chart) & (fv >= 0) & (fv <= chart) & (ti <= n_lat) & (tj <= n_lon)
    tth = np.pi * (ti + 1) / (n_lat + 2)
    tph = 2 * np.pi * tj / n_lon
    dirs = np.stack([np.sin(tth) * np.cos(tph), np.sin(tth) * np.sin(tph), np.cos(tth)], -1)
    seen = rng.random(used.shape) > 0.03
    for _ in range(12):
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        seen &= dirs @ axis < math.cos(rng.uniform(0.15, 0.35))
    mask = np.where(used & seen, 255, 0).astype(np.uint8)
    texture = (0.5 + 0.5 * dirs).astype(np.float32) * used[..., None]
    return dict(texture=texture, mask=mask, vtx_pos=vtx_pos, vtx_uv=vtx_uv,
                pos_idx=pos_idx.astype(np.int32), uv_idx=uv_idx.astype(np.int32)), float(mask[used].mean() / 255)


def best_of(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[20000, 200000, 1000000])
    ap.add_argument("--res", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--py-max-passes", type=int, default=3, help="cap for the Python run at >= 1M faces")
    ap.add_argument("--py-full-below", type=int, default=500000, help="run Python uncapped below this face count")
    ap.add_argument("--fill-res", type=int, nargs="*", default=[2048], help="harmonic_fill table resolutions")
    args = ap.parse_args()
    if inpaint._compiled() is None:
        raise SystemExit("compiled module missing: build it (see README) or set RENDER_NPU_EXT_DIR")

    rows = []
    for size in args.sizes:
        mesh, coverage = sphere_atlas_mesh(size, args.res)
        F = mesh["pos_idx"].shape[0]
        t_cpp, (tex_c, msk_c, st) = best_of(
            lambda: inpaint.mesh_vertex_inpaint(**mesh, backend="cpp", return_stats=True), args.repeat)
        t_fwd, _ = best_of(lambda: inpaint.mesh_vertex_inpaint(**mesh, method="forward", backend="cpp"), args.repeat)
        inp = inpaint._validate(**mesh)
        if F < args.py_full_below:
            t_py, (tex_p, msk_p, st_p) = best_of(lambda: inpaint._run_python(inp, "smooth"), 1)
            assert np.array_equal(tex_p, tex_c) and np.array_equal(msk_p, msk_c), "python != cpp"
            py_note = ""
        else:
            # setup (everything but the passes) + per-pass cost, extrapolated to the full pass count
            t0, _ = best_of(lambda: inpaint._run_python(inp, "smooth", max_passes=0), 1)
            cap = min(args.py_max_passes, st.iterations)
            t1, _ = best_of(lambda: inpaint._run_python(inp, "smooth", max_passes=cap), 1)
            t_py = t0 + (t1 - t0) * st.iterations / cap
            py_note = f" (est.: {cap} of {st.iterations} passes timed)"
        rows.append((F, mesh["vtx_pos"].shape[0], coverage, st, t_cpp, t_fwd, t_py, py_note))
        print(f"# {F} faces done: cpp {t_cpp:.3f}s, python {t_py:.2f}s{py_note}", flush=True)

    print(f"\nTexture {args.res}x{args.res}x3; wall seconds of the whole call (validation, copies, write-back "
          f"included), best of {args.repeat} (Python: one run); {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}. Speedup = Python smooth / C++ smooth.\n")
    if rows:
        print("| faces | vertices | mask coverage | list entries | passes | C++ smooth | C++ forward | Python smooth | speedup |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for F, V, cov, st, t_cpp, t_fwd, t_py, note in rows:
        print(f"| {F:,} | {V:,} | {cov:.0%} | {st.list_entries:,} | {st.iterations} | "
              f"{t_cpp:.3f} | {t_fwd:.3f} | {t_py:.2f}{note} | {t_py / t_cpp:.0f}x |")
    if args.fill_res:
        fill_table(args.fill_res, args.repeat)


def fill_table(resolutions, repeat):
    """texgen.inpaint.harmonic_fill: torch fallback vs compiled kernel, milliseconds, best of `repeat`."""
    threads = torch.get_num_threads()
    rows = []
    for res in resolutions:
        mesh, _ = sphere_atlas_mesh(20000, res)
        known = mesh["mask"] > 0
        used = mesh["texture"].any(-1)
        tex = mesh["texture"] * known[..., None]
        for name, domain in (("used area + margin", _grow(used, max(2, res // 256)) | known), ("whole atlas", None)):
            holes = int(np.count_nonzero(~known if domain is None else domain & ~known))

            def run(backend, n):
                best, out = float("inf"), None
                for _ in range(repeat):
                    buf = tex.copy()  # inplace: what texgen and MeshRender.uv_inpaint call
                    torch.set_num_threads(n)
                    try:
                        t0 = time.perf_counter()
                        out = harmonic_fill(buf, known, domain, inplace=True, backend=backend, num_threads=n)
                        best = min(best, time.perf_counter() - t0)
                    finally:
                        torch.set_num_threads(threads)
                return best * 1e3, out

            (t1, ref), (tn, ref_n) = run("torch", 1), run("torch", threads)
            (c1, out), (cn, out_n) = run("cpp", 1), run("cpp", threads)
            assert np.array_equal(out, out_n), "compiled harmonic_fill changed with its thread count"
            rows.append((res, name, holes, t1, tn, c1, cn, float(np.abs(out - ref).max()), float(np.abs(out - ref_n).max())))
            print(f"# harmonic_fill {res}^2 {name} done", flush=True)
    print(f"\ntexgen.inpaint.harmonic_fill (iters=4), in place on the 20k-face atlas's texture and mask; wall "
          f"milliseconds, best of {repeat}; torch with 1 and {threads} intra-op threads, the compiled kernel with "
          f"num_threads 1 and {threads}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}. Speedup = "
          f"faster torch / faster compiled. Max abs diff: compiled against each torch run (0: the same bits; "
          f"torch's own bits depend on its thread count).\n")
    print(f"| texture | domain | texels filled | torch, 1 thread | torch, {threads} threads | compiled, 1 thread | "
          f"compiled, {threads} threads | speedup | max abs diff (torch 1 / {threads} threads) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for res, name, holes, t1, tn, c1, cn, d1, dn in rows:
        print(f"| {res}^2 | {name} | {holes:,} | {t1:.0f} | {tn:.0f} | {c1:.1f} | {cn:.1f} | "
              f"{min(t1, tn) / min(c1, cn):.1f}x | {d1:.1e} / {dn:.1e} |")


if __name__ == "__main__":
    main()

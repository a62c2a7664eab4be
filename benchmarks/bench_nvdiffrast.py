"""nvdiffrast front benchmark: the ops a TRELLIS-style render loop calls, side by side in one run.

    python benchmarks/bench_nvdiffrast.py [--faces 200000] [--res 1024] [--tex 2048] [--repeat 3]

Scene: a UV sphere (render_npu.meshes) under an orthographic camera, its UVs = normalised (x, y)
of the vertex; texture lookups use those UVs with their rast_db-derived derivatives. Each row is
the median wall time of ``repeat`` calls after one warm-up; "backward" rows time
``out.backward(grad)`` for a fresh forward graph (the forward is not included). The ratio column
compares each op to the row it is measured against (the goals in issue 14). Output: markdown.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import render_npu.nvdiffrast as dr  # noqa: E402
from bench_rasterize import cpu_name, scene  # noqa: E402


def timed(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_backward(make, repeat: int) -> float:
    """make() -> (output, inputs requiring grad); times only the backward pass."""
    times = []
    for i in range(repeat + 1):
        out, _ = make()
        g = torch.ones_like(out)
        t0 = time.perf_counter()
        out.backward(g)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=200_000)
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--tex", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    R = args.res
    pos_np, tri_np = scene(args.faces, torch.device("cpu"))
    pos = torch.from_numpy(pos_np)[None].contiguous()
    tri = torch.from_numpy(tri_np)
    uv = (pos[0, :, :2] * 0.5 + 0.5).contiguous()
    g = torch.Generator().manual_seed(0)
    tex = torch.rand(1, args.tex, args.tex, 3, generator=g)
    color_attr = torch.rand(pos.shape[1], 3, generator=g)

    rast, rast_db = dr.rasterize(None, pos, tri, (R, R))
    texc, texd = dr.interpolate(uv, rast, tri, rast_db=rast_db, diff_attrs="all")
    color, _ = dr.interpolate(color_attr, rast, tri)
    mip = dr.texture_construct_mip(tex)
    # full-screen lookups for the texture goal: 1024² UVs over the texture, footprint 2 / R in uv
    # (4 texels of the 2048² texture: lod 2 exactly, so the kernel reads the one level of weight 1);
    # a second row with footprint 1.5 / R (lod 1.58) blends two levels, the general trilinear cost
    ys, xs = torch.meshgrid(torch.arange(R, dtype=torch.float32), torch.arange(R, dtype=torch.float32),
                            indexing="ij")
    uv_full = torch.stack([(xs + 0.5) / R, (ys + 0.5) / R], -1)[None]
    da_full = torch.tensor([2.0 / R, 0, 0, 2.0 / R]).expand(1, R, R, 4).contiguous()
    da_blend = torch.tensor([1.5 / R, 0, 0, 1.5 / R]).expand(1, R, R, 4).contiguous()
    hash_ = dr.antialias_construct_topology_hash(tri)

    rows = []

    def row(name, sec, vs=None, goal=None):
        rows.append((name, sec, vs, goal))

    t_rast = timed(lambda: dr.rasterize(None, pos, tri, (R, R)), args.repeat)
    row("rasterize (rast + rast_db)", t_rast)
    t_aa = timed(lambda: dr.antialias(color, rast, pos, tri, hash_), args.repeat)
    row("antialias", t_aa, ("rasterize", t_rast), "<= 2x")
    t_int = timed(lambda: dr.interpolate(uv, rast, tri), args.repeat)
    row("interpolate", t_int)
    t_intd = timed(lambda: dr.interpolate(uv, rast, tri, rast_db=rast_db, diff_attrs="all"), args.repeat)
    row("interpolate(diff_attrs='all')", t_intd, ("interpolate", t_int), "<= 3x")
    t_tex = timed(lambda: dr.texture(tex, uv_full, da_full, mip=mip, filter_mode="linear-mipmap-linear"),
                  args.repeat)
    row(f"texture linear-mipmap-linear, {R}² lookups, {args.tex}² tex", t_tex, None, "<= 30 ms compiled")
    t_texb = timed(lambda: dr.texture(tex, uv_full, da_blend, mip=mip, filter_mode="linear-mipmap-linear"),
                   args.repeat)
    row("the same at lod 1.58 (two levels blended)", t_texb)
    t_texs = timed(lambda: dr.texture(tex, texc, texd, mip=mip, filter_mode="linear-mipmap-linear"), args.repeat)
    row("texture on the render's UVs", t_texs)

    def tex_fwd():
        t = tex.clone().requires_grad_()
        u = uv_full.clone().requires_grad_()
        return dr.texture(t, u, da_full, filter_mode="linear-mipmap-linear"), (t, u)

    t_texf = timed(lambda: tex_fwd(), args.repeat)
    row("texture forward (tex, uv require grad; mip built)", t_texf)
    row("texture backward", timed_backward(tex_fwd, args.repeat), ("texture forward", t_texf), "<= 3x")

    def aa_fwd():
        c = color.clone().requires_grad_()
        p = pos.clone().requires_grad_()
        return dr.antialias(c, rast, p, tri, hash_), (c, p)

    t_aaf = timed(lambda: aa_fwd(), args.repeat)
    row("antialias forward (color, pos require grad)", t_aaf)
    row("antialias backward", timed_backward(aa_fwd, args.repeat), ("antialias forward", t_aaf), "<= 3x")

    def int_fwd():
        a = uv.clone().requires_grad_()
        d = rast_db.clone().requires_grad_()
        out, out_db = dr.interpolate(a, rast, tri, rast_db=d, diff_attrs="all")
        return torch.cat([out, out_db], -1), (a, d)

    t_intf = timed(lambda: int_fwd(), args.repeat)
    row("interpolate+db forward (attr, rast_db require grad)", t_intf)
    row("interpolate+db backward", timed_backward(int_fwd, args.repeat), ("interpolate+db forward", t_intf), "<= 3x")

    print(f"# nvdiffrast front, {args.faces} faces, {R}², CPU: {cpu_name()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (texture forward compiled on CPU; the rest torch ops)\n")
    print("| op | median ms | vs | ratio | goal |")
    print("|---|---:|---|---:|---|")
    for name, sec, vs, goal in rows:
        ratio = f"{sec / vs[1]:.2f}x" if vs else ""
        print(f"| {name} | {sec * 1e3:.1f} | {vs[0] if vs else ''} | {ratio} | {goal or ''} |")


if __name__ == "__main__":
    main()

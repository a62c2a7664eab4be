"""Fit a UV texture to 8 rendered views of a textured mesh, TRELLIS-style, through render_npu.nvdiffrast.

The loop is the one TRELLIS's texture bake runs on nvdiffrast (rasterize with rast_db, interpolate
the UVs with their pixel derivatives, a mipmapped texture lookup, antialias, L1 loss, Adam), here
on CPU. The mesh is a UV sphere with a procedural ground-truth texture; the fitted texture starts
grey. Prints the loss and the PSNR of the renders against the targets.

    python examples/fit_texture.py [--steps 40] [--res 128] [--tex 128]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import render_npu.nvdiffrast as dr
from render_npu.meshes import look_at, perspective


def uv_sphere(n_lat: int = 24, n_lon: int = 48):
    """Vertices [V, 3], UVs [V, 2] (u = longitude, v = latitude, a seam column duplicated), faces [F, 3]."""
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon + 1)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    xyz = np.stack([np.sin(la) * np.cos(lo), np.cos(la), np.sin(la) * np.sin(lo)], -1).reshape(-1, 3)
    uv = np.stack([lo / (2 * np.pi), la / np.pi], -1).reshape(-1, 2)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return (torch.tensor(xyz, dtype=torch.float32), torch.tensor(uv, dtype=torch.float32),
            torch.tensor(faces, dtype=torch.int32))


def ground_truth_texture(size: int) -> torch.Tensor:
    """[1, size, size, 3] in [0, 1]: a checkerboard with smooth colour bands."""
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    v, u = torch.meshgrid(t, t, indexing="ij")
    check = ((torch.floor(u * 8) + torch.floor(v * 4)) % 2)
    rgb = torch.stack([0.5 + 0.5 * torch.sin(6.28 * u), 0.5 + 0.5 * torch.cos(6.28 * v), 0.3 + 0.5 * check], -1)
    return (0.6 * rgb + 0.4 * check[..., None]).clamp(0, 1)[None]


def view_projections(n_views: int = 8, dist: float = 3.0, fovy: float = 45.0) -> torch.Tensor:
    """[n, 4, 4] OpenGL projection @ view matrices of cameras around the sphere, alternating elevation."""
    proj = perspective(fovy, 0.5, 10.0)
    mats = []
    for i in range(n_views):
        az, el = 2 * math.pi * i / n_views, (0.4 if i % 2 else -0.3)
        eye = dist * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        mats.append(proj @ look_at(eye))
    return torch.tensor(np.stack(mats), dtype=torch.float32)


def render(glctx, tex, pos_clip, tri, uv, res):
    """TRELLIS's bake render: (rast, rast_db) -> UVs and their derivatives -> mipmapped lookup -> antialias."""
    rast, rast_db = dr.rasterize(glctx, pos_clip, tri, resolution=(res, res))
    texc, texd = dr.interpolate(uv, rast, tri, rast_db=rast_db, diff_attrs="all")
    color = dr.texture(tex, texc, texd, filter_mode="linear-mipmap-linear", boundary_mode="wrap")
    color = color * (rast[..., 3:] > 0)
    return dr.antialias(color, rast, pos_clip, tri), rast


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def fit(steps: int = 40, res: int = 128, tex_size: int = 128, lr: float = 0.05, verbose: bool = True):
    """Run the fit; returns (losses per step, PSNR of the final renders against the targets)."""
    glctx = dr.RasterizeCudaContext()
    xyz, uv, tri = uv_sphere()
    mvp = view_projections()
    pos_h = torch.cat([xyz, torch.ones(xyz.shape[0], 1)], 1)
    pos_clip = torch.einsum("bij,vj->bvi", mvp, pos_h).contiguous()
    with torch.no_grad():
        target, _ = render(glctx, ground_truth_texture(tex_size), pos_clip, tri, uv, res)
    tex = torch.full((1, tex_size, tex_size, 3), 0.5, requires_grad=True)
    opt = torch.optim.Adam([tex], lr=lr)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        img, _ = render(glctx, tex, pos_clip, tri, uv, res)
        loss = (img - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            tex.clamp_(0, 1)
        losses.append(loss.item())
        if verbose and (step % 25 == 0 or step == steps - 1):
            print(f"step {step:4d}  L1 {loss.item():.4f}  {time.perf_counter() - t0:6.1f} s")
    with torch.no_grad():
        img, _ = render(glctx, tex, pos_clip, tri, uv, res)
    return losses, psnr(img, target)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--tex", type=int, default=128)
    args = ap.parse_args()
    t0 = time.perf_counter()
    losses, p = fit(args.steps, args.res, args.tex)
    print(f"PSNR {p:.2f} dB after {args.steps} steps ({time.perf_counter() - t0:.1f} s, L1 {losses[0]:.4f} -> "
          f"{losses[-1]:.4f})")


if __name__ == "__main__":
    main()

"""The embedded demo: a procedural mesh with a procedural ground-truth texture, textured again from
six renders, checked on held-out views.

1. :func:`demo_mesh`: a bumpy blob with a tilted ring around it (two components; the ring
   occludes parts of the body, so some texels are seen by no view and must be inpainted).
2. :func:`ground_truth`: the mesh with its own atlas (:func:`texgen.uv.unwrap`) and a texture that samples a smooth
   3D colour field (:func:`solid_color`) at every texel's surface point.
3. The pipeline textures a *fresh* copy of the geometry (its own atlas, another texture size)
   from the ground truth's renders from Hunyuan3D-2's six views (:class:`TransferSource`).
4. :func:`held_out_psnr`: both meshes are rendered from views between the six (elevation +-30
   degrees, azimuth 45 + 90 k) and compared on covered pixels.
"""
from __future__ import annotations

import math
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .camera import Camera
from .images import encode_normals, save_image, save_pil
from .inpaint import push_pull
from .mesh import Mesh, normalize, unwrap
from .render import Renderer

__all__ = ["demo_mesh", "solid_color", "ground_truth", "held_out_cameras", "held_out_psnr", "psnr",
           "contact_sheet", "run_demo"]


def demo_mesh(subdivisions: int = 4, ring: bool = True) -> Mesh:
    """A deformed icosphere (20 * 4**subdivisions faces) with an optional tilted torus around it,
    with coordinates already normalised (radius 0.575) and ``normalization`` None."""
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    v = np.asarray(ico.vertices, np.float64)
    bump = 1.0 + 0.12 * np.sin(3.0 * v[:, 0] + 1.0) * np.cos(2.0 * v[:, 1]) + 0.08 * np.sin(4.0 * v[:, 2])
    body = v * bump[:, None] * np.array([0.75, 1.0, 0.75])
    parts = [(body, np.asarray(ico.faces))]
    if ring:
        tor = trimesh.creation.torus(major_radius=1.05, minor_radius=0.14, major_sections=12 * 2 ** subdivisions // 2,
                                     minor_sections=max(8, 3 * 2 ** subdivisions // 2))
        tv = np.asarray(tor.vertices, np.float64)
        c, s = math.cos(math.radians(70)), math.sin(math.radians(70))  # ring plane tilted 20 deg from horizontal
        rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        tv = tv @ rx.T
        parts.append((tv, np.asarray(tor.faces) + len(body)))
    pos = np.concatenate([p for p, _ in parts]).astype(np.float32)
    faces = np.concatenate([f for _, f in parts]).astype(np.int32)
    norm = normalize(Mesh(pos, faces, name="demo"))
    return Mesh(norm.pos, norm.pos_idx, name="demo")  # its file frame is the normalised one


def solid_color(p):
    """A smooth 3D colour field in [0.1, 0.9] (numpy or torch [..., 3] positions -> [..., 3])."""
    lib = torch if isinstance(p, torch.Tensor) else np
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    r = 0.5 + 0.4 * lib.sin(7.0 * x + 2.0 * lib.sin(5.0 * y))
    g = 0.5 + 0.4 * lib.sin(6.0 * y - 3.0 * z + 0.5)
    b = 0.5 + 0.4 * lib.cos(5.0 * z + 4.0 * x * y)
    return lib.stack([r, g, b], -1)


def ground_truth(mesh: Mesh, texture_size: int = 1024, device="cpu", backend: str = "auto") -> Mesh:
    """``mesh`` with its own atlas and a texture sampling :func:`solid_color` at each texel."""
    m = unwrap(mesh, texture_size) if not mesh.has_uv else mesh.copy()
    r = Renderer(m, device, backend)
    tx = r.texels(texture_size)
    H, W = tx.resolution
    col = torch.zeros((H * W, 3), dtype=torch.float32, device=r.device)
    col.index_copy_(0, tx.index, solid_color(tx.pos).float())
    tex = col.view(H, W, 3).cpu().numpy()
    m.texture = push_pull(tex, tx.mask.cpu().numpy())  # pad the islands for bilinear lookups
    return m


def held_out_cameras(distance: float = 1.45) -> List[Camera]:
    """Eight views between Hunyuan3D-2's six: elevation +-30, azimuth 45 + 90 k."""
    return [Camera(e, a, distance) for e in (30.0, -30.0) for a in (45.0, 135.0, 225.0, 315.0)]


def psnr(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """PSNR in dB of images in [0, 1] over ``mask`` (all pixels by default)."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        d = d[np.asarray(mask, bool)]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def held_out_psnr(result: Mesh, truth: Mesh, cameras: Sequence[Camera], resolution: int, device="cpu",
                  backend: str = "auto", cache=None) -> Dict[str, object]:
    """Render ``result`` and ``truth`` (same geometry) from ``cameras``; PSNR over pixels covered
    in both. Returns ``{"psnr": [per view], "mean": dB over all views' pixels, "renders": [(result,
    truth)], "baseline": PSNR of the truth's mean colour}``."""
    rr = Renderer(result, device, backend, cache=cache)
    rt = Renderer(truth, device, backend, cache=cache)
    per, renders, sq, cnt, base_sq = [], [], 0.0, 0, 0.0
    mean_col = None
    for cam in cameras:
        a = rr.render_textured(cam, resolution).cpu().numpy()
        b = rt.render_textured(cam, resolution).cpu().numpy()
        m = (rr.mask(cam, resolution) & rt.mask(cam, resolution)).cpu().numpy()
        per.append(psnr(a, b, m))
        renders.append((a, b))
        d = (a[m].astype(np.float64) - b[m]) ** 2
        sq += float(d.sum())
        cnt += d.size
        if mean_col is None:
            mean_col = b[m].mean(axis=0)
        base_sq += float(((b[m] - mean_col) ** 2).sum())
    mean = float("inf") if sq == 0 else 10 * math.log10(cnt / sq)
    base = 10 * math.log10(cnt / max(base_sq, 1e-30))
    return {"psnr": per, "mean": mean, "renders": renders, "baseline": base}


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    from .images import to_uint8

    return np.asarray(Image.fromarray(to_uint8(np.asarray(img)[..., :3])).resize((size, size), Image.BILINEAR))


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str], path: str, tile: int = 192) -> None:
    """Rows of float images -> one PNG with a label above each row."""
    from PIL import Image, ImageDraw

    ncol = max(len(r) for r in rows)
    label_h = 16
    sheet = Image.new("RGB", (ncol * tile, len(rows) * (tile + label_h)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for i, (row, label) in enumerate(zip(rows, labels)):
        y = i * (tile + label_h)
        draw.text((4, y + 2), label, fill=(230, 230, 230))
        for j, img in enumerate(row):
            sheet.paste(Image.fromarray(_tile(img, tile)), (j * tile, y + label_h))
    save_pil(sheet, path)


def run_demo(out_dir: str = "texgen_demo", render_size: int = 1024, texture_size: int = 1024,
             subdivisions: int = 4, device: str = "cpu", backend: str = "auto", workers: Optional[int] = None,
             inpaint: str = "harmonic", progress: bool = True, log=print) -> Dict[str, object]:
    """Run the whole demo; writes ``result.glb``, ``texture.png``, ``preview.png`` (and
    ``ground_truth.glb``) into ``out_dir``; returns the metrics."""
    from .pipeline import TexturePipeline
    from .sources import TransferSource

    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    mesh = demo_mesh(subdivisions)
    truth = ground_truth(mesh, texture_size * 2, device, backend)
    log(f"demo mesh: {mesh.num_faces} faces, {mesh.num_vertices} vertices; ground-truth atlas "
        f"{texture_size * 2}^2 ({time.perf_counter() - t0:.1f} s)")
    kw = {} if workers is None else {"workers": workers}
    pipe = TexturePipeline(render_size=render_size, texture_size=texture_size, device=device, backend=backend,
                           inpaint=inpaint, progress=progress, **kw)
    # the target: same geometry, no UVs, so the pipeline unwraps a fresh atlas
    target = Mesh(mesh.pos, mesh.pos_idx, name="demo-target")
    result = pipe(target, TransferSource(truth))
    log("stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
    log(f"baked coverage of the used UV area: {100 * result.coverage:.1f}% (the rest inpainted)")
    held = held_out_cameras()
    metrics = held_out_psnr(result.mesh, normalize(truth, like=result.mesh), held, render_size, device, backend,
                            cache=pipe.cache)
    for cam, p in zip(held, metrics["psnr"]):
        log(f"  held-out view elev {cam.elevation:+.0f} azim {cam.azimuth:5.1f}: PSNR {p:.2f} dB")
    log(f"round-trip PSNR on held-out views: {metrics['mean']:.2f} dB (mean-colour baseline "
        f"{metrics['baseline']:.2f} dB)")

    result.export(os.path.join(out_dir, "result.glb"))
    _export_truth(truth, os.path.join(out_dir, "ground_truth.glb"))
    save_image(result.texture, os.path.join(out_dir, "texture.png"))
    r = result.renderer
    normals = [encode_normals(n) for n in (r.normal_map(c, render_size) for c in result.cameras)]
    rerender = [r.render_textured(c, render_size).cpu().numpy() for c in result.cameras]
    views = [img[..., :3] for img in result.images]
    held_pairs = metrics["renders"][:len(result.cameras)]
    contact_sheet(
        [views, normals, [result.raw_texture, result.texture], rerender,
         [b for _, b in held_pairs], [a for a, _ in held_pairs]],
        ["view images (from the ground truth)", "normal maps (world)", "baked texture: raw | inpainted",
         "re-rendered from the same views", "held-out views: ground truth", "held-out views: result"],
        os.path.join(out_dir, "preview.png"))
    log(f"wrote {out_dir}/result.glb, texture.png, preview.png")
    return {"psnr": metrics["mean"], "psnr_views": metrics["psnr"], "baseline": metrics["baseline"],
            "coverage": result.coverage, "timings": result.timings}


def _export_truth(truth: Mesh, path: str) -> None:
    from .export import export_glb

    export_glb(truth, path)

"""Fill the texels no view saw.

1. Mesh-graph vertex inpaint: ``render_npu.mesh_processor.meshVerticeInpaint`` (Hunyuan3D's
   algorithm) propagates colour along mesh edges to the vertices whose texel is empty and paints
   those texels (texel of a UV vertex: ``row = round((1 - v) (H - 1))``, ``col = round(u (W - 1))``,
   the same convention as the bake). This colours large occluded regions from their 3D
   neighbours rather than from whatever is next to them in the atlas.
2. Image-space fill of what is left, inside the used UV area grown by ``pad`` texels:
   ``method="harmonic"`` (default): a smooth membrane over the known texels, solved
   coarse-to-fine (mask-weighted pyramid + red-black Gauss-Seidel relaxation of the Laplace
   equation at each level, on the empty texels only); ``"pushpull"``: the pyramid alone
   (fastest, blurrier); or OpenCV's ``"ns"`` (Navier-Stokes) / ``"telea"`` ``cv2.inpaint``
   (radius 3, on the 8-bit texture, the rest of the atlas pre-filled by push-pull so no black
   bleeds in). On the demo's round trip the harmonic fill scores 2-4 dB above cv2's NS at a
   fraction of its run time (cv2.inpaint takes seconds on a 2048^2 atlas with 15% holes).

Afterwards no texel of the used area (or of its ``pad`` margin) is empty. Texels farther outside
are set to the mean colour, so mip-mapped lookups do not bleed black into the islands.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np
import torch

from .mesh import Mesh

__all__ = ["inpaint_texture", "harmonic_fill", "push_pull", "vertex_inpaint"]

_warned_missing = False


def vertex_inpaint(texture: np.ndarray, mask: np.ndarray, mesh: Mesh) -> Tuple[np.ndarray, np.ndarray]:
    """``render_npu.mesh_processor.meshVerticeInpaint`` on float32 [H, W, 3] / bool [H, W]; returns
    (texture, mask bool). Skipped with a warning if render_npu has no mesh_processor."""
    global _warned_missing
    try:
        from render_npu.mesh_processor import meshVerticeInpaint
    except ImportError as exc:
        if not _warned_missing:
            _warned_missing = True
            warnings.warn(f"texgen: render_npu.mesh_processor unavailable ({exc}); skipping the mesh-graph "
                          "vertex inpaint", RuntimeWarning, stacklevel=2)
        return texture, mask
    tex, m = meshVerticeInpaint(np.ascontiguousarray(texture, np.float32),
                                np.ascontiguousarray(mask.astype(np.uint8) * 255),
                                np.ascontiguousarray(mesh.pos, np.float32), np.ascontiguousarray(mesh.uv, np.float32),
                                np.ascontiguousarray(mesh.pos_idx, np.int32), np.ascontiguousarray(mesh.uv_idx, np.int32))
    tex = np.asarray(tex, np.float32).reshape(texture.shape)
    return tex, np.asarray(m).reshape(mask.shape) > 0


def _neighbours(idx: torch.Tensor, H: int, W: int, dom_flat: torch.Tensor):
    """4-neighbours of flat indices ``idx`` inside ``dom_flat``: (nbr int64 [K, 4], valid bool [K, 4])."""
    r, c = idx // W, idx % W
    nbr = torch.stack([idx - W, idx + W, idx - 1, idx + 1], 1)
    inb = torch.stack([r > 0, r < H - 1, c > 0, c < W - 1], 1)
    nbr = torch.where(inb, nbr, idx.unsqueeze(1))
    valid = inb & dom_flat[nbr]
    return nbr, valid


def _relax(est: torch.Tensor, unknown: torch.Tensor, dom: torch.Tensor, iters: int) -> torch.Tensor:
    """Red-black Gauss-Seidel sweeps of the discrete Laplace equation on the ``unknown`` cells of
    ``est`` [H, W, C] (other cells fixed; neighbours outside ``dom`` ignored)."""
    H, W, C = est.shape
    flat = est.reshape(H * W, C).clone()
    dom_flat = dom.reshape(-1)
    idx = torch.nonzero(unknown.reshape(-1)).squeeze(1)
    if idx.numel() == 0 or iters <= 0:
        return flat.view(H, W, C)
    colour = ((idx // W) + (idx % W)) % 2
    groups = []
    for parity in (0, 1):
        sub = idx[colour == parity]
        if sub.numel():
            nbr, valid = _neighbours(sub, H, W, dom_flat)
            wts = valid.float()
            cnt = wts.sum(1, keepdim=True)
            keep = cnt.squeeze(1) > 0
            nk = nbr[keep]
            wk = wts[keep] / cnt[keep]
            groups.append((sub[keep], [nk[:, k].contiguous() for k in range(4)],
                           [wk[:, k:k + 1].contiguous() for k in range(4)]))
    for _ in range(iters):
        for sub, nbr, wts in groups:
            v = flat.index_select(0, nbr[0]).mul_(wts[0])
            for k in range(1, 4):
                v.addcmul_(flat.index_select(0, nbr[k]), wts[k])
            flat.index_copy_(0, sub, v)
    return flat.view(H, W, C)


def _down2(x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """2x2 reduction of a channels-last [H, W, C] tensor (odd sizes padded with zeros)."""
    H, W, C = x.shape
    if H % 2 or W % 2:
        x = torch.nn.functional.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    v = x.view(x.shape[0] // 2, 2, x.shape[1] // 2, 2, C)
    return v.sum((1, 3)) if reduce == "sum" else v.amax((1, 3))


def _pyramid(tex: torch.Tensor, kn: torch.Tensor, dom: torch.Tensor):
    """Levels of (colour sum [h, w, C], weight [h, w, 1], domain bool [h, w]) down to 1 pixel."""
    cs = [tex * kn.unsqueeze(2)]
    ws = [kn.float().unsqueeze(2)]
    ds = [dom]
    while max(cs[-1].shape[:2]) > 1:
        cs.append(_down2(cs[-1]))
        ws.append(_down2(ws[-1]))
        ds.append(_down2(ds[-1].unsqueeze(2), "max")[..., 0])
    return cs, ws, ds


def _upsample(est: torch.Tensor, size) -> torch.Tensor:
    x = est.permute(2, 0, 1).unsqueeze(0)
    x = torch.nn.functional.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=False)
    return x[0].permute(1, 2, 0).contiguous()


def harmonic_fill(texture: np.ndarray, known: np.ndarray, domain: Optional[np.ndarray] = None,
                  iters: int = 4) -> np.ndarray:
    """Fill the unknown texels of ``domain`` with a smooth (approximately harmonic) membrane over
    the known ones: coarse-to-fine over a mask-weighted pyramid, each level initialised from the
    coarser one and relaxed with ``iters`` red-black Gauss-Seidel sweeps of the Laplace equation
    (more on small levels). Known texels are kept exactly. float32 [H, W, C], bool [H, W] ->
    [H, W, C]; texels outside ``domain`` (default: everything) come from the pyramid alone."""
    H, W, C = texture.shape
    tex = torch.from_numpy(np.ascontiguousarray(texture, np.float32))
    kn = torch.from_numpy(np.ascontiguousarray(known, bool))
    if not bool(kn.any()):
        return np.full_like(texture, 0.5, dtype=np.float32)
    dom = torch.ones_like(kn) if domain is None else (torch.from_numpy(np.ascontiguousarray(domain, bool)) | kn)
    cs, ws, ds = _pyramid(tex, kn, dom)
    est = None
    for c, w, d in zip(reversed(cs), reversed(ws), reversed(ds)):
        has = w > 0
        val = c / w.clamp_min(1e-12)
        if est is None:
            est = val
            continue
        est = torch.where(has, val, _upsample(est, c.shape))
        unknown = ~has[..., 0] & d
        n_unknown = int(unknown.sum())
        est = _relax(est, unknown, d, iters if n_unknown > 65536 else max(iters, 16))
    out = est.numpy()
    return np.where(known[..., None], texture, out).astype(np.float32)


def push_pull(texture: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill every unknown texel from a mask-weighted pyramid: known texels are kept exactly,
    holes get the blend of coarser levels (fast, blurrier than :func:`harmonic_fill`).
    float32 [H, W, C], bool [H, W] -> [H, W, C]; with no known texel at all the result is grey."""
    tex = torch.from_numpy(np.ascontiguousarray(texture, np.float32))
    kn = torch.from_numpy(np.ascontiguousarray(known, bool))
    if not bool(kn.any()):
        return np.full_like(texture, 0.5, dtype=np.float32)
    cs, ws, _ = _pyramid(tex, kn, torch.ones_like(kn))
    est = None
    for level in range(len(cs) - 1, -1, -1):
        c, w = cs[level], ws[level]
        val = c / w.clamp_min(1e-12)
        if est is None:
            est = val
            continue
        up = _upsample(est, c.shape)
        alpha = (w * 0.25 ** level).clamp(0, 1)  # fraction of the cell that is known
        est = torch.where(w > 0, val, up) * alpha + up * (1 - alpha)
    out = est.numpy()
    return np.where(known[..., None], texture, out).astype(np.float32)


def _grow(mask: np.ndarray, pad: int) -> np.ndarray:
    if pad <= 0:
        return mask
    import cv2

    k = np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def inpaint_texture(texture, baked, used, mesh: Optional[Mesh] = None, method: str = "harmonic",
                    use_vertex_inpaint: bool = True, pad: Optional[int] = None) -> np.ndarray:
    """Fill the unbaked texels (see the module docstring).

    Args:
        texture: float32 [H, W, 3] in [0, 1] (numpy or torch), valid where ``baked``.
        baked: bool [H, W], texels that received colour.
        used: bool [H, W], the used UV area (texel centres inside a UV triangle).
        mesh: the UV-mapped mesh, for the vertex inpaint (skipped when None).
        method: "harmonic", "pushpull", "ns" or "telea".
        use_vertex_inpaint: run ``meshVerticeInpaint`` first.
        pad: margin in texels around the used area that is filled too (default ``max(2, W // 256)``).

    Returns:
        float32 [H, W, 3] numpy, every texel finite and in [0, 1].
    """
    if method not in ("harmonic", "pushpull", "ns", "telea"):
        raise ValueError(f"inpaint method must be 'harmonic', 'pushpull', 'ns' or 'telea', got {method!r}")
    to_np = (lambda a: a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
    tex = np.ascontiguousarray(to_np(texture), np.float32)[..., :3]
    baked = to_np(baked).astype(bool)
    used = to_np(used).astype(bool)
    H, W = baked.shape
    if tex.shape[:2] != (H, W) or used.shape != (H, W):
        raise ValueError(f"texture {tex.shape}, baked {baked.shape} and used {used.shape} disagree")
    pad = max(2, W // 256) if pad is None else int(pad)
    known = baked.copy()
    tex = np.where(known[..., None], tex, 0.0).astype(np.float32)
    if use_vertex_inpaint and mesh is not None and mesh.has_uv and known.any() and not known[used].all():
        tex, known = vertex_inpaint(tex, known, mesh)
        tex = np.where(known[..., None], tex, 0.0).astype(np.float32)
    region = _grow(used, pad)
    if not known.any():
        warnings.warn("texgen: no texel received colour from any view; the texture is uniform grey",
                      RuntimeWarning, stacklevel=2)
    if method == "harmonic":
        filled = harmonic_fill(tex, known, region)
    else:
        filled = push_pull(tex, known)
    if method in ("ns", "telea") and known.any():
        import cv2

        holes = region & ~known
        if holes.any():
            flag = cv2.INPAINT_NS if method == "ns" else cv2.INPAINT_TELEA
            u8 = (np.clip(filled, 0, 1) * 255 + 0.5).astype(np.uint8)
            res = cv2.inpaint(u8, holes.astype(np.uint8) * 255, 3, flag).astype(np.float32) / 255.0
            filled = np.where(holes[..., None], res, filled)
    out = np.where(region[..., None], filled, 0.0)
    mean = filled[region].mean(axis=0) if region.any() else np.full(3, 0.5, np.float32)
    out = np.where(region[..., None], out, mean.astype(np.float32))
    return np.clip(out, 0.0, 1.0).astype(np.float32)

"""Screen-space derivatives of perspective-correct barycentrics and of interpolated attributes.

Barycentrics in homogeneous form (Olano & Greer 1997): with clip-space vertices p_i = (x_i, y_i, w_i)
and a pixel centre P = (px, py, 1) in NDC, the perspective-correct barycentric of vertex i is
``b_i = n_i / (n_0 + n_1 + n_2)`` with ``n_i = a_i . P`` and ``a_i = p_j x p_k`` ((i, j, k) cyclic).
Its derivative is exact and closed-form, so ``rast_db`` needs no finite differences and is
differentiable with respect to the clip-space positions by ordinary torch autograd.
"""
from __future__ import annotations

from typing import Sequence

import torch


def bary_pixel_derivatives(pos: torch.Tensor, tri: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(du/dX, du/dY, dv/dX, dv/dY)`` at every pixel centre, X/Y in pixels (nvdiffrast's ``rast_db``).

    Args:
        pos: float ``[B, V, 4]`` (or ``[V, 4]``, shared) clip-space positions; the result has its
            dtype and is differentiable with respect to it.
        tri: int ``[F, 3]``.
        ids: int64 ``[B, H, W]`` triangle id + 1 per pixel (0 = empty), from the rasterizer with the
            OpenGL viewport (NDC -1/+1 on the image borders, row index grows with NDC y).

    Returns:
        ``[B, H, W, 4]`` in ``pos``'s dtype; zeros where ``ids == 0`` or the triangle is degenerate
        in homogeneous space.
    """
    B, H, W = ids.shape
    dev = pos.device
    if tri.shape[0] == 0 or ids.numel() == 0:
        return torch.zeros((B, H, W, 4), dtype=pos.dtype, device=dev)
    # per-face homogeneous edge vectors a_0, a_1 and their sum with a_2 ([Bp, F, 9]), then one gather
    # per pixel (cheaper than gathering the corners and crossing them per pixel)
    t = tri.long()
    ph = pos[..., [0, 1, 3]]
    if ph.dim() == 2:
        ph = ph.unsqueeze(0)
    p0, p1, p2 = ph[:, t[:, 0]], ph[:, t[:, 1]], ph[:, t[:, 2]]
    a0, a1 = torch.linalg.cross(p1, p2), torch.linalg.cross(p2, p0)
    table = torch.cat([a0, a1, a0 + a1 + torch.linalg.cross(p0, p1)], -1)  # [Bp, F, 9]
    f = (ids - 1).clamp_min(0)
    if table.shape[0] == 1:
        g = table[0][f]
    else:
        g = table[torch.arange(B, device=dev).view(B, 1, 1), f]
    a0, a1, s = g[..., 0:3], g[..., 3:6], g[..., 6:9]
    # NDC of each pixel centre
    px = ((2 * torch.arange(W, device=dev, dtype=pos.dtype) + 1) / W - 1).view(1, 1, W)
    py = ((2 * torch.arange(H, device=dev, dtype=pos.dtype) + 1) / H - 1).view(1, H, 1)

    def dot(a):
        return a[..., 0] * px + a[..., 1] * py + a[..., 2]

    n0, n1, S = dot(a0), dot(a1), dot(s)
    hit = (ids > 0) & (S != 0)
    S = torch.where(hit, S, torch.ones((), dtype=S.dtype, device=dev))
    inv2 = 1 / (S * S)
    sx, sy = 2.0 / W, 2.0 / H  # NDC per pixel
    du_dx = (a0[..., 0] * S - n0 * s[..., 0]) * inv2 * sx
    du_dy = (a0[..., 1] * S - n0 * s[..., 1]) * inv2 * sy
    dv_dx = (a1[..., 0] * S - n1 * s[..., 0]) * inv2 * sx
    dv_dy = (a1[..., 1] * S - n1 * s[..., 1]) * inv2 * sy
    db = torch.stack([du_dx, du_dy, dv_dx, dv_dy], dim=-1)
    return torch.where(hit.unsqueeze(-1), db, torch.zeros((), dtype=db.dtype, device=dev))


def attribute_pixel_derivatives(attr: torch.Tensor, ids: torch.Tensor, tri: torch.Tensor, rast_db: torch.Tensor,
                                idx: Sequence[int]) -> torch.Tensor:
    """``(dA/dX, dA/dY)`` per selected attribute by the chain rule through the barycentrics:
    ``A = u A0 + v A1 + (1 - u - v) A2`` gives ``dA/dX = du/dX A0 + dv/dX A1 - (du/dX + dv/dX) A2``,
    which is :func:`render_npu.interpolate` with the weights ``(du/dX, dv/dX, -du/dX - dv/dX)`` in
    place of the barycentrics: one interpolate per screen axis (compiled on CPU, torch ops
    elsewhere; its gradients reach ``attr`` and the weights, hence ``rast_db``).

    Args:
        attr: float ``[V, C]`` or ``[B, V, C]`` (batch 1 broadcasts).
        ids: ``[B, H, W]`` triangle id + 1 (0 = empty), float as in ``rast``.
        tri: int ``[F, 3]``.
        rast_db: ``[B, H, W, 4]`` = ``(du/dX, du/dY, dv/dX, dv/dY)``.
        idx: attribute indices to differentiate (non-empty).

    Returns:
        ``[B, H, W, 2 * len(idx)]`` interleaved ``(dA_i/dX, dA_i/dY)``, zeros on empty pixels;
        differentiable with respect to ``attr`` and ``rast_db``.
    """
    from .._api import interpolate_pixels

    B, H, W = ids.shape
    K = len(idx)
    sel = attr if list(idx) == list(range(attr.shape[-1])) else attr[..., list(idx)]
    db = rast_db.to(sel.dtype)
    out = []
    for du, dv in ((db[..., 0], db[..., 2]), (db[..., 1], db[..., 3])):  # X, then Y
        out.append(interpolate_pixels(sel, torch.stack([du, dv, -(du + dv)], -1), ids, tri, "rast[..., 3]"))
    return torch.stack(out, -1).reshape(B, H, W, 2 * K)

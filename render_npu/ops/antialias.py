"""Analytic antialiasing of silhouette edges (Laine et al. 2020, section 3.4), in torch ops.

For every pair of horizontally or vertically adjacent pixels whose triangle ids differ, the
triangle nearer the camera (smaller z/w; any triangle over background) is the candidate occluder.
Walking from its pixel centre O towards the neighbour's centre N, the first of its edges crossed
(parameter t in [0, 1] along O -> N) is where its surface ends. If that edge is a silhouette edge
(no neighbouring triangle, a neighbour facing the other way in screen space, or a non-manifold
edge) and is at most 45 degrees from the pair's normal direction (horizontal pairs take the more
vertical edges, vertical pairs the more horizontal ones, so a pixel is not blended twice for one
edge), the colours are blended as if the edge split a unit-wide pixel along the pair's axis:

* t < 1/2: the edge cuts O's own pixel, which the occluder covers only partly:
  ``out[O] += (1/2 - t) (color[N] - color[O])``;
* t > 1/2: the occluder reaches into N's pixel: ``out[N] += (t - 1/2) (color[O] - color[N])``.

Pixels in no such pair keep their colour exactly. ``t`` depends on the edge's screen-space
line, so autograd gives the gradients with respect to ``pos`` (the visibility gradients) as well
as to ``color``.

Edges are handled in homogeneous coordinates, so triangles with vertices at or behind the camera
plane (w <= 0; the rasterizer clips them, docs/rasterization.md) are antialiased too: an edge's
screen line is ``L = A x B`` of its endpoints' homogeneous pixel coordinates ``(X w, Y w, w)``
(defined whatever the signs of w; taken relative to the pair's pixel for float32 accuracy), and a crossing of that line counts only where it is a point of
the edge inside the view volume (``0 <= lambda <= 1`` along the edge in clip space, ``w > 0``,
``-w <= z <= w``). That is the edge clipped to the visible volume before projecting; for edges
with both ends in view it is the projected segment.
"""
from __future__ import annotations

from typing import Optional

import torch


def construct_topology_hash(tri: torch.Tensor) -> torch.Tensor:
    """int64 ``[F, 3]``: for edge k = (tri[f, k], tri[f, (k + 1) % 3]) of face f, the face sharing it,
    -1 if none (a boundary edge) or -2 if more than two faces share it (treated as a silhouette)."""
    F = tri.shape[0]
    dev = tri.device
    t = tri.long()
    a = t
    b = t.roll(-1, dims=1)
    lo, hi = torch.minimum(a, b).reshape(-1), torch.maximum(a, b).reshape(-1)
    V = int(t.max()) + 1 if F else 1
    key = lo * V + hi
    order = torch.argsort(key, stable=True)
    ks = key[order]
    nbr = torch.full((F * 3,), -1, dtype=torch.int64, device=dev)
    if F == 0:
        return nbr.view(0, 3)
    _, inv, counts = torch.unique_consecutive(ks, return_inverse=True, return_counts=True)
    cnt = counts[inv]  # multiplicity of each sorted edge
    face = order // 3
    pair = cnt == 2
    # for an edge seen exactly twice, the two entries are adjacent in sorted order
    first = pair & torch.cat([ks[1:] == ks[:-1], torch.zeros(1, dtype=torch.bool, device=dev)])
    i = torch.nonzero(first).squeeze(1)
    nbr[order[i]] = face[i + 1]
    nbr[order[i + 1]] = face[i]
    nbr[order[cnt > 2]] = -2
    return nbr.view(F, 3)


def _pairs(ids: torch.Tensor, depth: torch.Tensor, axis: int):
    """Adjacent pixel pairs along ``axis`` (2 = x, 1 = y) with differing ids:
    (b, y, x of O, y, x of N, occluder id + 1), O = the occluder's pixel."""
    n = ids.shape[axis]
    ia, ib = ids.narrow(axis, 0, n - 1), ids.narrow(axis, 1, n - 1)
    za, zb = depth.narrow(axis, 0, n - 1), depth.narrow(axis, 1, n - 1)
    b, y, x = torch.nonzero(ia != ib, as_tuple=True)
    ida, idb = ia[b, y, x], ib[b, y, x]
    a_occ = (idb == 0) | ((ida > 0) & (za[b, y, x] <= zb[b, y, x]))
    dy, dx = (1, 0) if axis == 1 else (0, 1)
    oy = torch.where(a_occ, y, y + dy)
    ox = torch.where(a_occ, x, x + dx)
    ny = torch.where(a_occ, y + dy, y)
    nx = torch.where(a_occ, x + dx, x)
    return b, oy, ox, ny, nx, torch.where(a_occ, ida, idb)


def antialias(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
              topology_hash: Optional[torch.Tensor] = None, pos_gradient_boost: float = 1.0) -> torch.Tensor:
    """See the module docstring. ``color`` ``[B, H, W, C]``, ``rast`` ``[B, H, W, 4]`` (nvdiffrast layout,
    OpenGL viewport), ``pos`` ``[B, V, 4]`` or ``[V, 4]``, ``tri`` int ``[F, 3]`` (validated by the caller).
    Returns ``[B, H, W, C]`` in ``color``'s dtype."""
    B, H, W, C = color.shape
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    if pos_gradient_boost != 1.0:
        # same values, gradient scaled by the boost
        pos = pos + (pos_gradient_boost - 1.0) * (pos - pos.detach())
    if topology_hash is None:
        topology_hash = construct_topology_hash(tri)
    dt = torch.promote_types(color.dtype, pos.dtype)
    ids = rast[..., 3].detach().long()
    depth = rast[..., 2].detach()
    t = tri.long()
    pw = pos.to(dt)
    w = pw[..., 3]
    # homogeneous pixel coordinates (X w, Y w, w): pixel centres at integer X, Y; row grows with NDC y
    hom_scr = torch.stack([pw[..., 0] * (W / 2) + w * (W / 2 - 0.5), pw[..., 1] * (H / 2) + w * (H / 2 - 0.5), w], -1)
    # silhouette edges per face, decided once per face rather than per pixel pair: an edge is one
    # when no face shares it, several do, or the face across it has the other homogeneous
    # orientation (sign of det of the (x, y, w) rows; near a visible edge, points of both faces have
    # w > 0, so equal signs put them on opposite sides of it on screen whatever the vertices' w)
    hom = pos.detach()[..., [0, 1, 3]].to(dt)
    Bp = pos.shape[0]
    orient = torch.linalg.det(hom[:, t]) > 0  # [Bp, F]
    nbr = topology_hash.to(device=pos.device, dtype=torch.int64)
    sil_edge = (nbr < 0).unsqueeze(0) | (orient.unsqueeze(-1) != orient[:, nbr.clamp_min(0)])  # [Bp, F, 3]
    face_sil = sil_edge.any(-1)
    flat = color.reshape(B * H * W, C)
    adds_idx, adds_val = [], []
    for axis in (2, 1):
        b, oy, ox, ny, nx, occ = _pairs(ids, depth, axis)
        if b.numel() == 0:
            continue
        f = occ - 1
        pb = b if Bp > 1 else torch.zeros_like(b)
        keep = torch.nonzero(face_sil[pb, f]).squeeze(1)  # occluders without a silhouette edge blend nothing
        if keep.numel() == 0:
            continue
        b, oy, ox, ny, nx, f, pb = (x_[keep] for x_ in (b, oy, ox, ny, nx, f, pb))
        vi = t[f]  # [n, 3]
        O = torch.stack([ox, oy], -1).to(dt)
        D = torch.stack([nx - ox, ny - oy], -1).to(dt)  # N - O
        # homogeneous pixel coordinates relative to O ((X - O) w, w): the products in the cross below
        # stay the size of the triangle, not of the image (float32 keeps t accurate for small edges)
        P = hom_scr[pb.unsqueeze(1), vi]  # [n, 3, 3]
        P = torch.cat([P[..., :2] - O.unsqueeze(1) * P[..., 2:], P[..., 2:]], -1)
        Pc = pw.detach()[pb.unsqueeze(1), vi]  # [n, 3, 4] clip coordinates
        best_t = torch.full((b.shape[0],), 2.0, dtype=dt, device=color.device)
        best_k = torch.full((b.shape[0],), -1, dtype=torch.int64, device=color.device)
        tk = []
        for k in range(3):
            Pa, Pb = P[:, k], P[:, (k + 1) % 3]
            L = torch.linalg.cross(Pa, Pb, dim=1)  # the edge's screen line: L . (X - O, 1) = 0
            eO = L[:, 2]
            eN = L[:, 0] * D[:, 0] + L[:, 1] * D[:, 1] + L[:, 2]
            den = eO - eN
            cross = (eO * eN <= 0) & (den != 0)
            tt = eO / torch.where(cross, den, torch.ones((), dtype=dt, device=den.device))
            tkd = tt.detach()
            # where along the edge (clip space, lambda in [0, 1] from a to b) the crossing point lies:
            # X (w_a + lambda dw) = Xh_a + lambda dXh, from the better conditioned of X and Y
            cpt = tkd.unsqueeze(1) * D  # relative to O
            Pad, Pbd = Pa.detach(), Pb.detach()
            dP = Pbd - Pad
            num_x, den_x = cpt[:, 0] * Pad[:, 2] - Pad[:, 0], dP[:, 0] - cpt[:, 0] * dP[:, 2]
            num_y, den_y = cpt[:, 1] * Pad[:, 2] - Pad[:, 1], dP[:, 1] - cpt[:, 1] * dP[:, 2]
            use_x = den_x.abs() >= den_y.abs()
            num_l, den_l = torch.where(use_x, num_x, num_y), torch.where(use_x, den_x, den_y)
            lam = num_l / torch.where(den_l != 0, den_l, torch.ones((), dtype=dt, device=den.device))
            Q = Pc[:, k] + lam.unsqueeze(1) * (Pc[:, (k + 1) % 3] - Pc[:, k])  # the crossing, clip space
            in_view = (den_l != 0) & (lam >= 0) & (lam <= 1) & (Q[:, 3] > 0) & (Q[:, 2].abs() <= Q[:, 3])
            # the line's direction is (L1, -L0): horizontal pairs take the more vertical edges
            steep = L[:, 1].abs() <= L[:, 0].abs() if axis == 2 else L[:, 0].abs() < L[:, 1].abs()
            valid = cross & in_view & (tkd >= 0) & (tkd <= 1)
            better = valid & (tkd < best_t)
            # the first edge crossed decides; it must also be steep enough for this pair direction
            best_k = torch.where(better, torch.where(steep.detach(), k, 3), best_k)
            best_t = torch.where(better, tkd, best_t)
            tk.append(tt)
        found = (best_k >= 0) & (best_k < 3)
        if not found.any():
            continue
        sel = torch.nonzero(found).squeeze(1)
        k = best_k[sel]
        tsel = torch.stack(tk, 1)[sel].gather(1, k.unsqueeze(1)).squeeze(1)
        sil = sil_edge[pb[sel], f[sel], k]
        if not sil.any():
            continue
        keep = torch.nonzero(sil).squeeze(1)
        tsel = tsel[keep]
        sel = sel[keep]
        bb = b[sel]
        io = (bb * H + oy[sel]) * W + ox[sel]
        inn = (bb * H + ny[sel]) * W + nx[sel]
        cut_o = tsel.detach() < 0.5
        tgt = torch.where(cut_o, io, inn)
        src = torch.where(cut_o, inn, io)
        alpha = torch.where(cut_o, 0.5 - tsel, tsel - 0.5).to(dt).unsqueeze(1)
        adds_idx.append(tgt)
        adds_val.append(alpha * (flat[src].to(dt) - flat[tgt].to(dt)))
    if not adds_idx:
        return color.clone()  # a new tensor, as when pixels are blended
    out = flat.to(dt).index_add(0, torch.cat(adds_idx), torch.cat(adds_val)).to(color.dtype)
    return out.reshape(B, H, W, C)

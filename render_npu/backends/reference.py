"""The reference rasterizer: the executable definition of the contract (../docs/rasterization.md),
built on the rules of render_npu/contract.py.

Written to be read, not to be fast: one triangle at a time, numpy over the triangle's pixel
bounding box. Every other backend is tested against it. The arithmetic is specified to the
operation so that the compiled CPU backend reproduces it bit for bit:

1. Setup, float32 (the precision every device has):
   * a triangle with a non-finite input coordinate covers nothing;
   * it is clipped (Sutherland-Hodgman, in homogeneous clip space) against six planes, in this
     order: near ``z + w >= 0``, far ``w - z >= 0``, and the guard band
     ``G w - x, G w + x, G w - y, G w + y >= 0`` with ``G = 128`` -- only if some vertex is
     outside one of them. An edge crossing a plane is cut at ``t = d_in / (d_in - d_out)``,
     ``P = P_in + t (P_out - P_in)``, always interpolating from the inside vertex, so two
     triangles sharing an edge cut it at the same point (no cracks). Each clipped vertex carries
     its barycentric coordinates with respect to the parent triangle. The polygon is split into
     a fan (0, i, i+1); pieces keep the parent's id.
   * projection: ``X = x / w``, ``Y = y / w``, ``q = z / w``; screen ``sx = X * A + B`` with
     ``(A, B) = ((W-1)/2, (W-1)/2 + 1/2)`` for "align_corners" and ``(W/2, W/2)`` for "opengl"
     (likewise for y with H); snapped to 1/256 pixel: ``fx = rint(sx * 256)``. A piece with a
     non-finite ``q`` or a snapped coordinate beyond 2**29 in magnitude (non-finite, or float32
     clipping of wildly scaled inputs broke down) covers nothing.
2. Coverage, exact int64: edge functions at pixel centres ``(256 px + 128, 256 py + 128)``,
   orientation normalised to positive area, top-left rule for centres exactly on an edge,
   zero-area pieces cover nothing, ``cull_backfaces`` drops pieces of negative signed area.
3. Depth test, float64 rounded to float32: ``zdepth = f32(Ad * px + (Bd * py + Cd))``, the plane
   ``sum_i q_i E_i / area`` of the snapped piece in pixel indices, coefficients
   ``sum(sorted(a_i q_i + 0)) * (1 / area)``: the three products (with -0 made +0) added in
   increasing order, so vertex order never changes a depth.
4. Visibility: triangles in increasing id order, a fragment replaces the stored one only if its
   float32 depth is strictly smaller, so equal depths keep the lowest id.
5. Output barycentrics and depth of the visible fragment, float64 rounded to float32, from the
   unsnapped parent triangle at the pixel centre (:func:`resolve_numpy`).
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from ..contract import (HALF, MAX_FIXED, NUM_PLANES, SUBPIXEL, is_top_left, pixel_span, plane_distances,
                        screen_transform, snap)

F32 = np.float32


def plane_distance(plane: int, v: np.ndarray) -> np.float32:
    """Signed distance-like value of clip-space vertex ``v`` (float32 [4]) to clip plane ``plane``
    (:func:`render_npu.contract.plane_distances`, float32)."""
    return plane_distances(*(F32(t) for t in v))[plane]


class ClipVertex(NamedTuple):
    pos: np.ndarray  # float32 [4], clip space
    beta: np.ndarray  # float32 [3], barycentrics w.r.t. the parent triangle


def clip_triangle(v: np.ndarray) -> List[ClipVertex]:
    """Clip a triangle (float32 [3, 4]) against the six planes; returns the polygon's vertices."""
    poly = [ClipVertex(v[k], np.eye(3, dtype=F32)[k]) for k in range(3)]
    if all(plane_distance(p, v[k]) >= 0 for p in range(NUM_PLANES) for k in range(3)):
        return poly
    for plane in range(NUM_PLANES):
        out: List[ClipVertex] = []
        n = len(poly)
        for i in range(n):
            a, b = poly[i], poly[(i + 1) % n]
            da, db = plane_distance(plane, a.pos), plane_distance(plane, b.pos)
            if da >= 0:
                out.append(a)
            if (da >= 0) != (db >= 0):
                (vi, di), (vo, do) = ((a, da), (b, db)) if da >= 0 else ((b, db), (a, da))
                t = di / (di - do)
                out.append(ClipVertex(vi.pos + t * (vo.pos - vi.pos), vi.beta + t * (vo.beta - vi.beta)))
        poly = out
        if len(poly) < 3:
            return []
    return poly


class Piece(NamedTuple):
    """A screen-space triangle ready for coverage: all integer values are exact."""
    X: Tuple[int, int, int]  # fixed-point vertex x
    Y: Tuple[int, int, int]
    a: Tuple[int, int, int]  # E_i(px, py) = a_i * px + b_i * py + c_i, i = vertex opposite the edge
    b: Tuple[int, int, int]
    c: Tuple[int, int, int]
    bias: Tuple[int, int, int]  # covered iff E_i >= bias_i (0 on top-left edges, else 1)
    area: int  # sum_i E_i > 0 (twice the area in fixed-point units squared)
    depth_plane: Tuple[float, float, float]  # (Ad, Bd, Cd), float64
    bary_coef: np.ndarray  # float64 [3 (piece vertex i), 3 (parent vertex k)] = beta_ik / w_i


EDGES = ((1, 2), (2, 0), (0, 1))  # edge i runs a -> b, opposite vertex i


def setup_piece(X, Y, q, w, beta, cull_backfaces: bool) -> Optional[Piece]:
    """Integer edge equations, depth plane and barycentric coefficients of one screen triangle."""
    X = tuple(int(t) for t in X)
    Y = tuple(int(t) for t in Y)
    signed = (X[1] - X[0]) * (Y[2] - Y[0]) - (X[2] - X[0]) * (Y[1] - Y[0])
    if signed == 0 or (cull_backfaces and signed < 0):
        return None
    s = 1 if signed > 0 else -1
    a, b, c, bias = [], [], [], []
    for ia, ib in EDGES:
        dx, dy = s * (X[ib] - X[ia]), s * (Y[ib] - Y[ia])
        a.append(-dy * SUBPIXEL)
        b.append(dx * SUBPIXEL)
        c.append(dx * (HALF - Y[ia]) - dy * (HALF - X[ia]))
        bias.append(0 if is_top_left(dx, dy) else 1)
    area = c[0] + c[1] + c[2]
    assert area == s * signed
    inv = 1.0 / float(area)
    qd = [float(t) for t in q]  # float32 -> float64, exact
    # The three products are summed in increasing order (negative zeros made +0 first): the same
    # triangle listed with its vertices in another order has the same products, hence bitwise the
    # same plane, so coincident triangles tie exactly and the lowest id wins.
    def plane(coef):
        p = sorted(float(coef[i]) * qd[i] + 0.0 for i in range(3))
        return ((p[0] + p[1]) + p[2]) * inv

    bary_coef = beta.astype(np.float64) / w.astype(np.float64)[:, None]
    return Piece(X, Y, tuple(a), tuple(b), tuple(c), tuple(bias), area, (plane(a), plane(b), plane(c)),
                 bary_coef)


def triangle_pieces(v: np.ndarray, H: int, W: int, viewport: str, cull_backfaces: bool) -> List[Piece]:
    """Clip, project, snap and set up one triangle (float32 [3, 4] clip-space vertices)."""
    if not np.all(np.isfinite(v)):
        return []
    poly = clip_triangle(v)
    if len(poly) < 3:
        return []
    ax, bx = screen_transform(W, viewport)
    ay, by = screen_transform(H, viewport)
    P = np.stack([p.pos for p in poly])  # float32 [n, 4]
    beta = np.stack([p.beta for p in poly])  # float32 [n, 3]
    with np.errstate(all="ignore"):
        Xn, Yn, q = P[:, 0] / P[:, 3], P[:, 1] / P[:, 3], P[:, 2] / P[:, 3]
        fx, fy = snap(Xn, ax, bx), snap(Yn, ay, by)
    pieces = []
    for i in range(1, len(poly) - 1):
        idx = [0, i, i + 1]
        # |fixed| <= 2**29 (also rejects NaN): float32 clipping of wildly scaled inputs (w = 1e30 next
        # to w = -1) can leave a vertex far outside the guard band; such a piece is dropped.
        if not (np.all(np.abs(fx[idx]) <= MAX_FIXED) and np.all(np.abs(fy[idx]) <= MAX_FIXED)
                and np.all(np.isfinite(q[idx]))):
            continue
        piece = setup_piece(fx[idx].astype(np.int64), fy[idx].astype(np.int64), q[idx], P[idx, 3], beta[idx],
                            cull_backfaces)
        if piece is not None:
            pieces.append(piece)
    return pieces


def pixel_range(lo_fixed: int, hi_fixed: int, size: int) -> Tuple[int, int]:
    """Pixels whose centre 256 p + 128 lies in [lo, hi], clamped to [0, size); may be empty."""
    first, last = pixel_span(lo_fixed, hi_fixed)
    return max(first, 0), min(last, size - 1)


def rasterize_piece(piece: Piece, tri_id: int, W: int, H: int, zbuf, idbuf) -> None:
    """Depth-test one piece into the buffers (in place): the snapped depth decides visibility."""
    x0, x1 = pixel_range(min(piece.X), max(piece.X), W)
    y0, y1 = pixel_range(min(piece.Y), max(piece.Y), H)
    if x0 > x1 or y0 > y1:
        return
    py, px = np.meshgrid(np.arange(y0, y1 + 1, dtype=np.int64), np.arange(x0, x1 + 1, dtype=np.int64),
                         indexing="ij")
    E = [np.int64(piece.a[i]) * px + np.int64(piece.b[i]) * py + np.int64(piece.c[i]) for i in range(3)]
    inside = (E[0] >= piece.bias[0]) & (E[1] >= piece.bias[1]) & (E[2] >= piece.bias[2])
    Ad, Bd, Cd = piece.depth_plane
    depth = (Ad * px.astype(np.float64) + (Bd * py.astype(np.float64) + Cd)).astype(np.float32)
    zslice = zbuf[y0:y1 + 1, x0:x1 + 1]
    win = inside & (depth < zslice)
    if not win.any():
        return
    zslice[win] = depth[win]
    idbuf[y0:y1 + 1, x0:x1 + 1][win] = tri_id


def resolve_numpy(tri: np.ndarray, px: np.ndarray, py: np.ndarray, H: int, W: int, viewport: str,
                  fallback_depth: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Step 3: barycentrics and depth at pixel centres from the parent triangle's clip coordinates.

    ``tri`` float32 [n, 3, 4]: the parent's vertices (face order) for each of n pixels, ``px``,
    ``py`` int [n] pixel indices, ``fallback_depth`` float32 [n] (the depth-test depth, used
    where the parent is degenerate). Returns (bary float32 [n, 3], depth float32 [n]).
    All float64, operation for operation as in csrc/rasterize/resolve.h:

        hx_k = ax x_k + bx w_k, hy_k = ay y_k + by w_k       (homogeneous pixel coordinates)
        r_k = hx_k - (px + 1/2) w_k, s_k = hy_k - (py + 1/2) w_k
        u = r x s, S = (u_0 + u_1) + u_2, b_k = u_k / S
        depth = ((u_0 z_0 + u_1 z_1) + u_2 z_2) / ((u_0 w_0 + u_1 w_1) + u_2 w_2)

    ``b`` solves ``sum_k b_k (hx_k, hy_k) = (px + 1/2, py + 1/2) sum_k b_k w_k``: the point of the
    parent's plane seen through the pixel centre. Any negative ``b_k`` (the snapped piece covers
    a centre the exact triangle does not) is clamped to 0 and the rest renormalised. A degenerate
    parent (non-finite ``b``) gives ``b = 1/3`` each; a non-finite depth gives ``fallback_depth``.
    """
    ax, bx = (float(t) for t in screen_transform(W, viewport))
    ay, by = (float(t) for t in screen_transform(H, viewport))
    v = tri.astype(np.float64)
    x, y, z, w = v[..., 0], v[..., 1], v[..., 2], v[..., 3]
    P = px.astype(np.float64)[:, None] + 0.5
    Q = py.astype(np.float64)[:, None] + 0.5
    with np.errstate(all="ignore"):
        r = (ax * x + bx * w) - P * w
        s = (ay * y + by * w) - Q * w
        u = np.stack([r[:, 1] * s[:, 2] - r[:, 2] * s[:, 1], r[:, 2] * s[:, 0] - r[:, 0] * s[:, 2],
                      r[:, 0] * s[:, 1] - r[:, 1] * s[:, 0]], axis=1)
        S = (u[:, 0] + u[:, 1]) + u[:, 2]
        b = u / S[:, None]
        neg = (b < 0).any(axis=1)
        if neg.any():
            bc = np.where(b[neg] > 0, b[neg], 0.0)  # -0 and negatives -> +0
            b[neg] = bc / ((bc[:, 0] + bc[:, 1]) + bc[:, 2])[:, None]
        num = (u[:, 0] * z[:, 0] + u[:, 1] * z[:, 1]) + u[:, 2] * z[:, 2]
        den = (u[:, 0] * w[:, 0] + u[:, 1] * w[:, 1]) + u[:, 2] * w[:, 2]
        depth = (num / den).astype(np.float32)
    bary = b.astype(np.float32)
    bad = ~np.isfinite(bary).all(axis=1)
    bary[bad] = np.float32(1.0 / 3.0)
    dbad = ~np.isfinite(depth)
    depth[dbad] = fallback_depth[dbad]
    return bary, depth


def rasterize_numpy(pos: np.ndarray, faces: np.ndarray, H: int, W: int, viewport: str = "align_corners",
                    cull_backfaces: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """pos float32 [B, V, 4], faces int [F, 3] -> rast float32 [B, H, W, 4], depth float32 [B, H, W]."""
    pos = np.ascontiguousarray(pos, dtype=np.float32)
    faces = np.asarray(faces, dtype=np.int64)
    B = pos.shape[0]
    rast = np.zeros((B, H, W, 4), np.float32)
    depth_out = np.zeros((B, H, W), np.float32)
    for bi in range(B):
        zbuf = np.full((H, W), np.inf, np.float32)
        idbuf = np.full((H, W), -1, np.int64)
        for f in range(faces.shape[0]):
            for piece in triangle_pieces(pos[bi, faces[f]], H, W, viewport, cull_backfaces):
                rasterize_piece(piece, f, W, H, zbuf, idbuf)
        hit = idbuf >= 0
        py, px = np.nonzero(hit)
        bary, depth = resolve_numpy(pos[bi, faces[idbuf[hit]]], px, py, H, W, viewport, zbuf[hit])
        rast[bi, ..., :3][hit] = bary
        rast[bi, ..., 3][hit] = (idbuf[hit] + 1).astype(np.float32)
        depth_out[bi][hit] = depth
    return rast, depth_out


def rasterize(inp, **_options):
    """Backend entry point: RasterInputs -> (rast, depth) on the input device."""
    import torch

    rast, depth = rasterize_numpy(inp.pos.detach().cpu().numpy(), inp.faces.cpu().numpy(), inp.height, inp.width,
                                  inp.viewport, inp.cull_backfaces)
    dev = inp.pos.device
    return torch.from_numpy(rast).to(dev), torch.from_numpy(depth).to(dev)

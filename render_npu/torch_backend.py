"""The portable tile rasterizer (``backend="torch"``): the contract in pure torch tensor ops.

It runs unchanged on Ascend NPUs (through ``torch_npu``, never imported here), CUDA and CPU:
nothing in it is device specific, every tensor lives on the input's device, there is no
float64, and the number of torch ops per call does not depend on the number of faces or the
resolution except through a chunk loop whose length is (work / ``memory_budget``). See
docs/torch_backend.md for the design and the measurements.

Pipeline (all faces at once, no Python loop over faces, tiles or pixels):

1. Setup, float32, bit-identical to :mod:`render_npu.reference` (the same operations in the same
   order): per-vertex projection and 1/256-pixel snapping; the few triangles that cross a clip
   plane are clipped by a vectorized Sutherland-Hodgman (all six planes, polygons of up to
   ``_CLIP_CAP`` vertices) and fanned into pieces that keep the parent's id. Each piece gets
   exact integer edge equations (orientation normalised, top-left bias), a float32 depth
   gradient and perspective barycentric coefficients. Pieces are stored in (batch, face, fan)
   order so that "lower piece index" means "lower triangle id".
2. Binning into stamps: each piece's pixel bounding box is cut into square S x S pixel tiles
   anchored at the box's corner ("stamps"; S from ``_STAMP_SIZES``, picked per piece by a cost
   model, or fixed in static mode). Expanding (piece, stamp) pairs is one ``repeat_interleave``.
3. Raster, per chunk of stamps (chunk size from ``memory_budget``): each edge function is
   separable on a stamp, ``E(lx, ly) = row[ly] + col[lx]``, so coverage of all S*S pixels is a
   broadcast comparison of two tiny tables per edge; depth likewise. Each covered pixel gets
   the int64 key ``(float32 depth bits << 32) | piece index``; one ``scatter_reduce(amin)`` into a
   per-pixel key buffer resolves visibility: nearest depth wins, lowest id on equal depth.
4. Resolve, per chunk of pixels: the winning piece's exact edge values at the pixel give the
   perspective-correct barycentrics and the depth.

Exactness: coverage is exact on the 1/256 grid on every device. ``edge_arith="int64"`` (CPU,
CUDA) evaluates edge functions in int64; ``edge_arith="float32"`` (the default on other devices:
Ascend NPUs are slow at int64) evaluates them per pixel in float32 with an exact hi/lo split of
tile-relative integers (see :func:`_coverage_float`), so the two give identical coverage. Depth
for the visibility test is float32 (within ~1e-7 of the reference's float64 plane for ordinary
triangles), so ids can differ from the reference only where two surfaces are within about that
distance in depth, which the contract's agreement rule allows.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, NamedTuple, Optional, Tuple

import torch

SUBPIXEL = 256  # fixed-point steps per pixel, as the reference
HALF = SUBPIXEL // 2
GUARD_BAND = 128.0  # clip planes |x|, |y| <= G w, as the reference
DEFAULT_MEMORY_BUDGET = 256 << 20  # bytes of scratch per chunk (raster and resolve loops)
MIN_MEMORY_BUDGET = 1 << 20
_STAMP_SIZES = (4, 8, 16, 32)  # candidate stamp sides in pixels (dynamic mode)
STATIC_STAMP_SIZE = 8  # default stamp side in static mode
_CLIP_CAP = 16  # polygon capacity of the clipper (a triangle clipped by 6 planes has <= 9)
_DEPTH_OFFSET = 2.0  # depth + 2 lies in [~1, ~3]: positive, so its float32 bits order like the values
_STEEP = 4096.0  # |dz/dx| + |dz/dy| per pixel above which a piece's depth is taken as constant
_I64_MAX = (1 << 63) - 1
_INF_BITS = 0x7F800000  # float32 +inf
_SPLIT = 14  # bits of the low part in the float32 edge arithmetic

# Scratch bytes per stamp pixel, worst case over the live tensors of one chunk (see _raster_chunk):
# bool coverage (1) + two bool temporaries (2) + depth (4) + masked depth (4) + key (8) + index (8),
# float32 edge arithmetic adds two float32 temporaries (8).
_BYTES_PER_STAMP_PIXEL = {"int64": 32, "float32": 40}
# Scratch bytes per pixel in the resolve loop (gathered piece rows, exact edge values, results).
_BYTES_PER_RESOLVE_PIXEL = 400

# piece table columns (float32)
_F_Q = slice(0, 3)  # NDC depth q_i of the (oriented) piece vertices
_F_C = slice(3, 12)  # perspective barycentric coefficients c[i][k] = beta_ik / w_i, scaled; row-major
_F_ID = 12  # parent triangle id (exact in float32: ids < 2**24)
_F_ZX, _F_ZY = 13, 14  # depth gradient per pixel
_F_INVAREA = 15  # 1 / area (area in fixed-point units squared)
_NF = 16
# piece table columns (int64): E_i(px, py) = A_i px + B_i py + C_i, covered iff E_i >= bias_i
_I_A, _I_B, _I_C, _I_BIAS = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12)
_NI = 12


class _Pieces(NamedTuple):
    ftab: torch.Tensor  # float32 [P + 1, _NF]; row P is a dummy piece that covers nothing
    itab: torch.Tensor  # int64 [P + 1, _NI]
    box: torch.Tensor  # int64 [P, 5]: x0, y0 (first pixel), nx, ny (pixel counts >= 1), batch
    count: int  # P


# ----------------------------------------------------------------------------- options

def default_edge_arith(device: torch.device) -> str:
    """``"int64"`` where int64 multiply is fast (CPU, CUDA), ``"float32"`` elsewhere (NPU, ...)."""
    return "int64" if device.type in ("cpu", "cuda") else "float32"


def _check_options(memory_budget, edge_arith, stamp_size, static_shapes, device) -> Tuple[int, str]:
    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int):
        raise TypeError(f"memory_budget must be an int (bytes), got {type(memory_budget).__name__}")
    if memory_budget < MIN_MEMORY_BUDGET:
        raise ValueError(f"memory_budget must be at least {MIN_MEMORY_BUDGET} bytes (1 MiB), got {memory_budget}")
    if edge_arith == "auto":
        edge_arith = default_edge_arith(device)
    if edge_arith not in ("int64", "float32"):
        raise ValueError(f"edge_arith must be 'auto', 'int64' or 'float32', got {edge_arith!r}")
    if stamp_size is not None:
        if not static_shapes:
            raise ValueError("stamp_size is a static-shape option; pass static_shapes=True with it")
        if isinstance(stamp_size, bool) or not isinstance(stamp_size, int) or not 1 <= stamp_size <= 64:
            raise ValueError(f"stamp_size must be an int in 1..64, got {stamp_size!r}")
    return memory_budget, edge_arith


def _host(t: torch.Tensor) -> list:
    """Copy a small tensor to the host: the backend's only kind of device -> host sync besides
    ``nonzero``. ``copy=True`` makes the copy an op even on CPU, so :func:`count_ops` sees it."""
    return t.to("cpu", copy=True).tolist()


# ----------------------------------------------------------------------------- setup

def _screen(size: int, viewport: str) -> Tuple[float, float]:
    """(A, B) with ``s = X * A + B`` (values exactly representable in float32, as the reference's)."""
    if viewport == "align_corners":
        return 0.5 * (size - 1), 0.5 * (size - 1) + 0.5
    return 0.5 * size, 0.5 * size


def _snap(X: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """float32 NDC -> fixed-point screen coordinate, ``rint((X * a + b) * 256)`` (float32, integral)."""
    return torch.round((X * a + b) * float(SUBPIXEL))  # three float32 roundings, no FMA: as numpy


def _plane_distance(plane: int, x, y, z, w):
    """The reference's plane_distance, same float32 operations."""
    if plane == 0:
        return z + w
    if plane == 1:
        return w - z
    gw = w * GUARD_BAND
    return (gw - x, gw + x, gw - y, gw + y)[plane - 2]


def _outside_any(p: torch.Tensor) -> torch.Tensor:
    """bool [...]: clip-space points [..., 4] outside some clip plane (distance < 0)."""
    x, y, z, w = p.unbind(-1)
    gw = w * GUARD_BAND
    # fl(a - b) < 0 iff a < b (correct rounding keeps the sign), so plain comparisons suffice
    return (z < -w) | (z > w) | (x > gw) | (x < -gw) | (y > gw) | (y < -gw)


def _clip(V: torch.Tensor):
    """Sutherland-Hodgman of M triangles (float32 [M, 3, 4]) against the six planes, vectorized.

    Mirrors ``reference.clip_triangle`` operation for operation. Returns (P [M, CAP, 4] clip-space
    vertices, beta [M, CAP, 3] barycentrics w.r.t. the parent, n [M] vertex counts (0 when fewer
    than 3 remain), overflow [] int64: polygons that would exceed the capacity).
    """
    M, dev, CAP = V.shape[0], V.device, _CLIP_CAP
    P = torch.zeros((M, CAP, 4), dtype=torch.float32, device=dev)
    P[:, :3] = V
    Bt = torch.zeros((M, CAP, 3), dtype=torch.float32, device=dev)
    Bt[:, :3] = torch.eye(3, dtype=torch.float32, device=dev)
    n = torch.full((M,), 3, dtype=torch.int64, device=dev)
    slot = torch.arange(CAP, device=dev)
    overflow = torch.zeros((), dtype=torch.int64, device=dev)
    for plane in range(6):
        x, y, z, w = P.unbind(-1)
        d = _plane_distance(plane, x, y, z, w)  # [M, CAP]
        nn = n[:, None]
        valid = slot < nn
        j = torch.where(slot + 1 < nn, slot + 1, 0)  # next vertex, cyclic
        Pb = torch.gather(P, 1, j[..., None].expand(-1, -1, 4))
        Bb = torch.gather(Bt, 1, j[..., None].expand(-1, -1, 3))
        db = torch.gather(d, 1, j)
        ina, inb = d >= 0, db >= 0
        # the cut is interpolated from the inside vertex: (vi, di) inside, (vo, do) outside
        ia = ina[..., None]
        Pi, Po = torch.where(ia, P, Pb), torch.where(ia, Pb, P)
        Bi, Bo = torch.where(ia, Bt, Bb), torch.where(ia, Bb, Bt)
        di, do = torch.where(ina, d, db), torch.where(ina, db, d)
        t = (di / (di - do))[..., None]
        Px = Pi + t * (Po - Pi)
        Bx = Bi + t * (Bo - Bi)
        # candidates in the reference's order: vertex a (if inside), then the cut (if crossing)
        emit = torch.stack((valid & ina, valid & (ina != inb)), 2).reshape(M, 2 * CAP)
        candP = torch.stack((P, Px), 2).reshape(M, 2 * CAP, 4)
        candB = torch.stack((Bt, Bx), 2).reshape(M, 2 * CAP, 3)
        pos = torch.cumsum(emit, 1) - 1
        n_new = emit.sum(1)
        pos = torch.where(emit & (pos < CAP), pos, CAP)  # slot CAP collects the rest
        P = torch.zeros((M, CAP + 1, 4), dtype=torch.float32, device=dev).scatter_(
            1, pos[..., None].expand(-1, -1, 4), candP)[:, :CAP]
        Bt = torch.zeros((M, CAP + 1, 3), dtype=torch.float32, device=dev).scatter_(
            1, pos[..., None].expand(-1, -1, 3), candB)[:, :CAP]
        overflow = overflow + (n_new > CAP).sum()
        n = torch.where(n_new < 3, 0, n_new)
    return P, Bt, n, overflow


def _setup(pos: torch.Tensor, faces: torch.Tensor, H: int, W: int, viewport: str, cull: bool) -> _Pieces:
    """Triangle setup for all faces and batch entries at once (see the module docstring).

    pos: float32 [B, V, 4]; faces: int32 [F, 3]. Host syncs: two (clip count, piece count).
    """
    dev = pos.device
    B, F = pos.shape[0], faces.shape[0]
    G = B * F
    ax, bx = _screen(W, viewport)
    ay, by = _screen(H, viewport)
    fidx = faces.long()

    # per-vertex projection (a vertex shared by many faces is projected once; same result)
    x, y, z, w = pos.unbind(-1)
    vfx, vfy, vq = _snap(x / w, ax, bx), _snap(y / w, ay, by), z / w
    vfin = torch.isfinite(pos).all(-1)
    vout = _outside_any(pos)
    ffin = vfin[:, fidx].all(-1).reshape(G)
    fclip = ffin & vout[:, fidx].any(-1).reshape(G)
    fplain = ffin & ~fclip

    gclip = torch.nonzero(fclip).squeeze(1)  # host sync 1: how many triangles need clipping
    M = gclip.shape[0]

    # candidate pieces: one per plain face, _CLIP_CAP - 2 fan slots per clipped face
    cfx = vfx[:, fidx].reshape(G, 3)
    cfy = vfy[:, fidx].reshape(G, 3)
    cq = vq[:, fidx].reshape(G, 3)
    cw = w[:, fidx].reshape(G, 3)
    cbeta = None  # identity for plain faces
    cok = fplain
    if M:
        bm, fm = gclip // F, gclip % F
        Pc, Bc, nc, overflow = _clip(pos[bm[:, None], fidx[fm]])
        X = Pc[..., 0] / Pc[..., 3]
        Y = Pc[..., 1] / Pc[..., 3]
        pfx, pfy, pq, pw = _snap(X, ax, bx), _snap(Y, ay, by), Pc[..., 2] / Pc[..., 3], Pc[..., 3]
        K = _CLIP_CAP - 2
        i = torch.arange(1, K + 1, device=dev)
        tri = torch.stack((torch.zeros_like(i), i, i + 1), 1)  # fan (0, i, i + 1)
        fan_ok = (i[None, :] + 1) < nc[:, None]  # [M, K]

        def fan(t):  # [M, CAP, ...] -> [M * K, 3, ...]
            return t[:, tri].reshape((M * K, 3) + t.shape[2:])

        cfx = torch.cat((cfx, fan(pfx)))
        cfy = torch.cat((cfy, fan(pfy)))
        cq = torch.cat((cq, fan(pq)))
        cw = torch.cat((cw, fan(pw)))
        cbeta = torch.cat((torch.eye(3, dtype=torch.float32, device=dev).expand(G, 3, 3), fan(Bc)))
        cok = torch.cat((cok, fan_ok.reshape(-1)))
    else:
        overflow = torch.zeros((), dtype=torch.int64, device=dev)
    # global face index of every candidate
    cface = torch.arange(G, device=dev)
    if M:
        cface = torch.cat((cface, gclip.repeat_interleave(_CLIP_CAP - 2)))

    # validity: finite snapped values, non-zero area, culling, a non-empty pixel box on screen
    cok = cok & torch.isfinite(cfx).all(1) & torch.isfinite(cfy).all(1) & torch.isfinite(cq).all(1)
    X = torch.where(cok[:, None], cfx, 0.0).long()  # exact: integral float32 values below 2**29
    Y = torch.where(cok[:, None], cfy, 0.0).long()
    signed = (X[:, 1] - X[:, 0]) * (Y[:, 2] - Y[:, 0]) - (X[:, 2] - X[:, 0]) * (Y[:, 1] - Y[:, 0])
    cok = cok & (signed != 0)
    if cull:
        cok = cok & (signed > 0)
    neg = signed < 0
    # orientation: swap vertices 1 and 2 of clockwise pieces; the integer edge functions are the
    # same functions as the reference's orientation-multiplied ones (exact arithmetic)
    one = torch.where(neg, 2, 1)
    perm = torch.stack((torch.zeros_like(one), one, 3 - one), 1)
    X, Y = torch.gather(X, 1, perm), torch.gather(Y, 1, perm)
    cq = torch.gather(cq, 1, perm)
    cw = torch.gather(cw, 1, perm)
    if cbeta is None:
        cbeta_rows = torch.nn.functional.one_hot(perm, 3).to(torch.float32)  # [N, 3(vertex), 3(parent)]
    else:
        cbeta_rows = torch.gather(cbeta, 1, perm[..., None].expand(-1, -1, 3))
    area = signed.abs()

    # pixel box: pixels whose centre 256 p + 128 lies within the vertices' range
    x0 = -torch.div(HALF - X.amin(1), SUBPIXEL, rounding_mode="floor")
    x1 = torch.div(X.amax(1) - HALF, SUBPIXEL, rounding_mode="floor")
    y0 = -torch.div(HALF - Y.amin(1), SUBPIXEL, rounding_mode="floor")
    y1 = torch.div(Y.amax(1) - HALF, SUBPIXEL, rounding_mode="floor")
    x0, y0 = x0.clamp_min(0), y0.clamp_min(0)
    x1, y1 = x1.clamp_max(W - 1), y1.clamp_max(H - 1)
    cok = cok & (x0 <= x1) & (y0 <= y1)

    # ordered compaction: pieces in (batch, face, fan) order, so piece index order = id order
    nfrom = cok.long()
    cnt = nfrom[:G].clone()
    if M:
        cnt.index_add_(0, gclip, nfrom[G:].view(M, -1).sum(1))
    start = torch.cumsum(cnt, 0) - cnt
    tot = _host(torch.stack((cnt.sum(), overflow)))  # host sync 2
    P, n_over = int(tot[0]), int(tot[1])
    if n_over:
        raise RuntimeError(f"torch backend: {n_over} clipped polygon(s) exceeded {_CLIP_CAP} vertices "
                           "(degenerate input); please report this scene")
    if P >= 2 ** 31 - 1:
        raise ValueError(f"torch backend: {P} triangle pieces after clipping is more than it indexes (2**31 - 1); "
                         "rasterize fewer batch entries per call")
    within = torch.cumsum(nfrom[G:].view(M, -1), 1) - 1 if M else None
    dest = start[cface] if not M else torch.cat((start, start[gclip][:, None].add(within).reshape(-1)))
    dest = torch.where(cok, dest, P)  # invalid candidates land on row P, overwritten below

    # integer edge equations, edge i opposite vertex i, from vertex a to vertex b
    Xa, Xb = torch.roll(X, -1, 1), torch.roll(X, -2, 1)  # columns (1, 2, 0) and (2, 0, 1)
    Ya, Yb = torch.roll(Y, -1, 1), torch.roll(Y, -2, 1)
    dx, dy = Xb - Xa, Yb - Ya
    itab_c = torch.cat((-SUBPIXEL * dy, SUBPIXEL * dx, dx * (HALF - Ya) - dy * (HALF - Xa),
                        ((dy >= 0) & ((dy != 0) | (dx >= 0))).long()), 1)
    del Xa, Xb, Ya, Yb

    # depth gradient per pixel: z = sum_i q_i E_i / area, so dz/dpx = sum_i q_i A_i / area
    inv_area = 1.0 / area.clamp_min(1).float()
    dq1, dq2 = cq[:, 1] - cq[:, 0], cq[:, 2] - cq[:, 0]
    zx = ((-SUBPIXEL * dy[:, 1]).float() * dq1 + (-SUBPIXEL * dy[:, 2]).float() * dq2) * inv_area
    zy = ((SUBPIXEL * dx[:, 1]).float() * dq1 + (SUBPIXEL * dx[:, 2]).float() * dq2) * inv_area
    # a piece this steep is thinner than 1e-3 px across: every pixel it covers is within the
    # contract's 1e-3 px edge tolerance, and a constant depth keeps float32 keys well-behaved
    steep = (zx.abs() + zy.abs()) > _STEEP
    zx, zy = torch.where(steep, 0.0, zx), torch.where(steep, 0.0, zy)
    del dx, dy
    # barycentric coefficients beta_ik / w_i, scaled by the row maximum (b is scale invariant)
    c = cbeta_rows / cw[..., None]
    c = c / c.amax((1, 2), keepdim=True)
    fid = (cface % F).float()
    ftab_c = torch.cat((cq, c.reshape(-1, 9), fid[:, None], zx[:, None], zy[:, None], inv_area[:, None]), 1)
    del c, cbeta_rows

    ftab = torch.empty((P + 1, _NF), dtype=torch.float32, device=dev)
    ftab.index_copy_(0, dest, ftab_c)
    itab = torch.empty((P + 1, _NI), dtype=torch.int64, device=dev)
    itab.index_copy_(0, dest, itab_c)
    boxc = torch.stack((x0, y0, x1 - x0 + 1, y1 - y0 + 1, cface // F), 1)
    box = torch.empty((P + 1, 5), dtype=torch.int64, device=dev)
    box.index_copy_(0, dest, boxc)
    # row P: a dummy piece (padding of static chunks) far left of the screen, covering nothing
    ftab[P] = 0.0
    ftab[P, _F_C] = torch.eye(3, dtype=torch.float32, device=dev).reshape(9)
    ftab[P, _F_INVAREA] = 1.0
    itab[P] = 0
    itab[P, _I_C] = -1  # E = -1 < 0 = bias everywhere
    return _Pieces(ftab, itab, box[:P], P)


# ----------------------------------------------------------------------------- binning

def _stamp_cost(n_stamps: torch.Tensor, S: int) -> torch.Tensor:
    """Relative cost of rasterizing ``n_stamps`` stamps of side S (measured on CPU, eager):
    per pixel ~S*S, per stamp row/column tables ~8*S, per stamp gathers and setup ~48."""
    return n_stamps * (S * S + 8 * S + 48)


def _stamps(box: torch.Tensor, sizes, H: int, W: int):
    """Cut each piece's pixel box into S x S stamps. Returns {S: (piece [N], base [N])} where
    ``base`` is the flat output index of the stamp's first pixel (batch * H * W + oy * W + ox).
    One host sync (the stamp counts)."""
    dev = box.device
    P = box.shape[0]
    x0, y0, nx, ny, b = box.unbind(1)
    per = []
    for S in sizes:
        per.append(((nx + S - 1) // S, (ny + S - 1) // S))
    if len(sizes) > 1:
        cost = torch.stack([_stamp_cost(sx * sy, S) for (sx, sy), S in zip(per, sizes)])
        cls = cost.argmin(0)
    else:
        cls = torch.zeros(P, dtype=torch.int64, device=dev)
    counts = [torch.where(cls == k, sx * sy, 0) for k, (sx, sy) in enumerate(per)]
    totals = _host(torch.stack([cnt.sum() for cnt in counts]))  # host sync 3
    out = {}
    pidx = torch.arange(P, device=dev)
    for k, S in enumerate(sizes):
        N = int(totals[k])
        if N == 0:
            continue
        cnt = counts[k]
        piece = torch.repeat_interleave(pidx, cnt, output_size=N)
        first = torch.cumsum(cnt, 0) - cnt
        j = torch.arange(N, device=dev) - first[piece]
        sx = per[k][0][piece]
        jy = torch.div(j, sx, rounding_mode="floor")
        jx = j - jy * sx
        base = (b[piece] * H + y0[piece] + jy * S) * W + x0[piece] + jx * S
        out[S] = (piece, base)
    return out


# ----------------------------------------------------------------------------- raster

def _coverage_int64(e, A, Bc, ar, row_ok, col_ok):
    """bool [C, S, S] (ly, lx): all three edge functions >= 0, in exact int64.

    e [C, 3]: E_i - bias_i at the stamp's first pixel; A, Bc [C, 3]: dE/dpx, dE/dpy.
    E(lx, ly) - bias = row[ly] + A lx with row[ly] = e + Bc ly; covered iff row[ly] >= -A lx.
    """
    row = e[..., None] + Bc[..., None] * ar  # [C, 3, S]
    ncol = (-A)[..., None] * ar
    lo = torch.iinfo(torch.int64).min
    row[:, 0] = torch.where(row_ok, row[:, 0], lo)  # rows / columns outside the image: never covered
    ncol[:, 0] = torch.where(col_ok, ncol[:, 0], _I64_MAX)
    cover = row[:, 0, :, None] >= ncol[:, 0, None, :]
    cover &= row[:, 1, :, None] >= ncol[:, 1, None, :]
    cover &= row[:, 2, :, None] >= ncol[:, 2, None, :]
    return cover


def _coverage_float(e, A, Bc, ar, row_ok, col_ok, S):
    """Same result as :func:`_coverage_int64` with float32 arithmetic per pixel (exact).

    With dx = Bc / 256, dy = -A / 256 (edge direction in fixed point) and the pixel offsets
    (lx, ly) in [0, S), E - bias = e + 256 (dx ly - dy lx) >= 0  <=>  dx ly - k >= dy lx with the
    integer k = -floor(e / 256); k is clamped to +-(R + 1), R = (|dx| + |dy|)(S - 1) >= |dx ly - dy lx|,
    which keeps the sign and bounds |k| < 2**35. Each side is split, v = h 2**14 + l with
    0 <= l < 2**14, so every per-pixel quantity is an integer below 2**24 (exact in float32):
    h-parts below 2**22 and l-parts below 2**19 for |dx|, |dy| < 2**30 and S <= 32. Then
    dx ly - k - dy lx >= 0  <=>  2**14 (Rh - Ch) >= Cl - Rl, both sides exact in float32.
    Only per-stamp tables use int64 (O(stamps * S)); the O(stamps * S * S) work is float32.
    """
    dx = torch.div(Bc, SUBPIXEL, rounding_mode="floor")
    dy = torch.div(-A, SUBPIXEL, rounding_mode="floor")
    R = (dx.abs() + dy.abs()) * (S - 1) + 1
    k = torch.minimum(torch.maximum(-torch.div(e, SUBPIXEL, rounding_mode="floor"), -R), R)
    unit = 1 << _SPLIT

    def split(v):
        h = torch.div(v, unit, rounding_mode="floor")
        return h, v - h * unit

    xh, xl = split(dx)
    yh, yl = split(dy)
    kh, kl = split(k)
    rh = ((xh[..., None] * ar - kh[..., None]) * unit).float()  # [C, 3, S], integral, exact
    rl = (xl[..., None] * ar - kl[..., None]).float()
    ch = ((yh[..., None] * ar) * unit).float()
    cl = (yl[..., None] * ar).float()
    big = 2.0 ** 60
    rh[:, 0] = torch.where(row_ok, rh[:, 0], -big)  # outside the image: never covered
    ch[:, 0] = torch.where(col_ok, ch[:, 0], big)
    cover = None
    for i in range(3):
        hi = rh[:, i, :, None] - ch[:, i, None, :]  # 2**14 (Rh - Ch), exact
        lo = cl[:, i, None, :] - rl[:, i, :, None]  # Cl - Rl, exact
        c = hi >= lo
        del hi, lo
        cover = c if cover is None else cover.logical_and_(c)
    return cover


def _raster_chunk(gi: torch.Tensor, gf: torch.Tensor, piece: torch.Tensor, base: torch.Tensor, S: int, H: int,
                  W: int, float_edges: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keys of one chunk of C stamps of side S. Static shapes; compiled as is in static mode.

    gi int64 [C, _NI], gf float32 [C, _NF]: the stamps' piece rows; piece int64 [C] (piece index,
    the tie-break rank); base int64 [C]: flat output index of each stamp's first pixel.
    Returns (index int64 [C*S*S], key int64 [C*S*S]): key = (bits of float32 (depth + 2)) << 32
    | piece for covered pixels, +inf depth bits for the others (harmless to the amin).
    """
    dev = gi.device
    ar = torch.arange(S, device=dev)
    HW = H * W
    rem = base % HW
    oy = torch.div(rem, W, rounding_mode="floor")
    ox = rem - oy * W
    A, Bc, Cc, bias = gi[:, _I_A], gi[:, _I_B], gi[:, _I_C], gi[:, _I_BIAS]
    E0 = A * ox[:, None] + Bc * oy[:, None] + Cc  # exact edge values at the stamp's first pixel [C, 3]
    row_ok = (oy[:, None] + ar) < H
    col_ok = (ox[:, None] + ar) < W
    if float_edges:
        cover = _coverage_float(E0 - bias, A, Bc, ar, row_ok, col_ok, S)
    else:
        cover = _coverage_int64(E0 - bias, A, Bc, ar, row_ok, col_ok)
    # depth at the stamp origin from exact edge values: q0 + sum_i (q_i - q0) lambda_i; then the
    # plane is separable over the stamp. +2 keeps depths positive (monotone float32 bits).
    lam = E0.float() * gf[:, _F_INVAREA, None]
    q = gf[:, _F_Q]
    z0 = q[:, 0] + (q[:, 1] - q[:, 0]) * lam[:, 1] + (q[:, 2] - q[:, 0]) * lam[:, 2] + _DEPTH_OFFSET
    zrow = z0[:, None] + gf[:, _F_ZY, None] * ar.float()
    zcol = gf[:, _F_ZX, None] * ar.float()
    z = zrow[:, :, None] + zcol[:, None, :]
    z = torch.where(cover, z, float("inf"))
    del cover
    C = gi.shape[0]
    rank = piece.to(torch.int32)[:, None, None].expand(C, S, S)
    key = torch.stack((rank, z.view(torch.int32)), -1).view(torch.int64)  # little-endian: rank low, depth high
    off = ar[:, None] * W + ar[None, :]
    idx = base[:, None, None] + off
    return idx.reshape(-1), key.reshape(-1)


# ----------------------------------------------------------------------------- resolve

def _resolve_chunk(key: torch.Tensor, gi: torch.Tensor, gf: torch.Tensor, p: torch.Tensor, H: int, W: int):
    """Barycentrics, ids and depth of one chunk of n pixels from their winning pieces.

    key int64 [n] (the per-pixel amin); gi, gf: the winners' piece rows; p int64 [n]: flat pixel
    index. Returns (rast float32 [n, 4], depth float32 [n]).
    """
    hit = key < (_INF_BITS << 32)
    rem = p % (H * W)
    py = torch.div(rem, W, rounding_mode="floor")
    px = rem - py * W
    E = gi[:, _I_A] * px[:, None] + gi[:, _I_B] * py[:, None] + gi[:, _I_C]  # exact, >= 0 inside
    Ef = E.float()
    c = gf[:, _F_C].view(-1, 3, 3)
    u = (Ef[:, :, None] * c).sum(1)  # u_k = sum_i E_i c_ik
    bary = u / u.sum(1, keepdim=True)
    lam = Ef * gf[:, _F_INVAREA, None]
    depth = (lam * gf[:, _F_Q]).sum(1)
    rast = torch.cat((bary, gf[:, _F_ID, None] + 1.0), 1)
    rast = torch.where(hit[:, None], rast, 0.0)
    depth = torch.where(hit, depth, 0.0)
    return rast, depth


# ----------------------------------------------------------------------------- driver

_compiled: Dict[str, object] = {}


def _maybe_compiled(name: str, fn, compile_: bool):
    if not compile_:
        return fn
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, fullgraph=True, dynamic=False)
    return _compiled[name]


def rasterize(inp, memory_budget: Optional[int] = None, *, edge_arith: str = "auto", static_shapes: bool = False,
              stamp_size: Optional[int] = None, compile: bool = False, **_ignored):
    """Backend entry point: :class:`render_npu._validate.RasterInputs` -> (rast, depth).

    Args:
        inp: validated inputs (pos float32 [B, V, 4], faces int32 [F, 3], all on one device).
        memory_budget: bytes of scratch one chunk of the raster or resolve loop may use (default
            256 MiB, at least 1 MiB). Bounds the working set that would otherwise grow with
            faces x pixels; the per-face tables (~0.4 KB per face during setup) and the per-pixel
            key buffer (8 bytes per pixel) come on top. Never changes the result.
        edge_arith: "auto" (int64 on CPU and CUDA, float32 elsewhere), "int64" or "float32":
            how edge functions are evaluated per pixel. Both are exact; results are identical.
        static_shapes: fixed stamp size and chunk shapes (the last chunk padded with a dummy
            piece), so that each chunk is one fixed-shape graph; large pieces are cut into more
            stamps, nothing is dropped. Results equal the dynamic mode's.
        stamp_size: stamp side in pixels in static mode (default 8).
        compile: with static_shapes, run the chunk kernels through
            ``torch.compile(fullgraph=True, dynamic=False)`` (one graph per shape).
        num_threads and other backend options are accepted and ignored.

    Returns:
        (rast float32 [B, H, W, 4], depth float32 [B, H, W]) on the input device.
    """
    pos, faces = inp.pos, inp.faces
    dev = pos.device
    memory_budget, edge_arith = _check_options(memory_budget, edge_arith, stamp_size, static_shapes, dev)
    if compile and not static_shapes:
        raise ValueError("compile=True needs static_shapes=True (the dynamic mode has data-dependent shapes)")
    H, W = inp.height, inp.width
    B = pos.shape[0]
    rast = torch.zeros((B, H, W, 4), dtype=torch.float32, device=dev)
    depth = torch.zeros((B, H, W), dtype=torch.float32, device=dev)
    if B == 0 or faces.shape[0] == 0:
        return rast, depth
    pieces = _setup(pos, faces, H, W, inp.viewport, inp.cull_backfaces)
    if pieces.count == 0:
        return rast, depth
    sizes = (stamp_size or STATIC_STAMP_SIZE,) if static_shapes else _STAMP_SIZES
    stamps = _stamps(pieces.box, sizes, H, W)
    Smax = max(sizes)
    npix = B * H * W
    # one int64 key per pixel; the tail catches stamp pixels hanging over the last row
    fb = torch.full((npix + Smax * (W + 1),), _I64_MAX, dtype=torch.int64, device=dev)
    float_edges = edge_arith == "float32"
    raster = _maybe_compiled("raster_" + edge_arith, _raster_chunk, compile)
    per_px = _BYTES_PER_STAMP_PIXEL[edge_arith]
    P = pieces.count
    for S, (piece, base) in stamps.items():
        N = piece.shape[0]
        C = max(1, memory_budget // (per_px * S * S))
        if static_shapes:
            pad = (-N) % C
            if pad:  # dummy stamps: piece P covers nothing; base 0 is a valid index
                piece = torch.cat((piece, torch.full((pad,), P, dtype=torch.int64, device=dev)))
                base = torch.cat((base, torch.zeros(pad, dtype=torch.int64, device=dev)))
        for s in range(0, piece.shape[0], C):
            pc, bc = piece[s:s + C], base[s:s + C]
            idx, key = raster(pieces.itab[pc], pieces.ftab[pc], pc, bc, S, H, W, float_edges)
            fb.scatter_reduce_(0, idx, key, "amin")
            del idx, key
    del stamps
    resolve = _maybe_compiled("resolve", _resolve_chunk, compile)
    C = max(1, memory_budget // _BYTES_PER_RESOLVE_PIXEL)
    rast_flat, depth_flat = rast.view(npix, 4), depth.view(npix)
    for s in range(0, npix, C):
        e = min(s + C, npix)
        key = fb[s:e]
        p = torch.arange(s, e, device=dev)
        if static_shapes and e - s < C and npix > C:  # keep the compiled shape: recompute an overlap
            s, key, p = npix - C, fb[npix - C:npix], torch.arange(npix - C, npix, device=dev)
            e = npix
        pid = torch.where(key < (_INF_BITS << 32), key & 0xFFFFFFFF, P)
        r, d = resolve(key, pieces.itab[pid], pieces.ftab[pid], p, H, W)
        rast_flat[s:e] = r
        depth_flat[s:e] = d
    return rast, depth


# ----------------------------------------------------------------------------- instrumentation

SYNC_OPS = ("_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal", "allclose", "_assert_async")


class OpCounts(NamedTuple):
    total: int  # torch ops dispatched (each is a kernel launch on an accelerator)
    syncs: int  # ops that copy a value to the host (device -> host synchronisation)
    by_name: Counter


def _is_host_copy(name: str, args, kwargs) -> bool:
    """An explicit copy to the host: ``_to_copy(device=cpu)`` (what :func:`_host` does), or
    ``copy_`` from a non-CPU tensor into a CPU one."""
    if name == "_to_copy":
        dev = kwargs.get("device")
        return dev is not None and torch.device(dev).type == "cpu"
    if name == "copy_" and len(args) >= 2 and isinstance(args[1], torch.Tensor):
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    return False


def count_ops(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and count the aten ops it dispatches.

    Returns ``(result, OpCounts)``. Views and metadata-only ops count too (cheap, but still
    calls); ``syncs`` counts the ops that force a device -> host transfer: ``aten.nonzero``,
    ``aten._local_scalar_dense`` (behind ``.item()``, ``int(t)``), explicit copies to the host.
    Usage from a benchmark::

        from render_npu import torch_backend
        (rast, depth), n = torch_backend.count_ops(render_npu.rasterize, res, faces, pos, backend="torch")
        print(n.total, n.syncs)
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    names: Counter = Counter()
    syncs = [0]

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            names[name] += 1
            if name in SYNC_OPS or _is_host_copy(name, args, kwargs):
                syncs[0] += 1
            return func(*args, **kwargs)

    with _Count():
        result = fn(*args, **kwargs)
    return result, OpCounts(sum(names.values()), syncs[0], names)

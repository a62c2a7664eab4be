"""The portable tile rasterizer (``backend="torch"``): the contract in pure torch tensor ops.

It runs unchanged on Ascend NPUs (through ``torch_npu``, never imported here), CUDA and CPU:
nothing in it is device specific, every tensor lives on the input's device, there is no
float64, and the number of torch ops per call does not depend on the number of faces or the
resolution except through chunk loops whose length is (work / chunk size), the chunk size
following ``memory_budget``. See docs/torch_backend.md for the design and measurements.

Pipeline (all faces at once: no Python loop over faces, tiles or pixels):

1. Setup, float32, bit-identical to :mod:`render_npu.reference` (the same operations in the same
   order): per-vertex projection and 1/256-pixel snapping; the few triangles that cross a clip
   plane are clipped by a vectorized Sutherland-Hodgman (six planes, polygons of up to
   ``_CLIP_CAP`` vertices) and fanned into pieces that keep the parent's id. Each piece, its
   vertices in a canonical order (so coincident triangles get bitwise equal depths), gets exact
   integer edge equations (orientation normalised, top-left bias), a float32 depth gradient and
   perspective barycentric coefficients, and a rank: its position in (batch, face, fan) order,
   so that a lower rank means a lower triangle id.
2. Binning into tiles: each piece's pixel bounding box is cut into S x S pixel tiles anchored at
   the box's corner ("stamps"; S from ``_STAMP_SIZES`` per piece by a cost model, or fixed in
   static mode). Expanding (piece, stamp) pairs is one ``repeat_interleave``.
3. Raster, per chunk of stamps: an edge function is separable on a stamp,
   ``E(lx, ly) = row[ly] - col[lx]``, so the coverage of all S*S pixels is one broadcast
   comparison of two small tables per edge; depth likewise. Every covered pixel gets the int64
   key ``bits(float32 depth') << 32 | rank``; one ``scatter_reduce(amin)`` into a per-pixel key
   buffer resolves visibility: nearest depth wins, lowest id on equal depth.
4. Resolve, per chunk of covered pixels: the winning piece's exact edge values at the pixel give
   the perspective-correct barycentrics and the depth.

Exactness: coverage is exact on the 1/256 grid on every device. ``edge_arith="int64"`` (CPU,
CUDA) evaluates edge functions in int64; ``edge_arith="float32"`` (the default elsewhere: Ascend
NPUs are slow at int64) evaluates them per pixel in float32 with an exact hi/lo split of
tile-relative integers (:func:`_coverage_float`); both give identical coverage. Depth for the
visibility test is float32 (within ~2e-7 of the reference's float64 plane for ordinary
triangles), so ids can differ from the reference only where two surfaces are that close in
depth, which the contract's agreement rule allows.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch

from .resolve import resolve_ as resolve_parent_

SUBPIXEL = 256  # fixed-point steps per pixel, as the reference
HALF = SUBPIXEL // 2
GUARD_BAND = 128.0  # clip planes |x|, |y| <= G w, as the reference
DEFAULT_MEMORY_BUDGET = 256 << 20  # bytes of scratch per chunk (setup, raster and resolve loops)
MIN_MEMORY_BUDGET = 1 << 20
_STAMP_SIZES = (4, 8, 16, 32)  # candidate stamp sides in pixels (dynamic mode)
STATIC_STAMP_SIZE = 8  # default stamp side in static mode
MAX_STAMP_SIZE = 64
_CLIP_CAP = 16  # polygon capacity of the clipper (a triangle clipped by 6 planes has <= 9)
_FAN = _CLIP_CAP - 2  # fan pieces per clipped triangle (slots; most stay empty)
# Visibility depth d' = z / 8 + 3 / 8: in [1/4, 1/2) for z in [-1, 1], so its float32 bits are
# positive, order like the values and stay below 2**30; uncovered pixels get bits >= 2**30.
_DEPTH_SCALE, _DEPTH_BIAS = 0.125, 0.375
_UNCOVERED_BIT = 30
_STEEP = 4096.0  # |dz/dx| + |dz/dy| per pixel above which a piece's depth is taken as constant
_I64_MAX = (1 << 63) - 1
_EMPTY_BELOW = (1 << _UNCOVERED_BIT) << 32  # keys below this are covered pixels
_SPLIT = 14  # bits of the low part in the float32 edge arithmetic
# As the reference: a piece with a snapped coordinate beyond 2**29 in magnitude (float32 clipping of
# wildly scaled inputs broke down) or a non-finite depth covers nothing; this also bounds |dx|, |dy|.
MAX_FIXED = float(2 ** 29)

# Scratch bytes per unit of work (upper bounds over the live tensors of one chunk):
_BYTES_PER_STAMP_PIXEL = {"int64": 32, "float32": 40}  # bools, depth, key, index (+ float temporaries)
_BYTES_PER_CANDIDATE = 700  # setup temporaries per face (or clip fan slot)
_BYTES_PER_CLIPPED_FACE = 9000  # clipper polygons ([16 x 7] floats, a few copies per plane)
_BYTES_PER_RESOLVE_PIXEL = 400  # gathered table columns, edge values, results
# On CPU, temporaries above glibc's mmap threshold (<= 32 MiB) are mapped and unmapped per op and
# page faults then cost more than the arithmetic (measured: 5-10x slower per element), so chunks
# are also capped to keep every temporary at a few MiB; a caching allocator (CUDA, NPU) has no
# such cost and chunks follow memory_budget alone.
_CPU_CAP = {"stamp_pixels": 1 << 18, "candidates": 1 << 16, "clipped": 1 << 12, "resolve": 1 << 16}

# Candidate tables, component-major ([rows, N + 1]: long contiguous rows vectorize; a [N, 3]
# layout is ~10x slower per element on CPU). A candidate is a plain face or one fan slot of a
# clipped face; invalid ones stay in the tables (cheaper than compacting) and are never binned.
# Column N is a dummy piece that covers nothing (padding of static-shape chunks).
# itab int64 [12, N + 1]: E_i(px, py) = B_i py - NA_i px + C_i (i = edge opposite vertex i,
# orientation normalised to positive area); covered iff E_i >= bias_i (top-left rule: bias_i = 0
# on edges going down or exactly left, else 1), i.e. B_i py - NA_i px + Cb_i >= 0, Cb = C - bias.
# The raster reads rows 0..8, the resolve rows 0..5 and 9..11 (ftab: rows 0..3 and 6..15).
_I_NA, _I_B, _I_CB, _I_C = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12)
_NI_RASTER = 9
# ftab float32 [16, N + 1]: q0, q1 - q0, q2 - q0 (NDC depth at the vertices), 1 / area (area in
# fixed-point units squared), dz/dpx, dz/dpy (per pixel) -- the raster reads rows 0..5 --;
# c[i][k] = beta_ik / w_i * min_j w_j (row 6 + 3 i + k; barycentrics are invariant to the scale,
# this keeps them in [0, 1]); the parent triangle id (exact in float32: ids < 2**24).
_R_Q0, _R_DQ, _R_INVAREA, _R_ZX, _R_ZY, _R_C, _R_ID = 0, slice(1, 3), 3, 4, 5, slice(6, 15), 15
_NR_RASTER = 6


class _Pieces(NamedTuple):
    itab: torch.Tensor
    ftab: torch.Tensor
    box: torch.Tensor  # int64 [4, N]: x0, y0 (first pixel), nx, ny (pixel counts; valid where nst > 0)
    batch: torch.Tensor  # int64 [N]
    cls: torch.Tensor  # int64 [N]: stamp size class (index into the sizes)
    nst: torch.Tensor  # int64 [N]: number of stamps (0 for candidates that are not pieces)
    rank: torch.Tensor  # int64 [N]: position in (batch, face, fan) order among pieces (valid where nst > 0)
    cand: torch.Tensor  # int64 [P + 1]: candidate of each rank; cand[P] = N (the dummy)
    count: int  # P, the number of pieces
    dummy: int  # N
    blocks: List[Tuple[int, int, List[int]]]  # candidate ranges (c0, c1) and their stamp counts per class


class _Chunks(NamedTuple):
    """Chunk sizes (units of work per chunk) of the three loops."""
    candidates: int
    clipped: int
    stamp_pixels: int
    resolve: int


def _chunks(memory_budget: int, device: torch.device) -> _Chunks:
    sizes = {"candidates": memory_budget // _BYTES_PER_CANDIDATE,
             "clipped": memory_budget // _BYTES_PER_CLIPPED_FACE,
             "stamp_pixels": memory_budget // max(_BYTES_PER_STAMP_PIXEL.values()),
             "resolve": memory_budget // _BYTES_PER_RESOLVE_PIXEL}
    if device.type == "cpu":
        sizes = {k: min(v, _CPU_CAP[k]) for k, v in sizes.items()}
    return _Chunks(**{k: max(1, v) for k, v in sizes.items()})


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
        if (isinstance(stamp_size, bool) or not isinstance(stamp_size, int) or not 1 <= stamp_size <= MAX_STAMP_SIZE
                or stamp_size & (stamp_size - 1)):
            raise ValueError(f"stamp_size must be a power of two in 1..{MAX_STAMP_SIZE}, got {stamp_size!r}")
    return memory_budget, edge_arith


def _cols(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Columns ``idx`` (int64 [n]) of a [rows, N] table -> [rows, n]. ``gather`` with an expanded
    index: on CPU 4x faster than ``index_select(1, idx)`` or ``table[:, idx]``."""
    return torch.gather(table, 1, idx.expand(table.shape[0], idx.shape[0]))


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


def _outside_any(x, y, z, w) -> torch.Tensor:
    """bool: clip-space points outside some clip plane (the reference's distance < 0)."""
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


def _snapped_ok(v: torch.Tensor) -> torch.Tensor:
    """bool [...]: snapped vertices v (float32 [4, ...]: fx, fy, q, w) usable by a piece, as the
    reference decides: |fx|, |fy| <= 2**29 (NaN fails) and q finite."""
    return (v[0].abs() <= MAX_FIXED) & (v[1].abs() <= MAX_FIXED) & torch.isfinite(v[2])


def _candidates(XY: torch.Tensor, ok: torch.Tensor, permuted, beta: Optional[torch.Tensor], H: int, W: int,
                cull: bool, sizes, itab: torch.Tensor, ftab: torch.Tensor, box: torch.Tensor, cls: torch.Tensor,
                nst: torch.Tensor) -> torch.Tensor:
    """Set up n candidate pieces into table columns (``itab``, ``ftab``, ``box``, ``cls``, ``nst``
    are views of n columns, written in place). Returns the stamp count per size class (int64
    [len(sizes)]); candidates that are not pieces get nst = 0.

    XY int64 [2, 3, n]: snapped fixed-point x, y of the three vertices (0 where not ok); ok bool
    [n]: the candidate exists and its snapped values are finite; ``permuted(perm)`` with perm int64
    [3, n] (piece vertex -> candidate vertex) returns cand float32 [4, 3, n] (fx, fy, NDC depth q,
    clip w) in that vertex order; beta float32 [3, 3, n] (vertex i, parent vertex k) or None for
    the identity (unclipped faces).
    """
    X, Y = XY[0], XY[1]
    signed = (X[1] - X[0]) * (Y[2] - Y[0]) - (X[2] - X[0]) * (Y[1] - Y[0])  # twice the signed area
    ok = ok & ((signed > 0) if cull else (signed != 0))
    # Canonical vertex order: the lowest (y, x) first, then counter-clockwise (positive area; the
    # edge functions equal the reference's orientation-normalised ones). Everything below then
    # depends on the triangle only, not on the order of its vertices: exactly coincident
    # triangles get bitwise equal depths, so the lowest id wins as the contract requires.
    key = Y * (1 << 31) + X  # |X|, |Y| < 2**29
    r = torch.where(key[0] <= key[1], torch.where(key[0] <= key[2], 0, 2), torch.where(key[1] <= key[2], 1, 2))
    neg = (signed < 0).long()
    perm = torch.stack((r, (r + 1 + neg) % 3, (r + 2 - neg) % 3))  # [3, n]: piece vertex -> input vertex
    cand = permuted(perm)
    XY = torch.where(ok, cand[:2], 0.0).long()  # exact: integral floats below 2**29
    del key, r, neg, signed
    # edge i runs from vertex a = (i + 1) % 3 to b = (i + 2) % 3; row by row, straight into the
    # table (cheaper than rolled [2, 3, n] intermediates)
    X, Y = XY[0], XY[1]
    for i in range(3):
        a, b = (i + 1) % 3, (i + 2) % 3
        dx, dy = X[b] - X[a], Y[b] - Y[a]
        torch.mul(dy, SUBPIXEL, out=itab[i])  # NA
        torch.mul(dx, SUBPIXEL, out=itab[3 + i])  # B
        c = torch.sub(dx * (HALF - Y[a]), dy * (HALF - X[a]), out=itab[9 + i])  # C
        torch.sub(c, ((dy > 0) | ((dy == 0) & (dx >= 0))).long(), out=itab[6 + i])  # Cb: top-left bias
        if i == 2:
            area = dx * (Y[2] - Y[0]) - dy * (X[2] - X[0])  # twice the area, > 0 for pieces
    del dx, dy, c

    # pixel box: pixels whose centre 256 p + 128 lies within the vertices' range (the reference's);
    # ceil((v - 128) / 256) = (v + 127) >> 8 and floor((v - 128) / 256) = (v - 128) >> 8
    lo = ((torch.minimum(torch.minimum(XY[:, 0], XY[:, 1]), XY[:, 2]) + (HALF - 1)) >> 8).clamp_min_(0)  # [2, n]
    hi = (torch.maximum(torch.maximum(XY[:, 0], XY[:, 1]), XY[:, 2]) - HALF) >> 8
    hi[0].clamp_max_(W - 1)
    hi[1].clamp_max_(H - 1)
    ok = ok & (lo[0] <= hi[0]) & (lo[1] <= hi[1])
    box[:2] = lo
    nxy = torch.sub(hi, lo - 1, out=box[2:]) * ok
    del XY, lo, hi
    # stamp size: the cheapest class per piece (elementwise; argmin over a short dim is slow)
    best = None
    for k, S in enumerate(sizes):
        sh = S.bit_length() - 1
        n = ((nxy[0] + (S - 1)) >> sh) * ((nxy[1] + (S - 1)) >> sh)
        if best is None:
            cls.zero_()
            nst.copy_(n)
            best = _stamp_cost(n, S)
        else:
            cost = _stamp_cost(n, S)
            better = cost < best
            best = torch.minimum(best, cost)
            cls.masked_fill_(better, k)
            torch.where(better, n, nst, out=nst)
    counts = torch.stack([(nst * (cls == k)).sum() for k in range(len(sizes))]) if len(sizes) > 1 else nst.sum()[None]

    # depth: z = sum_i q_i E_i / area, so dz/dpx = -(NA_1 (q1 - q0) + NA_2 (q2 - q0)) / area
    q = cand[2]
    torch.sub(q[1:], q[:1], out=ftab[_R_DQ])
    dq = ftab[_R_DQ]
    ftab[_R_Q0] = q[0]
    inv_area = torch.reciprocal(area.clamp_min_(1).float(), out=ftab[_R_INVAREA])
    na, b = itab[1:3].float(), itab[4:6].float()
    zx = -(na[0] * dq[0] + na[1] * dq[1]) * inv_area
    zy = (b[0] * dq[0] + b[1] * dq[1]) * inv_area
    # a piece this steep is under 1e-3 px thick: every pixel it covers is within the contract's
    # edge tolerance, and a constant depth keeps the float32 depth keys well-behaved
    flat = (zx.abs() + zy.abs()) <= _STEEP
    torch.mul(zx, flat, out=ftab[_R_ZX])
    torch.mul(zy, flat, out=ftab[_R_ZY])

    # perspective barycentric coefficients beta_ik / w_i * min_j w_j (i: piece vertex, k: parent vertex)
    w = cand[3]
    rw = torch.minimum(torch.minimum(w[0], w[1]), w[2]) / w  # [3, n]
    c = ftab[_R_C].view(3, 3, -1)
    if beta is None:  # beta_ik = 1 where piece vertex i is parent vertex k = perm[i]
        c.zero_()
        c.scatter_(1, perm[:, None], rw[:, None])
    else:
        torch.mul(torch.gather(beta, 0, perm[:, None].expand(3, 3, -1)), rw[:, None], out=c)
    return counts


def _setup(pos: torch.Tensor, faces: torch.Tensor, H: int, W: int, viewport: str, cull: bool,
           chunks: _Chunks, sizes) -> _Pieces:
    """Triangle setup for all faces and batch entries (see the module docstring); the candidates
    are set up in blocks, which the raster loop then walks in the same order.

    pos: float32 [B, V, 4]; faces: int32 [F, 3]. Two host syncs (the number of triangles that
    need clipping; the number of pieces with the per-block stamp counts).
    """
    dev = pos.device
    B, V, F = pos.shape[0], pos.shape[1], faces.shape[0]
    G = B * F
    ax, bx = _screen(W, viewport)
    ay, by = _screen(H, viewport)
    fidx = faces.long().t()  # [3, F]

    # per-vertex projection: a vertex shared by many faces is projected once (same result)
    pt = pos.permute(2, 0, 1).reshape(4, B * V)
    x, y, z, w = pt
    vt = torch.stack((_snap(x / w, ax, bx), _snap(y / w, ay, by), z / w, w))  # [4, B*V]
    vok = torch.isfinite(pt).all(0)
    vin = vok & ~_outside_any(x, y, z, w)
    vfin = _snapped_ok(vt)  # w = 0 makes the snapped values NaN
    # exact int64 fixed-point coordinates, once per vertex (0 where not finite: never used then)
    vxy = torch.where(vfin, vt[:2], 0.0).long()  # integral floats below 2**29 where it matters
    del pt, x, y, z, w

    def vertex_ids(g0: int, g1: int) -> torch.Tensor:  # [3, n] vertex indices of faces g0..g1
        g = torch.arange(g0, g1, device=dev)
        b = torch.div(g, F, rounding_mode="floor")
        return fidx[:, g - b * F] + b * V

    vid = (vertex_ids(0, G) if B > 1 else fidx).reshape(-1)
    fplain = vin.index_select(0, vid).view(3, G).all(0)
    gclip = torch.nonzero(vok.index_select(0, vid).view(3, G).all(0) & ~fplain).squeeze(1)  # host sync 1
    del vid
    M = gclip.shape[0]
    N = G + M * _FAN

    itab = torch.empty((12, N + 1), dtype=torch.int64, device=dev)
    ftab = torch.empty((16, N + 1), dtype=torch.float32, device=dev)
    box = torch.empty((4, N), dtype=torch.int64, device=dev)
    cls = torch.empty((N,), dtype=torch.int64, device=dev)
    nst = torch.empty((N,), dtype=torch.int64, device=dev)
    batch = torch.empty((N,), dtype=torch.int64, device=dev)
    ranges, counts = [], []

    def block(c0, c1, XY, exists, permuted, beta):
        sl = slice(c0, c1)
        ranges.append((c0, c1))
        counts.append(_candidates(XY, exists, permuted, beta, H, W, cull, sizes, itab[:, sl], ftab[:, sl],
                                  box[:, sl], cls[sl], nst[sl]))

    # plain faces, in chunks
    for g0 in range(0, G, chunks.candidates):
        g1 = min(G, g0 + chunks.candidates)
        vid = vertex_ids(g0, g1) if B > 1 else fidx[:, g0:g1]
        n = g1 - g0
        sl = slice(g0, g1)
        okf = fplain[sl] & vfin.index_select(0, vid.reshape(-1)).view(3, n).all(0)

        def permuted(perm, vid=vid, n=n):  # gather in canonical order straight from the vertex table
            return _cols(vt, torch.gather(vid, 0, perm).reshape(-1)).view(4, 3, n)

        block(g0, g1, _cols(vxy, vid.reshape(-1)).view(2, 3, n), okf, permuted, None)
        g = torch.arange(g0, g1, device=dev)
        b = torch.div(g, F, rounding_mode="floor")
        ftab[_R_ID, sl] = (g - b * F).float()
        batch[sl] = b

    # clipped faces (usually few), in chunks; each yields _FAN fan slots (0, i, i + 1)
    overflow = torch.zeros((), dtype=torch.int64, device=dev)
    if M:
        i = torch.arange(1, _FAN + 1, device=dev)
        fan = torch.stack((torch.zeros_like(i), i, i + 1), 1)  # [_FAN, 3]
        for m0 in range(0, M, chunks.clipped):
            m1 = min(M, m0 + chunks.clipped)
            gm = gclip[m0:m1]
            bm = torch.div(gm, F, rounding_mode="floor")
            fm = gm - bm * F
            Pc, Bc, nc, over = _clip(pos[bm[:, None], fidx.t()[fm]])
            overflow = overflow + over
            Xn, Yn = Pc[..., 0] / Pc[..., 3], Pc[..., 1] / Pc[..., 3]
            pv = torch.stack((_snap(Xn, ax, bx), _snap(Yn, ay, by), Pc[..., 2] / Pc[..., 3], Pc[..., 3]))  # [4, m, CAP]
            n = (m1 - m0) * _FAN
            cand = pv[:, :, fan].permute(0, 3, 1, 2).reshape(4, 3, n)  # [4, 3 (vertex), m * _FAN]
            beta = Bc[:, fan].permute(2, 3, 0, 1).reshape(3, 3, n)  # [3 (vertex i), 3 (parent k), m * _FAN]
            exists = ((i + 1)[None, :] < nc[:, None]).reshape(n) & _snapped_ok(cand).all(0)
            XY = torch.where(exists, cand[:2], 0.0).long()  # exact: integral floats below 2**29

            def permuted(perm, cand=cand):
                return torch.gather(cand, 1, perm.expand(4, 3, -1))

            sl = slice(G + m0 * _FAN, G + m1 * _FAN)
            block(sl.start, sl.stop, XY, exists, permuted, beta)
            ftab[_R_ID, sl] = fm.float().repeat_interleave(_FAN)
            batch[sl] = bm.repeat_interleave(_FAN)

    # ranks: pieces in (batch, face, fan) order, so a lower rank means a lower triangle id
    ok = nst > 0
    cnt = ok[:G].long()
    if M:
        cnt.index_add_(0, gclip, ok[G:].view(M, _FAN).sum(1))
    first = torch.cumsum(cnt, 0) - cnt
    tot = _host(torch.cat((torch.stack((cnt.sum(), overflow)), torch.stack(counts).reshape(-1))))  # host sync 2
    P, n_over = int(tot[0]), int(tot[1])
    K = len(sizes)
    blocks = [(c0, c1, tot[2 + K * i:2 + K * (i + 1)]) for i, (c0, c1) in enumerate(ranges)]
    if n_over:
        raise RuntimeError(f"torch backend: {n_over} clipped polygon(s) exceeded {_CLIP_CAP} vertices "
                           "(degenerate input); please report this scene")
    if P >= 2 ** 31 - 1:
        raise ValueError(f"torch backend: {P} triangle pieces after clipping is more than it indexes "
                         "(2**31 - 1); rasterize fewer batch entries per call")
    rank = first
    if M:
        rank = torch.cat((first, (first[gclip][:, None] + torch.cumsum(ok[G:].view(M, _FAN), 1) - 1).reshape(-1)))
    rank = torch.where(ok, rank, P)
    cand_of = torch.empty(P + 1, dtype=torch.int64, device=dev).index_copy_(0, rank, torch.arange(N, device=dev))
    cand_of[P:].fill_(N)  # fill_, not item assignment: that would lift a host scalar tensor

    # column N: a dummy piece covering nothing (E = -1 < bias everywhere)
    itab[:, N].fill_(0)
    itab[_I_CB, N].fill_(-1)
    ftab[:, N].fill_(0.0)
    ftab[_R_INVAREA, N].fill_(1.0)
    return _Pieces(itab, ftab, box, batch, cls, nst, rank, cand_of, P, N, blocks)


# ----------------------------------------------------------------------------- binning

def _stamp_cost(n_stamps: torch.Tensor, S: int) -> torch.Tensor:
    """Relative cost of rasterizing ``n_stamps`` stamps of side S (eager CPU, measured): ~10 ops
    per stamp pixel, ~8 ops on per-stamp row/column tables, ~40 per-stamp ops and gathers."""
    return n_stamps * (10 * S * S + 24 * S + 60)


def _block_stamps(pc: _Pieces, c0: int, c1: int, k: int, S: int, n: int, Hp: int, Wp: int):
    """The n stamps of side S (size class k) of candidates c0..c1: S x S pixel tiles covering each
    piece's pixel box, anchored at its corner. Returns int64 [n] arrays (candidate, rank, ox, oy,
    base): the piece, its rank, the stamp's first pixel and its index in the key buffer."""
    dev = pc.nst.device
    cnt = pc.nst[c0:c1] * (pc.cls[c0:c1] == k)
    local = torch.repeat_interleave(torch.arange(c1 - c0, device=dev), cnt, output_size=n)
    j = torch.arange(n, device=dev) - (torch.cumsum(cnt, 0) - cnt).index_select(0, local)
    c = local + c0
    box = _cols(pc.box, c)  # [4, n]
    sx = (box[2] + (S - 1)) >> (S.bit_length() - 1)  # stamps along x
    jy = torch.div(j, sx, rounding_mode="floor")
    ox = box[0] + (j - jy * sx) * S
    oy = box[1] + jy * S
    base = (pc.batch.index_select(0, c) * Hp + oy) * Wp + ox
    return c, pc.rank.index_select(0, c), ox, oy, base


# ----------------------------------------------------------------------------- raster

def _coverage_int64(e, NA, Bc, ar, out=None):
    """bool [S, S, C] (ly, lx, stamp): all three edge functions >= bias, exact int64.

    e [3, C]: E_i - bias_i at each stamp's first pixel; NA, Bc [3, C]: -dE/dpx, dE/dpy.
    E - bias = row[ly] - NA lx with row[ly] = e + Bc ly: covered iff row[ly] >= NA lx.
    ``out``: optional (cover, scratch) bool buffers of the result's shape.
    """
    a = ar[:, None]
    row = e[:, None, :] + Bc[:, None, :] * a  # [3, S, C]
    col = NA[:, None, :] * a
    if out is None:
        cover = row[0][:, None] >= col[0][None]
        cover &= row[1][:, None] >= col[1][None]
        cover &= row[2][:, None] >= col[2][None]
        return cover
    cover, tmp = out
    torch.ge(row[0][:, None], col[0][None], out=cover)
    for i in (1, 2):
        cover &= torch.ge(row[i][:, None], col[i][None], out=tmp)
    return cover


def _coverage_float(e, NA, Bc, ar, S: int):
    """Same result as :func:`_coverage_int64`, with float32 arithmetic per pixel (exact).

    With the fixed-point edge direction dx = Bc / 256, dy = NA / 256 and pixel offsets
    (lx, ly) in [0, S): E - bias = e + 256 (dx ly - dy lx) >= 0  <=>  dx ly - k >= dy lx for the
    integer k = -floor(e / 256). Clamping k to +-(R + 1), R = (|dx| + |dy|)(S - 1) >= |dx ly - dy lx|,
    keeps every sign and bounds |k| < 2**37. Each side is split, v = h 2**14 + l, 0 <= l < 2**14:
    dx ly - k - dy lx >= 0  <=>  2**14 (Rh - Ch) >= Cl - Rl with Rh = dxh ly - kh, Rl = dxl ly - kl,
    Ch = dyh lx, Cl = dyl lx. For |dx|, |dy| <= 2**30 (pieces with a fixed-point coordinate
    beyond 2**29 are dropped, as by the reference) and S <= 64: |kh| < 2**23, |dxh ly|, |dyh lx| < 2**22, so Rh, Ch and
    Rh - Ch are integers of magnitude below 2**24 and Rl, Cl, Cl - Rl below 2**21: all exact in
    float32, as are 2**14 Rh, 2**14 Ch, their difference and the comparison. int64 appears only
    in the per-stamp tables (O(stamps * S)); the O(stamps * S * S) work is float32.
    """
    dx = torch.div(Bc, SUBPIXEL, rounding_mode="floor")
    dy = torch.div(NA, SUBPIXEL, rounding_mode="floor")
    R = (dx.abs() + dy.abs()) * (S - 1) + 1
    k = torch.minimum(torch.maximum(-torch.div(e, SUBPIXEL, rounding_mode="floor"), -R), R)
    unit = 1 << _SPLIT

    def split(v):
        h = torch.div(v, unit, rounding_mode="floor")
        return h, v - h * unit

    xh, xl = split(dx)
    yh, yl = split(dy)
    kh, kl = split(k)
    a = ar[:, None]
    rh = ((xh[:, None] * a - kh[:, None]) * unit).float()  # [3, S, C], integral, exact
    rl = (xl[:, None] * a - kl[:, None]).float()
    ch = ((yh[:, None] * a) * unit).float()
    cl = (yl[:, None] * a).float()
    cover = None
    for i in range(3):
        hi = rh[i][:, None] - ch[i][None]  # 2**14 (Rh - Ch), exact
        lo = cl[i][None] - rl[i][:, None]  # Cl - Rl, exact
        c = hi >= lo
        del hi, lo
        cover = c if cover is None else cover.logical_and_(c)
    return cover


def _raster_chunk(gi: torch.Tensor, gr: torch.Tensor, rank: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor,
                  base: torch.Tensor, S: int, Wp: int, float_edges: bool,
                  out: Optional[Dict[str, torch.Tensor]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keys of one chunk of C stamps of side S. Static shapes: compiled as is in static mode.

    gi int64 [9, C] (itab rows 0..8) and gr float32 [6, C] (ftab rows 0..5): the stamps' pieces;
    rank int64 [C]; ox, oy int64 [C]: each stamp's first pixel; base int64 [C]: its index in the
    key buffer, whose rows are Wp wide (pixels past the image's right and bottom edges land in
    its padding). ``out``: optional flat buffers (see :func:`_raster_buffers`) that the per-pixel
    tensors are written into: on CPU, reusing them avoids page faults that otherwise cost more
    than the arithmetic. Returns (index int64 [S*S*C], key int64 [S*S*C]): key =
    bits(d') << 32 | rank, d' = depth / 8 + 3 / 8 where covered, bits >= 2**30 elsewhere.
    """
    dev = gi.device
    C = gi.shape[1]
    shape = (S, S, C)
    buf = None if out is None else {k: v[:S * S * C * (2 if k == "key" else 1)] for k, v in out.items()}
    ar = torch.arange(S, device=dev)
    NA, Bc = gi[_I_NA], gi[_I_B]
    e = Bc * oy - NA * ox + gi[_I_CB]  # exact E - bias at each stamp's first pixel [3, C]
    if float_edges:
        cover = _coverage_float(e, NA, Bc, ar, S)
    else:
        cover = _coverage_int64(e, NA, Bc, ar, None if buf is None else (buf["cover"].view(shape),
                                                                          buf["tmp"].view(shape)))
    # depth at the first pixel from the exact edge values, q0 + sum_i (q_i - q0) E_i / area (E - bias
    # is off by at most one unit: negligible), then a separable plane over the stamp
    lam = e[1:].float() * gr[_R_INVAREA]
    z0 = (gr[_R_Q0] + (gr[_R_DQ] * lam).sum(0)) * _DEPTH_SCALE + _DEPTH_BIAS
    a = ar.float()[:, None]
    zrow = z0 + (gr[_R_ZY] * _DEPTH_SCALE) * a  # [S, C]
    zcol = (gr[_R_ZX] * _DEPTH_SCALE) * a
    rank32 = rank.to(torch.int32).expand(shape)
    off = (ar[:, None] * Wp + ar[None, :])[..., None]
    # uncovered: bits >= 2**30 (d' of a covered pixel is positive and below 0.5, under 2**30 as
    # bits; an uncovered one may be anything, negative included); 5x faster than where() on CPU
    if buf is None:
        zb = (zrow[:, None] + zcol[None]).view(torch.int32)  # [S, S, C]
        zb = torch.maximum(zb, cover.logical_not_().to(torch.int32) << _UNCOVERED_BIT)
        key = torch.stack((rank32, zb), -1).view(torch.int64)  # little-endian: rank low, depth high
        idx = off + base
        return idx.reshape(-1), key.reshape(-1)
    zb = torch.add(zrow[:, None], zcol[None], out=buf["z"].view(shape)).view(torch.int32)
    m = buf["mask"].view(shape)
    m.copy_(cover.logical_not_())
    m <<= _UNCOVERED_BIT
    torch.maximum(zb, m, out=zb)
    key = torch.stack((rank32, zb), -1, out=buf["key"].view(shape + (2,)))
    idx = torch.add(off, base, out=buf["idx"].view(shape))
    return idx.view(-1), key.view(torch.int64).view(-1)


def _raster_buffers(n: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """Flat scratch buffers for :func:`_raster_chunk` chunks of up to n stamp pixels (26 B each)."""
    return {"cover": torch.empty(n, dtype=torch.bool, device=device),
            "tmp": torch.empty(n, dtype=torch.bool, device=device),
            "z": torch.empty(n, dtype=torch.float32, device=device),
            "mask": torch.empty(n, dtype=torch.int32, device=device),
            "key": torch.empty(2 * n, dtype=torch.int32, device=device),
            "idx": torch.empty(n, dtype=torch.int64, device=device)}


# ----------------------------------------------------------------------------- resolve

def _resolve_chunk(gi: torch.Tensor, gc: torch.Tensor, gf: torch.Tensor, gb: torch.Tensor, px: torch.Tensor,
                   py: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Barycentrics, id and depth of n covered pixels from their winning pieces.

    The winners' table columns, only the rows the resolve reads (the random-access gathers are
    most of its cost): gi int64 [6, n] (itab rows NA, B), gc int64 [3, n] (rows C), gf float32
    [4, n] (ftab rows q0, dq, 1 / area), gb float32 [10, n] (rows c, id); px, py int64 [n]: pixel
    indices. Returns (rast float32 [n, 4], depth float32 [n]).
    """
    E = gi[_I_B] * py - gi[_I_NA] * px + gc  # exact, >= 0 inside [3, n]
    Ef = E.float()
    c = gb[:9]
    u = Ef[0:1] * c[0:3] + Ef[1:2] * c[3:6] + Ef[2:3] * c[6:9]  # u_k = sum_i E_i c_ik  [3, n]
    bary = u / u.sum(0)
    depth = gf[_R_Q0] + (gf[_R_DQ] * (Ef[1:] * gf[_R_INVAREA])).sum(0)
    return torch.stack((bary[0], bary[1], bary[2], gb[9] + 1.0), 1), depth


# ----------------------------------------------------------------------------- driver

_compiled: Dict[str, object] = {}


def _maybe_compiled(name: str, fn, compile_):
    if not compile_:
        return fn
    backend = compile_ if isinstance(compile_, str) else "inductor"
    key = f"{name}:{backend}"
    if key not in _compiled:
        _compiled[key] = torch.compile(fn, fullgraph=True, dynamic=False, backend=backend)
    return _compiled[key]


def _filled(shape: Tuple[int, ...], value, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.full(shape, value)``; on CPU backed by a numpy array (outputs and the key buffer,
    made once per call outside the loops): numpy asks the kernel for transparent huge pages on
    large arrays (and ``np.zeros`` gets lazily zeroed pages), so first touch of these tens of MB
    costs less than torch's 4 KiB page faults plus fill (allocation and write-back of the outputs
    measured 26 ms instead of 36 ms per call at 2048²).
    Any other device: a plain torch factory on that device."""
    numel = 1
    for d in shape:
        numel *= d
    if device.type != "cpu" or numel == 0:
        return torch.full(shape, value, dtype=dtype, device=device)
    import numpy as np
    np_dtype = {torch.float32: np.float32, torch.int64: np.int64, torch.int32: np.int32}[dtype]
    arr = np.zeros(numel, np_dtype) if value == 0 else np.full(numel, value, np_dtype)
    # frombuffer shares the array's memory (and keeps it alive), like from_numpy
    return torch.frombuffer(arr, dtype=dtype).view(shape)


class _Run(NamedTuple):
    """Per-call state shared by :func:`rasterize` and :func:`coverage_counts`."""
    pc: Optional[_Pieces]
    chunks: _Chunks
    sizes: Tuple[int, ...]
    Hp: int  # key buffer rows per batch entry (image rows + padding)
    Wp: int  # key buffer row pitch


def _prepare(inp, memory_budget, edge_arith, static_shapes, stamp_size, compile_) -> Tuple[_Run, str]:
    dev = inp.pos.device
    memory_budget, edge_arith = _check_options(memory_budget, edge_arith, stamp_size, static_shapes, dev)
    if compile_ and not static_shapes:
        raise ValueError("compile needs static_shapes=True (the dynamic mode has data-dependent shapes)")
    chunks = _chunks(memory_budget, dev)
    sizes = (stamp_size or STATIC_STAMP_SIZE,) if static_shapes else _STAMP_SIZES
    Smax = max(sizes)
    pc = None
    if inp.pos.shape[0] and inp.faces.shape[0]:
        pc = _setup(inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces, chunks, sizes)
        if pc.count == 0:
            pc = None
    # key buffer rows padded so that stamps hanging over the right or bottom edge never wrap
    return _Run(pc, chunks, sizes, inp.height + Smax, inp.width + Smax), edge_arith


def _raster_pass(run: _Run, edge_arith: str, static_shapes: bool, compile_, consume) -> None:
    """Rasterize every stamp, chunk by chunk; ``consume(index, key)`` receives each chunk's
    (index int64 [n], key int64 [n]) pairs (see :func:`_raster_chunk`)."""
    pc, sizes = run.pc, run.sizes
    dev = pc.itab.device
    float_edges = edge_arith == "float32"
    raster = _maybe_compiled("raster", _raster_chunk, compile_)
    bufs = None if compile_ or float_edges else _raster_buffers(run.chunks.stamp_pixels, dev)
    for c0, c1, counts in pc.blocks:
        for k, S in enumerate(sizes):
            n = int(counts[k])
            if n == 0:
                continue
            C = max(1, run.chunks.stamp_pixels // (S * S))  # S * S * C <= chunks.stamp_pixels
            arrays = _block_stamps(pc, c0, c1, k, S, n, run.Hp, run.Wp)
            if static_shapes and n % C:  # pad with dummy stamps: the dummy piece covers nothing
                pad = C - n % C
                arrays = tuple(torch.cat((a, torch.full((pad,), v, dtype=torch.int64, device=dev)))
                               for a, v in zip(arrays, (pc.dummy, 0, 0, 0, 0)))
            cand, rank, ox, oy, base = arrays
            del arrays
            for s in range(0, cand.shape[0], C):
                cc = cand[s:s + C]
                idx, key = raster(_cols(pc.itab[:_NI_RASTER], cc), _cols(pc.ftab[:_NR_RASTER], cc), rank[s:s + C],
                                  ox[s:s + C], oy[s:s + C], base[s:s + C], S, run.Wp, float_edges,
                                  **({} if bufs is None else {"out": bufs}))
                consume(idx, key)
                del idx, key


def rasterize(inp, memory_budget: Optional[int] = None, *, edge_arith: str = "auto", static_shapes: bool = False,
              stamp_size: Optional[int] = None, compile=False, **_ignored):
    """Backend entry point: :class:`render_npu._validate.RasterInputs` -> (rast, depth).

    Args:
        inp: validated inputs (pos float32 [B, V, 4], faces int32 [F, 3], all on one device).
        memory_budget: bytes of scratch that one chunk of the setup, raster or resolve loop may
            use (default 256 MiB, at least 1 MiB). It bounds the part of the working set that
            would otherwise grow with faces x pixels; the candidate tables (~300 bytes per face)
            and the per-pixel buffers (~17 bytes per pixel) come on top. Never changes the
            result. On CPU, chunks are also capped to a few MiB per temporary (faster: no page
            faults).
        edge_arith: "auto" (int64 on CPU and CUDA, float32 elsewhere), "int64" or "float32": how
            edge functions are evaluated per pixel. Both are exact and give identical results.
        static_shapes: one stamp size and fixed chunk shapes (the last chunk padded with a dummy
            piece), so every raster/resolve chunk is the same fixed-shape graph; big pieces are
            cut into more stamps, nothing is dropped. Results equal the dynamic mode's.
        stamp_size: stamp side in pixels in static mode (default 8; a power of two, at most 64).
        compile: with static_shapes, run the chunk kernels through
            ``torch.compile(fullgraph=True, dynamic=False)``; True means the inductor backend, a
            string names another torch.compile backend.
        num_threads and other backend options are accepted and ignored.

    Returns:
        (rast float32 [B, H, W, 4], depth float32 [B, H, W]) on the input device. Host syncs:
        three (clip count; piece and stamp counts; covered pixels), none inside the loops.
    """
    run, edge_arith = _prepare(inp, memory_budget, edge_arith, static_shapes, stamp_size, compile)
    dev = inp.pos.device
    H, W, Hp, Wp = inp.height, inp.width, run.Hp, run.Wp
    B = inp.pos.shape[0]
    rast = _filled((B, H, W, 4), 0, torch.float32, dev)
    depth = _filled((B, H, W), 0, torch.float32, dev)
    pc = run.pc
    if pc is None:
        return rast, depth
    fb = _filled((B * Hp * Wp,), _I64_MAX, torch.int64, dev)
    _raster_pass(run, edge_arith, static_shapes, compile, lambda idx, key: fb.scatter_reduce_(0, idx, key, "amin"))

    # resolve the covered pixels only
    hit = torch.nonzero((fb.view(B, Hp, Wp)[:, :H, :W] < _EMPTY_BELOW).reshape(-1)).squeeze(1)  # host sync 3
    n = hit.shape[0]
    if n == 0:
        return rast, depth
    resolve = _maybe_compiled("resolve", _resolve_chunk, compile)
    C = run.chunks.resolve
    if static_shapes and n % C:  # pad by repeating the last pixel (rewrites the same values)
        hit = torch.cat((hit, hit[-1:].expand(C - n % C)))
    rast_flat, depth_flat = rast.view(B * H * W, 4), depth.view(B * H * W)
    HW = H * W
    for s in range(0, hit.shape[0], C):
        q = hit[s:s + C]
        b = torch.div(q, HW, rounding_mode="floor")
        rem = q - b * HW
        py = torch.div(rem, W, rounding_mode="floor")
        px = rem - py * W
        cc = pc.cand.index_select(0, fb.index_select(0, (b * Hp + py) * Wp + px) & 0xFFFFFFFF)
        r, d = resolve(_cols(pc.itab[:_I_B.stop], cc), _cols(pc.itab[_I_C], cc), _cols(pc.ftab[:_R_INVAREA + 1], cc),
                       _cols(pc.ftab[_R_C.start:], cc), px, py)
        # index_copy_: on CPU about half the time of the index_put_ of ``rast_flat[q] = r`` (measured
        # 27 -> 13 ms per call at 1024², first touch of the outputs included)
        rast_flat.index_copy_(0, q, r)
        depth_flat.index_copy_(0, q, d)
    # final barycentrics/depth from the parent triangles: render_npu/resolve.py
    return resolve_parent_(rast, depth, inp.pos, inp.faces, inp.viewport, hit=hit[:n], chunk=C)


def coverage_counts(inp, memory_budget: Optional[int] = None, *, edge_arith: str = "auto",
                    static_shapes: bool = False, stamp_size: Optional[int] = None) -> torch.Tensor:
    """int32 [B, H, W]: how many triangle pieces cover each pixel centre, whatever their depth.

    A test and debugging utility that runs exactly the setup, binning and coverage code of
    :func:`rasterize` and counts instead of resolving visibility: on a closed tessellated surface
    filling the view every count is 1 (no crack, no double coverage of shared edges).
    """
    run, edge_arith = _prepare(inp, memory_budget, edge_arith, static_shapes, stamp_size, False)
    dev = inp.pos.device
    B, H, W = inp.pos.shape[0], inp.height, inp.width
    cnt = torch.zeros(B * run.Hp * run.Wp, dtype=torch.int32, device=dev)
    if run.pc is not None:
        def consume(idx, key):
            cnt.scatter_add_(0, idx, ((key >> 32) < (1 << _UNCOVERED_BIT)).to(torch.int32))

        _raster_pass(run, edge_arith, static_shapes, False, consume)
    return cnt.view(B, run.Hp, run.Wp)[:, :H, :W].contiguous()


def fine_raster_tables(inp):
    """Stable hook for the AscendC backend (render_npu/ascendc_backend.py), which does its setup
    here: this backend's pieces in (batch, face, fan) order as an ``ascendc_backend.PieceTables``
    (``itab`` int64 [P, 12] = (A, B, C, bias) with E = A px + B py + C, covered iff E >= bias;
    ``ftab`` float32 [P, 16] = (q[3], c[9], id, dz/dpx, dz/dpy, 1/area); ``box`` int64 [P, 5] =
    (x0, y0, nx, ny, batch)). Same arithmetic as :func:`rasterize`, so the two agree exactly on
    coverage. q1, q2 are rebuilt as q0 + (q_i - q0), exact when q_i and q0 are within a factor 2."""
    from .ascendc_backend import PieceTables  # noqa: PLC0415  (ascendc_backend imports us lazily too)

    dev = inp.pos.device
    chunks = _chunks(DEFAULT_MEMORY_BUDGET, dev)
    P = 0
    pc = None
    if inp.pos.shape[0] and inp.faces.shape[0]:
        pc = _setup(inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces, chunks,
                    _STAMP_SIZES)
        P = pc.count
    if P == 0:
        return PieceTables(torch.zeros((0, 12), dtype=torch.int64, device=dev),
                           torch.zeros((0, 16), dtype=torch.float32, device=dev),
                           torch.zeros((0, 5), dtype=torch.int64, device=dev), 0)
    cand = pc.cand[:P]
    it = _cols(pc.itab, cand)
    itab = torch.cat((-it[_I_NA], it[_I_B], it[_I_C], it[_I_C] - it[_I_CB])).t().contiguous()
    f = _cols(pc.ftab, cand)
    q0 = f[_R_Q0:_R_Q0 + 1]
    ftab = torch.cat((q0, q0 + f[_R_DQ], f[_R_C], f[_R_ID:_R_ID + 1], f[_R_ZX:_R_ZY + 1],
                      f[_R_INVAREA:_R_INVAREA + 1])).t().contiguous()
    box = torch.cat((_cols(pc.box, cand), pc.batch.index_select(0, cand)[None])).t().contiguous()
    return PieceTables(itab, ftab, box, P)


# ----------------------------------------------------------------------------- instrumentation

SYNC_OPS = ("_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal", "allclose", "_assert_async")


# aten ops that only make views or read metadata: no kernel launch on any device
VIEW_OPS = frozenset({"view", "_unsafe_view", "reshape", "_reshape_alias", "slice", "select", "unsqueeze", "squeeze",
                      "expand", "as_strided", "t", "transpose", "permute", "detach", "alias", "unbind", "split",
                      "split_with_sizes", "narrow", "view_as", "expand_as", "lift_fresh"})


class OpCounts(NamedTuple):
    total: int  # aten ops dispatched, views included
    kernels: int  # ops that do work (total minus views): kernel launches on an accelerator
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

    Returns ``(result, OpCounts)``: ``total`` counts every dispatched op, views included;
    ``kernels`` leaves out views and metadata ops (what launches a kernel on an accelerator);
    ``syncs`` counts the ops that force a device -> host transfer: ``aten.nonzero``,
    ``aten._local_scalar_dense`` (behind ``.item()``, ``int(t)``), explicit copies to the host.
    Usage from a benchmark::

        from render_npu import torch_backend
        (rast, depth), n = torch_backend.count_ops(render_npu.rasterize, res, faces, pos, backend="torch")
        print(n.total, n.kernels, n.syncs)
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
    total = sum(names.values())
    return result, OpCounts(total, total - sum(v for k, v in names.items() if k in VIEW_OPS), syncs[0], names)


def peak_tensor_bytes(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and measure the peak bytes of tensor storage it holds alive.

    Returns ``(result, peak_bytes)``: the maximum, over the call, of the total size of storages
    created by the ops it dispatched and still alive (its outputs included; inputs and tensors
    made before the call excluded). Exact and device independent (it sees storages, not the
    allocator), unlike RSS or ``max_memory_allocated``, which include allocator caching.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    live: Dict[int, int] = {}
    state = {"cur": 0, "peak": 0}

    def release(key: int) -> None:
        state["cur"] -= live.pop(key, 0)

    class _Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(o, torch.Tensor):
                    st = o.untyped_storage()
                    key = id(st)
                    if key not in live and st.nbytes() > 0:
                        live[key] = st.nbytes()
                        state["cur"] += st.nbytes()
                        state["peak"] = max(state["peak"], state["cur"])
                        weakref.finalize(st, release, key)
            return out

    with _Track():
        result = fn(*args, **kwargs)
    return result, state["peak"]

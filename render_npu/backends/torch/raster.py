"""Torch backend, stages 2-4 per chunk: binning pieces into stamps, the stamp raster (coverage and
visibility keys) and the per-pixel resolve of barycentrics and depth. No host syncs here."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from .setup import (_DEPTH_BIAS, _DEPTH_SCALE, _I_B, _I_C, _I_CB, _I_NA, _R_DQ, _R_INVAREA, _R_Q0, _R_ZX,
                    _R_ZY, _SPLIT, _UNCOVERED_BIT, SUBPIXEL, _cols, _Pieces)

# ----------------------------------------------------------------------------- binning

def _block_stamps(pc: _Pieces, c0: int, c1: int, k: int, S: int, n: int, Hp: int, Wp: int):
    """The n stamps of side S (size class k) of candidates c0..c1: S x S pixel tiles covering each
    piece's pixel box, anchored at its corner. Returns int64 [n] arrays (candidate, rank, ox, oy,
    base): the piece, its rank, the stamp's first pixel and its index in the key buffer."""
    dev = pc.nst.device
    cnt = pc.nst[c0:c1] * (pc.cls[c0:c1] == k)
    local = torch.repeat_interleave(torch.arange(c1 - c0, device=dev), cnt, output_size=n)
    j = torch.arange(n, device=dev) - (torch.cumsum(cnt, 0) - cnt).index_select(0, local)
    c = local + c0
    box = _cols(pc.box[:3], c)  # [3, n]: x0, y0, nx (ny is not needed)
    if S & (S - 1):  # single-stamp sides (setup._SINGLE_ONLY)
        sx = torch.div(box[2] + (S - 1), S, rounding_mode="floor")
    else:
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
    row = torch.addcmul(e[:, None, :], Bc[:, None, :], a)  # [3, S, C] = e + Bc ly (exact; one op, not two)
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
                  out: Optional[Dict[str, torch.Tensor]] = None, window: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keys of one chunk of C stamps of side S. Static shapes: compiled as is in static mode.

    gi int64 [9, C] (itab rows 0..8) and gr float32 [6, C] (ftab rows 0..5): the stamps' pieces;
    rank int64 [C]; ox, oy int64 [C]: each stamp's first pixel; base int64 [C]: its index in the
    key buffer, whose rows are Wp wide (pixels past the image's right and bottom edges land in
    its padding). ``out``: optional flat buffers (see :func:`_raster_buffers`) that the per-pixel
    tensors are written into: on CPU, reusing them avoids page faults that otherwise cost more
    than the arithmetic. Returns (index int64 [S*S*C], key int64 [S*S*C]): key =
    bits(d') << 32 | rank, d' = depth / 8 + 3 / 8 where covered, bits >= 2**30 elsewhere.
    ``window`` (CPU): no per-pixel index; returns (base expanded to [S, S, C], key int64 [S, S, C])
    for a scatter along dim 2 of the key buffer's window view (:func:`merge_target`).
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
        if window:
            return base.expand(shape), key.view(shape)
        idx = off + base
        return idx.reshape(-1), key.reshape(-1)
    zb = torch.add(zrow[:, None], zcol[None], out=buf["z"].view(shape)).view(torch.int32)
    m = buf["mask"].view(shape)
    m.copy_(cover.logical_not_())
    m <<= _UNCOVERED_BIT
    torch.maximum(zb, m, out=zb)
    key = torch.stack((rank32, zb), -1, out=buf["key"].view(shape + (2,)))
    if window:
        return base.expand(shape), key.view(torch.int64).view(shape)
    idx = torch.add(off, base, out=buf["idx"].view(shape))
    return idx.view(-1), key.view(torch.int64).view(-1)


def merge_target(buf: torch.Tensor, idx: torch.Tensor, Wp: int) -> Tuple[torch.Tensor, int]:
    """Where a chunk's keys are scattered: (``buf``, dim 0) for flat pixel indices ``idx`` [n], or,
    for ``idx`` [Sy, Sx, C] (stamp bases, :func:`_raster_chunk` with ``window``), dim 2 of the
    window view ``w[ly, lx, j] = buf[ly * Wp + lx + j]`` (overlapping rows of the flat per-pixel
    buffer ``buf``, whose padding keeps every stamp inside it). The same elements get the same
    values; on CPU this scatter is ~2x faster than materialising the int64 index of every stamp
    pixel and scattering through it (measured 4.4 against 8.4 ms for 3.8M stamp pixels)."""
    if idx.dim() == 1:
        return buf, 0
    Sy, Sx = idx.shape[0], idx.shape[1]
    return buf.as_strided((Sy, Sx, buf.numel() - (Sy - 1) * Wp - (Sx - 1)), (Wp, 1, 1)), 2


def _raster_buffers(n: int, device: torch.device, window: bool = False) -> Dict[str, torch.Tensor]:
    """Flat scratch buffers for :func:`_raster_chunk` chunks of up to n stamp pixels (26 B each, 18
    with ``window``: no index)."""
    bufs = {"cover": torch.empty(n, dtype=torch.bool, device=device),
            "tmp": torch.empty(n, dtype=torch.bool, device=device),
            "z": torch.empty(n, dtype=torch.float32, device=device),
            "mask": torch.empty(n, dtype=torch.int32, device=device),
            "key": torch.empty(2 * n, dtype=torch.int32, device=device)}
    if not window:
        bufs["idx"] = torch.empty(n, dtype=torch.int64, device=device)
    return bufs


# ----------------------------------------------------------------------------- resolve

def _resolve_chunk(itab: torch.Tensor, ftab: torch.Tensor, cc: torch.Tensor, gid: torch.Tensor, px: torch.Tensor,
                   py: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Id and depth-test depth of n covered pixels from their winning pieces (the barycentrics and
    output depth come from the parent triangle afterwards: :mod:`render_npu.resolve`).

    itab, ftab: the piece tables; cc int64 [n]: the winners' columns; gid float32 [n]: their row
    id (gathered by the caller, who also needs it); px, py int64 [n]: pixel indices. Returns
    (id + 1 float32 [n], depth float32 [n]). Only the rows read are gathered (the random-access
    gathers are most of the cost): itab rows NA1, NA2, B0, B1, B2 (one contiguous slice: a row
    more than needed, two fewer than NA and B whole) and C1, C2, ftab rows q0, dq, 1 / area.
    """
    gi = _cols(itab[_I_NA.start + 1:_I_B.stop], cc)  # [5, n]: NA1, NA2, B0, B1, B2
    gc = _cols(itab[_I_C.start + 1:_I_C.stop], cc)  # [2, n]: C1, C2
    gf = _cols(ftab[:_R_INVAREA + 1], cc)  # [4, n]
    E = gi[3:5] * py - gi[0:2] * px + gc  # edges 1 and 2: exact, >= 0 inside [2, n]
    depth = gf[_R_Q0] + (gf[_R_DQ] * (E.float() * gf[_R_INVAREA])).sum(0)
    return gid + 1.0, depth



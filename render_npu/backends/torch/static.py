"""Torch backend, static shapes: the whole rasterization as one fixed-shape computation.

:func:`rasterize_static` has no host sync and no data-dependent shape: every tensor's shape
follows from (B, V, F, H, W) and the capacities (``max_stamps``, ``max_clipped``), and every Python
loop has a length fixed by them. So it runs under ``torch.compile(fullgraph=True)`` as one graph
(with :func:`render_npu.interpolate` after it, tested) and could be captured as an NPU/CUDA graph.
What does not fit the capacities is reported, not guessed: it returns the counts it needed, and
the eager entry point (``rasterize(..., static_shapes=True)``) reads them in its one host sync and
reruns with exact capacities when a capacity was too small. Results equal the dynamic mode's bit
for bit (same setup, same stamp raster, same visibility keys, same per-pixel resolve).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ... import resolve as parent
from .raster import _raster_chunk, _resolve_chunk
from .setup import (resolve_dtype, _EMPTY_BELOW, _I64_MAX, _NI_RASTER, _NR_RASTER, _R_ID, DEFAULT_MEMORY_BUDGET,
                    STATIC_STAMP_SIZE, _check_options, _chunks, _cols, _setup)


def default_capacities(B: int, F: int, H: int, W: int, stamp_size: int = STATIC_STAMP_SIZE) -> Tuple[int, int]:
    """(max_stamps, max_clipped) when not given: one stamp per face plus four layers of stamps
    over the image; one face in 64 needing clipping (at least 64, at most all)."""
    S = stamp_size
    G = B * F
    return G + 4 * B * (-(-H // S)) * (-(-W // S)), min(G, max(64, G // 64))


def rasterize_static(pos: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                     viewport: str = "align_corners", cull_backfaces: bool = False, *,
                     stamp_size: int = STATIC_STAMP_SIZE, max_stamps: Optional[int] = None,
                     max_clipped: Optional[int] = None, memory_budget: Optional[int] = None,
                     edge_arith: str = "auto") -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterize with fixed shapes and no host sync (one graph under ``torch.compile``).

    Args:
        pos: float32 [B, V, 4] clip-space vertices; faces: int32/int64 [F, 3] (checked by the
            caller: :func:`render_npu._validate.rasterize_inputs` in eager code).
        height, width, viewport, cull_backfaces: as :func:`render_npu.rasterize`.
        stamp_size: stamp side in pixels (a power of two, at most 64).
        max_stamps: stamps (S x S pixel tiles of piece boxes) rasterized; default
            :func:`default_capacities`.
        max_clipped: triangles that need clipping that are clipped (the first ones in face
            order); default :func:`default_capacities`.
        memory_budget, edge_arith: as the dynamic mode; the budget sets the chunk shapes.

    Returns:
        (rast float32 [B, H, W, 4], depth float32 [B, H, W], need int64 [3]): ``need`` = (faces
        that needed clipping, stamps needed, clipped polygons over the clipper's capacity). The
        result is exact when need[0] <= max_clipped, need[1] <= max_stamps and need[2] == 0.
    """
    dev = pos.device
    B, F = pos.shape[0], faces.shape[0]
    H, W, S = height, width, stamp_size
    memory_budget, edge_arith = _check_options(memory_budget, edge_arith, S, True, dev)
    d_stamps, d_clipped = default_capacities(B, F, H, W, S)
    max_stamps = max(1, d_stamps if max_stamps is None else max_stamps)
    max_clipped = d_clipped if max_clipped is None else min(max_clipped, B * F)
    chunks = _chunks(memory_budget, dev)
    rast = torch.zeros((B, H, W, 4), dtype=torch.float32, device=dev)
    depth = torch.zeros((B, H, W), dtype=torch.float32, device=dev)
    if B * F == 0:
        return rast, depth, torch.zeros(3, dtype=torch.int64, device=dev)
    pc = _setup(pos, faces, H, W, viewport, cull_backfaces, chunks, (S,), clip_capacity=max_clipped)
    N, Hp, Wp = pc.dummy, H + S, W + S

    # stamps: stamp j belongs to the candidate whose range of the running stamp count holds j
    C = min(max(1, chunks.stamp_pixels // (S * S)), max_stamps)  # stamps per chunk
    Ns = -(-max_stamps // C) * C
    ends = torch.cumsum(pc.nst, 0)  # [N]
    j = torch.arange(Ns, device=dev)
    c = torch.searchsorted(ends, j, right=True)  # == N past the last stamp
    valid = c < N
    c = c.clamp_max(N - 1)
    jj = j - (ends.index_select(0, c) - pc.nst.index_select(0, c))
    box = _cols(pc.box, c)
    sx = ((box[2] + (S - 1)) >> (S.bit_length() - 1)).clamp_min(1)
    jy = torch.div(jj, sx, rounding_mode="floor")
    ox = torch.where(valid, box[0] + (jj - jy * sx) * S, 0)
    oy = torch.where(valid, box[1] + jy * S, 0)
    base = (pc.batch.index_select(0, c) * Hp + oy) * Wp + ox
    rank = torch.where(valid, pc.rank.index_select(0, c), 0)
    cand = torch.where(valid, c, N)
    need = torch.stack((pc.need[0], ends[-1], pc.need[1]))
    del ends, j, c, jj, box, sx, jy, valid

    # raster and visibility merge (see driver._visibility)
    fb = torch.full((B * Hp * Wp,), _I64_MAX, dtype=torch.int64, device=dev)
    float_edges = edge_arith == "float32"
    for s in range(0, Ns, C):
        cc = cand[s:s + C]
        idx, key = _raster_chunk(_cols(pc.itab[:_NI_RASTER], cc), _cols(pc.ftab[:_NR_RASTER], cc), rank[s:s + C],
                                 ox[s:s + C], oy[s:s + C], base[s:s + C], S, Wp, float_edges)
        fb.scatter_reduce_(0, idx, key, "amin")
    resolve_dense(pc, fb, rast, depth, Hp, Wp, min(chunks.resolve, B * H * W), pos, faces, viewport,
                  resolve_dtype(edge_arith))
    return rast, depth, need


def resolve_dense(pc, fb: torch.Tensor, rast: torch.Tensor, depth: torch.Tensor, Hp: int, Wp: int, C: int,
                  pos: torch.Tensor, faces: torch.Tensor, viewport: str, dtype: torch.dtype = torch.float32) -> None:
    """The final output step with static shapes: every pixel, in chunks of C (the last one
    overlapping the one before it), resolved from its key as driver.resolve_output does (the
    winning piece's id and depth-test depth, then the barycentrics and depth from the parent
    triangle, render_npu.resolve, in ``dtype``); empty pixels read the dummy piece and are written
    as zeros."""
    B, H, W = depth.shape
    par = parent.parents(pos, faces, H, W, viewport, dtype)
    n = B * H * W
    rast_flat, depth_flat = rast.view(n, 4), depth.view(n)
    dev = fb.device
    for s0 in range(0, n, C):
        s = min(s0, n - C)  # fixed chunk shape: the last chunk ends at n
        q = torch.arange(s, s + C, device=dev)
        b, py, px = parent.unflatten_pixels(q, H, W)
        key = fb.index_select(0, (b * Hp + py) * Wp + px)
        hit = key < _EMPTY_BELOW
        cc = pc.cand.index_select(0, torch.where(hit, key & 0xFFFFFFFF, pc.dummy))
        ident, d = _resolve_chunk(pc.itab, pc.ftab, cc, pc.ftab[_R_ID].index_select(0, cc), px, py)
        fid = torch.where(hit, ident.long() - 1, 0)  # empty pixels: face 0, masked below
        bary, d = parent.resolve_chunk(par, b if B > 1 else None, fid, px, py, d)
        r = torch.cat((bary.t().to(torch.float32), ident[:, None]), 1)
        rast_flat[s:s + C] = torch.where(hit[:, None], r, 0.0)
        depth_flat[s:s + C] = torch.where(hit, d.to(torch.float32), 0.0)


__all__ = ["rasterize_static", "default_capacities", "DEFAULT_MEMORY_BUDGET"]

"""Mesh-aware texture inpaint: the API behind ``render_npu.mesh_processor`` (Hunyuan3D's names).

After baking, texels that no view saw stay empty. :func:`mesh_vertex_inpaint` colours the mesh
vertices whose texel is empty from their coloured neighbours on the mesh's vertex graph and
writes those colours back into the texture at every face corner. Two methods, both
result-compatible with Hunyuan3D (docs/inpaint.md has the exact rules):

* ``method="smooth"`` (default): Hunyuan3D's repeated passes over the list of unpainted face
  corners, bit-identical to Hunyuan3D-2.1's C++ ``meshVerticeInpaint``.
* ``method="forward"``: one multi-source breadth-first propagation, O(V + E); bit-identical to
  Hunyuan3D-2.1's ``method="forward"``. Faster, and vertices that have a painted corner keep
  their painted colour; see docs/inpaint.md for how the results differ.

Two backends compute the same bits: the compiled C++ kernel (``csrc/inpaint``, in
``render_npu._C``, releases the GIL) and a numpy fallback used when the compiled module is
missing (``backend="auto"``), or on request (``backend="python"``). Inputs are checked here,
once, before either sees them.
"""
from __future__ import annotations

import sys
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from ._memory import plain_empty

__all__ = ["mesh_vertex_inpaint", "InpaintStats", "METHODS", "BACKENDS"]

METHODS = {"smooth": 0, "forward": 1}
BACKENDS = ("auto", "cpp", "python")
_INT32_MAX = 2 ** 31 - 1


class InpaintStats(NamedTuple):
    """What a run did (identical between the C++ and the Python backends)."""

    iterations: int  # smooth: passes over the list; forward: breadth-first layers
    list_entries: int  # smooth: unpainted face corners (the list, duplicates included); forward: 0
    last_uncolored: int  # smooth: list entries without a coloured neighbour in the last pass
    colored_vertices: int  # vertices that end up coloured and are written back
    backend: str  # "cpp" or "python"


class _Inputs(NamedTuple):
    texture: np.ndarray  # float32 [H, W, C], C-contiguous
    mask: np.ndarray  # uint8 [H, W]
    vtx_pos: np.ndarray  # float32 [V, 3]
    vtx_uv: np.ndarray  # float32 [T, 2]
    pos_idx: np.ndarray  # int32 [F, 3], values in [0, V)
    uv_idx: np.ndarray  # int32 [F, 3], values in [0, T)
    corner_texel: np.ndarray  # int64 [3F]: flat texel (row * W + col) of every face corner
    as_torch: bool  # the caller passed texture as a torch tensor


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def mesh_vertex_inpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, method: str = "smooth",
                        backend: str = "auto", return_stats: bool = False):
    """Inpaint the texels of unpainted mesh vertices; returns ``(texture, mask)``, new arrays, or
    ``(texture, mask, InpaintStats)`` with ``return_stats=True``.

    Args:
        texture: float [H, W, C] (any C >= 1), computed in float32.
        mask: uint8 (or bool) [H, W]; > 0 marks a painted texel.
        vtx_pos: float [V, 3] vertex positions.
        vtx_uv: float [T, 2] UVs in [0, 1]; texel (row, col) = (round((1 - v)(H - 1)), round(u (W - 1))).
        pos_idx, uv_idx: integer [F, 3]: per face corner, the position and UV row.
        method: "smooth" (Hunyuan3D default) or "forward" (one breadth-first propagation).
        backend: "auto" (compiled kernel when present, else Python), "cpp" or "python".

    numpy arrays and CPU torch tensors are accepted; the result is float32 / uint8 numpy arrays,
    or torch tensors when ``texture`` is a torch tensor. The output mask is 255 at every texel
    written back, and a copy of ``mask`` elsewhere.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    inp = _validate(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx)
    ext = None
    if backend in ("auto", "cpp"):
        ext = _compiled()
        if ext is None and backend == "cpp":
            from . import _ext

            raise RuntimeError("backend='cpp' requested but the compiled kernel is unavailable: "
                               + (_ext.reason() or "render_npu._C has no mesh_vertex_inpaint (rebuild it)"))
    if ext is not None:
        out_tex, out_mask, stats = _run_cpp(ext, inp, method)
    else:
        out_tex, out_mask, stats = _run_python(inp, method)
    if inp.as_torch:
        import torch

        out_tex, out_mask = torch.from_numpy(out_tex), torch.from_numpy(out_mask)
    if return_stats:
        return out_tex, out_mask, stats
    return out_tex, out_mask


def _compiled():
    from . import _ext

    mod = _ext.get()
    if mod is None or not hasattr(mod, "mesh_vertex_inpaint"):
        return None
    return mod


def _run_cpp(ext, inp: _Inputs, method: str):
    out_tex = plain_empty(inp.texture.shape, inp.texture.dtype)  # (written whole by the kernel)
    out_mask = plain_empty(inp.mask.shape, inp.mask.dtype)
    it, entries, last, ncol = ext.mesh_vertex_inpaint(inp.texture, inp.mask, inp.vtx_pos, inp.vtx_uv, inp.pos_idx,
                                                      inp.uv_idx, METHODS[method], out_tex, out_mask)
    return out_tex, out_mask, InpaintStats(int(it), int(entries), int(last), int(ncol), "cpp")


# ---------------------------------------------------------------------------------------------
# Validation: the one place where inputs are checked. Every error names the argument.
# ---------------------------------------------------------------------------------------------
def _to_numpy(x: Any, name: str) -> Tuple[np.ndarray, bool]:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        if x.device.type != "cpu":
            raise ValueError(f"{name} must be a numpy array or a CPU torch tensor, got a tensor on {x.device}; "
                             "call .cpu() first")
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.resolve_conj().resolve_neg().numpy(), True
    if isinstance(x, np.ndarray):
        return x, False
    try:
        return np.asarray(x), False
    except Exception:
        raise TypeError(f"{name} must be a numpy array or a CPU torch tensor, got {type(x).__name__}") from None


def _float_array(x: Any, name: str, shape: str, ndim: int, last: Optional[int] = None) -> Tuple[np.ndarray, bool]:
    a, is_torch = _to_numpy(x, name)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating-point dtype (float32), got {a.dtype}")
    if a.ndim != ndim or (last is not None and a.shape[-1] != last):
        raise ValueError(f"{name} must have shape {shape}, got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=np.float32), is_torch


def _index_array(x: Any, name: str, bound: int, bound_name: str) -> np.ndarray:
    a, _ = _to_numpy(x, name)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype (int32), got {a.dtype}")
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape [F, 3], got {list(a.shape)}")
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= bound:
            bad = int(np.flatnonzero(((a < 0) | (a >= bound)).reshape(-1))[0])
            raise ValueError(f"{name} must index {bound_name} rows in [0, {bound}), found {name}[{bad // 3}, "
                             f"{bad % 3}] = {int(a.reshape(-1)[bad])} (values span [{lo}, {hi}])")
    return np.ascontiguousarray(a, dtype=np.int32)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's round(): nearest integer, halves away from zero; same dtype, exact (NaN stays NaN)."""
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0).astype(x.dtype)


def _uv_texels(vtx_uv: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flat texel index of every UV row, -1 where it falls outside the texture. As Hunyuan3D's
    C++: col = round(float32(u * (W - 1))), row = round((1.0 - double(v)) * (H - 1)) in double."""
    col = _round_half_away(vtx_uv[:, 0] * np.float32(width - 1))
    row = _round_half_away((1.0 - vtx_uv[:, 1].astype(np.float64)) * float(height - 1))
    ok = (col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1)
    flat = np.full(vtx_uv.shape[0], -1, dtype=np.int64)
    flat[ok] = row[ok].astype(np.int64) * width + col[ok].astype(np.int64)
    return flat


def _validate(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx) -> _Inputs:
    tex, as_torch = _float_array(texture, "texture", "[H, W, C]", 3)
    H, W, C = tex.shape
    if H < 1 or W < 1 or C < 1:
        raise ValueError(f"texture must have H, W, C >= 1, got shape {list(tex.shape)}")
    msk, _ = _to_numpy(mask, "mask")
    if msk.dtype != np.uint8 and msk.dtype != np.bool_:
        raise TypeError(f"mask must be uint8 (> 0 = painted) or bool, got {msk.dtype}")
    if msk.shape != (H, W):
        raise ValueError(f"mask must have shape [H, W] = {[H, W]} (as texture), got {list(msk.shape)}")
    msk = np.ascontiguousarray(msk).view(np.uint8) if msk.dtype == np.bool_ else np.ascontiguousarray(msk)
    pos, _ = _float_array(vtx_pos, "vtx_pos", "[V, 3]", 2, 3)
    uv, _ = _float_array(vtx_uv, "vtx_uv", "[T, 2]", 2, 2)
    V, T = pos.shape[0], uv.shape[0]
    if V > _INT32_MAX or T > _INT32_MAX:
        raise ValueError("vtx_pos / vtx_uv: more than 2**31 - 1 rows is not supported")
    pidx = _index_array(pos_idx, "pos_idx", V, "vtx_pos")
    uidx = _index_array(uv_idx, "uv_idx", T, "vtx_uv")
    if pidx.shape[0] != uidx.shape[0]:
        raise ValueError(f"pos_idx and uv_idx must have the same number of faces, got {pidx.shape[0]} and "
                         f"{uidx.shape[0]}")
    if pidx.shape[0] > _INT32_MAX // 3:
        raise ValueError(f"pos_idx: {pidx.shape[0]} faces is more than supported ({_INT32_MAX // 3})")
    corner_texel = _uv_texels(uv, H, W)[uidx.reshape(-1)]
    if corner_texel.size and corner_texel.min() < 0:
        bad = int(np.flatnonzero(corner_texel < 0)[0])
        t = int(uidx.reshape(-1)[bad])
        raise ValueError(f"vtx_uv[{t}] = {uv[t].tolist()} (used by face {bad // 3}) maps to a texel outside the "
                         f"{H}x{W} texture; UVs must lie in [0, 1] and be finite")
    return _Inputs(tex, msk, pos, uv, pidx, uidx, corner_texel, as_torch)


# ---------------------------------------------------------------------------------------------
# Python fallback: the same arithmetic as csrc/inpaint/inpaint.cpp, vectorised with numpy.
# Bit-identical: every float32 operation is the one the C++ does, in the same order (sums over
# neighbours are accumulated with ufunc.at, which adds in index order).
# ---------------------------------------------------------------------------------------------
def _last_per_key(keys: np.ndarray, vals: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """For every distinct key, the value at its last occurrence ("a later one overrides")."""
    u, first_in_reversed = np.unique(keys[::-1], return_index=True)
    return u, vals[::-1][first_in_reversed]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    out = np.ones(total, dtype=np.int64)
    nz = lengths > 0
    heads = (ends - lengths)[nz]
    out[0] = starts[nz][0]
    # at the head of each range, jump from the previous range's last value to this range's start
    prev_last = (starts + lengths - 1)[nz]
    out[heads[1:]] = starts[nz][1:] - prev_last[:-1]
    return np.cumsum(out)


def _weights(pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 w(a, b) = (1 / max(sqrt((dx*dx + dy*dy) + dz*dz), 1e-4))^2, as the C++ computes it."""
    d = pos[a] - pos[b]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    eps = np.float32(1e-4)
    r = np.float32(1.0) / np.where(dist < eps, eps, dist)
    return r * r


class _Graph(NamedTuple):
    offsets: np.ndarray  # int64 [V + 1]
    adj: np.ndarray  # int64 [3F]: out-neighbours, per vertex in face/corner order


def _graph(pos_idx: np.ndarray, num_vertices: int) -> _Graph:
    src = pos_idx.reshape(-1).astype(np.int64)
    dst = pos_idx[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    order = np.argsort(src, kind="stable")
    offsets = np.zeros(num_vertices + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=num_vertices), out=offsets[1:])
    return _Graph(offsets, dst[order])


def _run_python(inp: _Inputs, method: str, max_passes: Optional[int] = None):
    # Non-finite inputs (inf / NaN positions or colours) flow through as in the C++: no warnings.
    with np.errstate(all="ignore"):
        return _run_python_impl(inp, method, max_passes)


def _run_python_impl(inp: _Inputs, method: str, max_passes: Optional[int]):
    H, W, C = inp.texture.shape
    V = inp.vtx_pos.shape[0]
    texf = inp.texture.reshape(-1, C)
    corner_v = inp.pos_idx.reshape(-1).astype(np.int64)
    corner_t = inp.corner_texel
    painted = inp.mask.reshape(-1)[corner_t] > 0

    # Step 1: a vertex takes the colour of its last painted corner.
    color = np.zeros((V, C), dtype=np.float32)
    colored = np.zeros(V, dtype=bool)
    pc = np.flatnonzero(painted)
    if pc.size:
        v, t = _last_per_key(corner_v[pc], corner_t[pc])
        color[v] = texf[t]
        colored[v] = True
    g = _graph(inp.pos_idx, V)

    if method == "smooth":
        entries = corner_v[~painted]
        iterations, last = _smooth_python(inp.vtx_pos, g, entries, color, colored, max_passes)
    else:
        entries = corner_v[:0]
        iterations, last = _forward_python(inp.vtx_pos, g, color, colored), 0

    # Step 4: write back on copies; at a texel shared by several corners the last corner wins.
    out_tex = inp.texture.copy()
    out_mask = inp.mask.copy()
    sel = np.flatnonzero(colored[corner_v])
    if sel.size:
        t, v = _last_per_key(corner_t[sel], corner_v[sel])
        out_tex.reshape(-1, C)[t] = color[v]
        out_mask.reshape(-1)[t] = 255
    stats = InpaintStats(iterations, int(entries.size), int(last), int(colored.sum()), "python")
    return out_tex, out_mask, stats


def _list_levels(entries: np.ndarray, g: _Graph, num_vertices: int) -> np.ndarray:
    """Schedule one Gauss-Seidel pass as batches that can run at once without changing a bit.

    Entry i (vertex p) reads the state of p's out-neighbours and writes p. Its level is the
    smallest batch that comes after every earlier entry whose write it reads (read after write)
    or whose vertex it rewrites (write after write), and not before any earlier entry that reads
    p (write after read; within a batch all reads happen before the writes). Batches then run in
    order and reproduce the sequential pass exactly. Plain Python: it is one loop over the list.
    """
    off = g.offsets.tolist()
    adj = g.adj.tolist()
    last_write = [0] * num_vertices
    last_read = [0] * num_vertices
    levels = [0] * entries.size
    for i, p in enumerate(entries.tolist()):
        lev = last_write[p] + 1
        if last_read[p] > lev:
            lev = last_read[p]
        nb = adj[off[p]:off[p + 1]]
        for q in nb:
            if last_write[q] >= lev:
                lev = last_write[q] + 1
        levels[i] = lev
        last_write[p] = lev
        for q in nb:
            if last_read[q] < lev:
                last_read[q] = lev
    return np.asarray(levels, dtype=np.int64)


def _smooth_python(pos, g: _Graph, entries, color, colored, max_passes=None) -> Tuple[int, int]:
    V, C = color.shape
    n = entries.size
    levels = _list_levels(entries, g, V) if n else np.zeros(0, dtype=np.int64)
    order = np.argsort(levels, kind="stable")
    ent_v = entries[order]
    nlev = int(levels.max()) if n else 0
    ent_bounds = np.searchsorted(levels[order], np.arange(1, nlev + 2))
    deg = g.offsets[ent_v + 1] - g.offsets[ent_v]
    edge_q = g.adj[_ranges(g.offsets[ent_v], deg)]
    edge_w = _weights(pos, np.repeat(ent_v, deg), edge_q)
    # owner of each edge, counted from the first entry of its batch
    edge_owner = np.repeat(np.arange(n, dtype=np.int64) - np.repeat(ent_bounds[:-1], np.diff(ent_bounds)), deg)
    edge_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg, out=edge_start[1:])
    edge_bounds = edge_start[ent_bounds]
    batches = [(int(ent_bounds[k]), int(ent_bounds[k + 1]), int(edge_bounds[k]), int(edge_bounds[k + 1]))
               for k in range(nlev)]

    # Working copy with a trailing 1.0 column: colour * w then carries w itself, so one ufunc.at
    # accumulates the colour sums and the weight total, each in edge order, as the C++ does.
    # Uncoloured neighbours are not filtered out but get w = 0: their colour is still the
    # initial +0.0, so they add exactly +0.0, which changes no sum (the C++ does the same).
    aug = np.ones((V, C + 1), dtype=np.float32)
    aug[:, :C] = color
    zero = np.float32(0.0)

    smooth_count, last, passes = 2, 0, 0
    while smooth_count > 0:
        if max_passes is not None and passes >= max_passes:
            break
        count = 0
        for a, b, e0, e1 in batches:
            q = edge_q[e0:e1]
            w = np.where(colored[q], edge_w[e0:e1], zero)
            acc = np.zeros((b - a, C + 1), dtype=np.float32)
            np.add.at(acc, edge_owner[e0:e1], aug[q] * w[:, None])
            total = acc[:, C]
            ok = total > 0
            v = ent_v[a:b][ok]
            aug[v, :C] = acc[ok, :C] / total[ok, None]
            colored[v] = True
            count += (b - a) - int(np.count_nonzero(ok))
        passes += 1
        smooth_count += -1 if count == last else 1
        last = count
    color[...] = aug[:, :C]
    return passes, last


def _forward_python(pos, g: _Graph, color, colored) -> int:
    vm = np.where(colored, np.float32(1.0), np.float32(0.0)).astype(np.float32)
    active = np.flatnonzero(colored)
    layers = 0
    while active.size:
        deg = g.offsets[active + 1] - g.offsets[active]
        q = g.adj[_ranges(g.offsets[active], deg)]
        p = np.repeat(active, deg)
        keep = ~(vm[q] > 0)  # vm only drops during a layer, so this is fixed for the layer
        p, q = p[keep], q[keep]
        w = _weights(pos, p, q)
        np.add.at(color, q, color[p] * w[:, None])
        # q joins the next layer at every edge where vm[q] is still exactly 0, i.e. where all of
        # this layer's earlier edges into q had weight 0 (vm is 0 at the start of the layer).
        o = np.argsort(q, kind="stable")
        qs, nz = q[o], (w[o] != 0).astype(np.int64)
        before = np.cumsum(nz) - nz  # nonzero weights before this edge, over all of qs
        head = np.ones(qs.size, dtype=bool)
        head[1:] = qs[1:] != qs[:-1]
        group_base = np.repeat(before[head], np.diff(np.append(np.flatnonzero(head), qs.size)))
        push = np.empty(qs.size, dtype=bool)
        push[o] = (before - group_base) == 0
        pending = q[push]
        np.subtract.at(vm, q, w)
        uq, counts = np.unique(pending, return_counts=True)
        color[uq] = color[uq] / (-vm[uq])[:, None]
        # a vertex queued k times is divided k-1 more times by -vm = -1
        again = uq[(counts % 2) == 0]
        color[again] = color[again] / np.float32(-1.0)
        vm[uq] = 1.0
        colored[uq] = True
        active = pending
        layers += 1
    return layers

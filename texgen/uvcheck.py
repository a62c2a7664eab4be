"""Whether a mesh's own UVs can hold a baked texture, and so whether to unwrap (not how: that is
:func:`texgen.mesh.unwrap`).

A bake needs every surface point to own its texels: UVs must be finite, inside [0, 1] (tiled UVs
repeat the texture, so distant surfaces would share texels) and UV triangles must not overlap
(mirrored or stacked charts: two surface points write one texel). Overlap is measured with
render_npu itself: the UV triangles are rasterized twice into the atlas, with depth ordered by
face index and then by the reverse order; a texel covered by two or more triangles keeps a
different winner in the two passes, one covered once keeps the same. render_npu's top-left fill
rule gives a texel on an edge shared by two triangles to exactly one of them, so a clean atlas
counts zero.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["UV_TOLERANCE", "OVERLAP_FRACTION", "uv_overlap", "overlap_winners", "uv_problem", "decide_unwrap"]

UV_TOLERANCE = 1e-4  # UVs this far outside [0, 1] still count as inside (exporters round)
OVERLAP_FRACTION = 1e-3  # more than this share of the covered texels covered twice is an overlap
MAX_CHECK_SIZE = 1024  # atlas resolution of the overlap test (texels)


def overlap_winners(uv: np.ndarray, uv_idx: np.ndarray, size: int = MAX_CHECK_SIZE):
    """The two rasterizations behind :func:`uv_overlap`: int32 torch tensors ``[2, size, size]``
    holding, per texel, 1 + the index of the face that won with depth ordered by face index (0)
    and by the reverse order (1); 0 where no face covers the texel."""
    import torch

    import render_npu

    uv = np.asarray(uv, np.float64)
    F = int(np.asarray(uv_idx).shape[0])
    # one vertex per face corner, so each face can carry its own depth
    corners = uv[np.asarray(uv_idx).reshape(-1)]
    clip = np.zeros((2, 3 * F, 4), np.float32)
    clip[:, :, 0] = corners[:, 0] * 2 - 1
    clip[:, :, 1] = corners[:, 1] * 2 - 1
    clip[:, :, 3] = 1
    order = (np.arange(F, dtype=np.float64) + 0.5) / max(F, 1)  # in (0, 1): inside the depth range
    clip[0, :, 2] = np.repeat(order, 3)
    clip[1, :, 2] = np.repeat(1 - order, 3)
    tri = torch.arange(3 * F, dtype=torch.int32).reshape(F, 3)
    return render_npu.rasterize(int(size), tri, torch.from_numpy(clip)).rast[..., 3].round().int()


def uv_overlap(uv: np.ndarray, uv_idx: np.ndarray, size: int = MAX_CHECK_SIZE) -> Tuple[int, int]:
    """(texels covered by two or more UV triangles, texels covered at all) at ``size`` x ``size``
    texels (texel centres at ``u = col / (size - 1)``, as the bake uses). ``uv`` float [T, 2] inside
    [0, 1], ``uv_idx`` int [F, 3]."""
    a, b = overlap_winners(uv, uv_idx, size)
    covered = int((a > 0).sum())
    twice = int(((a > 0) & (a != b)).sum())
    return twice, covered


def uv_problem(mesh, size: int = MAX_CHECK_SIZE) -> Optional[str]:
    """Why ``mesh``'s UVs cannot be baked into (one sentence, with numbers), or None if they can
    (or it has none: that is the caller's question)."""
    if not mesh.has_uv:
        return None
    used = np.unique(mesh.uv_idx)
    uv = np.asarray(mesh.uv, np.float64)[used]
    bad = ~np.isfinite(uv).all(axis=1)
    if bad.any():
        return f"{int(bad.sum())} of its {len(used)} UVs are NaN or infinite"
    outside = ((uv < -UV_TOLERANCE) | (uv > 1 + UV_TOLERANCE)).any(axis=1)
    if outside.any():
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        return (f"{int(outside.sum())} of its {len(used)} UVs lie outside [0, 1] (u in [{lo[0]:.3g}, {hi[0]:.3g}], "
                f"v in [{lo[1]:.3g}, {hi[1]:.3g}]: tiled UVs)")
    size = int(min(max(size, 2), MAX_CHECK_SIZE))
    twice, covered = uv_overlap(mesh.uv, mesh.uv_idx, size)
    if covered and twice > OVERLAP_FRACTION * covered:
        return (f"its UV triangles overlap: {100.0 * twice / covered:.1f}% of the covered texels "
                f"({twice} of {covered} at {size}x{size}) are covered by more than one triangle")
    return None


def decide_unwrap(mesh, mode: str, size: int = MAX_CHECK_SIZE) -> Tuple[bool, Optional[str]]:
    """``(unwrap?, why)`` for ``mode`` "auto" (unwrap when the mesh has no UVs or :func:`uv_problem`
    finds one), "always" or "never" (never unwraps; ``why`` then says what is wrong, if anything,
    and the caller refuses). ``why`` is None when the UVs are fine or absent-and-unwrapped."""
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"unwrap mode must be 'auto', 'always' or 'never', got {mode!r}")
    if mode == "always":
        return True, None
    if not mesh.has_uv:
        return mode == "auto", (None if mode == "auto" else "the mesh has no UVs")
    problem = uv_problem(mesh, size)
    return (problem is not None and mode == "auto"), problem

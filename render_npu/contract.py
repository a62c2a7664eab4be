"""The contract's numeric rules, in one place (docs/rasterization.md): the screen mapping, the
fixed-point snap, the clip planes, the top-left rule and the pixel range of a fixed-point span.

Every Python backend (reference, torch, AscendC) and the tests import these; the compiled CPU
backend implements the same rules in csrc/rasterize/setup.cpp and is tested bit for bit against
the reference. The functions work on numpy arrays and scalars and on torch tensors alike (plain
arithmetic and comparisons), so the reference and the torch backend run the same expressions.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

SUBPIXEL = 256  # fixed-point steps per pixel (8 bits)
_SUBPIXEL_BITS = 8  # SUBPIXEL == 1 << _SUBPIXEL_BITS
HALF = SUBPIXEL // 2  # pixel centre offset in fixed point: centre of pixel p is SUBPIXEL p + HALF
GUARD_BAND = 128.0  # clip planes |x|, |y| <= G w: fixed-point values stay below 2**29
MAX_FIXED = float(2 ** 29)  # a snapped coordinate beyond this means float32 clipping broke down
NUM_PLANES = 6  # near z + w, far w - z, then the guard band G w - x, G w + x, G w - y, G w + y
VIEWPORTS = ("align_corners", "opengl")


def screen_transform(size: int, viewport: str) -> Tuple[np.float32, np.float32]:
    """float32 (A, B) with pixel coordinate ``s = X * A + B`` for NDC ``X`` along an axis of
    ``size`` pixels (pixel ``p`` spans [p, p + 1], centre p + 1/2). "align_corners": NDC -1 and +1
    on the centres of the edge pixels (Hunyuan3D); "opengl": on the image borders (nvdiffrast)."""
    if viewport == "align_corners":
        return np.float32(0.5 * (size - 1)), np.float32(0.5 * (size - 1) + 0.5)
    return np.float32(0.5 * size), np.float32(0.5 * size)


def snap(X, A, B):
    """Fixed-point screen coordinate of NDC ``X`` (float32 array or tensor): ``rint((X A + B) 256)``,
    three float32 roundings (no FMA), ties to even; still a float (NaN/inf kept for the caller's
    :data:`MAX_FIXED` check)."""
    return ((X * A + B) * np.float32(SUBPIXEL)).round()


def plane_distances(x, y, z, w):
    """The six clip-plane values of clip-space points, in clipping order (inside: >= 0); float32
    arithmetic for float32 inputs."""
    gw = w * np.float32(GUARD_BAND)
    return (z + w, w - z, gw - x, gw + x, gw - y, gw + y)


def is_top_left(dx, dy):
    """True for an edge (dx, dy) of a positively oriented triangle that owns the pixel centres
    exactly on it: edges going down (dy < 0) or exactly left (dy == 0, dx < 0)."""
    return (dy < 0) | ((dy == 0) & (dx < 0))


def pixel_span(lo_fixed, hi_fixed):
    """First and last pixel whose centre ``SUBPIXEL p + HALF`` lies in the fixed-point interval
    [lo, hi] (unclamped; empty when first > last). Integers: Python ints, numpy or torch.
    ``>> 8`` is ``// SUBPIXEL`` (floor, negatives included) without an integer division (several
    times cheaper per element on torch int64)."""
    return -((HALF - lo_fixed) >> _SUBPIXEL_BITS), (hi_fixed - HALF) >> _SUBPIXEL_BITS
